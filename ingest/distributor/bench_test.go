package distributor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
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

// BenchmarkRemoteWrite times remote write 1.0 over HTTP into one ingester,
// reached over gRPC (grpc) or in process as an all-in-one does (local).
func BenchmarkRemoteWrite(b *testing.B) {
	for _, via := range []string{"grpc", "local"} {
		b.Run(via, func(b *testing.B) { benchRemoteWrite(b, via == "local") })
	}
}

func benchRemoteWrite(b *testing.B, local bool) {
	cfg := defaultConfig()
	cfg.MaxRequestBodySize = 64 << 20
	ing, addr := startIngester(b, b.TempDir())
	var client ingesterpb.IngesterClient = ing.LocalClient()
	if !local {
		c, err := dialBench(b, addr)
		require.NoError(b, err)
		client = c
	}
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

// promSeries is series i of a Prometheus-shaped request: the 11 sorted
// labels of a node-exporter series scraped through the Prometheus operator,
// as pharos-bench sends them, with one sample at ts.
func promSeries(i int, ts int64) *ingesterpb.TimeSeries {
	host := i / 60
	ls := []string{
		"__name__", []string{"node_cpu_seconds_total", "node_network_receive_bytes_total", "node_filesystem_avail_bytes"}[i%3],
		"cluster", "prod-eu-" + strconv.Itoa(i%3),
		"cpu", strconv.Itoa(i / 3 % 20),
		"endpoint", "metrics",
		"instance", fmt.Sprintf("10.%d.%d.%d:9100", host>>16&255, host>>8&255, host&255),
		"job", "node-exporter",
		"mode", []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"}[i%8],
		"namespace", "monitoring",
		"node", fmt.Sprintf("ip-10-%d-%d-g0", host>>8&255, host&255),
		"pod", fmt.Sprintf("node-exporter-%05x", host*7919),
		"service", "node-exporter",
	}
	s := &ingesterpb.TimeSeries{Samples: []*ingesterpb.Sample{{TimestampMs: ts, Value: float64(i)}}}
	for j := 0; j < len(ls); j += 2 {
		s.Labels = append(s.Labels, &ingesterpb.LabelPair{Name: []byte(ls[j]), Value: []byte(ls[j+1])})
	}
	return s
}

// promRequest is a remote-write request of n Prometheus-shaped series.
func promRequest(n int, ts int64) *ingesterpb.PushRequest {
	req := &ingesterpb.PushRequest{Series: make([]*ingesterpb.TimeSeries, n)}
	for i := range req.Series {
		req.Series[i] = promSeries(i, ts)
	}
	return req
}

// nopClient is an ingester that takes every push without looking at it,
// to measure the distributor alone.
type nopClient struct{ ingesterpb.IngesterClient }

func (nopClient) Push(context.Context, *ingesterpb.PushRequest, ...grpc.CallOption) (*ingesterpb.PushResponse, error) {
	return &ingesterpb.PushResponse{}, nil
}

// stubIngester is an ingester gRPC server that accepts every push.
type stubIngester struct {
	ingesterpb.UnimplementedIngesterServer
}

func (*stubIngester) Push(context.Context, *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	return &ingesterpb.PushResponse{}, nil
}

// skipPushCodec is the ingester codec except that it does not decode push
// requests: the stub ingesters' CPU would otherwise hide the distributor's
// in a benchmark of the whole process.
type skipPushCodec struct{ ingesterclient.Codec }

func (c skipPushCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if _, ok := v.(*ingesterpb.PushRequest); ok {
		return nil
	}
	return c.Codec.Unmarshal(data, v)
}

// startStubIngester serves a stubIngester on loopback and returns its address.
func startStubIngester(tb testing.TB) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	srv := grpc.NewServer(append(ingesterclient.ServerOptions(100<<20, 100<<20), grpc.ForceServerCodecV2(skipPushCodec{}))...)
	ingesterpb.RegisterIngesterServer(srv, &stubIngester{})
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// stubRing registers n ACTIVE stub ingesters in a ring of replication
// factor rf.
func stubRing(tb testing.TB, n, rf int) (*cluster.Ring, *ingesterclient.Pool) {
	return activeRing(tb, n, rf, func(int) string { return startStubIngester(tb) })
}

// activeRing registers n ACTIVE instances with 128 tokens each, the i-th
// at addr(i), in a ring of replication factor rf, and returns it with a
// client pool closed at the end of the test.
func activeRing(tb testing.TB, n, rf int, addr func(i int) string) (*cluster.Ring, *ingesterclient.Pool) {
	kv := cluster.NewMemKV()
	rng := rand.New(rand.NewPCG(1, 2))
	taken := map[uint32]struct{}{}
	for i := range n {
		id := "ing-" + strconv.Itoa(i)
		tokens := ring.GenerateTokens(128, taken, rng)
		for _, tk := range tokens {
			taken[tk] = struct{}{}
		}
		kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{id: {
			ID: id, Addr: addr(i), State: ring.StateActive, Tokens: tokens, Timestamp: time.Now().Add(time.Hour).UnixMilli(),
		}}})
	}
	r, err := cluster.NewRing(cluster.Config{ReplicationFactor: rf, Tokens: 128, Heartbeat: time.Second, HeartbeatTimeout: 2 * time.Hour}, kv, nil)
	require.NoError(tb, err)
	pool := ingesterclient.NewPool(clientConfig(), nil, nil)
	tb.Cleanup(func() { _ = pool.Close() })
	return r, pool
}

