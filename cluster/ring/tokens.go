package ring

import (
	"math/rand/v2"
	"slices"
)

// GenerateTokens returns n random tokens, sorted, that are neither in taken
// nor repeated. taken is typically every token already in the ring (see
// Desc.Tokens); it is not modified. rnd is injected so tests are
// reproducible; production passes a randomly seeded source.
func GenerateTokens(n int, taken map[uint32]struct{}, rnd *rand.Rand) []uint32 {
	if n <= 0 {
		return nil
	}
	out := make([]uint32, 0, n)
	mine := make(map[uint32]struct{}, n)
	for len(out) < n {
		t := rnd.Uint32()
		if _, ok := taken[t]; ok {
			continue
		}
		if _, ok := mine[t]; ok {
			continue
		}
		mine[t] = struct{}{}
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// TakenTokens returns the set of tokens owned by members of d other than
// except, for GenerateTokens.
func (d *Desc) TakenTokens(except string) map[uint32]struct{} {
	taken := map[uint32]struct{}{}
	if d == nil {
		return taken
	}
	for id, in := range d.Instances {
		if id == except {
			continue
		}
		for _, t := range in.Tokens {
			taken[t] = struct{}{}
		}
	}
	return taken
}
