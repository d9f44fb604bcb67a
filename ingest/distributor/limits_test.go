package distributor

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/limits"
)

// overrides returns real per-tenant limits: the flag defaults and a
// runtime file holding file.
func overrides(t *testing.T, file string) (*limits.Overrides, string) {
	t.Helper()
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	path := filepath.Join(t.TempDir(), "runtime.yml")
	require.NoError(t, os.WriteFile(path, []byte(file), 0o644))
	o, err := limits.NewOverrides(l, limits.RuntimeConfig{File: path, Period: time.Hour}, nil, nil)
	require.NoError(t, err)
	return o, path
}

func TestRateLimiterTokens(t *testing.T) {
	o, _ := overrides(t, "overrides:\n  a: {ingestion_rate: 100, ingestion_burst_size: 200}\n")
	var r rateLimiters
	now := time.Unix(1000, 0)
	require.NoError(t, r.take(o, "a", 200, now), "a full burst passes")
	err := r.take(o, "a", 50, now)
	var rl *RateLimitError
	require.ErrorAs(t, err, &rl)
	require.Equal(t, 500*time.Millisecond, rl.RetryAfter, "50 samples at 100/s")
	require.Equal(t, 1, rl.retryAfterSeconds())
	require.EqualError(t, err, `ingestion rate limit (100 samples/s) exceeded for tenant "a": 50 samples refused, retry after 500ms or raise the limit (limits.ingestion_rate)`)
	require.NoError(t, r.take(o, "a", 50, now.Add(500*time.Millisecond)), "a refused request took no tokens")

	err = r.take(o, "a", 201, now.Add(time.Hour))
	require.ErrorAs(t, err, &rl)
	require.Zero(t, rl.RetryAfter)
	require.Equal(t, 2, rl.retryAfterSeconds(), "a burst takes 2s to fill")
	require.ErrorContains(t, err, "more than the burst size of 200 (limits.ingestion_burst_size)")

	require.NoError(t, r.take(o, "b", 1_000_000, now), "no override: no rate limit")
}

func TestRateLimiterFollowsReloadedLimits(t *testing.T) {
	o, path := overrides(t, "overrides:\n  a: {ingestion_rate: 10, ingestion_burst_size: 10}\n")
	var r rateLimiters
	now := time.Unix(1000, 0)
	require.NoError(t, r.take(o, "a", 10, now))
	require.Error(t, r.take(o, "a", 10, now))
	require.NoError(t, os.WriteFile(path, []byte("overrides:\n  a: {ingestion_rate: 1000, ingestion_burst_size: 1000}\n"), 0o644))
	require.NoError(t, o.Reload())
	// A raised limit refills at the new rate from the moment it is seen;
	// the tokens already there stay.
	require.Error(t, r.take(o, "a", 500, now.Add(time.Second)))
	require.NoError(t, r.take(o, "a", 500, now.Add(1500*time.Millisecond)))
}

// TestTenantLimitsOverHTTP drives the remote-write handler with two
// tenants: a over its rate gets 429 with Retry-After while b writes; b's
// own label limit rejects its series.
func TestTenantLimitsOverHTTP(t *testing.T) {
	e := newEnv(t, nil)
	o, _ := overrides(t, `
overrides:
  a: {ingestion_rate: 5, ingestion_burst_size: 10}
  b: {max_label_names_per_series: 2}
`)
	e.dist.SetLimits(o)
	srv := httptest.NewServer(tenant.Resolver{Enabled: true}.Middleware(e.dist.RemoteWriteHandler()))
	t.Cleanup(srv.Close)

	now := time.Now().UnixMilli()
	body := func(name string, n int, ls ...string) []byte {
		var ss []prompb.Sample
		for k := range n {
			ss = append(ss, prompb.Sample{Timestamp: now - int64(n-k), Value: 1})
		}
		return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series(append([]string{"__name__", name}, ls...), ss...)}})
	}
	write := func(id string, b []byte) response {
		req, err := http.NewRequest(http.MethodPost, srv.URL, bytesReader(b))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set(tenant.HeaderName, id)
		return do(t, req)
	}

	require.Equal(t, http.StatusNoContent, write("a", body("a_ok", 10)).code)
	r := write("a", body("a_over", 8))
	require.Equal(t, http.StatusTooManyRequests, r.code, r.body)
	require.Contains(t, r.body, `ingestion rate limit (5 samples/s) exceeded for tenant "a"`)
	require.Contains(t, r.body, "(limits.ingestion_rate)")
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, secs, 1)
	require.Equal(t, 8.0, testutil.ToFloat64(e.dist.discarded.WithLabelValues(ReasonRateLimited, "a")))

	require.Equal(t, http.StatusNoContent, write("b", body("b_ok", 100)).code, "b has no rate limit")
	r = write("b", body("b_labels", 1, "job", "x", "instance", "y"))
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, r.body, "series has 3 labels, more than the limit of 2 (limits.max_label_names_per_series)")
	require.Equal(t, 1.0, testutil.ToFloat64(e.dist.discarded.WithLabelValues(ReasonMaxLabelNames, "b")))
	require.Zero(t, testutil.ToFloat64(e.dist.discarded.WithLabelValues(ReasonMaxLabelNames, "a")))
	require.Equal(t, http.StatusNoContent, write("c", body("c_labels", 1, "job", "x", "instance", "y")).code, "c keeps the default label limit")
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{code: resp.StatusCode, body: string(b), header: resp.Header}
}

// BenchmarkRateLimiter is the cost per request of the per-tenant bucket:
// the lookup under the mutex and the reservation, over 100 tenants.
func BenchmarkRateLimiter(b *testing.B) {
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	l.IngestionRate, l.IngestionBurstSize = 1e12, 1e9
	o, err := limits.NewOverrides(l, limits.RuntimeConfig{}, nil, nil)
	require.NoError(b, err)
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = "tenant-" + strconv.Itoa(i)
	}
	var r rateLimiters
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if err := r.take(o, ids[i%len(ids)], 1000, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
