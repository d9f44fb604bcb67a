// Package frontend sits in front of the Prometheus range-query endpoint and
// makes big and repeated range queries cheap, the way Mimir's query-frontend
// does, with code of its own: a range query is split at day boundaries (on
// the query's own step grid, so every point is computed exactly as before),
// the parts run in parallel, and the parts that lie far enough in the past
// are kept in a results cache as extents, so that a dashboard refreshing
// "the last 24h" only evaluates the minutes it has not seen.
//
// The parts are evaluated by the upstream API handler it wraps, so results
// and errors are byte-for-byte Prometheus's.
package frontend
