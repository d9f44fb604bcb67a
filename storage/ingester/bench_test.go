package ingester

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// The write benchmark's shape: warm series (they exist before the timer
// starts), 10 samples per series per request, 2000 series per request.
const (
	benchSeries     = 200_000
	benchSamples    = 10
	benchPerRequest = 2000
	benchStepMs     = 15_000
)

func benchRequests() []*ingesterpb.PushRequest {
	reqs := make([]*ingesterpb.PushRequest, 0, benchSeries/benchPerRequest)
	for r := range benchSeries / benchPerRequest {
		req := &ingesterpb.PushRequest{Series: make([]*ingesterpb.TimeSeries, 0, benchPerRequest)}
		for s := range benchPerRequest {
			id := r*benchPerRequest + s
			ts := &ingesterpb.TimeSeries{
				Labels: lbls(
					"__name__", "http_requests_total",
					"instance", fmt.Sprintf("host-%04d.example.org:9100", id/100),
					"job", "node",
					"method", []string{"GET", "POST", "PUT", "DELETE"}[id%4],
					"series", fmt.Sprintf("%06d", id),
				),
				Samples: make([]*ingesterpb.Sample, benchSamples),
			}
			for k := range ts.Samples {
				ts.Samples[k] = &ingesterpb.Sample{}
			}
			req.Series = append(req.Series, ts)
		}
		reqs = append(reqs, req)
	}
	return reqs
}

// setRound gives every sample of round n its timestamp and value.
func setRound(reqs []*ingesterpb.PushRequest, n int) {
	base := int64(n) * benchSamples * benchStepMs
	for _, req := range reqs {
		for _, ts := range req.Series {
			for k, s := range ts.Samples {
				s.TimestampMs = base + int64(k)*benchStepMs
				s.Value = float64(n*benchSamples + k)
			}
		}
	}
}

// forEachConcurrently runs f on every request with c requests in flight.
func forEachConcurrently(reqs []*ingesterpb.PushRequest, c int, f func(*ingesterpb.PushRequest) error) error {
	var g errgroup.Group
	g.SetLimit(c)
	for _, req := range reqs {
		g.Go(func() error { return f(req) })
	}
	return g.Wait()
}

func BenchmarkPush(b *testing.B) {
	benchPush(b, func(h *harness) ingesterpb.IngesterClient { return h.client })
}

// BenchmarkLocalPush is BenchmarkPush through the local client, as the
// distributor of an all-in-one process pushes: no encoding, no transport.
func BenchmarkLocalPush(b *testing.B) {
	benchPush(b, func(h *harness) ingesterpb.IngesterClient { return h.ing.LocalClient() })
}

func benchPush(b *testing.B, client func(*harness) ingesterpb.IngesterClient) {
	for _, c := range []int{1, 4} {
		for _, refCache := range []bool{false, true} {
			b.Run(fmt.Sprintf("concurrency=%d/ref_cache=%t", c, refCache), func(b *testing.B) {
				cfg := testConfig(b, b.TempDir())
				cfg.SeriesRefCache = refCache
				benchPushWith(b, startIngester(b, cfg), client, c)
			})
		}
	}
}

func benchPushWith(b *testing.B, h *harness, client func(*harness) ingesterpb.IngesterClient, c int) {
	ic := client(h)
	ctx := tenant.With(context.Background(), tenant.DefaultTenant)
	reqs := benchRequests()
	push := func(req *ingesterpb.PushRequest) error {
		resp, err := ic.Push(ctx, req)
		if err != nil {
			return err
		}
		if len(resp.Errors) > 0 || resp.SamplesWritten != benchPerRequest*benchSamples {
			return fmt.Errorf("push: %d written, errors %v", resp.SamplesWritten, resp.Errors)
		}
		return nil
	}
	runRounds(b, reqs, c, push)
}

