package querier_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/limits"
	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// TestPerTenantQueryLimits: each tenant's queries meet its own limits.
func TestPerTenantQueryLimits(t *testing.T) {
	var defaults limits.Limits
	defaults.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	path := filepath.Join(t.TempDir(), "runtime.yml")
	require.NoError(t, os.WriteFile(path, []byte(`
overrides:
  a: {max_fetched_series_per_query: 2, max_query_length: 1h}
  c: {max_fetched_chunks_per_query: 1}
`), 0o644))
	o, err := limits.NewOverrides(defaults, limits.RuntimeConfig{File: path, Period: time.Hour}, nil, nil)
	require.NoError(t, err)

	n := startNode(t, ingesterConfig(t, t.TempDir()))
	for _, id := range []string{"a", "b", "c"} {
		ctx := tenant.With(context.Background(), id)
		req := &ingesterpb.PushRequest{}
		for k := range 3 {
			req.Series = append(req.Series, &ingesterpb.TimeSeries{
				Labels:  []*ingesterpb.LabelPair{{Name: []byte("__name__"), Value: []byte("m")}, {Name: []byte("k"), Value: []byte(fmt.Sprint(k))}},
				Samples: []*ingesterpb.Sample{{TimestampMs: 1000, Value: 1}},
			})
		}
		resp, err := n.client.Push(ctx, req)
		require.NoError(t, err)
		require.Empty(t, resp.Errors)
	}
	reg := prometheus.NewRegistry()
	q := querier.NewLimitedQueryable(querier.StaticIngesters{n.client}, o, nil, reg)

	count := func(id string, mint, maxt int64) (int, error) {
		qr, err := q.Querier(mint, maxt)
		require.NoError(t, err)
		defer qr.Close()
		ss := qr.Select(tenant.With(context.Background(), id), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
		n := 0
		for ss.Next() {
			n++
		}
		return n, ss.Err()
	}

	_, err = count("a", 0, 2000)
	var le *querier.LimitError
	require.ErrorAs(t, err, &le)
	require.EqualError(t, err, `the query exceeded the maximum number of series fetched (limit: 2) for tenant "a"; use more selective matchers or a shorter time range, or raise limits.max_fetched_series_per_query`)
	_, err = count("a", 0, 2*time.Hour.Milliseconds())
	var qle *querier.QueryLengthError
	require.ErrorAs(t, err, &qle)
	require.EqualError(t, err, `the query time range exceeds the limit (query length: 2h0m0s, limit: 1h0m0s) for tenant "a"; shorten the time range or raise limits.max_query_length`)

	_, err = count("c", 0, 2000)
	require.ErrorAs(t, err, &le)
	require.Equal(t, "limits.max_fetched_chunks_per_query", le.Limit)

	got, err := count("b", 0, 2*time.Hour.Milliseconds())
	require.NoError(t, err, "b has the defaults: no series or length limit")
	require.Equal(t, 3, got)
	n2, err := testutil.GatherAndCount(reg, "pharos_querier_queries_limited_total")
	require.NoError(t, err)
	require.Equal(t, 2, n2, "one series limit and one chunk limit")
}
