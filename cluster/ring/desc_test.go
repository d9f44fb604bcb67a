package ring

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func desc(ins ...Instance) *Desc {
	d := NewDesc()
	for _, in := range ins {
		d.Instances[in.ID] = in
	}
	return d
}

func TestMergeLastWriterWins(t *testing.T) {
	a1 := Instance{ID: "a", Addr: "a:1", State: StateJoining, Timestamp: 100, Tokens: []uint32{1, 2}}
	a2 := Instance{ID: "a", Addr: "a:1", State: StateActive, Timestamp: 200, Tokens: []uint32{1, 2}}
	aLeft := Instance{ID: "a", Addr: "a:1", State: StateLeft, Timestamp: 200}
	b := Instance{ID: "b", Addr: "b:1", State: StateActive, Timestamp: 50}

	tests := []struct {
		name        string
		local, in   *Desc
		want        *Desc
		wantChanged *Desc
	}{
		{"newer wins", desc(a1), desc(a2), desc(a2), desc(a2)},
		{"older ignored", desc(a2), desc(a1), desc(a2), nil},
		{"same ignored", desc(a2), desc(a2), desc(a2), nil},
		{"new instance added", desc(a1), desc(b), desc(a1, b), desc(b)},
		{"tombstone wins a tie", desc(a2), desc(aLeft), desc(aLeft), desc(aLeft)},
		{"tie lost to tombstone", desc(aLeft), desc(a2), desc(aLeft), nil},
		{"mixed", desc(a2, b), desc(a1, Instance{ID: "b", State: StateLeaving, Timestamp: 60}),
			desc(a2, Instance{ID: "b", State: StateLeaving, Timestamp: 60}),
			desc(Instance{ID: "b", State: StateLeaving, Timestamp: 60})},
		{"nil other", desc(a1), nil, desc(a1), nil},
		{"into empty", &Desc{}, desc(a1), desc(a1), desc(a1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			changed := tc.local.Merge(tc.in)
			require.True(t, tc.want.Equal(tc.local), "merged: %+v", tc.local.Instances)
			if tc.wantChanged == nil {
				require.Nil(t, changed)
			} else {
				require.True(t, tc.wantChanged.Equal(changed), "changed: %+v", changed)
			}
		})
	}
}

func randomInstance(rnd *rand.Rand, id string) Instance {
	in := Instance{
		ID:         id,
		Addr:       fmt.Sprintf("10.0.0.%d:9095", rnd.IntN(3)),
		Zone:       []string{"", "a", "b"}[rnd.IntN(3)],
		State:      State(rnd.IntN(int(numStates))),
		Timestamp:  int64(rnd.IntN(5)), // small range: ties must be common
		Registered: int64(rnd.IntN(2)),
	}
	if in.State != StateLeft {
		in.Tokens = GenerateTokens(rnd.IntN(3), nil, rnd)
	}
	return in
}

func randomDesc(rnd *rand.Rand) *Desc {
	d := NewDesc()
	for i := range rnd.IntN(6) {
		id := fmt.Sprintf("i%d", rnd.IntN(4)+i%2)
		d.Instances[id] = randomInstance(rnd, id)
	}
	return d
}

// TestMergeIsCRDT checks the join-semilattice laws on random descriptors
// with many timestamp ties: replicas converge whatever the delivery order.
func TestMergeIsCRDT(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	merge := func(ds ...*Desc) *Desc {
		out := NewDesc()
		for _, d := range ds {
			out.Merge(d)
		}
		return out
	}
	for i := range 2000 {
		a, b, c := randomDesc(rnd), randomDesc(rnd), randomDesc(rnd)
		require.True(t, merge(a, b).Equal(merge(b, a)), "commutative, case %d", i)
		require.True(t, merge(merge(a, b), c).Equal(merge(a, merge(b, c))), "associative, case %d", i)
		require.True(t, merge(a, a).Equal(merge(a)), "idempotent, case %d", i)
		// Applying only the reported delta has the same effect as the full merge.
		x := merge(a)
		delta := x.Merge(b)
		y := merge(a, delta)
		require.True(t, x.Equal(y), "delta, case %d", i)
	}
}

func TestTombstoneAndGC(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	d := desc(Instance{ID: "a", Addr: "a:1", Zone: "z", State: StateActive, Timestamp: now.UnixMilli() + 5, Tokens: []uint32{7}})
	ts := d.Tombstone("a", now)
	require.Equal(t, StateLeft, ts.State)
	require.Equal(t, now.UnixMilli()+6, ts.Timestamp, "tombstone must beat a heartbeat from a fast clock")
	require.Empty(t, ts.Tokens)
	require.NotNil(t, d.Merge(desc(ts)))
	require.Empty(t, d.Members())

	tests := []struct {
		name      string
		at        time.Time
		retention time.Duration
		removed   int
	}{
		{"young kept", now.Add(time.Minute), 5 * time.Minute, 0},
		{"old removed", now.Add(10 * time.Minute), 5 * time.Minute, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := d.Clone()
			require.Equal(t, tc.removed, c.RemoveTombstones(tc.at, tc.retention))
			require.Equal(t, 1-tc.removed, c.Len())
		})
	}
}

func TestStateText(t *testing.T) {
	for _, s := range States() {
		b, err := s.MarshalText()
		require.NoError(t, err)
		var got State
		require.NoError(t, got.UnmarshalText(b))
		require.Equal(t, s, got)
	}
	_, err := ParseState("BOGUS")
	require.Error(t, err)
	require.Equal(t, "State(42)", State(42).String())
}

func TestNextTimestamp(t *testing.T) {
	now := time.UnixMilli(500)
	require.Equal(t, int64(500), NextTimestamp(100, now))
	require.Equal(t, int64(501), NextTimestamp(500, now))
	require.Equal(t, int64(901), NextTimestamp(900, now))
}

func TestUpdates(t *testing.T) {
	rnd := rand.New(rand.NewPCG(21, 22))
	for range 500 {
		a, b := randomDesc(rnd), randomDesc(rnd)
		before := a.Clone()
		up := a.Updates(b)
		require.True(t, before.Equal(a), "Updates must not modify")
		changed := a.Merge(b)
		if up == nil {
			require.Nil(t, changed)
			continue
		}
		require.True(t, up.Equal(changed))
	}
}
