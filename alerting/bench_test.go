package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

const benchConfig = `
route:
  receiver: hook
  group_by: [grp]
  group_wait: %s
  group_interval: 5m
  repeat_interval: 3h
receivers:
- name: hook
  webhook_configs:
  - url: %s
    send_resolved: true
`

// startBench runs one notifier (no gossip) whose webhook calls onHook.
func startBench(tb testing.TB, groupWait string, onHook func()) *Notifier {
	return startBenchWith(tb, groupWait, onHook, func(*Config) {})
}

// startBenchWith is startBench with the config adjusted by opt.
func startBenchWith(tb testing.TB, groupWait string, onHook func(), opt func(*Config)) *Notifier {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		onHook()
	}))
	tb.Cleanup(hook.Close)
	dir := tb.TempDir()
	var c Config
	c.RegisterFlags(flag.NewFlagSet("bench", flag.ContinueOnError))
	c.ClusterBind = ""
	c.DataDir = dir
	c.ConfigFile = filepath.Join(dir, "am.yml")
	require.NoError(tb, os.WriteFile(c.ConfigFile, fmt.Appendf(nil, benchConfig, groupWait, hook.URL), 0o644))
	opt(&c)
	n, err := New(c, "", slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	<-n.Ready()
	tb.Cleanup(func() {
		cancel()
		require.NoError(tb, <-done)
	})
	return n
}

func alertBatch(from, count, groups int, ends time.Time) []byte {
	as := make([]map[string]any, 0, count)
	for i := from; i < from+count; i++ {
		as = append(as, map[string]any{
			"labels":      map[string]string{"alertname": "Bench", "grp": fmt.Sprint(i % groups), "instance": fmt.Sprint(i)},
			"annotations": map[string]string{"summary": "bench"},
			"endsAt":      ends.Format(time.RFC3339Nano),
		})
	}
	b, _ := json.Marshal(as)
	return b
}

func post(tb testing.TB, h http.Handler, body []byte) {
	req := httptest.NewRequest(http.MethodPost, "/api/v2/alerts", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		tb.Fatalf("post alerts: %d %s", w.Code, w.Body)
	}
}

// BenchmarkAPIPostAlerts measures alerts/s accepted by API v2 (in-process,
// no network) with 10k active alerts in 100 groups, posting the
// re-sends of those alerts in batches of 100 as a ruler does.
func BenchmarkAPIPostAlerts(b *testing.B) {
	const active, groups, batch = 10000, 100, 100
	n := startBench(b, "1h", func() {})
	h := n.Handler()
	ends := time.Now().Add(time.Hour)
	bodies := make([][]byte, 0, active/batch)
	for i := 0; i < active; i += batch {
		bodies = append(bodies, alertBatch(i, batch, groups, ends))
		post(b, h, bodies[len(bodies)-1])
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		post(b, h, bodies[i%len(bodies)])
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "alerts/s")
}

// BenchmarkAPIPostAlertsHTTP is BenchmarkAPIPostAlerts through a real
// loopback HTTP server and client, as a ruler posts, with two posters.
func BenchmarkAPIPostAlertsHTTP(b *testing.B) {
	const active, groups, batch = 10000, 100, 100
	n := startBench(b, "1h", func() {})
	srv := httptest.NewServer(n.Handler())
	b.Cleanup(srv.Close)
	ends := time.Now().Add(time.Hour)
	bodies := make([][]byte, 0, active/batch)
	for i := 0; i < active; i += batch {
		bodies = append(bodies, alertBatch(i, batch, groups, ends))
		post(b, n.Handler(), bodies[len(bodies)-1])
	}
	var next atomic.Int64
	b.SetParallelism(1) // GOMAXPROCS posters
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bodies[int(next.Add(1))%len(bodies)]
			resp, err := srv.Client().Post(srv.URL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("post alerts: %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "alerts/s")
}

// BenchmarkNotifyLatency measures, for 100 new groups posted at once,
// how long after group_wait each webhook call arrives.
func BenchmarkNotifyLatency(b *testing.B) {
	const groups = 100
	const groupWait = 500 * time.Millisecond
	var (
		mu   sync.Mutex
		recv []time.Time
	)
	n := startBench(b, groupWait.String(), func() {
		mu.Lock()
		recv = append(recv, time.Now())
		mu.Unlock()
	})
	h := n.Handler()
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		mu.Lock()
		recv = recv[:0]
		mu.Unlock()
		body := alertBatch(i*groups, groups, groups, time.Now().Add(time.Hour))
		// Fresh group labels each round so every round opens new groups.
		body = bytes.ReplaceAll(body, []byte(`"grp":"`), fmt.Appendf(nil, `"grp":"r%d-`, i))
		start := time.Now()
		post(b, h, body)
		require.Eventually(b, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(recv) == groups
		}, 30*time.Second, 5*time.Millisecond)
		mu.Lock()
		for _, t := range recv {
			lat = append(lat, t.Sub(start)-groupWait)
		}
		mu.Unlock()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms-beyond-group_wait")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms-beyond-group_wait")
}

// BenchmarkAPIPostAlertsTenants is BenchmarkAPIPostAlerts with
// multi-tenancy on: the same load spread over 10 tenants, each with its
// own Alertmanager, so the cost of routing by X-Scope-OrgID shows.
func BenchmarkAPIPostAlertsTenants(b *testing.B) {
	const active, groups, batch, tenants = 10000, 100, 100, 10
	n := startBenchWith(b, "1h", func() {}, func(c *Config) { c.MultiTenant = true })
	h := n.Handler()
	ends := time.Now().Add(time.Hour)
	postAs := func(id string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/api/v2/alerts", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Scope-OrgID", id)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("post alerts: %d %s", w.Code, w.Body)
		}
	}
	bodies := make([][]byte, 0, active/batch)
	for i := 0; i < active; i += batch {
		bodies = append(bodies, alertBatch(i, batch, groups, ends))
		postAs(fmt.Sprint("t", len(bodies)%tenants), bodies[len(bodies)-1])
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		postAs(fmt.Sprint("t", (i+1)%tenants), bodies[i%len(bodies)])
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "alerts/s")
}

// BenchmarkTenantStart measures what a new tenant costs: the time to
// start its Alertmanager on its first request, and the goroutines and heap
// it keeps.
func BenchmarkTenantStart(b *testing.B) {
	n := startBenchWith(b, "1h", func() {}, func(c *Config) {
		c.MultiTenant = true
		c.MaxTenants = 0
	})
	h := n.Handler()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		req := httptest.NewRequest(http.MethodGet, "/api/v2/alerts", nil)
		req.Header.Set("X-Scope-OrgID", fmt.Sprint("tenant-", i))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("get alerts: %d %s", w.Code, w.Body)
		}
	}
	b.StopTimer()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/float64(b.N), "goroutines/tenant")
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(b.N)/1024, "heap-KiB/tenant")
}
