// Package api serves the Prometheus HTTP API (/api/v1/...) of a querier. It
// mounts the upstream handler, github.com/prometheus/prometheus/web/api/v1,
// so that every endpoint answers with exactly Prometheus's JSON and error
// types, and replaces only what a cluster answers differently: metric
// metadata comes from the ingesters instead of scrape targets, TSDB status
// needs a local TSDB, and remote write is served by the distributor, not
// here.
package api
