package ingester

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// cacheKey is the ref cache's key of a stored series.
func cacheKey(c *refCache, ls labels.Labels) refKey { return c.key(appendKey(nil, ls)) }

// cachedRef is what the ref cache holds for ls, 0 if nothing.
func cachedRef(c *refCache, ls labels.Labels) storage.SeriesRef {
	ref, ok := c.get(cacheKey(c, ls))
	if !ok {
		return 0
	}
	return ref
}

// headRef is the head's ref of ls, 0 if the head does not hold it.
func headRef(t *testing.T, ing *Ingester, ls labels.Labels) storage.SeriesRef {
	t.Helper()
	app := ing.db.Appender(t.Context())
	defer app.Rollback() //nolint:errcheck
	ref, _ := app.(storage.GetRef).GetRef(ls, ls.Hash())
	return ref
}

func TestRefCacheFollowsTheHead(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	refs := h.ing.refs
	require.NotNil(t, refs, "the cache is on by default")
	up := labels.FromStrings("__name__", "up", "job", "node")
	teamUp := labels.FromStrings("__name__", "up", tenant.Label, "team-a", "job", "node")

	pushUpAs(t, h.client, tenant.DefaultTenant, 1000, 1)
	pushUpAs(t, h.client, "team-a", 1000, 2)
	require.Equal(t, 2, refs.len())
	require.Equal(t, headRef(t, h.ing, up), cachedRef(refs, up))
	require.Equal(t, headRef(t, h.ing, teamUp), cachedRef(refs, teamUp))
	require.NotEqual(t, cachedRef(refs, up), cachedRef(refs, teamUp), "one series per tenant")

	// Pushes of known series go through the cache to the same series.
	pushUpAs(t, h.client, tenant.DefaultTenant, 2000, 3)
	pushUpAs(t, h.client, "team-a", 2000, 4)
	require.Equal(t, map[string][]sample{`{__name__="up", job="node"}`: {{T: 1000, F: 1}, {T: 2000, F: 3}}},
		queryAs(t, h.client, tenant.DefaultTenant, eq("__name__", "up")))
	require.Equal(t, map[string][]sample{`{__name__="up", job="node"}`: {{T: 1000, F: 2}, {T: 2000, F: 4}}},
		queryAs(t, h.client, "team-a", eq("__name__", "up")))

	// The head drops both series (as after a compaction): so does the
	// cache, and the next push makes them anew.
	require.NoError(t, h.ing.db.Head().Truncate(3000))
	require.Zero(t, headRef(t, h.ing, up))
	require.Zero(t, refs.len())
	pushUpAs(t, h.client, tenant.DefaultTenant, 4000, 5)
	require.Equal(t, headRef(t, h.ing, up), cachedRef(refs, up))
	require.Equal(t, map[string][]sample{`{__name__="up", job="node"}`: {{T: 4000, F: 5}}},
		queryAs(t, h.client, tenant.DefaultTenant, eq("__name__", "up")))
}

// A cached ref whose series the head no longer has (the push raced the
// head's GC) still lands the sample: the push builds the labels, the
// appender makes the series anew, and the cache takes the new ref.
func TestRefCacheStaleRef(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	refs := h.ing.refs
	up := labels.FromStrings("__name__", "up", "job", "node")
	refs.put(cacheKey(refs, up), storage.SeriesRef(math.MaxInt32))

	pushUpAs(t, h.client, tenant.DefaultTenant, 1000, 1)
	ref := headRef(t, h.ing, up)
	require.NotZero(t, ref)
	require.Equal(t, ref, cachedRef(refs, up))
	require.Equal(t, map[string][]sample{`{__name__="up", job="node"}`: {{T: 1000, F: 1}}},
		queryAs(t, h.client, tenant.DefaultTenant, eq("__name__", "up")))
}

