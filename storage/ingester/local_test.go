package ingester

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// mixedPushes is a workload that takes every branch of push: floats,
// integer, float and custom-bucket histograms, a series that changes type,
// exemplars, metadata, unsorted labels, empty values, a client's own tenant
// label, and rejections (out of order, duplicate, too old, invalid
// histogram, no labels).
func mixedPushes(now int64) []*ingesterpb.PushRequest {
	var hs, fhs, chs []*ingesterpb.Histogram
	for k := range int64(4) {
		ts := now + k*1000
		hs = append(hs, ingesterpb.FromHistogram(ts, tsdbutil.GenerateTestHistogram(k)))
		fhs = append(fhs, ingesterpb.FromFloatHistogram(ts, tsdbutil.GenerateTestFloatHistogram(k)))
		chs = append(chs, ingesterpb.FromHistogram(ts, tsdbutil.GenerateTestCustomBucketsHistogram(k)))
	}
	var many []*ingesterpb.TimeSeries
	for k := range maxSeriesPerBatch + 100 { // more than one QueryStream batch
		many = append(many, &ingesterpb.TimeSeries{
			Labels:  lbls("__name__", "many", "i", fmt.Sprintf("%05d", k), "job", "bulk"),
			Samples: floats(float64(now), float64(k), float64(now+1000), float64(k+1)),
		})
	}
	return []*ingesterpb.PushRequest{
		{
			Series: append([]*ingesterpb.TimeSeries{
				{
					Labels:  lbls("__name__", "up", "instance", "a", "job", "api"),
					Samples: floats(float64(now), 1, float64(now+1000), 0, float64(now+2000), 1),
					Exemplars: []*ingesterpb.Exemplar{
						{Labels: lbls("trace_id", "abc"), Value: 1, TimestampMs: now + 2000},
						{Labels: lbls("trace_id", "def"), Value: 0, TimestampMs: now + 1000},
					},
				},
				{Labels: lbls("job", "api", "__name__", "up", "instance", "b", "zone", ""), Samples: floats(float64(now), 42.5)},
				{Labels: lbls("__name__", "up", "instance", "c", tenant.Label, "someone-else"), Samples: floats(float64(now), 3)},
				{Labels: lbls("__name__", "req_duration", "job", "api"), Histograms: hs},
				{Labels: lbls("__name__", "req_size", "job", "api"), Histograms: fhs},
				{Labels: lbls("__name__", "req_nhcb", "job", "api"), Histograms: chs},
				{
					Labels:     lbls("__name__", "mixed", "job", "api"),
					Samples:    floats(float64(now), 1, float64(now+2000), 3),
					Histograms: []*ingesterpb.Histogram{ingesterpb.FromHistogram(now+1000, tsdbutil.GenerateTestHistogram(1))},
				},
			}, many...),
			Metadata: []*ingesterpb.MetricMetadata{
				{Type: ingesterpb.MetricMetadata_GAUGE, MetricFamilyName: "up", Help: "Target is up."},
				{Type: ingesterpb.MetricMetadata_HISTOGRAM, MetricFamilyName: "req_duration", Help: "Request duration.", Unit: "seconds"},
			},
		},
		{Series: []*ingesterpb.TimeSeries{
			{Labels: lbls("__name__", "up", "instance", "a", "job", "api"), Samples: floats(float64(now+500), 7, float64(now+3000), 1)},
			{Labels: lbls("__name__", "up", "instance", "b", "job", "api"), Samples: floats(float64(now), 43)},
			{Labels: lbls("__name__", "up", "instance", "old", "job", "api"), Samples: floats(float64(now-10*hour), 1)},
			{Labels: lbls("__name__", "bad_histogram"), Histograms: []*ingesterpb.Histogram{{
				Count: &ingesterpb.Histogram_CountInt{CountInt: 1}, TimestampMs: now,
				PositiveSpans: []*ingesterpb.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1},
			}}},
			{Labels: nil, Samples: floats(float64(now), 1)},
			{Labels: lbls("only_empty", ""), Samples: floats(float64(now), 1)},
		}},
		{}, // an empty push is a valid one
	}
}

