package querier_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// selectOrdered returns the series of one select in the order they came,
// with their samples.
func selectOrdered(t *testing.T, q storage.Queryable, sortSeries bool, mint, maxt int64, ms ...*labels.Matcher) ([]labels.Labels, map[string][]sample) {
	t.Helper()
	ctx := tenant.With(context.Background(), tenant.DefaultTenant)
	qr, err := q.Querier(mint, maxt)
	require.NoError(t, err)
	defer qr.Close()
	ss := qr.Select(ctx, sortSeries, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	return readSeries(t, ss)
}

// readSeries drains ss: its series in the order they came, and each one's
// float samples by labels.
func readSeries(t *testing.T, ss storage.SeriesSet) ([]labels.Labels, map[string][]sample) {
	t.Helper()
	var order []labels.Labels
	out := map[string][]sample{}
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		order = append(order, s.Labels())
		it = s.Iterator(it)
		got := []sample{}
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			got = append(got, sample{ts, v})
		}
		require.NoError(t, it.Err())
		out[s.Labels().String()] = got
	}
	require.NoError(t, ss.Err())
	return order, out
}

// TestUnsortedSeries: a select that does not ask for sorted series, from a
// single ingester, gets the ingester's series as they come (the head's
// creation order here, the reverse of label order), and the same series
// and samples as a sorted select; over several batches, over gRPC and
// through the in-process client. With two ingesters, whose answers are
// merged, or when asked, the series come sorted.
func TestUnsortedSeries(t *testing.T) {
	a := startNode(t, ingesterConfig(t, t.TempDir()))
	b := startNode(t, ingesterConfig(t, t.TempDir()))
	// More series than one batch holds (128), created in descending label
	// order, so that the head's order is not label order.
	const n = 300
	var sorted []labels.Labels
	for i := n - 1; i >= 0; i-- {
		ls := labels.FromStrings("__name__", "m", "i", fmt.Sprintf("%04d", i))
		// Long enough for several chunks per series (120 samples a chunk).
		samples := samplesRange(0, 400_000, 1000)
		push(t, a.client, ls, samples)
		if i%2 == 0 {
			push(t, b.client, ls, samples)
		}
		sorted = append(sorted, ls)
	}
	slices.SortFunc(sorted, labels.Compare)
	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")

	for _, tc := range []struct {
		name string
		c    ingesterpb.IngesterClient
	}{
		{"grpc", a.client},
		{"local", a.ing.LocalClient()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := querier.NewQueryable(querier.StaticIngesters{tc.c}, nil, nil)
			sortedOrder, want := selectOrdered(t, q, true, 0, 400_000, m)
			require.Equal(t, sorted, sortedOrder)
			unsortedOrder, got := selectOrdered(t, q, false, 0, 400_000, m)
			require.Equal(t, want, got)
			require.Len(t, unsortedOrder, n)
			require.False(t, slices.IsSortedFunc(unsortedOrder, labels.Compare), "the ingester sorted anyway")
			require.Len(t, want[sorted[0].String()], 401)
		})
	}
	t.Run("merged", func(t *testing.T) {
		q := querier.NewQueryable(querier.StaticIngesters{a.client, b.ing.LocalClient()}, nil, nil)
		order, got := selectOrdered(t, q, false, 0, 400_000, m)
		require.Equal(t, sorted, order)
		_, want := selectOrdered(t, querier.NewQueryable(querier.StaticIngesters{a.client}, nil, nil), true, 0, 400_000, m)
		require.Equal(t, want, got)
	})
}
