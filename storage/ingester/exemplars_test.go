package ingester

import (
	"context"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// exemplarSeries is one series of a QueryExemplars answer in a form that
// compares and prints readably.
type exemplarSeries struct {
	Series    string
	Exemplars []exemplarPoint
}

type exemplarPoint struct {
	Labels string
	Value  float64
	T      int64
}

func queryExemplars(t *testing.T, c ingesterpb.IngesterClient, ctx context.Context, mint, maxt int64, sets ...[]*ingesterpb.LabelMatcher) []exemplarSeries {
	t.Helper()
	req := &ingesterpb.ExemplarQueryRequest{StartMs: mint, EndMs: maxt}
	for _, ms := range sets {
		req.MatcherSets = append(req.MatcherSets, &ingesterpb.LabelMatchers{Matchers: ms})
	}
	resp, err := c.QueryExemplars(ctx, req)
	require.NoError(t, err)
	out := []exemplarSeries{}
	for _, s := range resp.Series {
		es := exemplarSeries{Series: toLabels(s.Labels).String()}
		for _, e := range s.Exemplars {
			es.Exemplars = append(es.Exemplars, exemplarPoint{Labels: toLabels(e.Labels).String(), Value: e.Value, T: e.TimestampMs})
		}
		out = append(out, es)
	}
	return out
}

func matchers(ms ...*ingesterpb.LabelMatcher) []*ingesterpb.LabelMatcher { return ms }

func TestQueryExemplars(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	resp, err := h.client.Push(ctx, &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{
			Labels:  lbls("__name__", "req_total", "instance", "a", "job", "api"),
			Samples: floats(1000, 1, 2000, 2, 3000, 3),
			// Out of order within the request: the ingester sorts them.
			Exemplars: []*ingesterpb.Exemplar{
				{Labels: lbls("trace_id", "t3"), Value: 3, TimestampMs: 3000},
				{Labels: lbls("trace_id", "t1"), Value: 1, TimestampMs: 1000},
				{Labels: lbls("trace_id", "t2", "span_id", "s2"), Value: 2, TimestampMs: 2000},
			},
		},
		{
			Labels:    lbls("__name__", "req_total", "instance", "b", "job", "api"),
			Samples:   floats(1500, 7),
			Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", "b1"), Value: 7, TimestampMs: 1500}},
		},
		{
			Labels:    lbls("__name__", "queue_depth", "job", "db"),
			Samples:   floats(2500, 0.5),
			Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", "d1"), Value: 0.5, TimestampMs: 2500}},
		},
		{Labels: lbls("__name__", "req_total", "instance", "c", "job", "api"), Samples: floats(1000, 1)},
	}})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
	require.EqualValues(t, 5, resp.ExemplarsWritten)

	a := exemplarSeries{Series: `{__name__="req_total", instance="a", job="api"}`, Exemplars: []exemplarPoint{
		{`{trace_id="t1"}`, 1, 1000}, {`{span_id="s2", trace_id="t2"}`, 2, 2000}, {`{trace_id="t3"}`, 3, 3000},
	}}
	b := exemplarSeries{Series: `{__name__="req_total", instance="b", job="api"}`, Exemplars: []exemplarPoint{{`{trace_id="b1"}`, 7, 1500}}}
	d := exemplarSeries{Series: `{__name__="queue_depth", job="db"}`, Exemplars: []exemplarPoint{{`{trace_id="d1"}`, 0.5, 2500}}}
	for _, tc := range []struct {
		name       string
		mint, maxt int64
		sets       [][]*ingesterpb.LabelMatcher
		want       []exemplarSeries
	}{
		{name: "one selector", maxt: 10_000, sets: [][]*ingesterpb.LabelMatcher{matchers(eq("job", "api"))}, want: []exemplarSeries{a, b}},
		{name: "all", maxt: 10_000, sets: [][]*ingesterpb.LabelMatcher{matchers(&ingesterpb.LabelMatcher{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: ".+"})}, want: []exemplarSeries{d, a, b}},
		{name: "every matcher of a set", maxt: 10_000, sets: [][]*ingesterpb.LabelMatcher{matchers(eq("__name__", "req_total"), &ingesterpb.LabelMatcher{Type: ingesterpb.LabelMatcher_NEQ, Name: "instance", Value: "a"})}, want: []exemplarSeries{b}},
		{name: "union of sets", maxt: 10_000, sets: [][]*ingesterpb.LabelMatcher{matchers(eq("instance", "b")), matchers(eq("job", "db"))}, want: []exemplarSeries{d, b}},
		{name: "overlapping sets", maxt: 10_000, sets: [][]*ingesterpb.LabelMatcher{matchers(eq("instance", "b")), matchers(eq("job", "api"))}, want: []exemplarSeries{a, b}},
		{
			name: "time range, both ends inclusive", mint: 1500, maxt: 2000, sets: [][]*ingesterpb.LabelMatcher{matchers(eq("job", "api"))},
			want: []exemplarSeries{{Series: a.Series, Exemplars: a.Exemplars[1:2]}, b},
		},
		{name: "range before every exemplar", mint: 0, maxt: 999, sets: [][]*ingesterpb.LabelMatcher{matchers(eq("job", "api"))}, want: []exemplarSeries{}},
		{name: "series without exemplars", maxt: 10_000, sets: [][]*ingesterpb.LabelMatcher{matchers(eq("instance", "c"))}, want: []exemplarSeries{}},
		{name: "no selector", maxt: 10_000, want: []exemplarSeries{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, queryExemplars(t, h.client, ctx, tc.mint, tc.maxt, tc.sets...))
		})
	}

	t.Run("local client", func(t *testing.T) {
		require.Equal(t, []exemplarSeries{a, b}, queryExemplars(t, h.ing.LocalClient(), tenant.With(ctx, tenant.DefaultTenant), 0, 10_000, matchers(eq("job", "api"))))
	})
}