// drain receives every message of a stream before looking at any, so that
// a message overwritten by a later one would show.
func drain[T any](tb testing.TB, recv func() (*T, error)) ([]*T, error) {
	tb.Helper()
	var out []*T
	for {
		m, err := recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

type vtMarshaler interface{ MarshalVT() ([]byte, error) }

// requireSameMessages compares two streams' messages by their encoding.
func requireSameMessages[T any, M interface {
	*T
	vtMarshaler
}](t *testing.T, want, got []*T, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, len(want), len(got), msgAndArgs...)
	for k := range want {
		w, err := M(want[k]).MarshalVT()
		require.NoError(t, err)
		g, err := M(got[k]).MarshalVT()
		require.NoError(t, err)
		require.Equal(t, w, g, msgAndArgs...)
	}
}

// requireSameError requires the errors of two calls to be the same status.
func requireSameError(t *testing.T, want, got error, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, status.Convert(want).Proto().String(), status.Convert(got).Proto().String(), msgAndArgs...)
}

// reader is one way to reach an ingester.
type reader struct {
	name string
	c    ingesterpb.IngesterClient
}

// requireSameAnswers makes each unary request through every reader and
// requires the first reader's error and an equal answer from the others;
// it returns the first reader's answers and errors, by request.
func requireSameAnswers[Req any, Resp interface{ EqualVT(Resp) bool }](t *testing.T, readers []reader, what string,
	reqs []Req, call func(ingesterpb.IngesterClient, Req) (Resp, error),
) ([]Resp, []error) {
	t.Helper()
	wants, wantErrs := make([]Resp, len(reqs)), make([]error, len(reqs))
	for k, req := range reqs {
		wants[k], wantErrs[k] = call(readers[0].c, req)
		for _, r := range readers[1:] {
			got, err := call(r.c, req)
			requireSameError(t, wantErrs[k], err, "%s %d via %s", what, k, r.name)
			require.True(t, wants[k].EqualVT(got), "%s %d via %s: want %v, got %v", what, k, r.name, wants[k], got)
		}
	}
	return wants, wantErrs
}

