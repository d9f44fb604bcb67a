// Package gossip spreads the ring descriptor between Pharos processes over
// hashicorp/memberlist. A KV holds the local copy of the descriptor, merges
// what peers send (it is a CRDT, see package cluster/ring), gossips local
// changes, and tells watchers about new versions.
//
// Updates travel two ways: each changed instance is broadcast on its own
// (piggy-backed on memberlist's UDP gossip, or sent over TCP when too big
// for a packet), and memberlist's periodic push/pull exchanges full state
// as anti-entropy, which also brings a joining node up to date.
package gossip
