// Package resultwire is the binary form of an instant or range query's
// answer, for the query frontend, which asks the querier API for it when
// it combines the answers of query shards. Decoding JSON points and
// encoding them again cost more than evaluating a shard for answers of
// many series; this form carries each point as its millisecond timestamp
// and the float's bits, so nothing is formatted or parsed, and a value
// comes back exactly as the engine produced it.
//
// The API encodes an answer this way only when asked (Accept) and only
// when the answer holds nothing but float samples and no statistics;
// otherwise it answers JSON as before.
package resultwire
