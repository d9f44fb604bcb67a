package ingester

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// refCache maps the labels of a pushed series to its head reference, as
// Prometheus's scrape cache maps a scraped line to its reference. Without
// it every push of a known series pays for building its labels, hashing
// them and looking them up in the head's striped series map: at 100k
// active series that lookup alone was a quarter of the ingester's CPU,
// most of it cache misses in the head's many small per-stripe maps.
//
// The key is a 128-bit hash of the series' labels as the ingester stores
// them (sorted, empty values dropped, the tenant's label first; see
// appendKey), computed from the request without building labels, over gRPC
// without even decoding them: 64 bits pick the entry, the other
// 64 must match it. Both come from maphash with seeds drawn at start, so a
// client cannot craft a collision, and a chance one needs about 2^64
// series; comparing the labels instead cost more than the rest of a hit
// (the head's copy is a cache miss away).
//
// A cached ref goes stale when the head drops its series (head GC after a
// compaction, or a deletion): the tsdb then calls forget, and a push in
// between finds no series for the ref, builds the labels and has the
// appender create the series again (pushedSeries.append), so nothing is
// lost either way. Entries therefore live as long as their series, at 24
// bytes a slot, 32 to 64 bytes a series with the tables' free slots.
type refCache struct {
	seeds   [2]maphash.Seed
	stripes [refCacheStripes]refStripe
}

// refKey is a series' key: h picks the entry, check must match it.
type refKey struct{ h, check uint64 }

// refCacheStripes spreads concurrent pushes over locks; a power of two.
// The low bits of a key's h pick the stripe, the others its slot.
const refCacheStripes = 256

// refStripe is an open-addressing hash table with linear probing. A Go map
// of the same entries cost twice the lookup time: at hundreds of entries
// a map is a directory, tables and groups, each a cache miss away, where
// this is one slot (and the stripe's header, which stays cached).
type refStripe struct {
	mu      sync.RWMutex
	entries []refEntry // len a power of two; h == 0 marks a free slot
	n       int
	_       [8]byte // 64 bytes a stripe: neighbouring locks stay off one cache line
}

// refEntry holds no pointer, so that the garbage collector skips the
// tables: at 1M series they are tens of megabytes it would otherwise scan
// in every cycle.
type refEntry struct {
	h, check uint64
	ref      storage.SeriesRef
}

// minStripeSlots is a stripe's table size when empty.
const minStripeSlots = 16

