package bench

import (
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

func TestSeriesShapes(t *testing.T) {
	sb := labels.NewScratchBuilder(12)
	seen := map[string]bool{}
	jobs := map[string]int{}
	const n = 5000
	for i := range n {
		ls := SeriesLabels(&sb, i, 0)
		require.NoError(t, ls.Validate(func(labels.Label) error { return nil }))
		require.GreaterOrEqual(t, ls.Len(), 10, ls.String())
		require.LessOrEqual(t, ls.Len(), 12, ls.String())
		require.False(t, seen[ls.String()], "duplicate %s", ls)
		seen[ls.String()] = true
		jobs[ls.Get("job")]++
		require.NotEmpty(t, ls.Get("instance"))
		require.NotEmpty(t, ls.Get("namespace"))
	}
	require.Equal(t, map[string]int{"node-exporter": n * 6 / 10, "kube-state-metrics": n * 4 / 10}, jobs)
	// A churned series is a new label set.
	require.NotEqual(t, SeriesLabels(&sb, 7, 0).String(), SeriesLabels(&sb, 7, 1).String())
}

func TestChurn(t *testing.T) {
	cfg := GenConfig{ActiveSeries: 10000, Churn: 0.01}
	for _, r := range []int{1, 10, 57} {
		moved := 0
		for i := range cfg.ActiveSeries {
			if cfg.Generation(i, r) != cfg.Generation(i, r-1) {
				moved++
			}
		}
		require.InDelta(t, 100, moved, 1, "round %d", r)
	}
	require.Zero(t, GenConfig{ActiveSeries: 10}.Generation(3, 1000))
}

func TestValuesCountersGrow(t *testing.T) {
	for i := range 20 {
		if Counter(i) {
			require.Greater(t, Value(i, 0, 3, 0, 1), Value(i, 0, 2, 0, 1))
			require.NotEqual(t, Value(i, 0, 3, 0, 1), Value(i+7, 0, 3, 0, 1), "rates differ")
		}
	}
}

func testBatch() *Batch {
	sb := labels.NewScratchBuilder(12)
	b := &Batch{}
	for i := range 50 {
		b.Labels = append(b.Labels, SeriesLabels(&sb, i, 0))
		b.Counter = append(b.Counter, Counter(i))
		for k := range 2 {
			b.Samples = append(b.Samples, prompb.Sample{Timestamp: int64(1000*i + k), Value: Value(i, 0, 1, k, 2)})
		}
	}
	return b
}

func TestEncodeV1DecodesUpstream(t *testing.T) {
	b := testBatch()
	e := NewEncoder(false)
	for range 2 { // the second pass reuses the buffers
		body, err := e.Encode(b)
		require.NoError(t, err)
		raw, err := snappy.Decode(nil, body)
		require.NoError(t, err)
		var req prompb.WriteRequest
		require.NoError(t, req.Unmarshal(raw))
		require.Len(t, req.Timeseries, len(b.Labels))
		for i, ts := range req.Timeseries {
			sb := labels.NewScratchBuilder(len(ts.Labels))
			require.Equal(t, b.Labels[i], ts.ToLabels(&sb, nil))
			require.Equal(t, b.Samples[2*i:2*i+2], ts.Samples)
		}
	}
}

func TestEncodeV2DecodesUpstream(t *testing.T) {
	b := testBatch()
	e := NewEncoder(true)
	for range 2 {
		body, err := e.Encode(b)
		require.NoError(t, err)
		raw, err := snappy.Decode(nil, body)
		require.NoError(t, err)
		var req writev2.Request
		require.NoError(t, req.Unmarshal(raw))
		require.Len(t, req.Timeseries, len(b.Labels))
		sb := labels.NewScratchBuilder(12)
		for i, ts := range req.Timeseries {
			ls, err := ts.ToLabels(&sb, req.Symbols)
			require.NoError(t, err)
			require.Equal(t, b.Labels[i], ls)
			require.Len(t, ts.Samples, 2)
			require.Equal(t, b.Samples[2*i].Value, ts.Samples[0].Value)
			require.Equal(t, b.Samples[2*i+1].Timestamp, ts.Samples[1].Timestamp)
			want := writev2.Metadata_METRIC_TYPE_GAUGE
			if b.Counter[i] {
				want = writev2.Metadata_METRIC_TYPE_COUNTER
			}
			require.Equal(t, want, ts.Metadata.Type)
		}
	}
}
