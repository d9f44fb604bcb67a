package ring

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCodecRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(11, 12))
	cases := []*Desc{NewDesc(), randomRing(rnd, 10, 128, 3)}
	for range 200 {
		cases = append(cases, randomDesc(rnd))
	}
	for _, d := range cases {
		got, err := Unmarshal(d.Marshal())
		require.NoError(t, err)
		require.True(t, d.Equal(got))
	}
	// Extreme values survive.
	d := desc(Instance{ID: "x", State: StateReadOnly, Timestamp: -1, Registered: 1 << 62, Tokens: []uint32{0, 1<<32 - 1}})
	got, err := Unmarshal(d.Marshal())
	require.NoError(t, err)
	require.True(t, d.Equal(got))
}

func TestCodecRejectsCorruption(t *testing.T) {
	rnd := rand.New(rand.NewPCG(13, 14))
	b := randomRing(rnd, 3, 8, 2).Marshal()
	for i := range len(b) {
		_, err := Unmarshal(b[:i])
		require.Error(t, err, "truncated at %d", i)
	}
	_, err := Unmarshal(append(b, 0))
	require.Error(t, err, "trailing byte")
	bad := append([]byte{}, b...)
	bad[0] = 99
	_, err = Unmarshal(bad)
	require.Error(t, err, "version")
	dup := desc(Instance{ID: "x", Tokens: []uint32{5, 6}}).Marshal()
	dup[len(dup)-1] = 0
	_, err = Unmarshal(dup)
	require.Error(t, err, "duplicate token")
	// A delta so large it would wrap a uint64 back below the previous token.
	wrap := []byte{1, 1, 1, 'x', 0, 0, byte(StateActive), 0, 0, 2, 10}
	wrap = append(wrap, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)
	_, err = Unmarshal(wrap)
	require.Error(t, err, "wrapping delta")
}

func TestCodecSize(t *testing.T) {
	rnd := rand.New(rand.NewPCG(15, 16))
	one := randomRing(rnd, 1, 128, 1).Marshal()
	// One instance with 128 tokens must fit a gossip packet with room to
	// spare (memberlist's UDP buffer is 1400 bytes).
	require.Less(t, len(one), 700)
	t.Logf("one instance with 128 tokens: %d bytes", len(one))
}

func FuzzUnmarshal(f *testing.F) {
	rnd := rand.New(rand.NewPCG(17, 18))
	f.Add(randomRing(rnd, 2, 4, 2).Marshal())
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Unmarshal(b)
		if err != nil {
			return
		}
		for _, in := range d.Instances {
			require.True(t, slices.IsSorted(in.Tokens))
			require.Len(t, slices.Compact(slices.Clone(in.Tokens)), len(in.Tokens))
		}
		again, err := Unmarshal(d.Marshal())
		require.NoError(t, err)
		require.Equal(t, d.Len(), again.Len())
	})
}

// FuzzMerge checks the descriptor merge is a CRDT join on any two decodable
// descriptors: the order of merges does not matter, and merging again
// changes nothing.
func FuzzMerge(f *testing.F) {
	rnd := rand.New(rand.NewPCG(23, 24))
	f.Add(randomRing(rnd, 2, 4, 2).Marshal(), randomRing(rnd, 3, 4, 2).Marshal())
	f.Add(randomRing(rnd, 1, 8, 1).Marshal(), []byte{1, 0})
	f.Fuzz(func(t *testing.T, x, y []byte) {
		a, err := Unmarshal(x)
		if err != nil {
			return
		}
		b, err := Unmarshal(y)
		if err != nil {
			return
		}
		ab := a.Clone()
		ab.Merge(b.Clone())
		ba := b.Clone()
		ba.Merge(a.Clone())
		require.True(t, ab.Equal(ba), "merge is not commutative")
		again := ab.Clone()
		require.Nil(t, again.Merge(b.Clone()), "merging again changed something")
		require.True(t, again.Equal(ab))
	})
}
