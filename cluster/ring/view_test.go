package ring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var testNow = time.UnixMilli(10_000_000)

const testTimeout = time.Minute

func active(id, zone string, tokens ...uint32) Instance {
	return Instance{ID: id, Addr: id + ":9095", Zone: zone, State: StateActive, Tokens: tokens, Timestamp: testNow.UnixMilli()}
}

func with(in Instance, f func(*Instance)) Instance {
	f(&in)
	return in
}

func ids(rs ReplicationSet) []string {
	out := make([]string, len(rs.Instances))
	for i, in := range rs.Instances {
		out[i] = in.ID
	}
	return out
}

func TestReplicationSet(t *testing.T) {
	stale := func(in *Instance) { in.Timestamp = testNow.Add(-2 * testTimeout).UnixMilli() }
	state := func(s State) func(*Instance) { return func(in *Instance) { in.State = s } }
	// Tokens: a owns 10, 40; b 20, 50; c 30, 60; d 35.
	a, b, c, d := active("a", "", 10, 40), active("b", "", 20, 50), active("c", "", 30, 60), active("d", "", 35)
	tests := []struct {
		name      string
		ring      *Desc
		key       uint32
		rf        int
		op        Operation
		want      []string
		maxErrors int
		err       error
	}{
		{"walk from key", desc(a, b, c), 15, 3, Write, []string{"b", "c", "a"}, 1, nil},
		{"token equal to key owns it", desc(a, b, c), 20, 3, Write, []string{"b", "c", "a"}, 1, nil},
		{"wraps around", desc(a, b, c), 61, 3, Write, []string{"a", "b", "c"}, 1, nil},
		{"rf 2 skips repeated owner", desc(a, b, c, d), 31, 2, Write, []string{"d", "a"}, 0, nil},
		{"stale skipped on write", desc(a, with(b, stale), c, d), 15, 3, Write, []string{"c", "d", "a"}, 1, nil},
		{"joining skipped on write", desc(a, with(b, state(StateJoining)), c, d), 15, 3, Write, []string{"c", "d", "a"}, 1, nil},
		{"leaving skipped on write", desc(a, with(b, state(StateLeaving)), c, d), 15, 3, Write, []string{"c", "d", "a"}, 1, nil},
		{"leaving serves reads", desc(a, with(b, state(StateLeaving)), c, d), 15, 3, Read, []string{"b", "c", "d"}, 1, nil},
		{"readonly serves reads", desc(a, with(b, state(StateReadOnly)), c, d), 15, 3, Read, []string{"b", "c", "d"}, 1, nil},
		{"joining not read", desc(a, with(b, state(StateJoining)), c, d), 15, 3, Read, []string{"c", "d", "a"}, 1, nil},
		{"one down of three", desc(a, with(b, stale), c), 15, 3, Write, []string{"c", "a"}, 0, nil},
		{"two down of three", desc(a, with(b, stale), with(c, stale)), 15, 3, Write, []string{"a"}, -1, ErrTooFewHealthy},
		{"two down of three read", desc(a, with(b, stale), with(c, stale)), 15, 3, Read, []string{"a"}, -1, ErrTooFewHealthy},
		{"rf clamped to ring size", desc(a), 15, 3, Write, []string{"a"}, 0, nil},
		{"left instances do not count", desc(a, b, with(c, func(in *Instance) { in.State, in.Tokens = StateLeft, nil })), 15, 3, Write, []string{"b", "a"}, 0, nil},
		{"rf 4 write quorum 3", desc(a, b, c, d), 15, 4, Write, []string{"b", "c", "d", "a"}, 1, nil},
		{"rf 4 read quorum 2", desc(a, b, c, d), 15, 4, Read, []string{"b", "c", "d", "a"}, 2, nil},
		{"empty", NewDesc(), 15, 3, Write, nil, 0, ErrEmptyRing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := NewView(tc.ring, testTimeout)
			rs, err := v.ReplicationSet(tc.key, tc.rf, tc.op, testNow, nil)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
			} else {
				require.NoError(t, err)
				require.Equal(t, tc.maxErrors, rs.MaxErrors)
			}
			require.Equal(t, tc.want, nilIfEmpty(ids(rs)))
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestReplicationSetZones(t *testing.T) {
	stale := func(in *Instance) { in.Timestamp = 0 }
	// Two instances per zone, interleaved so a zone-unaware walk would
	// pick a1, a2 first.
	a1, a2 := active("a1", "za", 10), active("a2", "za", 20)
	b1, b2 := active("b1", "zb", 30), active("b2", "zb", 40)
	c1, c2 := active("c1", "zc", 50), active("c2", "zc", 60)
	tests := []struct {
		name string
		ring *Desc
		want []string
		err  error
	}{
		{"distinct zones", desc(a1, a2, b1, b2, c1, c2), []string{"a1", "b1", "c1"}, nil},
		{"dead instance replaced within its zone", desc(with(a1, stale), a2, b1, b2, c1, c2), []string{"a2", "b1", "c1"}, nil},
		{"whole zone down shrinks the set", desc(with(a1, stale), with(a2, stale), b1, b2, c1, c2), []string{"b1", "c1"}, nil},
		{"two zones spread 2+1", desc(a1, a2, b1, b2), []string{"a1", "a2", "b1"}, nil},
		{"two zones down fail", desc(with(a1, stale), with(a2, stale), with(b1, stale), with(b2, stale), c1, c2), []string{"c1"}, ErrTooFewHealthy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := NewView(tc.ring, testTimeout).ReplicationSet(5, 3, Write, testNow, nil)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.want, ids(rs))
		})
	}
}