func newRefCache() *refCache {
	c := &refCache{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	for k := range c.stripes {
		c.stripes[k].entries = make([]refEntry, minStripeSlots)
	}
	return c
}

// key returns the key of the series whose key bytes (appendKey) are b.
func (c *refCache) key(b []byte) refKey {
	k := refKey{h: maphash.Bytes(c.seeds[0], b), check: maphash.Bytes(c.seeds[1], b)}
	if k.h == 0 {
		k.h = 1 // 0 is a free slot
	}
	return k
}

func (c *refCache) stripe(k refKey) *refStripe { return &c.stripes[k.h%refCacheStripes] }

// get returns the ref of the series with key k; ok is false on a miss.
func (c *refCache) get(k refKey) (storage.SeriesRef, bool) {
	s := c.stripe(k)
	s.mu.RLock()
	ref := s.lookup(k)
	s.mu.RUnlock()
	return ref, ref != 0
}

// lookup returns the ref of the entry with key k, 0 for none (a ref is
// never 0). The caller holds s.mu.
func (s *refStripe) lookup(k refKey) storage.SeriesRef {
	if i := s.find(k.h); i >= 0 && s.entries[i].check == k.check {
		return s.entries[i].ref
	}
	return 0
}

// getAll is get for every key of keys whose h is not 0 (0: none wanted):
// refs[i] becomes keys[i]'s ref, 0 on a miss (a ref is never 0). The
// lookups are grouped by stripe and each stripe's lock is taken once:
// between two lookups under one lock there is no atomic operation, which
// is a memory fence on amd64, so the processor overlaps their cache
// misses into the tables, where one get per series waits out each one.
// order is scratch, returned for reuse.
func (c *refCache) getAll(keys []refKey, refs []storage.SeriesRef, order []int32) []int32 {
	var next [refCacheStripes + 1]int32 // counting sort of the keys by stripe
	for _, k := range keys {
		if k.h != 0 {
			next[k.h%refCacheStripes+1]++
		}
	}
	for i := 1; i <= refCacheStripes; i++ {
		next[i] += next[i-1]
	}
	order = slices.Grow(order[:0], int(next[refCacheStripes]))[:next[refCacheStripes]]
	start := next
	for i, k := range keys {
		refs[i] = 0
		if k.h != 0 {
			sk := k.h % refCacheStripes
			order[next[sk]] = int32(i)
			next[sk]++
		}
	}
	for sk := range c.stripes {
		run := order[start[sk]:start[sk+1]]
		if len(run) == 0 {
			continue
		}
		s := &c.stripes[sk]
		s.mu.RLock()
		for _, i := range run {
			refs[i] = s.lookup(keys[i])
		}
		s.mu.RUnlock()
	}
	return order
}

// put caches ref for the series with key k. When two series share k.h the
// one cached keeps its slot, so they do not evict each other on every
// push: the newcomer takes the slow path.
func (c *refCache) put(k refKey, ref storage.SeriesRef) {
	s := c.stripe(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.find(k.h); i >= 0 {
		if s.entries[i].check == k.check {
			s.entries[i].ref = ref
		}
		return
	}
	s.insert(refEntry{h: k.h, check: k.check, ref: ref})
}

// forget drops the entries of series the head deleted. An entry already
// pointing at a newer ref (the series was recreated) is kept.
func (c *refCache) forget(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	var buf []byte
	for ref, ls := range deleted {
		buf = appendKey(buf[:0], ls)
		k := c.key(buf)
		s := c.stripe(k)
		s.mu.Lock()
		if i := s.find(k.h); i >= 0 && s.entries[i].check == k.check && s.entries[i].ref == storage.SeriesRef(ref) {
			s.remove(i)
		}
		s.mu.Unlock()
	}
}

// home is the slot where an entry with hash h belongs.
func (s *refStripe) home(h uint64) int {
	return int((h / refCacheStripes) & uint64(len(s.entries)-1))
}

// find returns the slot of the entry with hash h, or -1.
func (s *refStripe) find(h uint64) int {
	mask := len(s.entries) - 1
	for i := s.home(h); ; i = (i + 1) & mask {
		switch s.entries[i].h {
		case h:
			return i
		case 0:
			return -1
		}
	}
}

// insert adds e, whose hash is not in the table yet, growing the table to
// keep it at most three quarters full.
func (s *refStripe) insert(e refEntry) {
	if (s.n+1)*4 > len(s.entries)*3 {
		old := s.entries
		s.entries = make([]refEntry, 2*len(old))
		for _, o := range old {
			if o.h != 0 {
				s.place(o)
			}
		}
	}
	s.place(e)
	s.n++
}

func (s *refStripe) place(e refEntry) {
	mask := len(s.entries) - 1
	i := s.home(e.h)
	for s.entries[i].h != 0 {
		i = (i + 1) & mask
	}
	s.entries[i] = e
}

// remove empties slot i and shifts later entries of its probe run back,
// so that lookups need no tombstones.
func (s *refStripe) remove(i int) {
	mask := len(s.entries) - 1
	for {
		s.entries[i] = refEntry{}
		j := i
		for {
			j = (j + 1) & mask
			if s.entries[j].h == 0 {
				s.n--
				return
			}
			// The entry at j may stay if its home lies cyclically in (i, j].
			k := s.home(s.entries[j].h)
			if (i < j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
				continue
			}
			s.entries[i] = s.entries[j]
			i = j
			break
		}
	}
}

// reset drops every entry: the refs belong to a tsdb that was closed.
func (c *refCache) reset() {
	for k := range c.stripes {
		s := &c.stripes[k]
		s.mu.Lock()
		s.entries, s.n = make([]refEntry, minStripeSlots), 0
		s.mu.Unlock()
	}
}

// len is the number of cached series.
func (c *refCache) len() int {
	n := 0
	for k := range c.stripes {
		s := &c.stripes[k]
		s.mu.RLock()
		n += s.n
		s.mu.RUnlock()
	}
	return n
}

// A series' key bytes, what its cache key hashes, are its tenant label
// first (for a tenant other than the default one) and then its other
// labels in order, each encoded as ingester.proto encodes a TimeSeries'
// labels field: a LabelPair message under field 1, name then value, proto3
// style (an empty field is left out). A series a distributor sends is
// therefore its own key bytes, from the first label's tag to the last
// label's end: a push over gRPC hashes that span of the request as it is,
// without decoding the labels (see pushRequest.readSeries).
// appendKey appends the key bytes of a stored series, ls.
func appendKey(buf []byte, ls labels.Labels) []byte {
	if t := ls.Get(tenant.Label); t != "" {
		buf = appendKeyLabel(buf, tenant.Label, t)
	}
	ls.Range(func(l labels.Label) {
		if l.Name != tenant.Label {
			buf = appendKeyLabel(buf, l.Name, l.Value)
		}
	})
	return buf
}

// appendKeyLabel appends one label as a TimeSeries' labels field.
func appendKeyLabel(buf []byte, name, value string) []byte {
	return ingesterpb.AppendLabelField(buf, name, value)
}

// rangeKey calls f with each label of key bytes that appendKeyLabel wrote,
// as strings that alias them.
func rangeKey(key []byte, f func(name, value string)) {
	for len(key) > 0 {
		pair, n := protowire.ConsumeBytes(key[1:])
		key = key[1+n:]
		var name, value string
		for len(pair) > 0 {
			v, n := protowire.ConsumeBytes(pair[1:])
			if pair[0] == ingesterpb.TagLabelPairName {
				name = yoloString(v)
			} else {
				value = yoloString(v)
			}
			pair = pair[1+n:]
		}
		f(name, value)
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
