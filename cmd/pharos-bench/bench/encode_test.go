package bench

import (
	"fmt"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// roundBatch fills b with round r of series [0, n) as RunWrites does:
// per samples per series from ts0, churned series relabelled.
func roundBatch(b *Batch, sb *labels.ScratchBuilder, g GenConfig, n, per, r int, ts0 int64) {
	if b.Labels == nil {
		b.Labels, b.Counter, b.Samples = make([]labels.Labels, n), make([]bool, n), make([]prompb.Sample, n*per)
	}
	for i := range n {
		gen := g.Generation(i, r)
		if ls := SeriesLabels(sb, i, gen); !labels.Equal(ls, b.Labels[i]) {
			b.Labels[i] = ls
		}
		b.Counter[i] = Counter(i)
		for k := range per {
			b.Samples[i*per+k] = prompb.Sample{Timestamp: ts0 + int64(k)*1000, Value: Value(i, gen, r, k, per)}
		}
	}
}

// TestTemplateEqualsFullEncode: a patched body is byte for byte the body
// of the same batch encoded from scratch, round after round, through
// zero values (round 0's counters), churn and a timestamp whose varint
// grows; and the rounds that change only samples are patched.
func TestTemplateEqualsFullEncode(t *testing.T) {
	const n, per = 300, 2
	// Churn of 0.002 moves a series in some rounds (0.6 per round).
	g := GenConfig{ActiveSeries: n, Churn: 0.002, SamplesPerSeries: per, IntervalMs: 15000}
	for _, v2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v2=%v", v2), func(t *testing.T) {
			sb := labels.NewScratchBuilder(12)
			e, fresh := NewEncoder(v2), NewEncoder(v2)
			var b Batch
			// The varint of 2^35 ms is one byte longer than that of the
			// rounds before it: round 3 crosses it.
			t0 := int64(1)<<35 - 3*g.IntervalMs + 500
			for r := range 8 {
				roundBatch(&b, &sb, g, n, per, r, t0+int64(r)*g.IntervalMs)
				body, err := e.Encode(&b)
				require.NoError(t, err)
				raw, err := fresh.Marshal(&b)
				require.NoError(t, err)
				require.Equal(t, Compress(nil, raw), body, "round %d", r)
				dec, err := snappy.Decode(nil, body)
				require.NoError(t, err)
				require.Equal(t, raw, dec, "round %d", r)
			}
			// Full: round 0, round 1 (counters leave 0), round 3 (longer
			// varint); churn splices in 1.0 and encodes again in 2.0.
			require.Equal(t, 8, e.Full+e.Spliced+e.Patched)
			require.Positive(t, e.Patched, "rounds that only change samples are patched")
			if v2 {
				require.Greater(t, e.Full, 3, "churn encodes 2.0 again")
				require.Zero(t, e.Spliced)
			} else {
				require.Equal(t, 3, e.Full)
				require.Positive(t, e.Spliced, "churn splices 1.0")
			}
		})
	}
	// Heavy churn: several series spliced into one body, rounds apart.
	t.Run("v1 heavy churn", func(t *testing.T) {
		g := g
		g.Churn = 0.03 // 9 series a round, in runs, some at the ends
		sb := labels.NewScratchBuilder(12)
		e, fresh := NewEncoder(false), NewEncoder(false)
		var b Batch
		for r := range 40 {
			roundBatch(&b, &sb, g, n, per, r, 1_760_000_000_000+int64(r)*g.IntervalMs)
			body, err := e.Encode(&b)
			require.NoError(t, err)
			raw, err := fresh.Marshal(&b)
			require.NoError(t, err)
			require.Equal(t, Compress(nil, raw), body, "round %d", r)
		}
		require.Equal(t, 2, e.Full)
		require.Greater(t, e.Spliced, 30)
	})
	// Without churn only the three layout changes encode from scratch.
	sb := labels.NewScratchBuilder(12)
	e, fresh := NewEncoder(false), NewEncoder(false)
	g.Churn = 0
	var b Batch
	t0 := int64(1)<<35 - 3*g.IntervalMs + 500
	for r := range 8 {
		roundBatch(&b, &sb, g, n, per, r, t0+int64(r)*g.IntervalMs)
		body, err := e.Encode(&b)
		require.NoError(t, err)
		raw, err := fresh.Marshal(&b)
		require.NoError(t, err)
		require.Equal(t, Compress(nil, raw), body, "round %d", r)
	}
	require.Equal(t, 3, e.Full)
	require.Equal(t, 5, e.Patched)
}