func randomRing(rnd *rand.Rand, n, tokens, zones int) *Desc {
	d := NewDesc()
	for i := range n {
		id := fmt.Sprintf("ing-%d", i)
		zone := ""
		if zones > 0 {
			zone = fmt.Sprintf("zone-%d", i%zones)
		}
		d.Instances[id] = active(id, zone, GenerateTokens(tokens, d.TakenTokens(""), rnd)...)
	}
	return d
}

// TestReplicationSetProperties: on random rings, every key gets rf distinct
// instances, in distinct zones when there are enough zones.
func TestReplicationSetProperties(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ n, tokens, zones, rf int }{
		{3, 128, 0, 3}, {10, 32, 0, 3}, {7, 16, 0, 5}, {6, 128, 3, 3}, {9, 32, 3, 3}, {8, 64, 4, 3}, {5, 64, 2, 3},
	} {
		t.Run(fmt.Sprintf("n%d_z%d_rf%d", tc.n, tc.zones, tc.rf), func(t *testing.T) {
			v := NewView(randomRing(rnd, tc.n, tc.tokens, tc.zones), testTimeout)
			var buf []*Instance
			for range 5000 {
				rs, err := v.ReplicationSet(rnd.Uint32(), tc.rf, Write, testNow, buf)
				require.NoError(t, err)
				require.Len(t, rs.Instances, tc.rf)
				seen := map[string]bool{}
				zones := map[string]int{}
				for _, in := range rs.Instances {
					require.False(t, seen[in.ID], "instance repeated")
					seen[in.ID] = true
					zones[in.Zone]++
				}
				if tc.zones >= tc.rf {
					require.Len(t, zones, tc.rf, "zones not distinct")
				} else if tc.zones > 1 {
					perZone := (tc.rf + tc.zones - 1) / tc.zones
					for z, c := range zones {
						require.LessOrEqual(t, c, perZone, "zone %s overloaded", z)
					}
				}
				buf = rs.Instances
			}
		})
	}
}

