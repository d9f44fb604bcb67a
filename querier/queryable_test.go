package querier_test

import (
	"context"
	"flag"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

type sample struct {
	t int64
	v float64
}

// push writes the samples of one series straight to one ingester.
func push(t *testing.T, c ingesterpb.IngesterClient, ls labels.Labels, samples []sample) {
	t.Helper()
	ts := &ingesterpb.TimeSeries{}
	ls.Range(func(l labels.Label) {
		ts.Labels = append(ts.Labels, &ingesterpb.LabelPair{Name: []byte(l.Name), Value: []byte(l.Value)})
	})
	for _, s := range samples {
		ts.Samples = append(ts.Samples, &ingesterpb.Sample{TimestampMs: s.t, Value: s.v})
	}
	resp, err := c.Push(context.Background(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{ts}})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
}

func samplesRange(from, to, step int64) []sample {
	var out []sample
	for ts := from; ts <= to; ts += step {
		out = append(out, sample{ts, float64(ts)})
	}
	return out
}

func selectAll(t *testing.T, q storage.Queryable, mint, maxt int64, hints *storage.SelectHints, ms ...*labels.Matcher) map[string][]sample {
	t.Helper()
	qr, err := q.Querier(mint, maxt)
	require.NoError(t, err)
	defer qr.Close()
	ss := qr.Select(context.Background(), true, hints, ms...)
	order, out := readSeries(t, ss)
	var prev labels.Labels
	for _, ls := range order {
		require.Negative(t, labels.Compare(prev, ls), "series out of order")
		prev = ls
	}
	return out
}

// TestReplicaMerge: two ingesters hold overlapping copies of the same
// series; every sample must come out exactly once, in order.
func TestReplicaMerge(t *testing.T) {
	a := startNode(t, ingesterConfig(t, t.TempDir()))
	b := startNode(t, ingesterConfig(t, t.TempDir()))
	q := querier.NewQueryable(querier.StaticIngesters{a.client, b.client}, nil, nil)

	full := labels.FromStrings("__name__", "m", "job", "full")     // both hold everything
	split := labels.FromStrings("__name__", "m", "job", "split")   // overlapping halves
	onlyA := labels.FromStrings("__name__", "m", "job", "only_a")  // one replica missing
	gapped := labels.FromStrings("__name__", "m", "job", "gapped") // each misses other samples
	push(t, a.client, full, samplesRange(0, 600_000, 15_000))
	push(t, b.client, full, samplesRange(0, 600_000, 15_000))
	push(t, a.client, split, samplesRange(0, 400_000, 15_000))
	push(t, b.client, split, samplesRange(300_000, 600_000, 15_000))
	push(t, a.client, onlyA, samplesRange(0, 600_000, 15_000))
	var even, odd []sample
	for i, s := range samplesRange(0, 600_000, 15_000) {
		if i%2 == 0 {
			even = append(even, s)
		} else {
			odd = append(odd, s)
		}
	}
	push(t, a.client, gapped, even)
	push(t, b.client, gapped, odd)

	for _, tc := range []struct {
		name       string
		mint, maxt int64
	}{
		{"everything", 0, 600_000},
		{"inner range", 100_000, 500_000},
		{"past the end", 550_000, 10_000_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := selectAll(t, q, tc.mint, tc.maxt, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
			var want []sample
			for _, s := range samplesRange(0, 600_000, 15_000) {
				if s.t >= tc.mint && s.t <= tc.maxt {
					want = append(want, s)
				}
			}
			require.Len(t, got, 4)
			for _, ls := range []labels.Labels{full, split, onlyA, gapped} {
				require.Equal(t, want, got[ls.String()], ls.String())
			}
		})
	}
}

// TestSelectHints covers the label-only "series" select, the limit, and
// label names and values fanned out and merged.
func TestSelectHints(t *testing.T) {
	a := startNode(t, ingesterConfig(t, t.TempDir()))
	b := startNode(t, ingesterConfig(t, t.TempDir()))
	q := querier.NewQueryable(querier.StaticIngesters{a.client, b.client}, nil, nil)
	for i := range 10 {
		ls := labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
		if i%3 != 0 {
			push(t, a.client, ls, samplesRange(0, 60_000, 15_000))
		}
		if i%3 != 1 {
			push(t, b.client, ls, samplesRange(0, 60_000, 15_000))
		}
	}
	push(t, b.client, labels.FromStrings("__name__", "other", "only_b", "x"), samplesRange(0, 60_000, 15_000))
	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")

	t.Run("series func has labels only", func(t *testing.T) {
		got := selectAll(t, q, 0, 60_000, &storage.SelectHints{Start: 0, End: 60_000, Func: "series"}, m)
		require.Len(t, got, 10)
		for _, s := range got {
			require.Empty(t, s)
		}
	})
	t.Run("limit", func(t *testing.T) {
		got := selectAll(t, q, 0, 60_000, &storage.SelectHints{Start: 0, End: 60_000, Limit: 3}, m)
		require.Len(t, got, 3)
		for _, s := range got {
			require.Len(t, s, 5)
		}
	})

	qr, err := q.Querier(0, 60_000)
	require.NoError(t, err)
	defer qr.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() ([]string, error)
		want []string
	}{
		{"names", func() ([]string, error) { v, _, err := qr.LabelNames(ctx, nil); return v, err }, []string{"__name__", "i", "only_b"}},
		{"names matching", func() ([]string, error) { v, _, err := qr.LabelNames(ctx, nil, m); return v, err }, []string{"__name__", "i"}},
		{"names limit", func() ([]string, error) {
			v, _, err := qr.LabelNames(ctx, &storage.LabelHints{Limit: 2})
			return v, err
		}, []string{"__name__", "i"}},
		{"values", func() ([]string, error) { v, _, err := qr.LabelValues(ctx, "i", nil); return v, err }, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"values limit", func() ([]string, error) {
			v, _, err := qr.LabelValues(ctx, "i", &storage.LabelHints{Limit: 4})
			return v, err
		}, []string{"0", "1", "2", "3"}},
		{"values none", func() ([]string, error) { v, _, err := qr.LabelValues(ctx, "nope", nil); return v, err }, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.call()
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestIngesterDown: an unreachable ingester fails the query with an error
// that names it and that the API reports as a storage (internal) error.
func TestIngesterDown(t *testing.T) {
	a := startNode(t, ingesterConfig(t, t.TempDir()))
	b := startNode(t, ingesterConfig(t, t.TempDir()))
	push(t, a.client, labels.FromStrings("__name__", "m"), samplesRange(0, 60_000, 15_000))
	addr := b.client.Addr()
	require.NoError(t, b.Close())
	var ccfg ingesterclient.Config
	ccfg.RegisterFlags("", flag.NewFlagSet("client", flag.ContinueOnError))
	dead, err := ingesterclient.Dial(addr, ccfg)
	require.NoError(t, err)
	defer dead.Close()
	q := querier.NewQueryable(querier.StaticIngesters{a.client, dead}, nil, nil)

	qr, err := q.Querier(0, 60_000)
	require.NoError(t, err)
	defer qr.Close()
	ss := qr.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	for ss.Next() {
	}
	err = ss.Err()
	require.Error(t, err)
	var es promql.ErrStorage
	require.ErrorAs(t, err, &es)
	require.ErrorContains(t, err, addr)

	_, _, err = qr.LabelNames(context.Background(), nil)
	require.ErrorAs(t, err, &es)
}