// An entry whose first 64 bits match but whose check does not is another
// series: the push must not write to it, and must not evict it either.
func TestRefCacheCollision(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	refs := h.ing.refs
	pushUpAs(t, h.client, tenant.DefaultTenant, 1000, 1, "zone", "a")
	a := labels.FromStrings("__name__", "up", "job", "node", "zone", "a")
	aRef := cachedRef(refs, a)
	require.NotZero(t, aRef)

	b := labels.FromStrings("__name__", "up", "job", "node", "zone", "b")
	bKey := cacheKey(refs, b)
	s := refs.stripe(bKey)
	s.insert(refEntry{h: bKey.h, check: bKey.check ^ 1, ref: aRef}) // a, as if under b's hash

	pushUpAs(t, h.client, tenant.DefaultTenant, 2000, 2, "zone", "b")
	require.Equal(t, map[string][]sample{
		`{__name__="up", job="node", zone="a"}`: {{T: 1000, F: 1}},
		`{__name__="up", job="node", zone="b"}`: {{T: 2000, F: 2}},
	}, queryAs(t, h.client, tenant.DefaultTenant, eq("__name__", "up")))
	require.Equal(t, aRef, s.entries[s.find(bKey.h)].ref, "the colliding entry keeps its slot")
}

// Over gRPC a known series is found by the span of its label fields in the
// request, which is its key bytes unless the labels change on the way to
// the head: an empty value, dropped, makes a span that is no key, and such
// a series is found by the key bytes of its labels once they are read.
// Either way every sample lands in the one series, under one entry.
func TestRefCacheRawKeys(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	refs := h.ing.refs
	teamUp := labels.FromStrings("__name__", "up", tenant.Label, "team-a", "job", "node")

	pushUpAs(t, h.client, "team-a", 1000, 1, "zone", "")
	require.Equal(t, 1, refs.len(), "cached under the key bytes of the labels stored")
	require.Equal(t, headRef(t, h.ing, teamUp), cachedRef(refs, teamUp))
	pushUpAs(t, h.client, "team-a", 2000, 2, "zone", "")
	pushUpAs(t, h.client, "team-a", 3000, 3)
	require.Equal(t, 1, refs.len())
	require.Equal(t, headRef(t, h.ing, teamUp), cachedRef(refs, teamUp))
	pushUpAs(t, h.client, "team-a", 4000, 4)
	pushUpAs(t, h.client, "team-a", 5000, 5, "zone", "")
	require.Equal(t, 1, refs.len())
	require.Equal(t, map[string][]sample{`{__name__="up", job="node"}`: {
		{T: 1000, F: 1}, {T: 2000, F: 2}, {T: 3000, F: 3}, {T: 4000, F: 4}, {T: 5000, F: 5},
	}}, queryAs(t, h.client, "team-a", eq("__name__", "up")))
}

// Labels sent out of order are sorted before the lookup, and skip the
// cache, whose keys are built from sorted labels only.
func TestRefCacheUnsortedLabels(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	for _, ts := range []float64{1000, 2000} {
		resp, err := h.client.Push(asTenant(tenant.DefaultTenant), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{
			Labels: lbls("job", "node", "__name__", "up"), Samples: floats(ts, ts),
		}}})
		require.NoError(t, err)
		require.Empty(t, resp.Errors)
	}
	require.Zero(t, h.ing.refs.len())
	require.Equal(t, map[string][]sample{`{__name__="up", job="node"}`: {{T: 1000, F: 1000}, {T: 2000, F: 2000}}},
		queryAs(t, h.client, tenant.DefaultTenant, eq("__name__", "up")))
}

func TestRefCacheOff(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.SeriesRefCache = false
	h := startIngester(t, cfg)
	require.Nil(t, h.ing.refs)
	pushUpAs(t, h.client, tenant.DefaultTenant, 1000, 1)
	pushUpAs(t, h.client, tenant.DefaultTenant, 2000, 2)
	require.Equal(t, map[string][]sample{`{__name__="up", job="node"}`: {{T: 1000, F: 1}, {T: 2000, F: 2}}},
		queryAs(t, h.client, tenant.DefaultTenant, eq("__name__", "up")))
}

