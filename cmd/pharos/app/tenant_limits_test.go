package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// limitsResp is an HTTP answer: status, body and headers.
type limitsResp struct {
	code   int
	body   string
	header http.Header
}

// limitsDo sends a request as tenant id ("" sends no header).
func limitsDo(t testing.TB, method, u, id string, body []byte, header map[string]string) limitsResp {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	require.NoError(t, err)
	if id != "" {
		req.Header.Set(tenant.HeaderName, id)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return limitsResp{code: resp.StatusCode, body: string(b), header: resp.Header}
}

// limitsWrite remote-writes series (1.0) as tenant id.
func limitsWrite(t testing.TB, base, id string, series []prompb.TimeSeries) limitsResp {
	t.Helper()
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	require.NoError(t, err)
	return limitsDo(t, http.MethodPost, base+"/api/v1/write", id, snappy.Encode(nil, raw), map[string]string{
		"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0",
	})
}

// limitsQuery runs an instant query at ts as tenant id.
func limitsQuery(t testing.TB, base, id, q string, ts int64) limitsResp {
	t.Helper()
	v := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(ts)/1000, 'f', 3, 64)}}
	return limitsDo(t, http.MethodGet, base+"/api/v1/query?"+v.Encode(), id, nil, nil)
}

// latencies returns the p50 and p99 of ds.
func latencies(ds []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}

