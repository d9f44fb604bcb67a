package ring

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// requireUniform checks that rs is what ReplicationSet gives every key of
// v: the tokens, their neighbours and random keys.
func requireUniform(t *testing.T, v *View, rf int, op Operation, rs ReplicationSet, rng *rand.Rand) {
	t.Helper()
	want := slices.Sorted(slices.Values(ids(rs)))
	keys := []uint32{0, 1, ^uint32(0)}
	for _, tk := range v.tokens {
		keys = append(keys, tk-1, tk, tk+1)
	}
	for range 200 {
		keys = append(keys, rng.Uint32())
	}
	for _, k := range keys {
		got, err := v.ReplicationSet(k, rf, op, testNow, nil)
		require.NoError(t, err, "key %d", k)
		require.Equal(t, want, slices.Sorted(slices.Values(ids(got))), "key %d", k)
		require.Equal(t, rs.MaxErrors, got.MaxErrors, "key %d", k)
		require.Zero(t, got.MaxUnavailableZones)
	}
}

func TestUniformReplicationSet(t *testing.T) {
	stale := func(in *Instance) { in.Timestamp = testNow.Add(-2 * testTimeout).UnixMilli() }
	state := func(s State) func(*Instance) { return func(in *Instance) { in.State = s } }
	a, b, c, d := active("a", "", 10, 40), active("b", "", 20, 50), active("c", "", 30, 60), active("d", "", 35)
	za, zb, zc, zb2 := active("a", "z1", 10, 40), active("b", "z2", 20, 50), active("c", "z3", 30, 60), active("d", "z2", 35)
	tests := []struct {
		name string
		ring *Desc
		rf   int
		op   Operation
		want []string // nil: not uniform
	}{
		{"one instance rf 1", desc(a), 1, Write, []string{"a"}},
		{"one instance rf 3", desc(a), 3, Write, []string{"a"}},
		{"three rf 3", desc(a, b, c), 3, Write, []string{"a", "b", "c"}},
		{"two rf 3", desc(a, b), 3, Write, []string{"a", "b"}},
		{"four rf 3", desc(a, b, c, d), 3, Write, nil},
		{"two rf 1", desc(a, b), 1, Write, nil},
		{"four rf 3, one joining", desc(a, with(b, state(StateJoining)), c, d), 3, Write, []string{"a", "c", "d"}},
		{"four rf 3, one leaving", desc(a, b, c, with(d, state(StateLeaving))), 3, Write, []string{"a", "b", "c"}},
		{"four rf 3, one leaving, read", desc(a, b, c, with(d, state(StateLeaving))), 3, Read, nil},
		{"four rf 3, one joining, read", desc(a, with(b, state(StateJoining)), c, d), 3, Read, []string{"a", "c", "d"}},
		{"four rf 3, one stale", desc(a, b, with(c, stale), d), 3, Write, []string{"a", "b", "d"}},
		{"three rf 3, one stale", desc(a, b, with(c, stale)), 3, Write, []string{"a", "b"}},
		{"three rf 3, two stale: no quorum", desc(a, with(b, stale), with(c, stale)), 3, Write, nil},
		{"three rf 3, one left", desc(a, b, with(c, func(in *Instance) { in.State, in.Tokens = StateLeft, nil })), 3, Write, []string{"a", "b"}},
		{"pending without tokens", desc(a, b, c, Instance{ID: "p", State: StatePending, Timestamp: testNow.UnixMilli()}), 3, Write, []string{"a", "b", "c"}},
		{"three zones rf 3", desc(za, zb, zc), 3, Write, []string{"a", "b", "c"}},
		// perZone is 1, so z2's two instances cannot both be in a set.
		{"three zones, four instances, rf 3", desc(za, zb, zc, zb2), 3, Write, nil},
		{"three zones, four instances, one of z2 joining", desc(za, zb, zc, with(zb2, state(StateJoining))), 3, Write, []string{"a", "b", "c"}},
		// Two zones, rf 3: perZone 2, so b and d of z2 fit with a.
		{"two zones rf 3", desc(za, zb, zb2), 3, Write, []string{"a", "b", "d"}},
		// Two zones, rf 2: perZone 1; z2 has two healthy instances.
		{"two zones rf 2", desc(za, zb, zb2), 2, Write, nil},
		{"empty", NewDesc(), 3, Write, nil},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := NewView(tc.ring, testTimeout)
			rs, ok := v.UniformReplicationSet(tc.rf, tc.op, testNow, nil)
			if tc.want == nil {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, tc.want, ids(rs))
			requireUniform(t, v, tc.rf, tc.op, rs, rng)
		})
	}
}

// Random rings around the replication factor, with every state, stale
// heartbeats and zones: whenever UniformReplicationSet says every key gets
// the same set, every key does.
func TestUniformReplicationSetRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	states := []State{StatePending, StateJoining, StateActive, StateActive, StateActive, StateLeaving, StateReadOnly, StateLeft}
	uniform, total := 0, 0
	for iter := range 3000 {
		rf := 1 + rng.IntN(4)
		n := 1 + rng.IntN(rf+3)
		zones := rng.IntN(4) // 0: no zones
		d := NewDesc()
		taken := map[uint32]struct{}{}
		for i := range n {
			in := Instance{ID: "i" + strconv.Itoa(i), Addr: "i" + strconv.Itoa(i) + ":9095", State: states[rng.IntN(len(states))], Timestamp: testNow.UnixMilli()}
			if zones > 0 {
				in.Zone = "z" + strconv.Itoa(rng.IntN(zones))
			}
			if rng.IntN(6) == 0 {
				in.Timestamp = testNow.Add(-2 * testTimeout).UnixMilli()
			}
			if in.State != StatePending && in.State != StateLeft {
				in.Tokens = GenerateTokens(1+rng.IntN(8), taken, rng)
				for _, tk := range in.Tokens {
					taken[tk] = struct{}{}
				}
			}
			d.Instances[in.ID] = in
		}
		v := NewView(d, testTimeout)
		for _, op := range []Operation{Write, Read} {
			total++
			rs, ok := v.UniformReplicationSet(rf, op, testNow, nil)
			if !ok {
				continue
			}
			uniform++
			t.Run("", func(t *testing.T) {
				t.Logf("iteration %d: rf %d, %s, ring %v", iter, rf, op, v.instances)
				requireUniform(t, v, rf, op, rs, rng)
			})
		}
	}
	// Both answers must be common for the test to mean something.
	require.Greater(t, uniform, total/5)
	require.Less(t, uniform, total*4/5)
}
