package distributor

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// shardKeyAppend, which routing uses, is shardKey: placement must not move.
func TestShardKeyAppendMatchesShardKey(t *testing.T) {
	sets := [][]string{
		{"__name__", "up"},
		{"__name__", "http_requests_total", "job", "api", "path", "/ü"},
		{"a", "bc"}, {"ab", "c"},
		{"__name__", strings.Repeat("long", 300), "x", "y"},
	}
	for i := range 50 {
		sets = append(sets, labelStrings(promSeries(i, 0).Labels))
	}
	var buf []byte
	for _, id := range []string{tenant.DefaultTenant, "team-a", strings.Repeat("t", 100)} {
		for _, ls := range sets {
			ts := pushSeries(ls...)
			buf = appendTenantKey(buf[:0], id)
			var k uint32
			k, buf = shardKeyAppend(buf, ts.Labels)
			require.Equal(t, shardKey(id, ts.Labels), k, "tenant %s, %v", id, ls)
			if id == tenant.DefaultTenant {
				require.Equal(t, ring.ShardKey(labels.FromStrings(ls...)), k, "%v", ls)
			}
		}
	}
}

func labelStrings(ls []*ingesterpb.LabelPair) []string {
	var out []string
	for _, l := range ls {
		out = append(out, string(l.Name), string(l.Value))
	}
	return out
}

// placement is what routing decided for a request: per ingester (by ID and
// address) the indexes of the series it gets, and the acks each series
// needs; or the error.
type placement struct {
	batches map[string][]int
	need    []uint16
	err     string
}

func placementOf(rt *routing, n int, err error) placement {
	if err != nil {
		return placement{err: err.Error()}
	}
	p := placement{batches: map[string][]int{}, need: slices.Clone(rt.need[:n])}
	for _, b := range rt.batches {
		k := b.inst.ID + "@" + b.inst.Addr
		for j := range b.req.Series {
			p.batches[k] = append(p.batches[k], at(b.pos, j))
		}
		slices.Sort(p.batches[k])
	}
	return p
}

// testRingInstance is one member of a ring built by testRing.
type testRingInstance struct {
	state ring.State
	zone  string
	stale bool // heartbeat older than the timeout
}

// testRing builds a cluster.Ring of replication factor rf over in-memory KV.
func testRing(t *testing.T, rf int, ins []testRingInstance, rng *rand.Rand) *cluster.Ring {
	kv := cluster.NewMemKV()
	taken := map[uint32]struct{}{}
	now := time.Now()
	for i, in := range ins {
		id := "ing-" + strconv.Itoa(i)
		ri := ring.Instance{ID: id, Addr: "127.0.0.1:" + strconv.Itoa(30000+i), Zone: in.zone, State: in.state,
			Timestamp: now.Add(time.Hour).UnixMilli()}
		if in.stale {
			ri.Timestamp = now.Add(-time.Hour).UnixMilli()
		}
		if in.state != ring.StatePending && in.state != ring.StateLeft {
			ri.Tokens = ring.GenerateTokens(1+rng.IntN(16), taken, rng)
			for _, tk := range ri.Tokens {
				taken[tk] = struct{}{}
			}
		}
		kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{id: ri}})
	}
	r, err := cluster.NewRing(cluster.Config{ReplicationFactor: rf, Tokens: 16, Heartbeat: time.Second, HeartbeatTimeout: time.Minute}, kv, nil)
	require.NoError(t, err)
	return r
}

// requireSameRouting routes req with route (which takes the uniform path
// when the ring allows) and with routeEach (every series placed on its
// own) and requires the same placement. It returns whether route took the
// uniform path.
func requireSameRouting(t *testing.T, d *Distributor, id string, req *ingesterpb.PushRequest) bool {
	t.Helper()
	rt := d.getRouting(len(req.Series))
	err := d.route(id, req, rt)
	got, whole := placementOf(rt, len(req.Series), err), rt.whole
	d.putRouting(rt)

	rt = d.getRouting(len(req.Series))
	err = d.routeEach(id, req, rt)
	want := placementOf(rt, len(req.Series), err)
	d.putRouting(rt)
	require.Equal(t, want, got)
	return whole
}