// TestTenantLimitsAllInOne: with multi-tenancy on, tenant a over its
// ingestion rate gets 429 with Retry-After while b writes and queries as
// fast as when a is idle; c's series limit rejects naming the limit and
// the tenant; a changed runtime file changes c's limit without a restart,
// and a broken one keeps it; every discard is counted by reason and tenant.
func TestTenantLimitsAllInOne(t *testing.T) {
	runtimeFile := filepath.Join(t.TempDir(), "runtime.yml")
	// Replaced by rename, as a ConfigMap volume does, so that a reload never
	// reads a file half written.
	writeRuntime := func(s string) {
		tmp := runtimeFile + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(s), 0o644))
		require.NoError(t, os.Rename(tmp, runtimeFile))
	}
	writeRuntime(`
overrides:
  a: {ingestion_rate: 1000, ingestion_burst_size: 1000}
  c: {max_global_series_per_user: 50}
`)
	a, _ := startApp(t, fmt.Sprintf("multitenancy: {enabled: true}\nruntime_config: {file: %s, period: 50ms}\n", runtimeFile))
	base := "http://" + a.HTTPAddr()
	now := time.Now().UnixMilli()

	// b's write and query latency, idle and while a floods.
	var ts atomic.Int64
	ts.Store(now - 60_000)
	measure := func(rounds int) (writes, queries []time.Duration) {
		for range rounds {
			at := ts.Add(100)
			start := time.Now()
			r := limitsWrite(t, base, "b", genSeries(0, 100, at))
			writes = append(writes, time.Since(start))
			require.Equal(t, http.StatusNoContent, r.code, r.body)
			start = time.Now()
			r = limitsQuery(t, base, "b", `sum(m)`, at)
			queries = append(queries, time.Since(start))
			require.Equal(t, http.StatusOK, r.code, r.body)
		}
		return writes, queries
	}
	rounds := 100
	if raceEnabled {
		rounds = 20 // the numbers only mean something without the race detector
	}
	measure(5) // warm up
	idleW, idleQ := measure(rounds)

	stop := make(chan struct{})
	var flood sync.WaitGroup
	var limited, accepted atomic.Int64
	var first atomic.Pointer[limitsResp]
	for w := range 2 {
		flood.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				r := limitsWrite(t, base, "a", genSeries(w*1_000_000+k*500, 500, now))
				switch r.code {
				case http.StatusTooManyRequests:
					limited.Add(1)
					first.CompareAndSwap(nil, &r)
				case http.StatusNoContent:
					accepted.Add(1)
				default:
					t.Errorf("a's write: %d %s", r.code, r.body)
					return
				}
			}
		})
	}
	require.Eventually(t, func() bool { return limited.Load() > 20 }, 10*time.Second, 10*time.Millisecond)
	floodW, floodQ := measure(rounds)
	close(stop)
	flood.Wait()

	iw50, iw99 := latencies(idleW)
	iq50, iq99 := latencies(idleQ)
	fw50, fw99 := latencies(floodW)
	fq50, fq99 := latencies(floodQ)
	t.Logf("b's writes (100 series): idle p50 %v p99 %v; a flooding p50 %v p99 %v", iw50, iw99, fw50, fw99)
	t.Logf("b's queries (sum over its series): idle p50 %v p99 %v; a flooding p50 %v p99 %v", iq50, iq99, fq50, fq99)
	t.Logf("a's flood: %d requests of 500 samples refused with 429, %d accepted", limited.Load(), accepted.Load())
	// Generous: the machine is shared, but b must never wait on a's limit.
	require.Less(t, fw99, 2*time.Second)
	require.Less(t, fq99, 2*time.Second)

	r := first.Load()
	require.NotNil(t, r)
	require.Contains(t, r.body, `ingestion rate limit (1000 samples/s) exceeded for tenant "a"`)
	require.Contains(t, r.body, "limits.ingestion_rate")
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After: %q", r.header.Get("Retry-After"))
	require.GreaterOrEqual(t, secs, 1)
	require.Equal(t, float64(limited.Load()*500), metricValue(t, base, "pharos_discarded_samples_total", `reason="rate_limited",tenant="a"`))
	require.Zero(t, metricValue(t, base, "pharos_discarded_samples_total", `reason="rate_limited",tenant="b"`))

	// c's series limit: 50 series, the rest of the request is refused
	// series by series.
	r2 := limitsWrite(t, base, "c", genSeries(0, 60, now))
	require.Equal(t, http.StatusBadRequest, r2.code)
	require.Contains(t, r2.body, `per-tenant series limit of 50 exceeded for tenant "c"`)
	require.Contains(t, r2.body, "limits.max_global_series_per_user")
	require.Equal(t, 10.0, metricValue(t, base, "pharos_discarded_samples_total", `reason="per_user_series_limit",tenant="c"`))
	require.Equal(t, 50.0, metricValue(t, base, "pharos_ingester_active_series", `tenant="c"`))
	// b's series are b's: its limit is the default (none).
	require.Equal(t, http.StatusNoContent, limitsWrite(t, base, "b", genSeries(1000, 60, now)).code)

	// A new limit from the runtime file, without a restart.
	writeRuntime("overrides:\n  c: {max_global_series_per_user: 100}\n")
	require.Eventually(t, func() bool {
		return limitsWrite(t, base, "c", genSeries(0, 60, now)).code == http.StatusNoContent
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 60.0, metricValue(t, base, "pharos_ingester_active_series", `tenant="c"`))
	r = &limitsResp{}
	*r = limitsDo(t, http.MethodGet, base+"/runtime_config", "", nil, nil)
	require.Equal(t, http.StatusOK, r.code)
	require.Contains(t, r.body, "max_global_series_per_user: 100")

	// A broken file is reported and changes nothing.
	writeRuntime("overrides:\n  c: {max_global_series_per_usr: 10}\n")
	require.Eventually(t, func() bool {
		return metricValue(t, base, "pharos_runtime_config_last_reload_successful", "") == 0
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusNoContent, limitsWrite(t, base, "c", genSeries(60, 30, now)).code, "the old limit of 100 holds")

	// The query limits are per tenant too; the answer names them.
	writeRuntime("overrides:\n  b: {max_fetched_series_per_query: 10, max_query_length: 1h}\n")
	require.Eventually(t, func() bool {
		return metricValue(t, base, "pharos_runtime_config_last_reload_successful", "") == 1
	}, 10*time.Second, 20*time.Millisecond)
	r3 := limitsQuery(t, base, "b", `count(m)`, now)
	require.Equal(t, http.StatusUnprocessableEntity, r3.code, r3.body)
	require.Contains(t, r3.body, `the query exceeded the maximum number of series fetched (limit: 10) for tenant \"b\"`)
	r3 = limitsQuery(t, base, "b", `count(count_over_time(m[2h]))`, now)
	require.Equal(t, http.StatusUnprocessableEntity, r3.code, r3.body)
	require.Contains(t, r3.body, "limits.max_query_length")
	r3 = limitsQuery(t, base, "c", `count(m)`, now)
	require.Equal(t, http.StatusOK, r3.code, r3.body)
	var res struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(r3.body), &res))
	require.Len(t, res.Data.Result, 1)
	require.Equal(t, "90", res.Data.Result[0].Value[1], "c sees its own 90 series only")
	require.False(t, strings.Contains(r3.body, `"b"`))
}

// TestDeprecatedLimitKeysStillApply: the distributor and querier keys that
// moved to limits: still set every tenant's default.
func TestDeprecatedLimitKeysStillApply(t *testing.T) {
	a, _ := startApp(t, "distributor:\n  max_label_names_per_series: 3\nquerier:\n  max_fetched_series_per_query: 5\n")
	base := "http://" + a.HTTPAddr()
	now := time.Now().UnixMilli()
	r := limitsWrite(t, base, tenant.DefaultTenant, []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "x"}, {Name: "a", Value: "1"}, {Name: "b", Value: "2"}, {Name: "c", Value: "3"}},
		Samples: []prompb.Sample{{Timestamp: now, Value: 1}},
	}})
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, r.body, "more than the limit of 3 (limits.max_label_names_per_series)")
	writeAll(t, base, genSeries(0, 10, now), 10)
	r = limitsQuery(t, base, tenant.DefaultTenant, "count(m)", now)
	require.Equal(t, http.StatusUnprocessableEntity, r.code, r.body)
	require.Contains(t, r.body, "(limit: 5)")
}
