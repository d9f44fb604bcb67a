// Package querier is the read path of Pharos: a storage.Queryable that fans a
// query out to every ingester over gRPC (QueryStream, Series, LabelNames,
// LabelValues, MetricsMetadata), merges the sorted answers and drops the
// duplicate samples that replicas hold, and the PromQL engine that runs on
// top of it.
//
// Which ingesters a query asks is an Ingesters' ReadSet, taken once per
// query: with NewRingIngesters, every instance of the ring healthy for reads,
// and how many of them may fail (RF−quorum instances, or whole zones) with
// the merged answer still complete. Failures within that budget become
// warnings naming the ingester; beyond it the query fails with a
// promql.ErrStorage (HTTP 500) naming every failed ingester, never a
// silently partial answer. A minimized read set asks only as many as that
// budget leaves and keeps the rest standing by: a standby takes over a
// failed stream where it stopped, skipping the series already merged.
//
// Chunks arrive encoded and stay encoded until the engine iterates them: a
// series costs one label allocation, its chunks none.
//
// The HTTP API lives in querier/api.
package querier