// TestMinimalMovement: replacing one instance of N (its tokens re-drawn)
// moves only about the keys it owned, ~rf/N of them, not a reshuffle.
func TestMinimalMovement(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	const n, rf, keys = 10, 3, 20000
	d := randomRing(rnd, n, 128, 0)
	before := NewView(d, testTimeout)
	moved := d.Clone()
	moved.Instances["ing-3"] = active("ing-3", "", GenerateTokens(128, d.TakenTokens(""), rnd)...)
	after := NewView(moved, testTimeout)

	changedPrimary, changedSet := 0, 0
	for range keys {
		k := rnd.Uint32()
		x, err := before.ReplicationSet(k, rf, Write, testNow, nil)
		require.NoError(t, err)
		y, err := after.ReplicationSet(k, rf, Write, testNow, nil)
		require.NoError(t, err)
		if x.Instances[0].ID != y.Instances[0].ID {
			changedPrimary++
		}
		if fmt.Sprint(ids(x)) != fmt.Sprint(ids(y)) {
			changedSet++
		}
	}
	// The moved instance owned ~1/N of primaries before and after; the keys
	// whose primary changes are those it lost or gained: about 2/N.
	require.InDelta(t, 2.0/n, float64(changedPrimary)/keys, 0.06)
	require.Less(t, float64(changedSet)/keys, 2.0*rf/n+0.1)

	// Adding an instance moves primaries only to the newcomer.
	added := d.Clone()
	added.Instances["new"] = active("new", "", GenerateTokens(128, d.TakenTokens(""), rnd)...)
	grown := NewView(added, testTimeout)
	toNew := 0
	for range keys {
		k := rnd.Uint32()
		x, _ := before.ReplicationSet(k, 1, Write, testNow, nil)
		y, _ := grown.ReplicationSet(k, 1, Write, testNow, nil)
		if x.Instances[0].ID != y.Instances[0].ID {
			require.Equal(t, "new", y.Instances[0].ID)
			toNew++
		}
	}
	require.InDelta(t, 1.0/(n+1), float64(toNew)/keys, 0.04)
}

func TestAllHealthy(t *testing.T) {
	stale := func(in *Instance) { in.Timestamp = 0 }
	a, b, c := active("a", "", 1), active("b", "", 2), active("c", "", 3)
	za, zb, zc, zc2 := active("za", "1", 1), active("zb", "2", 2), active("zc", "3", 3), active("zc2", "3", 4)
	joining := with(active("j", "", 5), func(in *Instance) { in.State = StateJoining })
	tests := []struct {
		name      string
		ring      *Desc
		op        Operation
		want      []string
		maxErrors int
		maxZones  int
		err       error
	}{
		{"all healthy", desc(a, b, c), Read, []string{"a", "b", "c"}, 1, 0, nil},
		{"joining excluded, not a failure", desc(a, b, c, joining), Read, []string{"a", "b", "c"}, 1, 0, nil},
		{"one dead", desc(a, with(b, stale), c), Read, []string{"a", "c"}, 0, 0, nil},
		{"two dead", desc(a, with(b, stale), with(c, stale)), Read, []string{"a"}, 0, 0, ErrTooFewHealthy},
		{"zones all healthy", desc(za, zb, zc, zc2), Read, []string{"za", "zb", "zc", "zc2"}, 0, 1, nil},
		{"one zone dead", desc(za, zb, with(zc, stale), with(zc2, stale)), Read, []string{"za", "zb"}, 0, 0, nil},
		{"two zones dead", desc(za, with(zb, stale), with(zc, stale), zc2), Read, []string{"za", "zc2"}, 0, 0, ErrTooFewHealthy},
		{"empty", NewDesc(), Read, nil, 0, 0, ErrEmptyRing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := NewView(tc.ring, testTimeout).AllHealthy(3, tc.op, testNow)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(rs))
			require.Equal(t, tc.maxErrors, rs.MaxErrors)
			require.Equal(t, tc.maxZones, rs.MaxUnavailableZones)
		})
	}
}