// TestLocalClientAnswersAsGRPC pushes the same requests to one ingester
// through its local client and to another over gRPC, then reads both ways:
// every answer, error and push metric must be the same. Stream messages are
// compared once the stream has ended, so that the local client's handing
// over of a message the ingester then reuses would show.
func TestLocalClientAnswersAsGRPC(t *testing.T) {
	remote := startIngester(t, testConfig(t, t.TempDir()))
	local := startIngester(t, testConfig(t, t.TempDir()))
	lc := local.ing.LocalClient()
	now := (time.Now().UnixMilli() / 1000) * 1000
	tenants := []string{tenant.DefaultTenant, "team-a", "team-b"}

	for _, id := range tenants {
		for k, req := range mixedPushes(now) {
			want, wantErr := remote.client.Push(asTenant(id), req)
			got, gotErr := lc.Push(asTenant(id), req)
			requireSameError(t, wantErr, gotErr, "tenant %s push %d", id, k)
			require.True(t, want.EqualVT(got), "tenant %s push %d: want %v, got %v", id, k, want, got)
		}
	}
	for _, m := range []string{
		`pharos_ingester_push_requests_total{outcome="ok"}`,
		"pharos_ingester_samples_appended_total",
		"pharos_ingester_histograms_appended_total",
		"pharos_ingester_exemplars_appended_total",
		`pharos_ingester_samples_rejected_total{reason="out_of_order"}`,
		`pharos_ingester_samples_rejected_total{reason="too_old"}`,
		`pharos_ingester_samples_rejected_total{reason="invalid"}`,
		"pharos_ingester_metadata_families",
		"prometheus_tsdb_head_series",
	} {
		require.Equal(t, metricValue(t, remote.reg, m), metricValue(t, local.reg, m), m)
	}
	require.Positive(t, metricValue(t, local.reg, "pharos_ingester_exemplars_appended_total"))

	all := &ingesterpb.LabelMatcher{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: ".+"}
	queries := []*ingesterpb.QueryRequest{
		{StartMs: math.MinInt64, EndMs: math.MaxInt64, Matchers: []*ingesterpb.LabelMatcher{all}},
		{StartMs: now, EndMs: now + 1000, Matchers: []*ingesterpb.LabelMatcher{eq("job", "api")}},
		{StartMs: now, EndMs: now + 5000, Matchers: []*ingesterpb.LabelMatcher{eq("__name__", "many")}, Hints: &ingesterpb.SelectHints{ShardCount: 3, ShardIndex: 1}},
		{StartMs: now, EndMs: now + 5000, Matchers: []*ingesterpb.LabelMatcher{eq("__name__", "up"), eq(tenant.Label, "team-a")}},
		{StartMs: now, EndMs: now + 5000, Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_RE, Name: "a", Value: "("}}},
		{StartMs: now, EndMs: now + 5000, Matchers: []*ingesterpb.LabelMatcher{eq("__name__", "many")}, Hints: &ingesterpb.SelectHints{ShardCount: 2, ShardIndex: 2}},
	}
	seriesReqs := []*ingesterpb.SeriesRequest{
		{StartMs: math.MinInt64, EndMs: math.MaxInt64, Matchers: []*ingesterpb.LabelMatcher{all}},
		{StartMs: math.MinInt64, EndMs: math.MaxInt64, Matchers: []*ingesterpb.LabelMatcher{eq("job", "bulk")}, Limit: 10},
	}
	namesReqs := []*ingesterpb.LabelNamesRequest{
		{StartMs: math.MinInt64, EndMs: math.MaxInt64},
		{StartMs: math.MinInt64, EndMs: math.MaxInt64, Limit: 2},
		{StartMs: math.MinInt64, EndMs: math.MaxInt64, Matchers: []*ingesterpb.LabelMatcher{eq("__name__", "req_size")}},
	}
	valuesReqs := []*ingesterpb.LabelValuesRequest{
		{Name: "__name__", StartMs: math.MinInt64, EndMs: math.MaxInt64},
		{Name: "instance", StartMs: math.MinInt64, EndMs: math.MaxInt64, Matchers: []*ingesterpb.LabelMatcher{eq("__name__", "up")}},
		{Name: "i", StartMs: math.MinInt64, EndMs: math.MaxInt64, Limit: 5},
		{Name: tenant.Label, StartMs: math.MinInt64, EndMs: math.MaxInt64},
		{Name: "", StartMs: math.MinInt64, EndMs: math.MaxInt64},
	}
	metaReqs := []*ingesterpb.MetricsMetadataRequest{{}, {Metric: "req_duration"}, {Limit: 1}}
	exemplarReqs := []*ingesterpb.ExemplarQueryRequest{
		{StartMs: math.MinInt64, EndMs: math.MaxInt64, MatcherSets: []*ingesterpb.LabelMatchers{{Matchers: []*ingesterpb.LabelMatcher{all}}}},
		{StartMs: now + 1500, EndMs: now + 5000, MatcherSets: []*ingesterpb.LabelMatchers{{Matchers: []*ingesterpb.LabelMatcher{eq("job", "api")}}, {Matchers: []*ingesterpb.LabelMatcher{eq("instance", "c")}}}},
		{StartMs: math.MinInt64, EndMs: math.MaxInt64, MatcherSets: []*ingesterpb.LabelMatchers{{Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_RE, Name: "a", Value: "("}}}}},
	}

	// Each read is answered by the local client, by the same ingester over
	// gRPC, and by the ingester that got the pushes over gRPC.
	readers := []reader{{"local", lc}, {"grpc", local.client}, {"other", remote.client}}
	okStreams := 0
	for _, id := range tenants {
		ctx := asTenant(id)
		for k, req := range queries {
			var want []*ingesterpb.QueryStreamResponse
			var wantErr error
			for n, r := range readers {
				stream, err := r.c.QueryStream(ctx, req)
				require.NoError(t, err)
				got, err := drain(t, stream.Recv)
				if n == 0 {
					want, wantErr = got, err
					continue
				}
				requireSameError(t, wantErr, err, "tenant %s query %d via %s", id, k, r.name)
				requireSameMessages(t, want, got, "tenant %s query %d via %s", id, k, r.name)
			}
			if wantErr == nil {
				okStreams += 2 // local and gRPC, on the same ingester
			}
		}
		for k, req := range seriesReqs {
			var want []*ingesterpb.SeriesResponse
			for n, r := range readers {
				stream, err := r.c.Series(ctx, req)
				require.NoError(t, err)
				got, err := drain(t, stream.Recv)
				require.NoError(t, err)
				if n == 0 {
					want = got
					require.NotEmpty(t, got)
					continue
				}
				requireSameMessages(t, want, got, "tenant %s series %d via %s", id, k, r.name)
			}
		}
		requireSameAnswers(t, readers, "tenant "+id+" names", namesReqs,
			func(c ingesterpb.IngesterClient, req *ingesterpb.LabelNamesRequest) (*ingesterpb.LabelNamesResponse, error) {
				return c.LabelNames(ctx, req)
			})
		requireSameAnswers(t, readers, "tenant "+id+" values", valuesReqs,
			func(c ingesterpb.IngesterClient, req *ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
				return c.LabelValues(ctx, req)
			})
		exemplars, errs := requireSameAnswers(t, readers, "tenant "+id+" exemplars", exemplarReqs,
			func(c ingesterpb.IngesterClient, req *ingesterpb.ExemplarQueryRequest) (*ingesterpb.ExemplarQueryResponse, error) {
				return c.QueryExemplars(ctx, req)
			})
		require.NoError(t, errs[0])
		require.Len(t, exemplars[0].Series, 1, "tenant %s", id)
		_, errs = requireSameAnswers(t, readers, "tenant "+id+" metadata", metaReqs,
			func(c ingesterpb.IngesterClient, req *ingesterpb.MetricsMetadataRequest) (*ingesterpb.MetricsMetadataResponse, error) {
				return c.MetricsMetadata(ctx, req)
			})
		for _, err := range errs {
			require.NoError(t, err) // and so through every reader
		}
	}

	// The local client's streams count as the gRPC server's do.
	require.Equal(t, 8*len(tenants), okStreams, "all queries but the bad matcher and the bad shard succeed")
	require.Equal(t, float64(okStreams), metricValue(t, local.reg, `pharos_ingester_query_streams_total{outcome="ok"}`))
	require.Equal(t, float64(okStreams/2), metricValue(t, local.reg, `pharos_ingester_query_streams_total{outcome="error"}`))

	// Tenants are kept apart through the local client too: team-a's write
	// of its own series is not team-b's.
	resp, err := lc.Push(asTenant("team-a"), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "only_a"), Samples: floats(float64(now), 1)},
	}})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
	for id, want := range map[string]int{"team-a": 1, "team-b": 0, tenant.DefaultTenant: 0} {
		require.Len(t, queryAs(t, lc, id, eq("__name__", "only_a")), want, id)
	}
}

