package ingester

import (
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/storage"
)

// BenchmarkRefCacheGet times a hit by table size, lookups one after the
// other. In a push they take far longer (about 225 ns at 150k series in the
// all-in-one's write profile, against 22 ns here): decoding and appending
// between two lookups evicts the table's lines, and each lookup waits for
// its miss instead of overlapping the next one's. (Looking up 64 series
// at a time ahead of their appends did not make pushes faster.)
func BenchmarkRefCacheGet(b *testing.B) {
	for _, n := range []int{10_000, 150_000, 1_000_000} {
		c := newRefCache()
		keys := make([]refKey, n)
		for i := range keys {
			keys[i] = c.key([]byte("series-" + strconv.Itoa(i)))
			c.put(keys[i], storage.SeriesRef(i+1))
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, ok := c.get(keys[i]); !ok {
					b.Fatal("miss")
				}
				if i++; i == n {
					i = 0
				}
			}
		})
	}
}
