package app

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// metricValue reads one sample of name{label=value} from /metrics.
func metricValue(t testing.TB, base, name, label string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+"{"+label+"}") || (label == "" && strings.HasPrefix(line, name+" ")) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			require.NoError(t, err)
			return v
		}
	}
	return 0
}

func TestQueryOverSeriesLimitFailsNamingIt(t *testing.T) {
	a, _ := startApp(t, "querier:\n  max_fetched_series_per_query: 100\n")
	base := "http://" + a.HTTPAddr()
	now := time.Now().UnixMilli()
	writeAll(t, base, genSeries(0, 150, now), 150)

	code, res := query(t, base, `count(m{mod="1"})`, now)
	require.Equal(t, http.StatusOK, code, res.Error)
	code, res = query(t, base, `count(m)`, now)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, res.Error, "the query exceeded the maximum number of series fetched (limit: 100)")
	require.Contains(t, res.Error, `for tenant "anonymous"`)
	require.Contains(t, res.Error, "raise limits.max_fetched_series_per_query")
	require.Equal(t, 1.0, metricValue(t, base, "pharos_querier_queries_limited_total", `limit="series"`))
}

func TestCancelledQueryStopsIngesterWork(t *testing.T) {
	a, _ := startApp(t, "")
	base := "http://" + a.HTTPAddr()
	now := time.Now().UnixMilli()
	// A client that goes away cancels the ingester's stream: 20k series
	// with 10 samples each, a query that reads them all, a 30ms patience.
	var big []prompb.TimeSeries
	for k := 9; k >= 0; k-- {
		for _, s := range genSeries(1000, 20_000, now-int64(k)*15_000) {
			s.Labels[0].Value = "big"
			big = append(big, s)
		}
	}
	writeAll(t, base, big, 5000)
	before := metricValue(t, base, "pharos_ingester_query_streams_total", `outcome="canceled"`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	q := url.Values{"query": {`count_over_time(big[10m])`}, "time": {time.UnixMilli(now).Format(time.RFC3339Nano)}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+q.Encode(), nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the query finished (%s) before the client gave up; make it bigger", resp.Status)
	}
	require.Eventually(t, func() bool {
		return metricValue(t, base, "pharos_ingester_query_streams_total", `outcome="canceled"`) > before
	}, 10*time.Second, 20*time.Millisecond, "the ingester did not see the cancellation")
}

// TestShardedQueryThroughIngesters runs sharded aggregations through the
// real read path: the shard matcher travels to the ingester as hints.
func TestShardedQueryThroughIngesters(t *testing.T) {
	a, _ := startApp(t, "query_frontend:\n  query_sharding_total_shards: 3\n")
	base := "http://" + a.HTTPAddr()
	now := time.Now().UnixMilli()
	writeAll(t, base, genSeries(0, 700, now), 700)
	code, res := query(t, base, `count by (mod) (m)`, now)
	require.Equal(t, http.StatusOK, code, res.Error)
	require.Equal(t, 7, strings.Count(string(res.Data), `"mod"`))
	require.Equal(t, 7, strings.Count(string(res.Data), `"100"`), string(res.Data))
	code, res = query(t, base, `sum(m{mod="3"}) - sum(m{mod="3"})`, now) // not sharded: binary op on top
	require.Equal(t, http.StatusOK, code, res.Error)
	require.Positive(t, metricValue(t, base, "pharos_frontend_sharded_queries_total", ""))
}
