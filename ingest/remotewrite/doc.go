// Package remotewrite reads Prometheus remote-write requests (1.0
// prometheus.WriteRequest and 2.0 io.prometheus.write.v2.Request, snappy block
// compressed) straight into ingesterpb.PushRequest.
//
// The decoders parse the protobuf wire format by hand. Label names and values
// are sub-slices of the decompressed body, and every message, slice and buffer
// belongs to a pooled Request, so a warm request decodes without allocating.
// Upstream's gogo decoding allocates every label string, and that allocation
// (and the GC it causes) dominated the cost of ingesting remote write.
//
// The package decodes and nothing else: validation, limits on series and
// the mapping of errors to HTTP statuses belong to the distributor.
package remotewrite
