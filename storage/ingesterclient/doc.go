// Package ingesterclient dials ingesters and holds the gRPC plumbing that the
// client and the server of the ingester service must agree on: the vtprotobuf
// codec (no reflection, pooled buffers) and the klauspost/compress
// compressors (snappy, s2, zstd) registered with gRPC.
//
// Both sides of a connection must use Codec; ServerOptions and Dial set it.
package ingesterclient
