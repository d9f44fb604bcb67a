// Package distributor is the front door of the write path: it validates
// series (Prometheus and Mimir semantics), applies limits, and sends them to
// the ingesters that own them over gRPC, answering only once they have acked.
//
// Three entry points share one path, Push: the remote-write HTTP handler
// (1.0 and 2.0), the upstream scrape manager and the rules manager (through
// AppendableV2), so that every sample meets the same validation.
//
// Errors come in two kinds. A rejected series (bad labels, sample too old,
// out of order, ...) is reported in PushResult and the rest of the batch is
// still written; the sender must not retry it (HTTP 400). A returned error
// means ingesters could not be reached or did not ack; nothing may be assumed
// written and the sender should retry (HTTP 5xx or 429). The mapping to HTTP
// statuses lives in one function, httpStatus.
package distributor
