package ingester

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

const hour = int64(time.Hour / time.Millisecond)

type wantErr struct {
	index    uint32
	reason   ingesterpb.SeriesError_Reason
	contains string
	rejected uint32
}

func TestPushPerSeriesErrors(t *testing.T) {
	at := 10 * hour
	for _, tc := range []struct {
		name        string
		oooWindow   time.Duration
		first       []*ingesterpb.TimeSeries
		batch       []*ingesterpb.TimeSeries
		wantErrs    []wantErr
		wantWritten uint64
		wantStored  map[string][]sample
	}{
		{
			name: "out of order, too old, duplicate, invalid; the rest is written",
			first: []*ingesterpb.TimeSeries{
				{Labels: lbls("__name__", "a"), Samples: floats(float64(at), 1)},
				{Labels: lbls("__name__", "b"), Samples: floats(float64(at), 1)},
				{Labels: lbls("__name__", "d", "x", "y"), Samples: floats(float64(at), 1)},
			},
			batch: []*ingesterpb.TimeSeries{
				{Labels: lbls("__name__", "a"), Samples: floats(float64(at-1000), 2, float64(at+1000), 3)},
				{Labels: lbls("__name__", "b"), Samples: floats(float64(hour), 2)},
				{Labels: lbls("__name__", "c"), Samples: floats(float64(at), 5)},
				{Labels: lbls("__name__", "d", "x", "y"), Samples: floats(float64(at), 2)},
				{Labels: lbls("__name__", "h"), Histograms: []*ingesterpb.Histogram{{
					Count: &ingesterpb.Histogram_CountInt{CountInt: 1}, TimestampMs: at,
					PositiveSpans: []*ingesterpb.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1},
				}}},
				{Labels: nil, Samples: floats(float64(at), 1)},
			},
			wantErrs: []wantErr{
				{index: 0, reason: ingesterpb.SeriesError_OUT_OF_ORDER, contains: `out of order sample for series {__name__="a"} at timestamp 35999000`, rejected: 1},
				{index: 1, reason: ingesterpb.SeriesError_TOO_OLD, contains: `{__name__="b"} at timestamp 3600000`, rejected: 1},
				{index: 3, reason: ingesterpb.SeriesError_DUPLICATE_TIMESTAMP, contains: `{__name__="d", x="y"} at timestamp 36000000`, rejected: 1},
				{index: 4, reason: ingesterpb.SeriesError_INVALID, contains: `{__name__="h"}`},
				{index: 5, reason: ingesterpb.SeriesError_INVALID, contains: "without labels", rejected: 1},
			},
			wantWritten: 2,
			wantStored: map[string][]sample{
				`{__name__="a"}`:        {{T: at, F: 1}, {T: at + 1000, F: 3}},
				`{__name__="b"}`:        {{T: at, F: 1}},
				`{__name__="c"}`:        {{T: at, F: 5}},
				`{__name__="d", x="y"}`: {{T: at, F: 1}},
			},
		},
		{
			name:  "identical re-push is not an error",
			first: []*ingesterpb.TimeSeries{{Labels: lbls("__name__", "a"), Samples: floats(float64(at), 1, float64(at+1000), 2)}},
			batch: []*ingesterpb.TimeSeries{{Labels: lbls("__name__", "a"), Samples: floats(float64(at), 1, float64(at+1000), 2)}},
			wantStored: map[string][]sample{
				`{__name__="a"}`: {{T: at, F: 1}, {T: at + 1000, F: 2}},
			},
			wantWritten: 2,
		},
		{
			name:      "out-of-order window: inside accepted, beyond it too old",
			oooWindow: 30 * time.Minute,
			first:     []*ingesterpb.TimeSeries{{Labels: lbls("__name__", "a"), Samples: floats(float64(at), 1)}},
			batch: []*ingesterpb.TimeSeries{
				{Labels: lbls("__name__", "a"), Samples: floats(float64(at-2*hour), 2, float64(at-10*60_000), 3)},
			},
			wantErrs: []wantErr{
				{index: 0, reason: ingesterpb.SeriesError_TOO_OLD, contains: `too old sample for series {__name__="a"} at timestamp 28800000`, rejected: 1},
			},
			wantWritten: 1,
			wantStored: map[string][]sample{
				`{__name__="a"}`: {{T: at - 10*60_000, F: 3}, {T: at, F: 1}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.OutOfOrderWindow = model.Duration(tc.oooWindow)
			h := startIngester(t, cfg)
			ctx := context.Background()

			resp, err := h.client.Push(ctx, &ingesterpb.PushRequest{Series: tc.first})
			require.NoError(t, err)
			require.Empty(t, resp.Errors)

			resp, err = h.client.Push(ctx, &ingesterpb.PushRequest{Series: tc.batch})
			require.NoError(t, err)
			require.Equal(t, tc.wantWritten, resp.SamplesWritten)
			require.Len(t, resp.Errors, len(tc.wantErrs), "%v", resp.Errors)
			for k, w := range tc.wantErrs {
				got := resp.Errors[k]
				require.Equal(t, w.index, got.Index)
				require.Equal(t, w.reason, got.Reason, got.Message)
				require.Contains(t, got.Message, w.contains)
				require.Equal(t, w.rejected, got.RejectedSamples)
			}

			got, _ := queryAll(t, h.client, 0, 20*hour, &ingesterpb.LabelMatcher{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: ".+"})
			require.Equal(t, tc.wantStored, got)
		})
	}
}

func TestPushIdenticalHistogramRetry(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	var hs, fhs []*ingesterpb.Histogram
	for k := range int64(3) {
		hs = append(hs, ingesterpb.FromHistogram(1000*(k+1), tsdbutil.GenerateTestHistogram(k)))
		fhs = append(fhs, ingesterpb.FromFloatHistogram(1000*(k+1), tsdbutil.GenerateTestFloatHistogram(k)))
	}
	req := &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "h"), Histograms: hs},
		{Labels: lbls("__name__", "fh"), Histograms: fhs},
	}}
	for attempt := range 2 {
		resp, err := h.client.Push(context.Background(), req)
		require.NoError(t, err)
		require.Empty(t, resp.Errors, "attempt %d", attempt)
		require.Equal(t, uint64(6), resp.HistogramsWritten)
	}

	// A different histogram at an old timestamp is still an error.
	changed := ingesterpb.FromHistogram(1000, tsdbutil.GenerateTestHistogram(7))
	resp, err := h.client.Push(context.Background(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "h"), Histograms: []*ingesterpb.Histogram{changed}},
	}})
	require.NoError(t, err)
	require.Len(t, resp.Errors, 1)
	require.Equal(t, ingesterpb.SeriesError_OUT_OF_ORDER, resp.Errors[0].Reason)
	require.Equal(t, uint32(1), resp.Errors[0].RejectedHistograms)
}
