// Package ring is the pure core of Pharos's hash ring: the gossiped ring
// descriptor and its conflict-free merge, token generation, series keys, and
// the choice of replication sets. It does no I/O and reads no clock: callers
// pass the current time in, so every decision here is a deterministic
// function of its arguments and can be unit-tested exhaustively.
//
// The transport (memberlist gossip) lives in package cluster/gossip, the
// per-ingester lifecycle and the cached client view in package cluster.
package ring
