package frontend_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/querier/frontend"
)

// sameResult compares two API answers, values within a relative 1e-12:
// shards add in another order.
func sameResult(t testing.TB, want, got string) {
	t.Helper()
	type series struct {
		Metric map[string]string `json:"metric"`
		Value  []any             `json:"value"`
		Values [][]any           `json:"values"`
	}
	var w, g struct {
		Status string
		Data   struct {
			ResultType string   `json:"resultType"`
			Result     []series `json:"result"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(want), &w))
	require.NoError(t, json.Unmarshal([]byte(got), &g), got)
	require.Equal(t, w.Status, g.Status)
	require.Equal(t, w.Data.ResultType, g.Data.ResultType)
	require.Len(t, g.Data.Result, len(w.Data.Result))
	key := func(s series) string { b, _ := json.Marshal(s.Metric); return string(b) }
	sort.Slice(w.Data.Result, func(i, j int) bool { return key(w.Data.Result[i]) < key(w.Data.Result[j]) })
	sort.Slice(g.Data.Result, func(i, j int) bool { return key(g.Data.Result[i]) < key(g.Data.Result[j]) })
	for i := range w.Data.Result {
		ws, gs := w.Data.Result[i], g.Data.Result[i]
		require.Equal(t, ws.Metric, gs.Metric)
		wp, gp := ws.Values, gs.Values
		if ws.Value != nil {
			wp, gp = [][]any{ws.Value}, [][]any{gs.Value}
		}
		require.Len(t, gp, len(wp), "points of %v", ws.Metric)
		for k := range wp {
			require.Equal(t, wp[k][0], gp[k][0])
			a, _ := strconv.ParseFloat(wp[k][1].(string), 64)
			b, _ := strconv.ParseFloat(gp[k][1].(string), 64)
			require.InEpsilon(t, a+1e-300, b+1e-300, 1e-12, "%v at %v", ws.Metric, wp[k][0])
		}
	}
}

func TestShardedAggregationsMatchUpstream(t *testing.T) {
	f := newFixture(t, frontend.Config{SplitInterval: 24 * time.Hour, MaxParallelism: 2, QueryShards: 3})
	f.load(t, t0, t0.Add(30*time.Hour))
	at := t0.Add(29 * time.Hour)
	for _, q := range []string{
		`sum by (job) (rate(requests_total[5m]))`,
		`count(temperature > 22)`,
		`max by (job) (max_over_time(temperature[1h]))`,
		`min(temperature)`,
		`group by (job) (temperature)`,
		`sum(requests_total * 2)`,
		`sum by (instance) (rate(requests_total[5m]))`,
		`sum(rate(requests_total{job="job-1"}[5m]))`,
		`sum(nonexistent)`,
	} {
		t.Run(q, func(t *testing.T) {
			iv := url.Values{"query": {q}, "time": {strconv.FormatInt(at.Unix(), 10)}}
			code, want := get(t, f.upstream, "/api/v1/query", iv)
			require.Equal(t, http.StatusOK, code)
			code, got := get(t, f.front, "/api/v1/query", iv)
			require.Equal(t, http.StatusOK, code, got)
			sameResult(t, want, got)

			rv := rangeParams(q, t0.Add(time.Hour), t0.Add(29*time.Hour), "600")
			_, want = get(t, f.upstream, "/api/v1/query_range", rv)
			code, got = get(t, f.front, "/api/v1/query_range", rv)
			require.Equal(t, http.StatusOK, code, got)
			sameResult(t, want, got)
		})
	}
	require.Positive(t, metric(t, f.reg, "pharos_frontend_sharded_queries_total", ""))
	// Every shard answered in binary: none of these holds a histogram.
	require.Positive(t, metric(t, f.reg, "pharos_frontend_shard_answers_total", "binary"))
	require.Zero(t, metric(t, f.reg, "pharos_frontend_shard_answers_total", "json"))

	// Not shardable, or (a sum of native histograms) shards answer JSON
	// that cannot be combined: run whole, answers identical.
	for _, q := range []string{`sum(rate(latency_seconds[5m]))`, `histogram_quantile(0.9, sum by (le) (rate(latency_seconds[5m])))`, `sum(requests_total / on(job, instance) temperature)`, `topk(2, temperature)`, `avg(temperature)`} {
		iv := url.Values{"query": {q}, "time": {strconv.FormatInt(at.Unix(), 10)}}
		_, want := get(t, f.upstream, "/api/v1/query", iv)
		_, got := get(t, f.front, "/api/v1/query", iv)
		require.Equal(t, want, got, q)
	}
	require.Positive(t, metric(t, f.reg, "pharos_frontend_shard_answers_total", "json"))
}

// TestPartsAreReadUncompressed: a client asking for gzip must not get one
// part's compressed answer passed through as the whole (the upstream
// handler compresses what it is asked to).
func TestPartsAreReadUncompressed(t *testing.T) {
	f := newFixture(t, frontend.Config{SplitInterval: 24 * time.Hour, MaxParallelism: 2, QueryShards: 2})
	f.load(t, t0, t0.Add(30*time.Hour))
	for _, tc := range []struct{ path, query string }{
		{"/api/v1/query", "query=" + url.QueryEscape(`count(temperature)`) + "&time=" + strconv.FormatInt(t0.Add(29*time.Hour).Unix(), 10)},
		{"/api/v1/query_range", rangeParams(`temperature`, t0, t0.Add(29*time.Hour), "3600").Encode()},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path+"?"+tc.query, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		f.front.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if rec.Header().Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			require.NoError(t, err)
			body, err = io.ReadAll(zr)
			require.NoError(t, err)
		}
		v, err := url.ParseQuery(tc.query)
		require.NoError(t, err)
		_, want := get(t, f.upstream, tc.path, v)
		sameResult(t, want, string(body))
	}
}
