package ingester

import (
	"encoding/binary"
	"hash/maphash"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// refCache maps the labels of a pushed series to its head reference, as
// Prometheus's scrape cache maps a scraped line to its reference. Without
// it every push of a known series pays for building its labels, hashing
// them and looking them up in the head's striped series map: at 100k
// active series that lookup alone was a quarter of the ingester's CPU,
// most of it cache misses in the head's many small per-stripe maps.
//
// The key is a 128-bit hash of the series' labels as the ingester stores
// them (sorted, empty values dropped, tenant label in place), computed from
// the request without building labels: 64 bits pick the entry, the other
// 64 must match it. Both come from maphash with seeds drawn at start, so a
// client cannot craft a collision, and a chance one needs about 2^64
// series; comparing the labels instead cost more than the rest of a hit
// (the head's copy is a cache miss away).
//
// A cached ref goes stale when the head drops its series (head GC after a
// compaction, or a deletion): the tsdb then calls forget, and a push in
// between finds no series for the ref and has the appender create it again
// from the cached labels, which are the head's, so nothing is lost either
// way. Entries therefore live as long as their series, at about 40 bytes
// each.
type refCache struct {
	seeds   [2]maphash.Seed
	stripes [refCacheStripes]refStripe
}

// refKey is a series' key: h picks the entry, check must match it.
type refKey struct{ h, check uint64 }

// refCacheStripes spreads concurrent pushes over locks; a power of two.
const refCacheStripes = 256

type refStripe struct {
	mu sync.RWMutex
	m  map[uint64]refEntry
	_  [32]byte // 64 bytes a stripe: neighbouring locks stay off one cache line
}

type refEntry struct {
	check uint64
	ref   storage.SeriesRef
	ls    labels.Labels // the head's copy
}

func newRefCache() *refCache {
	c := &refCache{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	for k := range c.stripes {
		c.stripes[k].m = map[uint64]refEntry{}
	}
	return c
}

// key returns the key of the series whose appendKey bytes are b.
func (c *refCache) key(b []byte) refKey {
	return refKey{h: maphash.Bytes(c.seeds[0], b), check: maphash.Bytes(c.seeds[1], b)}
}

// get returns the ref and the head's labels of the series with key k; ok
// is false on a miss.
func (c *refCache) get(k refKey) (storage.SeriesRef, labels.Labels, bool) {
	s := &c.stripes[k.h%refCacheStripes]
	s.mu.RLock()
	e, ok := s.m[k.h]
	s.mu.RUnlock()
	if !ok || e.check != k.check {
		return 0, labels.EmptyLabels(), false
	}
	return e.ref, e.ls, true
}

// put caches ref for the series ls with key k. When two series share k.h
// the one cached keeps its slot, so they do not evict each other on every
// push: the newcomer takes the slow path.
func (c *refCache) put(k refKey, ref storage.SeriesRef, ls labels.Labels) {
	s := &c.stripes[k.h%refCacheStripes]
	s.mu.Lock()
	if e, ok := s.m[k.h]; !ok || e.check == k.check {
		s.m[k.h] = refEntry{check: k.check, ref: ref, ls: ls}
	}
	s.mu.Unlock()
}

// forget drops the entries of series the head deleted. An entry already
// pointing at a newer ref (the series was recreated) is kept.
func (c *refCache) forget(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	var buf []byte
	for ref, ls := range deleted {
		buf = appendKey(buf[:0], ls)
		k := c.key(buf)
		s := &c.stripes[k.h%refCacheStripes]
		s.mu.Lock()
		if e, ok := s.m[k.h]; ok && e.check == k.check && e.ref == storage.SeriesRef(ref) {
			delete(s.m, k.h)
		}
		s.mu.Unlock()
	}
}

// reset drops every entry: the refs belong to a tsdb that was closed.
func (c *refCache) reset() {
	for k := range c.stripes {
		s := &c.stripes[k]
		s.mu.Lock()
		s.m = map[uint64]refEntry{}
		s.mu.Unlock()
	}
}

// len is the number of cached series.
func (c *refCache) len() int {
	n := 0
	for k := range c.stripes {
		s := &c.stripes[k]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// appendKey appends the bytes a series' key hash is computed over:
// pushState.addLabel builds the same bytes from a request.
func appendKey(buf []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) { buf = appendKeyLabel(buf, l.Name, l.Value) })
	return buf
}

// appendKeyLabel appends one label: name and value, each after its length
// as a uvarint, so that rangeKey can read any bytes back.
func appendKeyLabel(buf []byte, name, value string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(name)))
	buf = append(buf, name...)
	buf = binary.AppendUvarint(buf, uint64(len(value)))
	return append(buf, value...)
}

// rangeKey calls f with each label of key, as strings that alias it.
func rangeKey(key []byte, f func(name, value string)) {
	next := func() string {
		n, w := binary.Uvarint(key)
		s := yoloString(key[w : w+int(n)])
		key = key[w+int(n):]
		return s
	}
	for len(key) > 0 {
		name := next()
		f(name, next())
	}
}

// lifecycle is the tsdb's SeriesLifecycleCallback: the series tracker
// counts and limits, the ref cache forgets deleted series.
type lifecycle struct {
	*seriesTracker
	refs *refCache // nil when the cache is off
}

// PostDeletion implements tsdb.SeriesLifecycleCallback.
func (l lifecycle) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	l.seriesTracker.PostDeletion(deleted)
	if l.refs != nil {
		l.refs.forget(deleted)
	}
}