// TestLocalClientWithoutTenant: a call whose context names no tenant fails
// as it does over gRPC, before reaching the ingester; one whose tenant is
// invalid is refused by the ingester, which counts it.
func TestLocalClientWithoutTenant(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	lc := h.ing.LocalClient()
	var ccfg ingesterclient.Config
	ccfg.RegisterFlags("ingester.client.", flag.NewFlagSet("client", flag.ContinueOnError))
	// No defaultTenant: calls carry only what their context names.
	bare, err := ingesterclient.Dial(h.client.Addr(), ccfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, bare.Close()) })

	req := &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{Labels: lbls("__name__", "x"), Samples: floats(1, 1)}}}
	for _, ctx := range []context.Context{context.Background(), tenant.With(context.Background(), "no/slashes")} {
		_, wantErr := bare.Push(ctx, req)
		_, gotErr := lc.Push(ctx, req)
		require.Error(t, gotErr)
		requireSameError(t, wantErr, gotErr)

		_, wantErr = bare.LabelNames(ctx, &ingesterpb.LabelNamesRequest{})
		_, gotErr = lc.LabelNames(ctx, &ingesterpb.LabelNamesRequest{})
		requireSameError(t, wantErr, gotErr)
		_, wantErr = bare.LabelValues(ctx, &ingesterpb.LabelValuesRequest{Name: tenant.Label})
		_, gotErr = lc.LabelValues(ctx, &ingesterpb.LabelValuesRequest{Name: tenant.Label})
		requireSameError(t, wantErr, gotErr)
		_, wantErr = bare.MetricsMetadata(ctx, &ingesterpb.MetricsMetadataRequest{})
		_, gotErr = lc.MetricsMetadata(ctx, &ingesterpb.MetricsMetadataRequest{})
		requireSameError(t, wantErr, gotErr)
		_, wantErr = bare.QueryExemplars(ctx, &ingesterpb.ExemplarQueryRequest{})
		_, gotErr = lc.QueryExemplars(ctx, &ingesterpb.ExemplarQueryRequest{})
		requireSameError(t, wantErr, gotErr)

		// A stream fails when it is opened or at its first Recv, whichever
		// gRPC does.
		streamErr := func(c ingesterpb.IngesterClient) error {
			stream, err := c.QueryStream(ctx, &ingesterpb.QueryRequest{Matchers: []*ingesterpb.LabelMatcher{eq("__name__", "x")}})
			if err != nil {
				return err
			}
			_, err = drain(t, stream.Recv)
			return err
		}
		requireSameError(t, streamErr(bare), streamErr(lc))
	}
	require.Equal(t, codes.Unauthenticated, status.Code(func() error { _, err := lc.Push(context.Background(), req); return err }()))
	// Both pushes with the invalid tenant reached the ingester; none
	// without a tenant did.
	require.Equal(t, 2.0, metricValue(t, h.reg, `pharos_ingester_push_requests_total{outcome="InvalidArgument"}`))
	requireNoMetric(t, h.reg, `pharos_ingester_push_requests_total{outcome="Unauthenticated"}`)
}

