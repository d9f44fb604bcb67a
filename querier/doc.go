// Package querier is the read path of Pharos: a storage.Queryable that fans a
// query out to every ingester over gRPC (QueryStream, Series, LabelNames,
// LabelValues, MetricsMetadata), merges the sorted answers and drops the
// duplicate samples that replicas hold, and the PromQL engine that runs on
// top of it.
//
// Chunks arrive encoded and stay encoded until the engine iterates them: a
// series costs one label allocation, its chunks none.
//
// The HTTP API lives in querier/api.
package querier