// BenchmarkLocalPushNewSeries pushes series the head has never seen, 2000
// a request, one sample each, through the local client: the cost of a
// series' first sample (labels copied, series and postings created), which
// dominates the first minutes of a 1M-series ingester and every churn.
func BenchmarkLocalPushNewSeries(b *testing.B) {
	h := startIngester(b, testConfig(b, b.TempDir()))
	ic := h.ing.LocalClient()
	ctx := tenant.With(context.Background(), tenant.DefaultTenant)
	req := &ingesterpb.PushRequest{Series: make([]*ingesterpb.TimeSeries, benchPerRequest)}
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		b.StopTimer()
		for s := range req.Series {
			id := n*benchPerRequest + s
			req.Series[s] = &ingesterpb.TimeSeries{
				Labels: lbls(
					"__name__", "node_cpu_seconds_total",
					"cpu", fmt.Sprintf("%d", id%16),
					"instance", fmt.Sprintf("host-%06d.example.org:9100", id/16),
					"job", "node-exporter",
					"mode", "idle",
				),
				Samples: []*ingesterpb.Sample{{TimestampMs: 1, Value: float64(id)}},
			}
		}
		b.StartTimer()
		resp, err := ic.Push(ctx, req)
		require.NoError(b, err)
		require.Empty(b, resp.Errors)
		require.EqualValues(b, benchPerRequest, resp.SamplesWritten)
	}
	b.ReportMetric(float64(b.N)*benchPerRequest/b.Elapsed().Seconds(), "series/s")
}

// runRounds writes round 0 untimed, so that every series exists, then one
// timed round per iteration, c requests at a time, and reports samples/s.
func runRounds(b *testing.B, reqs []*ingesterpb.PushRequest, c int, write func(*ingesterpb.PushRequest) error) {
	setRound(reqs, 0)
	require.NoError(b, forEachConcurrently(reqs, c, write))

	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		setRound(reqs, n+1)
		b.StartTimer()
		require.NoError(b, forEachConcurrently(reqs, c, write))
	}
	b.ReportMetric(float64(b.N)*benchSeries*benchSamples/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkTSDBAppend is BenchmarkPush's baseline: the same samples appended
// straight into a tsdb.DB with the same options, one appender per 2000
// series, labels built beforehand, series refs reused within a batch.
func BenchmarkTSDBAppend(b *testing.B) {
	for _, c := range []int{1, 4} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			cfg := testConfig(b, b.TempDir())
			db, err := tsdb.Open(cfg.TSDBDir(), nil, nil, cfg.tsdbOptions(), nil)
			require.NoError(b, err)
			b.Cleanup(func() { require.NoError(b, db.Close()) })

			reqs := benchRequests()
			lsets := make(map[*ingesterpb.TimeSeries]labels.Labels, benchSeries)
			for _, req := range reqs {
				for _, ts := range req.Series {
					lsets[ts] = toLabels(ts.Labels)
				}
			}
			appendReq := func(req *ingesterpb.PushRequest) error {
				app := db.AppenderV2(context.Background())
				for _, ts := range req.Series {
					ls := lsets[ts]
					var ref storage.SeriesRef
					for _, s := range ts.Samples {
						var err error
						if ref, err = app.Append(ref, ls, 0, s.TimestampMs, s.Value, nil, nil, storage.AOptions{}); err != nil {
							_ = app.Rollback()
							return err
						}
					}
				}
				return app.Commit()
			}
			runRounds(b, reqs, c, appendReq)
		})
	}
}

// BenchmarkQueryStream reads 10k series of an hour of 15s samples (two
// chunks each) from the head over gRPC, the querier's hot path.
func BenchmarkQueryStream(b *testing.B) {
	benchQueryStream(b, func(h *harness) ingesterpb.IngesterClient { return h.client })
}

// BenchmarkLocalQueryStream is BenchmarkQueryStream through the local
// client, as the querier of an all-in-one process reads.
func BenchmarkLocalQueryStream(b *testing.B) {
	benchQueryStream(b, func(h *harness) ingesterpb.IngesterClient { return h.ing.LocalClient() })
}

