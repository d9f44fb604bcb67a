package querier_test

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// pushExemplars writes one sample and the exemplars of the series ls
// straight to one ingester.
func pushExemplars(t *testing.T, c ingesterpb.IngesterClient, ls labels.Labels, exs ...exemplar.Exemplar) {
	t.Helper()
	pairs := func(ls labels.Labels) []*ingesterpb.LabelPair {
		var out []*ingesterpb.LabelPair
		ls.Range(func(l labels.Label) {
			out = append(out, &ingesterpb.LabelPair{Name: []byte(l.Name), Value: []byte(l.Value)})
		})
		return out
	}
	ts := &ingesterpb.TimeSeries{Labels: pairs(ls), Samples: []*ingesterpb.Sample{{TimestampMs: 1000, Value: 1}}}
	for _, e := range exs {
		ts.Exemplars = append(ts.Exemplars, &ingesterpb.Exemplar{Labels: pairs(e.Labels), Value: e.Value, TimestampMs: e.Ts})
	}
	resp, err := c.Push(context.Background(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{ts}})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
	require.EqualValues(t, len(exs), resp.ExemplarsWritten)
}

func ex(trace string, v float64, ts int64) exemplar.Exemplar {
	return exemplar.Exemplar{Labels: labels.FromStrings("trace_id", trace), Value: v, Ts: ts, HasTs: true}
}

func selectExemplars(q storage.ExemplarQueryable, start, end int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	eq, err := q.ExemplarQuerier(context.Background())
	if err != nil {
		return nil, err
	}
	return eq.Select(start, end, sets...)
}

// TestRingExemplars: over RF=3 replicas, each holding a different part of
// the exemplars (as replicas do after one missed pushes or dropped old
// exemplars sooner), the querier answers the union, every exemplar once,
// sorted; with one ingester down the others still answer everything they
// hold; beyond the read set's budget it fails with a storage error.
func TestRingExemplars(t *testing.T) {
	c := newRingCluster(t, 3, []string{"", "", ""})
	api := labels.FromStrings("__name__", "req_total", "job", "api")
	db := labels.FromStrings("__name__", "req_total", "job", "db")
	// Same timestamp and value, other labels: not the same exemplar.
	other := exemplar.Exemplar{Labels: labels.FromStrings("trace_id", "t4b"), Value: 4, Ts: 4000, HasTs: true}
	pushExemplars(t, c.nodes[0].client, db, ex("d1", 9, 1500))
	pushExemplars(t, c.nodes[0].client, api, ex("t1", 1, 1000), ex("t2", 2, 2000), ex("t4", 4, 4000))
	pushExemplars(t, c.nodes[1].client, api, ex("t1", 1, 1000), ex("t2", 2, 2000), ex("t3", 3, 3000))
	pushExemplars(t, c.nodes[1].client, db, ex("d1", 9, 1500))
	pushExemplars(t, c.nodes[2].client, api, ex("t2", 2, 2000), ex("t3", 3, 3000), other)

	want := []exemplar.QueryResult{
		{SeriesLabels: api, Exemplars: []exemplar.Exemplar{ex("t1", 1, 1000), ex("t2", 2, 2000), ex("t3", 3, 3000), ex("t4", 4, 4000), other}},
		{SeriesLabels: db, Exemplars: []exemplar.Exemplar{ex("d1", 9, 1500)}},
	}
	q := querier.NewExemplarQueryable(c.ings)
	byName := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "req_total")}
	got, err := selectExemplars(q, 0, 10_000, byName)
	require.NoError(t, err)
	require.Equal(t, want, got)

	// Selectors are a union, and a series both select is there once.
	got, err = selectExemplars(q, 0, 10_000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "db")}, byName)
	require.NoError(t, err)
	require.Equal(t, want, got)

	got, err = selectExemplars(q, 2000, 3000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "api")})
	require.NoError(t, err)
	require.Equal(t, []exemplar.QueryResult{{SeriesLabels: api, Exemplars: []exemplar.Exemplar{ex("t2", 2, 2000), ex("t3", 3, 3000)}}}, got)

	got, err = selectExemplars(q, 0, 10_000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "none")})
	require.NoError(t, err)
	require.Empty(t, got)

	// One ingester down fits the budget: the other two answer everything
	// they hold, which is all but t4, pushed to ing-0 alone.
	require.NoError(t, c.nodes[0].Close())
	got, err = selectExemplars(q, 0, 10_000, byName)
	require.NoError(t, err)
	require.Equal(t, []exemplar.QueryResult{
		{SeriesLabels: api, Exemplars: []exemplar.Exemplar{ex("t1", 1, 1000), ex("t2", 2, 2000), ex("t3", 3, 3000), other}},
		{SeriesLabels: db, Exemplars: []exemplar.Exemplar{ex("d1", 9, 1500)}},
	}, got)

	// Two down is beyond it.
	require.NoError(t, c.nodes[2].Close())
	_, err = selectExemplars(q, 0, 10_000, byName)
	var es promql.ErrStorage
	require.ErrorAs(t, err, &es, "must be a storage error (HTTP 5xx)")
	require.ErrorContains(t, err, "QueryExemplars")
	require.ErrorContains(t, err, "at most 1 tolerated")
}

// TestExemplarsCanceled: a request whose context is done fails as the
// engine's queries do, not as a storage error.
func TestExemplarsCanceled(t *testing.T) {
	n := startNode(t, ingesterConfig(t, t.TempDir()))
	q := querier.NewExemplarQueryable(querier.StaticIngesters{n.client})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	eq, err := q.ExemplarQuerier(ctx)
	require.NoError(t, err)
	_, err = eq.Select(0, 1, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "api")})
	require.ErrorAs(t, err, new(promql.ErrQueryCanceled))
}