// metricValueOrZero is metricValue for a sample that may not exist yet (a
// counter vector's child is created at its first increment): 0 then.
func metricValueOrZero(t *testing.T, reg *prometheus.Registry, sel string) float64 {
	t.Helper()
	v, ok := findMetric(t, reg, sel)
	if !ok {
		return 0
	}
	return v
}

// requireNoMetric requires that reg has no sample sel.
func requireNoMetric(t *testing.T, reg *prometheus.Registry, sel string) {
	t.Helper()
	_, ok := findMetric(t, reg, sel)
	require.False(t, ok, "metric %s exists", sel)
}

// findMetric finds one gathered sample by name{k="v",...}.
func findMetric(t *testing.T, reg *prometheus.Registry, sel string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			id := mf.GetName()
			for k, l := range m.Label {
				if k == 0 {
					id += "{"
				} else {
					id += ","
				}
				id += l.GetName() + `="` + l.GetValue() + `"`
			}
			if len(m.Label) > 0 {
				id += "}"
			}
			if id == sel {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// TestLocalQueryStreamCancel: a caller that stops reading and cancels the
// call's context stops the method serving the stream, which counts it as
// canceled, and leaves no goroutine behind.
func TestLocalQueryStreamCancel(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	lc := h.ing.LocalClient()
	// Enough batches that the method cannot send them all ahead of a
	// reader that stops after the first.
	const n = 4 * maxSeriesPerBatch
	req := &ingesterpb.PushRequest{}
	for k := range n {
		req.Series = append(req.Series, &ingesterpb.TimeSeries{Labels: lbls("__name__", "m", "i", fmt.Sprintf("%05d", k)), Samples: floats(1000, 1)})
	}
	_, err := lc.Push(asTenant(tenant.DefaultTenant), req)
	require.NoError(t, err)

	before := goleak.IgnoreCurrent()
	for _, tc := range []struct {
		name   string
		cancel func(context.CancelFunc, ingesterpb.Ingester_QueryStreamClient)
	}{
		{"stops reading, then cancels", func(cancel context.CancelFunc, _ ingesterpb.Ingester_QueryStreamClient) { cancel() }},
		{"cancels while reading", func(cancel context.CancelFunc, stream ingesterpb.Ingester_QueryStreamClient) {
			cancel()
			_, err := drain(t, stream.Recv)
			require.Equal(t, codes.Canceled, status.Code(err), "%v", err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			canceled := metricValueOrZero(t, h.reg, `pharos_ingester_query_streams_total{outcome="canceled"}`)
			ctx, cancel := context.WithCancel(asTenant(tenant.DefaultTenant))
			defer cancel()
			stream, err := lc.QueryStream(ctx, &ingesterpb.QueryRequest{StartMs: 0, EndMs: 2000, Matchers: []*ingesterpb.LabelMatcher{eq("__name__", "m")}})
			require.NoError(t, err)
			first, err := stream.Recv()
			require.NoError(t, err)
			require.NotEmpty(t, first.Series)
			tc.cancel(cancel, stream)

			require.Eventually(t, func() bool {
				return metricValueOrZero(t, h.reg, `pharos_ingester_query_streams_total{outcome="canceled"}`) == canceled+1
			}, 10*time.Second, time.Millisecond)
			goleak.VerifyNone(t, before)
			_, err = stream.Recv()
			require.Equal(t, codes.Canceled, status.Code(err), "%v", err)
			// The first message is the caller's: the ingester's reuse of its
			// own did not touch it.
			require.Equal(t, `{__name__="m", i="00000"}`, toLabels(first.Series[0].Labels).String())
		})
	}

	// A context that is done before the call fails it at once.
	ctx, cancel := context.WithCancel(asTenant(tenant.DefaultTenant))
	cancel()
	_, err = lc.QueryStream(ctx, &ingesterpb.QueryRequest{})
	require.Equal(t, codes.Canceled, status.Code(err), "%v", err)
	_, err = lc.Push(ctx, req)
	require.Equal(t, codes.Canceled, status.Code(err), "%v", err)
}

// TestLocalPushKeepsNoAliasOfRequest is TestPushKeepsNoAliasOfRequest for
// the local client, whose caller owns the request and reuses it: after each
// push every byte of it is overwritten, and the stored series, labels,
// exemplars and error messages must come back intact. Run it with -tags
// slicelabels too, where an alias shows.
func TestLocalPushKeepsNoAliasOfRequest(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	lc := h.ing.LocalClient()
	ctx := asTenant("team-a")

	scribble := func(req *ingesterpb.PushRequest) {
		x := func(b []byte) {
			for k := range b {
				b[k] = 'X'
			}
		}
		for _, ts := range req.Series {
			for _, l := range ts.Labels {
				x(l.Name)
				x(l.Value)
			}
			for _, e := range ts.Exemplars {
				for _, l := range e.Labels {
					x(l.Name)
					x(l.Value)
				}
			}
		}
	}
	series := func(round int) []*ingesterpb.TimeSeries {
		var out []*ingesterpb.TimeSeries
		for s := range 50 {
			out = append(out, &ingesterpb.TimeSeries{
				// Unsorted, so that the sort works on the request's strings.
				Labels:    lbls("job", "node", "__name__", "alias_test", "instance", fmt.Sprintf("host-%d", s)),
				Samples:   floats(float64(1000*round), float64(s)),
				Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", fmt.Sprintf("t%d", s)), Value: 1, TimestampMs: int64(1000 * round)}},
			})
		}
		return out
	}
	// Round 0 creates the series, round 1 appends to them, and round 2 is
	// refused (a duplicate of round 1 with other values), so that an error
	// message is built from the labels.
	for round := range 3 {
		req := &ingesterpb.PushRequest{Series: series(min(round, 1))}
		if round == 2 {
			for _, s := range req.Series {
				s.Samples[0].Value = -1
			}
		}
		resp, err := lc.Push(ctx, req)
		require.NoError(t, err)
		scribble(req)
		if round < 2 {
			require.Empty(t, resp.Errors)
			require.Equal(t, uint64(50), resp.SamplesWritten)
			continue
		}
		require.Len(t, resp.Errors, 50)
		for k, e := range resp.Errors {
			require.Contains(t, e.Message, fmt.Sprintf(`{__name__="alias_test", instance="host-%d", job="node"}`, e.Index), "error %d", k)
		}
	}

	got := queryAs(t, lc, "team-a", eq("__name__", "alias_test"))
	require.Len(t, got, 50)
	requireAliasTestStored(t, h.ing, got, "team-a")
}

// TestLocalPushAllocations: a local push of known series allocates a few
// objects per call, none per series or sample.
func TestLocalPushAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops objects on purpose: allocations vary")
	}
	h := startIngester(t, testConfig(t, t.TempDir()))
	lc := h.ing.LocalClient()
	ctx := asTenant("team-a")
	allocs := func(series int) float64 {
		req := &ingesterpb.PushRequest{}
		for k := range series {
			req.Series = append(req.Series, &ingesterpb.TimeSeries{
				Labels:  lbls("__name__", "alloc_test", "instance", fmt.Sprintf("host-%05d:9100", k), "job", "node", "size", fmt.Sprint(series)),
				Samples: floats(0, 0, 1, 1),
			})
		}
		round := 0
		push := func() {
			for _, ts := range req.Series {
				for k, s := range ts.Samples {
					s.TimestampMs = int64(round*len(ts.Samples)+k) * 1000
				}
			}
			round++
			resp, err := lc.Push(ctx, req)
			if err != nil || len(resp.Errors) > 0 {
				t.Fatalf("push: %v %v", err, resp.GetErrors())
			}
		}
		push() // creates the series
		return testing.AllocsPerRun(20, push)
	}
	small, large := allocs(10), allocs(2000)
	t.Logf("allocations per push: %.0f for 10 series, %.0f for 2000", small, large)
	require.LessOrEqual(t, large, small+3, "allocations grow with the series of a push")
	require.LessOrEqual(t, large, 30.0, "a push allocates a few objects: contexts, appender, response")
}

// labelSpan is how a remote-write 1.0 body encodes the labels of a series
// (its Label is LabelPair's encoding): the span the decoder hands on.
func labelSpan(t *testing.T, pairs []*ingesterpb.LabelPair) []byte {
	b, err := (&ingesterpb.TimeSeries{Labels: pairs}).MarshalVT()
	require.NoError(t, err)
	return b
}

// A series pushed in process with the span its labels were decoded from is
// found by the span once known, for any tenant, without its labels being
// read: the span decides, so that a message changed behind its span (which
// callers must not send) lands where the span says. A span that is not the
// key bytes (labels out of order in the body) finds nothing, and the series
// is found by the key bytes of its labels; spans of the wrong length are
// ignored. Every sample lands in its one series.
func TestLocalPushWithLabelSpans(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	c := h.ing.LocalClient().(interface {
		PushWithLabelSpans(context.Context, *ingesterpb.PushRequest, [][]byte) (*ingesterpb.PushResponse, error)
	})
	refs := h.ing.refs
	push := func(id string, spans [][]byte, series ...*ingesterpb.TimeSeries) {
		t.Helper()
		resp, err := c.PushWithLabelSpans(asTenant(id), &ingesterpb.PushRequest{Series: series}, spans)
		require.NoError(t, err)
		require.Empty(t, resp.Errors)
	}
	up := lbls("__name__", "up", "job", "node")
	down := lbls("__name__", "up", "job", "other")
	for _, id := range []string{tenant.DefaultTenant, "team-a"} {
		t.Run(id, func(t *testing.T) {
			before := refs.len()
			push(id, [][]byte{labelSpan(t, up)}, &ingesterpb.TimeSeries{Labels: up, Samples: floats(1000, 1)})
			require.Equal(t, before+1, refs.len())
			// The span finds the series: the messages are not read.
			push(id, [][]byte{labelSpan(t, up)}, &ingesterpb.TimeSeries{Labels: down, Samples: floats(2000, 2)})
			// No span, or spans that do not match the series: the labels.
			push(id, nil, &ingesterpb.TimeSeries{Labels: down, Samples: floats(3000, 3)})
			push(id, [][]byte{nil, labelSpan(t, up)}, &ingesterpb.TimeSeries{Labels: up, Samples: floats(4000, 4)})
			require.Equal(t, before+2, refs.len())
			require.Equal(t, map[string][]sample{
				`{__name__="up", job="node"}`:  {{T: 1000, F: 1}, {T: 2000, F: 2}, {T: 4000, F: 4}},
				`{__name__="up", job="other"}`: {{T: 3000, F: 3}},
			}, queryAs(t, h.client, id, eq("__name__", "up")))
		})
	}

	// Labels out of order in the body, sorted by the distributor: a span
	// that is no key. The series is cached and found by its key bytes.
	unsorted := labelSpan(t, lbls("zone", "a", "__name__", "z"))
	sorted := lbls("__name__", "z", "zone", "a")
	before := refs.len()
	for k := range 3 {
		push(tenant.DefaultTenant, [][]byte{unsorted}, &ingesterpb.TimeSeries{Labels: sorted, Samples: floats(float64(1000*(k+1)), 1)})
		require.Equal(t, before+1, refs.len())
	}
	require.Equal(t, map[string][]sample{`{__name__="z", zone="a"}`: {{T: 1000, F: 1}, {T: 2000, F: 1}, {T: 3000, F: 1}}},
		queryAs(t, h.client, tenant.DefaultTenant, eq("__name__", "z")))
}