func benchQueryStream(b *testing.B, client func(*harness) ingesterpb.IngesterClient) {
	const series, samples = 10_000, 240
	h := startIngester(b, testConfig(b, b.TempDir()))
	ic := client(h)
	ctx := tenant.With(context.Background(), tenant.DefaultTenant)
	for k := 0; k < samples; k += benchSamples {
		req := &ingesterpb.PushRequest{}
		for s := range series {
			ts := &ingesterpb.TimeSeries{Labels: lbls("__name__", "q", "job", "bench", "series", fmt.Sprintf("%05d", s))}
			for j := range benchSamples {
				ts.Samples = append(ts.Samples, &ingesterpb.Sample{TimestampMs: int64(k+j) * benchStepMs, Value: float64(s + k + j)})
			}
			req.Series = append(req.Series, ts)
		}
		_, err := h.client.Push(context.Background(), req)
		require.NoError(b, err)
	}
	req := &ingesterpb.QueryRequest{StartMs: 0, EndMs: samples * benchStepMs, Matchers: []*ingesterpb.LabelMatcher{eq("job", "bench")}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		stream, err := ic.QueryStream(ctx, req)
		require.NoError(b, err)
		got := 0
		for {
			r, err := stream.Recv()
			if err == io.EOF {
				break
			}
			require.NoError(b, err)
			got += len(r.Series)
		}
		require.Equal(b, series, got)
	}
	b.ReportMetric(float64(b.N)*series/b.Elapsed().Seconds(), "series/s")
	b.ReportMetric(float64(b.N)*series*samples/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkPushDecoded is the gRPC push path without the transport: each
// request's wire bytes decoded into a pushRequest and pushed, one sample per
// series as a remote-write sender sends a scrape. Decoding and finding each
// series' ref are most of what an ingester does per sample here.
func BenchmarkPushDecoded(b *testing.B) {
	cfg := testConfig(b, b.TempDir())
	h := startIngester(b, cfg)
	ctx := context.Background()
	reqs := benchRequests()
	for _, req := range reqs {
		for _, ts := range req.Series {
			ts.Samples = ts.Samples[:1]
		}
	}
	wire := make([][]byte, len(reqs))
	round := func(n int) {
		for k, req := range reqs {
			for _, ts := range req.Series {
				ts.Samples[0].TimestampMs, ts.Samples[0].Value = int64(n)*benchStepMs, float64(n)
			}
			var err error
			wire[k], err = req.MarshalVT()
			require.NoError(b, err)
		}
	}
	push := func() {
		for _, w := range wire {
			r := h.ing.pushReqs.get()
			require.NoError(b, r.UnmarshalVT(w))
			resp, err := h.ing.push(ctx, tenant.DefaultTenant, r)
			h.ing.pushReqs.put(r)
			require.NoError(b, err)
			if len(resp.Errors) > 0 || resp.SamplesWritten != benchPerRequest {
				b.Fatalf("push: %d written, errors %v", resp.SamplesWritten, resp.Errors)
			}
		}
	}
	round(0)
	push()
	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		round(n + 1)
		b.StartTimer()
		push()
	}
	b.ReportMetric(float64(b.N)*benchSeries/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkPushRequestDecode is the ingester's decode of one 2000-series
// push as the distributor sends a remote-write request on: one sample per
// series, labels of the node-exporter shape.
func BenchmarkPushRequestDecode(b *testing.B) {
	req := benchRequests()[0]
	for _, ts := range req.Series {
		ts.Samples = ts.Samples[:1]
		ts.Samples[0].TimestampMs, ts.Samples[0].Value = 1_700_000_000_000, 1234.5
	}
	wire, err := req.MarshalVT()
	require.NoError(b, err)
	var r pushRequest
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.UnmarshalVT(wire); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*benchPerRequest/b.Elapsed().Seconds(), "series/s")
}
