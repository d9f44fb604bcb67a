package cluster

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

// BenchmarkRingGet is the distributor's per-series cost: the cached view
// check plus the replication-set walk, on 30 ingesters RF 3.
func BenchmarkRingGet(b *testing.B) {
	kv := NewMemKV()
	rnd := rand.New(rand.NewPCG(1, 2))
	d := ring.NewDesc()
	for i := range 30 {
		id := fmt.Sprintf("ing-%d", i)
		d.Instances[id] = ring.Instance{ID: id, Zone: fmt.Sprint(i % 3), State: ring.StateActive,
			Tokens: ring.GenerateTokens(128, d.TakenTokens(""), rnd), Timestamp: time.Now().UnixMilli()}
	}
	kv.Merge(d)
	cfg := testRingConfig("")
	cfg.HeartbeatTimeout = time.Hour
	r, err := NewRing(cfg, kv, nil)
	if err != nil {
		b.Fatal(err)
	}
	var buf []*ring.Instance
	b.ReportAllocs()
	for i := uint32(0); b.Loop(); i += 0x9e3779b9 {
		rs, err := r.GetInto(i, ring.Write, buf)
		if err != nil {
			b.Fatal(err)
		}
		buf = rs.Instances
	}
}
