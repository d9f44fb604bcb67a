package distributor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
)

// The remote-write benchmark: 200k series × 10 samples per iteration, 2000
// series per request, sent by benchConcurrency senders (as Prometheus's
// sharded queue does). The baseline appends the same samples with the same
// concurrency straight into a tsdb.DB; the goal is ≥ 0.5× its speed.
const (
	benchSeries      = 200_000
	benchPerRequest  = 2000
	benchSamples     = 10
	benchStepMs      = 15_000
	benchConcurrency = 8
)

func benchLabels(i int) []prompb.Label {
	return []prompb.Label{
		{Name: "__name__", Value: fmt.Sprintf("bench_metric_%d", i%100)},
		{Name: "instance", Value: fmt.Sprintf("host-%d.example.com:9100", i/100%1000)},
		{Name: "job", Value: "node"},
		{Name: "mode", Value: []string{"idle", "user", "system", "iowait"}[i%4]},
		{Name: "series", Value: fmt.Sprint(i)},
	}
}

// benchRequests returns the compressed requests of round r: samples
// [r*benchSamples, (r+1)*benchSamples) of every series.
func benchRequests(tb testing.TB, series [][]prompb.Label, round int) [][]byte {
	var out [][]byte
	buf := make([]byte, 0, 1<<20)
	for start := 0; start < len(series); start += benchPerRequest {
		req := &prompb.WriteRequest{}
		for i := start; i < min(start+benchPerRequest, len(series)); i++ {
			ts := prompb.TimeSeries{Labels: series[i], Samples: make([]prompb.Sample, benchSamples)}
			for k := range benchSamples {
				ts.Samples[k] = prompb.Sample{Timestamp: int64(round*benchSamples+k) * benchStepMs, Value: float64(i + k)}
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		raw, err := req.Marshal()
		require.NoError(tb, err)
		buf = snappy.Encode(buf[:cap(buf)], raw)
		out = append(out, bytes.Clone(buf))
	}
	return out
}

func allSeries() [][]prompb.Label {
	s := make([][]prompb.Label, benchSeries)
	for i := range s {
		s[i] = benchLabels(i)
	}
	return s
}

// parallel runs f over items with benchConcurrency workers.
func parallel[T any](items []T, f func(T)) {
	var wg sync.WaitGroup
	ch := make(chan T)
	for range benchConcurrency {
		wg.Go(func() {
			for it := range ch {
				f(it)
			}
		})
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
}

func BenchmarkRemoteWrite(b *testing.B) {
	cfg := defaultConfig()
	cfg.MaxRequestBodySize = 64 << 20
	ing, addr := startIngester(b, b.TempDir())
	_ = ing
	client, err := dialBench(b, addr)
	require.NoError(b, err)
	d, err := New(cfg, StaticIngesters{client}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(b, err)
	srv := newBenchServer(b, d.RemoteWriteHandler())
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency * 2}}
	url := srv + "/api/v1/write"

	series := allSeries()
	send := func(body []byte) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctV1)
		req.Header.Set("Content-Encoding", "snappy")
		resp, err := httpClient.Do(req)
		if err != nil {
			panic(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			panic(fmt.Sprintf("status %d", resp.StatusCode))
		}
	}
	// Warm: create every series once, untimed.
	parallel(benchRequests(b, series, 0), send)

	// PHAROS_BENCH_CPUPROFILE profiles the timed part only, without the
	// warm-up that creates the series.
	if path := os.Getenv("PHAROS_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		require.NoError(b, err)
		require.NoError(b, pprof.StartCPUProfile(f))
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocs0 := ms.Mallocs
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bodies := benchRequests(b, series, i+1)
		runtime.GC()
		c0 := cpuTime()
		b.StartTimer()
		parallel(bodies, send)
		b.StopTimer()
		cpu += cpuTime() - c0
	}
	runtime.ReadMemStats(&ms)
	samples := float64(b.N) * benchSeries * benchSamples
	b.ReportMetric(samples/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/samples, "cpu-ns/sample")
	b.ReportMetric(float64(ms.Mallocs-allocs0)/samples, "allocs/sample")
}

func BenchmarkTSDBAppendBaseline(b *testing.B) {
	opts := tsdb.DefaultOptions()
	db, err := tsdb.Open(b.TempDir(), slog.New(slog.DiscardHandler), nil, opts, nil)
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })

	series := allSeries()
	ls := make([]labels.Labels, len(series))
	for i, s := range series {
		sb := labels.NewScratchBuilder(len(s))
		for _, l := range s {
			sb.Add(l.Name, l.Value)
		}
		sb.Sort()
		ls[i] = sb.Labels()
	}
	// Batches of series indexes, one per "request".
	var batches [][2]int
	for s := 0; s < len(ls); s += benchPerRequest {
		batches = append(batches, [2]int{s, min(s+benchPerRequest, len(ls))})
	}
	appendRound := func(round int) {
		parallel(batches, func(r [2]int) {
			app := db.AppenderV2(context.Background())
			for i := r[0]; i < r[1]; i++ {
				var ref storage.SeriesRef
				for k := range benchSamples {
					ref, err = app.Append(ref, ls[i], 0, int64(round*benchSamples+k)*benchStepMs, float64(i+k), nil, nil, storage.AOptions{})
					if err != nil {
						panic(err)
					}
				}
			}
			if err := app.Commit(); err != nil {
				panic(err)
			}
		})
	}
	appendRound(0)

	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocs0 := ms.Mallocs
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		runtime.GC()
		c0 := cpuTime()
		b.StartTimer()
		appendRound(i + 1)
		b.StopTimer()
		cpu += cpuTime() - c0
	}
	runtime.ReadMemStats(&ms)
	samples := float64(b.N) * benchSeries * benchSamples
	b.ReportMetric(samples/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/samples, "cpu-ns/sample")
	b.ReportMetric(float64(ms.Mallocs-allocs0)/samples, "allocs/sample")
}

func dialBench(b *testing.B, addr string) (*ingesterclient.Client, error) {
	c, err := ingesterclient.Dial(addr, clientConfig())
	if err == nil {
		b.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

func newBenchServer(b *testing.B, h http.Handler) string {
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv.URL
}

// cpuTime is the CPU time (user + system) of the process so far. On a
// machine shared with other work it compares the two benchmarks better than
// wall time: the goal's ratio is the ratio of cpu-ns/sample.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
