package ring

import (
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func BenchmarkReplicationSet(b *testing.B) {
	for _, tc := range []struct {
		name         string
		n, zones, rf int
	}{{"n3_rf3", 3, 0, 3}, {"n30_rf3", 30, 0, 3}, {"n30_z3_rf3", 30, 3, 3}, {"n100_rf3", 100, 0, 3}} {
		b.Run(tc.name, func(b *testing.B) {
			rnd := rand.New(rand.NewPCG(1, 1))
			v := NewView(randomRing(rnd, tc.n, 128, tc.zones), testTimeout)
			keys := make([]uint32, 1024)
			for i := range keys {
				keys[i] = rnd.Uint32()
			}
			var buf []*Instance
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				rs, err := v.ReplicationSet(keys[i&1023], tc.rf, Write, testNow, buf)
				if err != nil {
					b.Fatal(err)
				}
				buf = rs.Instances
			}
		})
	}
}

func BenchmarkNewView(b *testing.B) {
	d := randomRing(rand.New(rand.NewPCG(2, 2)), 100, 128, 3)
	b.ReportAllocs()
	for b.Loop() {
		NewView(d, testTimeout)
	}
}

func BenchmarkShardKey(b *testing.B) {
	lbls := labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "10.1.2.3:8080", "method", "GET", "code", "200", "handler", "/api/v1/query")
	b.ReportAllocs()
	for b.Loop() {
		ShardKey(lbls)
	}
}

func BenchmarkCodec(b *testing.B) {
	d := randomRing(rand.New(rand.NewPCG(3, 3)), 100, 128, 3)
	enc := d.Marshal()
	b.Run("marshal_100x128", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			d.Marshal()
		}
	})
	b.Run("unmarshal_100x128", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if _, err := Unmarshal(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkViewRebuild compares a full rebuild with NewViewFrom after a
// heartbeat-only change, the common case.
func BenchmarkViewRebuild(b *testing.B) {
	d := randomRing(rand.New(rand.NewPCG(4, 4)), 100, 128, 3)
	prev := NewView(d, testTimeout)
	next := d.Clone()
	in := next.Instances["ing-5"]
	in.Timestamp++
	next.Instances["ing-5"] = in
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			NewView(next, testTimeout)
		}
	})
	b.Run("heartbeat_only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			NewViewFrom(prev, next, testTimeout)
		}
	})
}
