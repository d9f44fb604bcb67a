package ingesterclient

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// buffers is the mem.BufferPool of every ingester connection and server
// (Dial, ServerOptions) and of Codec's marshalling. Unlike gRPC's default
// pool it does not clear a buffer on Get, all of its capacity, which cost
// an rf3 ingester 3.5 % of its CPU (a 16 KB clear for every data frame it
// reads) and the distributor 3 % (a 512 KB clear for every push it
// marshals). Every user writes the bytes it reads: gRPC reads a frame's
// payload into the buffer whole (io.ReadFull), copies whole slices into
// it, or keeps only the length it wrote (mem.ReadAll, mem.NewWriter); Codec
// marshals exactly SizeVT bytes into it. Like pushStatePool in the
// ingester, it is a cache of memory, not state.
var buffers mem.BufferPool = newDirtyPool()

// Tiers of dirtyPool: powers of two from 1 KiB (gRPC pools nothing
// smaller, see mem.IsBelowBufferPoolingThreshold) to 64 MiB. Larger
// buffers are left to the GC.
const (
	minTier = 10
	maxTier = 26
)

// dirtyPool is a mem.BufferPool of power-of-two tiers that hands out
// buffers as they were put back.
type dirtyPool struct {
	tiers [maxTier + 1]sync.Pool
}

func newDirtyPool() *dirtyPool { return &dirtyPool{} }

// tier is the smallest tier whose buffers hold n bytes.
func tier(n int) int {
	if n <= 1<<minTier {
		return minTier
	}
	return bits.Len(uint(n - 1))
}

// Get implements mem.BufferPool.
func (p *dirtyPool) Get(n int) *[]byte {
	t := tier(n)
	if t > maxTier {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<t)
	return &b
}

// Put implements mem.BufferPool. Buffers of other capacities than the
// tiers' (not from Get) are dropped.
func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	if c < 1<<minTier || c > 1<<maxTier || c&(c-1) != 0 {
		return
	}
	p.tiers[bits.Len(uint(c))-1].Put(b)
}
