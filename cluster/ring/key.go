package ring

import (
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// sep cannot occur in valid UTF-8, so name/value boundaries are unambiguous.
var sep = []byte{0xff}

// ShardKey places a series on the ring: a hash of its sorted label set,
// folded to 32 bits. It is part of the cluster's on-disk contract (which
// ingester holds which series), so it must not change between releases;
// it deliberately does not reuse labels.Labels.Hash, whose algorithm is
// Prometheus's to change.
func ShardKey(lbls labels.Labels) uint32 {
	var d xxhash.Digest
	d.Reset()
	lbls.Range(func(l labels.Label) {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sep)
	})
	return fold(d.Sum64())
}

// StringKey places an arbitrary identity on the ring, such as a scrape
// target's job and address. Parts are separated so ("ab","c") and ("a","bc")
// differ.
func StringKey(parts ...string) uint32 {
	var d xxhash.Digest
	d.Reset()
	for _, p := range parts {
		_, _ = d.WriteString(p)
		_, _ = d.Write(sep)
	}
	return fold(d.Sum64())
}

func fold(h uint64) uint32 { return uint32(h) ^ uint32(h>>32) }

// FoldKey places a caller's own 64-bit xxhash identity on the ring, the way
// StringKey folds its hash, for callers that keep the wide hash as an
// identity (fewer collisions in sets) and need the ring key as well.
func FoldKey(h uint64) uint32 { return fold(h) }
