package ingester

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

func TestPushAndReadBack(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	ctx := context.Background()

	var (
		intHists   []*ingesterpb.Histogram
		floatHists []*ingesterpb.Histogram
		nhcb       []*ingesterpb.Histogram
		want       = map[string][]sample{}
	)
	for k := range int64(5) {
		ts := 1000 + k*1000
		ih := tsdbutil.GenerateTestHistogram(k)
		fh := tsdbutil.GenerateTestFloatHistogram(k)
		ch := tsdbutil.GenerateTestCustomBucketsHistogram(k)
		intHists = append(intHists, ingesterpb.FromHistogram(ts, ih))
		floatHists = append(floatHists, ingesterpb.FromFloatHistogram(ts, fh))
		nhcb = append(nhcb, ingesterpb.FromHistogram(ts, ch))
		want[`{__name__="req_duration", job="api"}`] = append(want[`{__name__="req_duration", job="api"}`], sample{T: ts, H: ih})
		want[`{__name__="req_size", job="api"}`] = append(want[`{__name__="req_size", job="api"}`], sample{T: ts, FH: fh})
		want[`{__name__="req_nhcb", job="api"}`] = append(want[`{__name__="req_nhcb", job="api"}`], sample{T: ts, H: ch})
	}
	want[`{__name__="up", instance="a", job="api"}`] = []sample{{T: 1000, F: 1}, {T: 2000, F: 0}, {T: 3000, F: 1}}
	want[`{__name__="up", instance="b", job="api"}`] = []sample{{T: 1000, F: 42.5}}

	resp, err := h.client.Push(ctx, &ingesterpb.PushRequest{
		Series: []*ingesterpb.TimeSeries{
			{
				Labels:  lbls("__name__", "up", "instance", "a", "job", "api"),
				Samples: floats(1000, 1, 2000, 0, 3000, 1),
				Exemplars: []*ingesterpb.Exemplar{
					{Labels: lbls("trace_id", "abc"), Value: 1, TimestampMs: 3000},
					{Labels: lbls("trace_id", "def"), Value: 0, TimestampMs: 2000},
				},
			},
			// Unsorted labels and an empty value are normalised.
			{Labels: lbls("job", "api", "__name__", "up", "instance", "b", "zone", ""), Samples: floats(1000, 42.5)},
			{Labels: lbls("__name__", "req_duration", "job", "api"), Histograms: intHists},
			{Labels: lbls("__name__", "req_size", "job", "api"), Histograms: floatHists},
			{Labels: lbls("__name__", "req_nhcb", "job", "api"), Histograms: nhcb},
		},
		Metadata: []*ingesterpb.MetricMetadata{
			{Type: ingesterpb.MetricMetadata_GAUGE, MetricFamilyName: "up", Help: "Target is up."},
			{Type: ingesterpb.MetricMetadata_HISTOGRAM, MetricFamilyName: "req_duration", Help: "Request duration.", Unit: "seconds"},
		},
	})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
	require.Equal(t, uint64(4), resp.SamplesWritten)
	require.Equal(t, uint64(15), resp.HistogramsWritten)
	require.Equal(t, uint64(2), resp.ExemplarsWritten)

	got, order := queryAll(t, h.client, 0, 10_000, &ingesterpb.LabelMatcher{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: ".+"})
	require.Equal(t, []string{
		`{__name__="req_duration", job="api"}`,
		`{__name__="req_nhcb", job="api"}`,
		`{__name__="req_size", job="api"}`,
		`{__name__="up", instance="a", job="api"}`,
		`{__name__="up", instance="b", job="api"}`,
	}, order)
	require.Len(t, got, len(want))
	for series, ws := range want {
		gs := got[series]
		require.Len(t, gs, len(ws), series)
		for k := range ws {
			require.Equal(t, ws[k].T, gs[k].T, series)
			switch {
			case ws[k].H != nil:
				require.NotNil(t, gs[k].H, series)
				gs[k].H.CounterResetHint = ws[k].H.CounterResetHint
				require.True(t, ws[k].H.Equals(gs[k].H), "%s: want %v got %v", series, ws[k].H, gs[k].H)
			case ws[k].FH != nil:
				require.NotNil(t, gs[k].FH, series)
				gs[k].FH.CounterResetHint = ws[k].FH.CounterResetHint
				require.True(t, ws[k].FH.Equals(gs[k].FH), "%s: want %v got %v", series, ws[k].FH, gs[k].FH)
			default:
				require.Equal(t, ws[k].F, gs[k].F, series)
			}
		}
	}

	// Exemplars reached the tsdb, sorted by time.
	eq1, err := h.ing.DB().ExemplarQuerier(ctx)
	require.NoError(t, err)
	ms, err := labels.NewMatcher(labels.MatchEqual, "instance", "a")
	require.NoError(t, err)
	exs, err := eq1.Select(0, 10_000, []*labels.Matcher{ms})
	require.NoError(t, err)
	require.Len(t, exs, 1)
	require.Len(t, exs[0].Exemplars, 2)
	require.Equal(t, int64(2000), exs[0].Exemplars[0].Ts)
	require.Equal(t, `{trace_id="abc"}`, exs[0].Exemplars[1].Labels.String())

	t.Run("label names", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			matchers []*ingesterpb.LabelMatcher
			limit    int64
			want     []string
		}{
			{name: "all", want: []string{"__name__", "instance", "job"}},
			{name: "matcher", matchers: []*ingesterpb.LabelMatcher{eq("__name__", "req_size")}, want: []string{"__name__", "job"}},
			{name: "limit", limit: 2, want: []string{"__name__", "instance"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, err := h.client.LabelNames(ctx, &ingesterpb.LabelNamesRequest{StartMs: 0, EndMs: 10_000, Matchers: tc.matchers, Limit: tc.limit})
				require.NoError(t, err)
				require.Equal(t, tc.want, r.Names)
			})
		}
	})

	t.Run("label values", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			label    string
			matchers []*ingesterpb.LabelMatcher
			limit    int64
			want     []string
		}{
			{name: "all names", label: "__name__", want: []string{"req_duration", "req_nhcb", "req_size", "up"}},
			{name: "matcher", label: "instance", matchers: []*ingesterpb.LabelMatcher{eq("__name__", "up")}, want: []string{"a", "b"}},
			{name: "limit", label: "__name__", limit: 1, want: []string{"req_duration"}},
			{name: "out of range", label: "__name__", matchers: []*ingesterpb.LabelMatcher{eq("job", "nope")}, want: nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, err := h.client.LabelValues(ctx, &ingesterpb.LabelValuesRequest{Name: tc.label, StartMs: 0, EndMs: 10_000, Matchers: tc.matchers, Limit: tc.limit})
				require.NoError(t, err)
				require.Equal(t, tc.want, r.Values)
			})
		}
	})

	t.Run("series", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			matchers []*ingesterpb.LabelMatcher
			limit    int64
			want     []string
		}{
			{name: "up", matchers: []*ingesterpb.LabelMatcher{eq("__name__", "up")}, want: []string{`{__name__="up", instance="a", job="api"}`, `{__name__="up", instance="b", job="api"}`}},
			{name: "limit", matchers: []*ingesterpb.LabelMatcher{eq("job", "api")}, limit: 2, want: []string{`{__name__="req_duration", job="api"}`, `{__name__="req_nhcb", job="api"}`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				stream, err := h.client.Series(ctx, &ingesterpb.SeriesRequest{StartMs: 0, EndMs: 10_000, Matchers: tc.matchers, Limit: tc.limit})
				require.NoError(t, err)
				var got []string
				for {
					r, err := stream.Recv()
					if err == io.EOF {
						break
					}
					require.NoError(t, err)
					for _, s := range r.Series {
						got = append(got, toLabels(s.Labels).String())
					}
				}
				require.Equal(t, tc.want, got)
			})
		}
	})

	t.Run("metadata", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			metric string
			limit  int64
			want   []string
		}{
			{name: "all", want: []string{"req_duration", "up"}},
			{name: "one", metric: "up", want: []string{"up"}},
			{name: "limit", limit: 1, want: []string{"req_duration"}},
			{name: "unknown", metric: "nope", want: nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, err := h.client.MetricsMetadata(ctx, &ingesterpb.MetricsMetadataRequest{Metric: tc.metric, Limit: tc.limit})
				require.NoError(t, err)
				var got []string
				for _, m := range r.Metadata {
					got = append(got, m.MetricFamilyName)
				}
				require.Equal(t, tc.want, got)
			})
		}
		r, err := h.client.MetricsMetadata(ctx, &ingesterpb.MetricsMetadataRequest{Metric: "req_duration"})
		require.NoError(t, err)
		require.Equal(t, "seconds", r.Metadata[0].Unit)
		require.Equal(t, ingesterpb.MetricMetadata_HISTOGRAM, r.Metadata[0].Type)
	})
}