func TestTokenShares(t *testing.T) {
	tests := []struct {
		name string
		ring *Desc
		want map[string]float64
	}{
		{"single token owns all", desc(active("a", "", 5)), map[string]float64{"a": 1}},
		{"halves", desc(active("a", "", 0), active("b", "", 1<<31)), map[string]float64{"a": 0.5, "b": 0.5}},
		{"wrap-around goes to first token", desc(active("a", "", 1<<30), active("b", "", 1<<31)), map[string]float64{"a": 0.75, "b": 0.25}},
		{"empty", NewDesc(), map[string]float64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := NewView(tc.ring, 0).TokenShares()
			require.Len(t, got, len(tc.want))
			for id, w := range tc.want {
				require.InDelta(t, w, got[id], 1e-9, id)
			}
		})
	}

	rnd := rand.New(rand.NewPCG(7, 8))
	shares := NewView(randomRing(rnd, 10, 128, 0), 0).TokenShares()
	sum := 0.0
	for _, s := range shares {
		sum += s
		// 128 random tokens keep each share within ~±30% of fair.
		require.InDelta(t, 0.1, s, 0.03)
	}
	require.InDelta(t, 1, sum, 1e-9)
}

func TestGenerateTokens(t *testing.T) {
	rnd := rand.New(rand.NewPCG(9, 10))
	taken := map[uint32]struct{}{}
	first := GenerateTokens(1000, taken, rnd)
	for _, tk := range first {
		taken[tk] = struct{}{}
	}
	second := GenerateTokens(1000, taken, rnd)
	require.IsIncreasing(t, first)
	require.IsIncreasing(t, second)
	for _, tk := range second {
		_, dup := taken[tk]
		require.False(t, dup)
	}
	require.Empty(t, GenerateTokens(0, nil, rnd))
}

func TestQuorums(t *testing.T) {
	for _, tc := range []struct{ rf, w, r int }{{1, 1, 1}, {2, 2, 1}, {3, 2, 2}, {4, 3, 2}, {5, 3, 3}} {
		require.Equal(t, tc.w, WriteQuorum(tc.rf), "rf %d", tc.rf)
		require.Equal(t, tc.r, ReadQuorum(tc.rf), "rf %d", tc.rf)
		require.Greater(t, tc.w+tc.r, tc.rf)
	}
	require.False(t, errors.Is(ErrEmptyRing, ErrTooFewHealthy))
}

func TestNewViewFrom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(23, 24))
	d := randomRing(rnd, 5, 16, 2)
	prev := NewView(d, testTimeout)

	heartbeat := d.Clone()
	in := heartbeat.Instances["ing-1"]
	in.Timestamp++
	in.State = StateLeaving
	heartbeat.Instances["ing-1"] = in

	moved := d.Clone()
	in = moved.Instances["ing-2"]
	in.Tokens = GenerateTokens(16, d.TakenTokens(""), rnd)
	moved.Instances["ing-2"] = in

	grown := d.Clone()
	grown.Instances["new"] = active("new", "zone-0", 7)

	for name, next := range map[string]*Desc{"heartbeat": heartbeat, "moved": moved, "grown": grown} {
		t.Run(name, func(t *testing.T) {
			got := NewViewFrom(prev, next, testTimeout)
			want := NewView(next, testTimeout)
			require.Equal(t, want.tokens, got.tokens)
			require.Equal(t, want.owners, got.owners)
			require.Equal(t, want.instances, got.instances)
			require.Equal(t, want.zones, got.zones)
			require.Same(t, next, got.Desc())
			for range 100 {
				k := rnd.Uint32()
				a, errA := want.ReplicationSet(k, 3, Write, testNow, nil)
				b, errB := got.ReplicationSet(k, 3, Write, testNow, nil)
				require.Equal(t, errA, errB)
				require.Equal(t, ids(a), ids(b))
			}
		})
	}
}
