// Package ingester is the storage role of Pharos: one Prometheus tsdb.DB
// behind the gRPC Ingester service (storage/ingesterpb).
//
// Distributors push batches of series; each batch goes through exactly one
// tsdb appender and one commit, so an RPC error means nothing of the batch was
// written, while samples rejected one by one (out of order, too old, ...) are
// reported per series in the PushResponse and do not stop the rest of the
// batch. Queriers read encoded chunks with QueryStream and merge replicas
// themselves; the ingester never decodes samples on the read path.
//
// The Ingester's lifecycle is New (opens the tsdb, replaying the WAL), serve,
// Close (refuse new requests with codes.Unavailable, drain in-flight ones,
// close the tsdb so the next start replays cleanly).
package ingester