// TestRefStripeTable checks the open-addressing table against a map under
// random inserts and removals, with hashes crowded onto few home slots so
// that probe runs wrap around and removals shift entries back.
func TestRefStripeTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s refStripe
	s.entries = make([]refEntry, minStripeSlots)
	model := map[uint64]storage.SeriesRef{}
	var keys []uint64
	for step := range 20000 {
		// Homes in a narrow band: h/refCacheStripes is small.
		h := (uint64(rng.IntN(64)) + 1) * refCacheStripes
		if rng.IntN(3) == 0 {
			h = rng.Uint64() | 1
		}
		switch i := s.find(h); {
		case rng.IntN(2) == 0 && i >= 0:
			s.remove(i)
			delete(model, h)
		case i < 0:
			s.insert(refEntry{h: h, ref: storage.SeriesRef(step + 1)})
			model[h] = storage.SeriesRef(step + 1)
			keys = append(keys, h)
		}
		require.Equal(t, len(model), s.n, "step %d", step)
	}
	for _, h := range keys {
		i := s.find(h)
		ref, ok := model[h]
		require.Equal(t, ok, i >= 0, "hash %x", h)
		if ok {
			require.Equal(t, ref, s.entries[i].ref, "hash %x", h)
		}
	}
}

// A rejected sample of a series found in the cache is reported with the
// series' labels, which the cache does not hold: they are built for the
// message.
func TestRefCacheRejectionNamesTheSeries(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	pushUpAs(t, h.client, tenant.DefaultTenant, 2000, 1)
	up := labels.FromStrings("__name__", "up", "job", "node")
	require.NotZero(t, cachedRef(h.ing.refs, up))

	resp, err := h.client.Push(asTenant(tenant.DefaultTenant), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{
		Labels: lbls("__name__", "up", "job", "node"), Samples: floats(1000, 2),
	}}})
	require.NoError(t, err)
	require.Len(t, resp.Errors, 1)
	require.Equal(t, ingesterpb.SeriesError_OUT_OF_ORDER, resp.Errors[0].Reason)
	require.Contains(t, resp.Errors[0].Message, `{__name__="up", job="node"}`)
}

// The premise of looking series up by their label bytes: what the
// distributor's encoder writes for a series' labels is their key bytes, for
// long names and values too (which miss decodeLabel's fast path), so a
// known series pushed over gRPC is a hit without decoding.
func TestKeyBytesAreTheWire(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := labels.NewScratchBuilder(8)
		for k := range 1 + rng.IntN(8) {
			b.Add(fmt.Sprintf("l%02d%s", k, strings.Repeat("n", rng.IntN(200))), strings.Repeat("v", 1+rng.IntN(300)))
		}
		b.Sort()
		ls := b.Labels()
		ts := &ingesterpb.TimeSeries{Samples: floats(1000, 1)}
		ls.Range(func(l labels.Label) {
			ts.Labels = append(ts.Labels, &ingesterpb.LabelPair{Name: []byte(l.Name), Value: []byte(l.Value)})
		})
		wire, err := (&ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{ts}}).MarshalVT()
		require.NoError(t, err)
		r := newPushRequests().get()
		require.NoError(t, r.UnmarshalVT(wire))
		s := r.series[0]
		require.True(t, s.keyOK)
		require.Equal(t, appendKey(nil, ls), r.bytes(s.keyBytes), "labels %s", ls)
	}
}

// getAll answers what get does for each key, in the keys' order, whatever
// stripes they fall in; a key with h 0 is not looked up.
func TestRefCacheGetAll(t *testing.T) {
	c := newRefCache()
	rng := rand.New(rand.NewPCG(3, 4))
	var keys []refKey
	for i := range 3000 {
		k := c.key([]byte(fmt.Sprintf("series-%d", i)))
		if i%3 != 0 {
			c.put(k, storage.SeriesRef(i+1))
		}
		keys = append(keys, k)
	}
	keys = append(keys, refKey{}, refKey{h: keys[1].h, check: keys[1].check ^ 1})
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	refs := make([]storage.SeriesRef, len(keys))
	for i := range refs {
		refs[i] = 99 // overwritten, hit or miss
	}
	order := c.getAll(keys, refs, nil)
	require.Len(t, order, len(keys)-1, "every key but the empty one")
	for i, k := range keys {
		want := storage.SeriesRef(0)
		if k.h != 0 {
			if ref, ok := c.get(k); ok {
				want = ref
			}
		}
		require.Equal(t, want, refs[i], "key %d", i)
	}
}