// BenchmarkPush measures Distributor.Push of a 2000-series request (11
// labels, one sample each): validation, routing, marshalling and the gRPC
// calls to stub ingesters that do not decode what they get ("nop" has no
// gRPC at all). ns/series is per series of the request, whatever the
// replication.
func BenchmarkPush(b *testing.B) {
	for _, tc := range []struct {
		name  string
		n, rf int // ring; n == 0: one nopClient
		// static: n stub ingesters as StaticIngesters instead of a ring.
		static bool
	}{
		{name: "nop"},
		{name: "ring-1-rf1", n: 1, rf: 1},
		{name: "ring-3-rf3", n: 3, rf: 3},
		{name: "ring-6-rf3", n: 6, rf: 3},
		{name: "static-3", n: 3, static: true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var ings Ingesters = StaticIngesters{nopClient{}}
			switch {
			case tc.static:
				var s StaticIngesters
				for range tc.n {
					c, err := dialBench(b, startStubIngester(b))
					require.NoError(b, err)
					s = append(s, c)
				}
				ings = s
			case tc.n > 0:
				ings = NewRingIngesters(stubRing(b, tc.n, tc.rf))
			}
			d, err := New(defaultConfig(), ings, nil, prometheus.NewRegistry())
			require.NoError(b, err)
			req := promRequest(2000, time.Now().UnixMilli())
			ctx := context.Background()
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				if _, err := d.Push(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			reportPerSeries(b, c0, len(req.Series))
		})
	}
}

// BenchmarkValidateLabels measures validator.labels over a 2000-series
// request that is already normalised (sorted, no empty values), as
// Prometheus sends them.
func BenchmarkValidateLabels(b *testing.B) {
	cfg := defaultConfig()
	v := newValidator(&cfg, newConfigLimits(&cfg), tenant.DefaultTenant, time.Now())
	req := promRequest(2000, time.Now().UnixMilli())
	b.ReportAllocs()
	c0 := cpuTime()
	for b.Loop() {
		for _, ts := range req.Series {
			if reason, msg, _ := v.labels(ts); reason != "" {
				b.Fatal(msg)
			}
		}
	}
	reportPerSeries(b, c0, len(req.Series))
}

// reportPerSeries reports wall and CPU time per series of n-series
// iterations, CPU time counted from c0 (cpuTime before the loop). On a
// machine shared with other work CPU time is the steadier of the two.
func reportPerSeries(b *testing.B, c0 time.Duration, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
	b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N*n), "cpu-ns/series")
}

// BenchmarkRoute measures routing alone (shard keys, placement, batches;
// nothing sent) of a 2000-series Prometheus-shaped request over rings of n
// ingesters at RF 3 whose addresses nobody listens on.
func BenchmarkRoute(b *testing.B) {
	for _, n := range []int{3, 6} {
		b.Run(fmt.Sprintf("ring-%d-rf3", n), func(b *testing.B) {
			r, pool := activeRing(b, n, 3, func(i int) string { return "127.0.0.1:" + strconv.Itoa(20000+i) })
			d, err := New(defaultConfig(), NewRingIngesters(r, pool), nil, prometheus.NewRegistry())
			require.NoError(b, err)
			req := promRequest(2000, time.Now().UnixMilli())
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				rt := d.getRouting(len(req.Series))
				if err := d.route(tenant.DefaultTenant, req, rt); err != nil {
					b.Fatal(err)
				}
				d.putRouting(rt)
			}
			reportPerSeries(b, c0, len(req.Series))
		})
	}
}