// The uniform path sends exactly what per-series routing would, over the
// real ring: ring sizes around the replication factor, JOINING, LEAVING,
// READONLY, PENDING and LEFT members, stale heartbeats and zones.
func TestUniformRoutingMatchesPerSeries(t *testing.T) {
	req := promRequest(300, time.Now().UnixMilli())
	pool := ingesterclient.NewPool(clientConfig(), nil, nil)
	t.Cleanup(func() { _ = pool.Close() })
	rng := rand.New(rand.NewPCG(7, 8))
	check := func(t *testing.T, rf int, ins []testRingInstance) bool {
		d, err := New(defaultConfig(), NewRingIngesters(testRing(t, rf, ins, rng), pool), nil, prometheus.NewRegistry())
		require.NoError(t, err)
		whole := requireSameRouting(t, d, tenant.DefaultTenant, req)
		require.Equal(t, whole, requireSameRouting(t, d, "team-a", req))
		return whole
	}
	A, J, L := ring.StateActive, ring.StateJoining, ring.StateLeaving
	for _, tc := range []struct {
		name    string
		rf      int
		ins     []testRingInstance
		uniform bool
	}{
		{"1 rf 1", 1, []testRingInstance{{state: A}}, true},
		{"1 rf 3", 3, []testRingInstance{{state: A}}, true},
		{"2 rf 1", 1, []testRingInstance{{state: A}, {state: A}}, false},
		{"3 rf 3", 3, []testRingInstance{{state: A}, {state: A}, {state: A}}, true},
		{"4 rf 3", 3, []testRingInstance{{state: A}, {state: A}, {state: A}, {state: A}}, false},
		{"4 rf 3, one joining", 3, []testRingInstance{{state: A}, {state: J}, {state: A}, {state: A}}, true},
		{"4 rf 3, one leaving", 3, []testRingInstance{{state: A}, {state: A}, {state: L}, {state: A}}, true},
		{"3 rf 3, one stale", 3, []testRingInstance{{state: A}, {state: A, stale: true}, {state: A}}, true},
		{"3 rf 3, two stale", 3, []testRingInstance{{state: A}, {state: A, stale: true}, {state: A, stale: true}}, false},
		{"3 rf 3, one joining", 3, []testRingInstance{{state: A}, {state: J}, {state: A}}, true},
		{"3 zones rf 3", 3, []testRingInstance{{state: A, zone: "a"}, {state: A, zone: "b"}, {state: A, zone: "c"}}, true},
		{"3 zones, 4 instances, rf 3", 3, []testRingInstance{{state: A, zone: "a"}, {state: A, zone: "b"}, {state: A, zone: "c"}, {state: A, zone: "c"}}, false},
		{"2 zones rf 2", 2, []testRingInstance{{state: A, zone: "a"}, {state: A, zone: "b"}, {state: A, zone: "b"}}, false},
		{"2 zones rf 3", 3, []testRingInstance{{state: A, zone: "a"}, {state: A, zone: "b"}, {state: A, zone: "b"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.uniform, check(t, tc.rf, tc.ins))
		})
	}

	states := []ring.State{ring.StatePending, J, A, A, A, L, ring.StateReadOnly, ring.StateLeft}
	uniform, total := 0, 0
	for i := range 300 {
		rf := 1 + rng.IntN(3)
		ins := make([]testRingInstance, 1+rng.IntN(rf+2))
		zones := rng.IntN(4)
		for j := range ins {
			ins[j] = testRingInstance{state: states[rng.IntN(len(states))], stale: rng.IntN(6) == 0}
			if zones > 0 {
				ins[j].zone = "z" + strconv.Itoa(rng.IntN(zones))
			}
		}
		t.Run(fmt.Sprintf("random-%d", i), func(t *testing.T) {
			total++
			if check(t, rf, ins) {
				uniform++
			}
		})
	}
	require.Greater(t, uniform, total/5, "too few uniform rings for the test to mean something")
	require.Less(t, uniform, total*4/5, "too few non-uniform rings for the test to mean something")
}

// BenchmarkShardKeyAppend measures the ring key of 2000 Prometheus-shaped
// series as routing computes it: one xxhash.Sum64 over a reused buffer
// (44 small Digest.Writes per series before: 563 against 240 CPU-ns per
// series in one binary).
func BenchmarkShardKeyAppend(b *testing.B) {
	req := promRequest(2000, 0)
	for _, id := range []string{tenant.DefaultTenant, "team-a"} {
		b.Run("tenant="+id, func(b *testing.B) {
			var sink uint32
			buf := appendTenantKey(nil, id)
			prefix := len(buf)
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				for _, ts := range req.Series {
					var k uint32
					k, buf = shardKeyAppend(buf[:prefix], ts.Labels)
					sink ^= k
				}
			}
			reportPerSeries(b, c0, len(req.Series))
			_ = sink
		})
	}
}
