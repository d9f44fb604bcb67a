package ingesterclient

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDirtyPoolSizes(t *testing.T) {
	p := newDirtyPool()
	for _, tc := range []struct{ n, cap int }{
		{1, 1 << 10}, {1024, 1 << 10}, {1025, 1 << 11}, {16 << 10, 16 << 10}, {500_000, 512 << 10}, {64 << 20, 64 << 20},
		{64<<20 + 1, 64<<20 + 1}, // above the tiers: exactly what was asked for
	} {
		b := p.Get(tc.n)
		require.Len(t, *b, tc.n)
		require.Equal(t, tc.cap, cap(*b), "Get(%d)", tc.n)
		p.Put(b)
	}
}

// A buffer put back comes out of its tier again, not cleared, resliced to
// the length asked for; buffers of other capacities are not kept.
func TestDirtyPoolReuse(t *testing.T) {
	p := newDirtyPool()
	b := p.Get(3000)
	(*b)[0] = 42
	var again *[]byte
	for range 100 { // sync.Pool may drop what is put (the race detector makes it)
		p.Put(b)
		if again = p.Get(2100); &(*again)[0] == &(*b)[0] {
			break
		}
	}
	require.Same(t, &(*b)[0], &(*again)[0], "the buffer is reused")
	require.Len(t, *again, 2100)
	require.Equal(t, byte(42), (*again)[0], "and not cleared")

	odd := make([]byte, 3000)
	p.Put(&odd)
	for range 10 {
		got := p.Get(3000)
		require.NotSame(t, &odd[0], &(*got)[0])
	}
}