func TestQueryExemplarsTenants(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	push := func(id string, trace string, v float64) {
		t.Helper()
		resp, err := h.client.Push(asTenant(id), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{
			Labels: lbls("__name__", "req_total", "job", "api"), Samples: floats(1000, v),
			// A label named like the tenant label is the client's own in an
			// exemplar, and stays.
			Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", trace, tenant.Label, "x"), Value: v, TimestampMs: 1000}},
		}}})
		require.NoError(t, err)
		require.Empty(t, resp.Errors)
		require.EqualValues(t, 1, resp.ExemplarsWritten)
	}
	push(tenant.DefaultTenant, "default", 1)
	push("team-a", "a", 2)

	api := matchers(eq("job", "api"))
	for id, want := range map[string]exemplarPoint{
		tenant.DefaultTenant: {`{` + tenant.Label + `="x", trace_id="default"}`, 1, 1000},
		"team-a":             {`{` + tenant.Label + `="x", trace_id="a"}`, 2, 1000},
	} {
		ctx := asTenant(id)
		series := []exemplarSeries{{Series: `{__name__="req_total", job="api"}`, Exemplars: []exemplarPoint{want}}}
		require.Equal(t, series, queryExemplars(t, h.client, ctx, math.MinInt64, math.MaxInt64, api), id)
		// Every set is confined to the tenant, also one matching all.
		require.Equal(t, series, queryExemplars(t, h.client, ctx, math.MinInt64, math.MaxInt64, api,
			matchers(&ingesterpb.LabelMatcher{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: ".*"})), id)
		// The tenant label does not exist for clients.
		require.Empty(t, queryExemplars(t, h.client, ctx, math.MinInt64, math.MaxInt64, matchers(eq("job", "api"), eq(tenant.Label, "team-a"))), id)
		require.Equal(t, series, queryExemplars(t, h.client, ctx, math.MinInt64, math.MaxInt64, matchers(eq(tenant.Label, ""))), id)
	}
	require.Empty(t, queryExemplars(t, h.client, asTenant("team-b"), math.MinInt64, math.MaxInt64, api))
}

func TestQueryExemplarsErrors(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	bad := &ingesterpb.ExemplarQueryRequest{EndMs: 1, MatcherSets: []*ingesterpb.LabelMatchers{
		{Matchers: matchers(eq("job", "api"))},
		{Matchers: matchers(&ingesterpb.LabelMatcher{Type: ingesterpb.LabelMatcher_RE, Name: "a", Value: "("})},
	}}
	_, err := h.client.QueryExemplars(context.Background(), bad)
	require.Equal(t, codes.InvalidArgument, status.Code(err), err)

	// With exemplar storage off the tsdb answers nothing rather than fail,
	// as Prometheus does.
	cfg := testConfig(t, t.TempDir())
	cfg.MaxExemplars = 0
	off := startIngester(t, cfg)
	resp, err := off.client.Push(context.Background(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{
		Labels: lbls("__name__", "req_total"), Samples: floats(1000, 1),
		Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", "x"), Value: 1, TimestampMs: 1000}},
	}}})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
	require.Zero(t, resp.ExemplarsWritten, "dropped exemplars are not written")
	require.Equal(t, 1.0, testutil.ToFloat64(off.ing.metrics.exemplarsRejected))
	require.Empty(t, queryExemplars(t, off.client, context.Background(), 0, 10_000, matchers(eq("__name__", "req_total"))))

	require.NoError(t, h.ing.Close(context.Background()))
	_, err = h.client.QueryExemplars(context.Background(), &ingesterpb.ExemplarQueryRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err), err)
}