// TestPrepare: a prepared first body is the body of the same batch, and
// the template laid out for the next round patches it; a batch that
// changed since Prepare is encoded as usual.
func TestPrepare(t *testing.T) {
	const n, per = 200, 1
	g := GenConfig{ActiveSeries: n, SamplesPerSeries: per, IntervalMs: 15000}
	t0 := int64(1_760_000_000_000)
	for _, v2 := range []bool{false, true} {
		sb := labels.NewScratchBuilder(12)
		var b, next Batch
		roundBatch(&next, &sb, g, n, per, 1, t0+g.IntervalMs)
		roundBatch(&b, &sb, g, n, per, 0, t0)
		e, fresh := NewEncoder(v2), NewEncoder(v2)
		require.NoError(t, e.Prepare(&b, next.Samples))
		for r := range 3 {
			roundBatch(&b, &sb, g, n, per, r, t0+int64(r)*g.IntervalMs)
			body, err := e.Encode(&b)
			require.NoError(t, err)
			raw, err := fresh.Marshal(&b)
			require.NoError(t, err)
			require.Equal(t, Compress(nil, raw), body, "v2=%v round %d", v2, r)
		}
		require.Equal(t, 1, e.Prepared)
		require.Equal(t, 2, e.Patched, "round 0's zeros do not disturb the later rounds")
		require.Zero(t, e.Full)

		// Prepared, then changed: the prepared body is not used.
		roundBatch(&b, &sb, g, n, per, 0, t0)
		e = NewEncoder(v2)
		require.NoError(t, e.Prepare(&b, next.Samples))
		b.Samples[7].Value++
		body, err := e.Encode(&b)
		require.NoError(t, err)
		raw, err := fresh.Marshal(&b)
		require.NoError(t, err)
		require.Equal(t, Compress(nil, raw), body)
		require.Zero(t, e.Prepared)
	}
}

// BenchmarkEncode is one 2000-series request of a later round (no zeros,
// no churn), per way of encoding it: from scratch (what the harness did)
// or patched, and compressed by klauspost's snappy.Encode (its "better"
// level) or s2's snappy-compatible fast level.
func BenchmarkEncode(b *testing.B) {
	const n = 2000
	g := GenConfig{ActiveSeries: n, SamplesPerSeries: 1, IntervalMs: 15000}
	t0 := int64(1_760_000_000_000)
	for _, v2 := range []bool{false, true} {
		for _, way := range []string{"full+snappy", "full+s2", "patch+snappy", "patch+s2"} {
			b.Run(fmt.Sprintf("v2=%v/%s", v2, way), func(b *testing.B) {
				sb := labels.NewScratchBuilder(12)
				e := NewEncoder(v2)
				var bt Batch
				roundBatch(&bt, &sb, g, n, 1, 5, t0)
				var comp []byte
				size := 0
				b.ResetTimer()
				for r := range b.N {
					for i := range bt.Samples {
						bt.Samples[i].Timestamp = t0 + int64(r)*g.IntervalMs
						bt.Samples[i].Value += 1
					}
					var raw []byte
					var err error
					if way[:4] == "full" {
						raw, err = e.Marshal(&bt)
					} else {
						raw, err = e.encodeRaw(&bt)
					}
					if err != nil {
						b.Fatal(err)
					}
					if way[len(way)-2:] == "s2" {
						comp = s2.EncodeSnappy(comp[:cap(comp)], raw)
					} else {
						comp = snappy.Encode(comp[:cap(comp)], raw)
					}
					size = len(comp)
				}
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N*n)*1e6, "s/M-samples")
				b.ReportMetric(float64(size), "body-bytes")
			})
		}
	}
}