func TestQueryStreamBatchesManySeries(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	const n = 1000
	req := &ingesterpb.PushRequest{}
	for k := range n {
		req.Series = append(req.Series, &ingesterpb.TimeSeries{
			Labels:  lbls("__name__", "m", "i", fmt.Sprintf("%05d", k)),
			Samples: floats(1000, float64(k), 2000, float64(k+1)),
		})
	}
	resp, err := h.client.Push(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, uint64(2*n), resp.SamplesWritten)

	stream, err := h.client.QueryStream(context.Background(), &ingesterpb.QueryRequest{StartMs: 0, EndMs: 3000, Matchers: []*ingesterpb.LabelMatcher{eq("__name__", "m")}})
	require.NoError(t, err)
	batches := 0
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		require.LessOrEqual(t, len(r.Series), maxSeriesPerBatch)
		batches++
	}
	require.Equal(t, (n+maxSeriesPerBatch-1)/maxSeriesPerBatch, batches)

	got, order := queryAll(t, h.client, 0, 3000, eq("__name__", "m"))
	require.Len(t, order, n)
	require.Equal(t, []sample{{T: 1000, F: 999}, {T: 2000, F: 1000}}, got[`{__name__="m", i="00999"}`])
}

func TestBadMatchers(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	bad := []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_RE, Name: "a", Value: "("}}

	stream, err := h.client.QueryStream(ctx, &ingesterpb.QueryRequest{EndMs: 1, Matchers: bad})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err), err)

	_, err = h.client.LabelNames(ctx, &ingesterpb.LabelNamesRequest{EndMs: 1, Matchers: bad})
	require.Equal(t, codes.InvalidArgument, status.Code(err), err)
	_, err = h.client.LabelValues(ctx, &ingesterpb.LabelValuesRequest{Name: "a", EndMs: 1, Matchers: bad})
	require.Equal(t, codes.InvalidArgument, status.Code(err), err)
	ss, err := h.client.Series(ctx, &ingesterpb.SeriesRequest{EndMs: 1, Matchers: bad})
	require.NoError(t, err)
	_, err = ss.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err), err)
	_, err = h.client.QueryExemplars(ctx, &ingesterpb.ExemplarQueryRequest{EndMs: 1, MatcherSets: []*ingesterpb.LabelMatchers{{Matchers: bad}}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), err)
}

// TestQueryStreamWhileAppending reads the open head chunk while pushes keep
// appending to it: every answer must decode to a prefix of what was pushed.
func TestQueryStreamWhileAppending(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	const n = 600
	done := make(chan error, 1)
	go func() {
		for k := range n {
			resp, err := h.client.Push(ctx, &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
				{Labels: lbls("__name__", "grow"), Samples: floats(float64(1000*(k+1)), float64(k))},
			}})
			if err == nil && len(resp.Errors) > 0 {
				err = fmt.Errorf("push %d: %s", k, resp.Errors[0].Message)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	check := func() int {
		got, _ := queryAll(t, h.client, 0, 1000*(n+1), eq("__name__", "grow"))
		s := got[`{__name__="grow"}`]
		for k, smp := range s {
			require.Equal(t, sample{T: int64(1000 * (k + 1)), F: float64(k)}, smp)
		}
		return len(s)
	}
	for {
		select {
		case err := <-done:
			require.NoError(t, err)
			require.Equal(t, n, check())
			return
		default:
			check()
		}
	}
}
