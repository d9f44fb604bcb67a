package ingester

import (
	"context"
	"flag"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig is the flag defaults with the data under dir.
func testConfig(tb testing.TB, dir string) Config {
	tb.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(tb, fs.Parse(nil))
	cfg.Path = dir
	return cfg
}

// harness is an ingester served over real gRPC on loopback.
type harness struct {
	ing    *Ingester
	client *ingesterclient.Client
	reg    *prometheus.Registry
	srv    *grpc.Server
}

func startIngester(tb testing.TB, cfg Config) *harness {
	tb.Helper()
	reg := prometheus.NewRegistry()
	ing, err := New(cfg, nil, reg)
	require.NoError(tb, err)
	h := serve(tb, ing)
	h.reg = reg
	return h
}

func serve(tb testing.TB, ing *Ingester) *harness {
	tb.Helper()
	srv := grpc.NewServer(ingesterclient.ServerOptions(64<<20, 64<<20)...)
	ing.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	var ccfg ingesterclient.Config
	ccfg.RegisterFlags("ingester.client.", flag.NewFlagSet("client", flag.ContinueOnError))
	client, err := ingesterclient.Dial(lis.Addr().String(), ccfg, defaultTenant()...)
	require.NoError(tb, err)
	h := &harness{ing: ing, client: client, srv: srv}
	tb.Cleanup(func() {
		require.NoError(tb, client.Close())
		srv.Stop()
		<-served
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(tb, ing.Close(ctx))
	})
	return h
}

func lbls(kv ...string) []*ingesterpb.LabelPair {
	out := make([]*ingesterpb.LabelPair, 0, len(kv)/2)
	for k := 0; k < len(kv); k += 2 {
		out = append(out, &ingesterpb.LabelPair{Name: []byte(kv[k]), Value: []byte(kv[k+1])})
	}
	return out
}

func floats(tv ...float64) []*ingesterpb.Sample {
	out := make([]*ingesterpb.Sample, 0, len(tv)/2)
	for k := 0; k < len(tv); k += 2 {
		out = append(out, &ingesterpb.Sample{TimestampMs: int64(tv[k]), Value: tv[k+1]})
	}
	return out
}

func eq(name, value string) *ingesterpb.LabelMatcher {
	return &ingesterpb.LabelMatcher{Type: ingesterpb.LabelMatcher_EQ, Name: name, Value: value}
}

// sample is one decoded sample of any type, for exact comparisons.
type sample struct {
	T  int64
	F  float64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

// queryAll streams the matching series and decodes their chunks.
func queryAll(tb testing.TB, c ingesterpb.IngesterClient, mint, maxt int64, ms ...*ingesterpb.LabelMatcher) (map[string][]sample, []string) {
	tb.Helper()
	stream, err := c.QueryStream(context.Background(), &ingesterpb.QueryRequest{StartMs: mint, EndMs: maxt, Matchers: ms})
	require.NoError(tb, err)
	out := map[string][]sample{}
	var order []string
	var prev labels.Labels
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(tb, err)
		for _, s := range resp.Series {
			ls := toLabels(s.Labels)
			require.Less(tb, labels.Compare(prev, ls), 0, "series must be sorted")
			prev = ls
			order = append(order, ls.String())
			var got []sample
			for _, c := range s.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				require.NoError(tb, err)
				it := chk.Iterator(nil)
				for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
					switch vt {
					case chunkenc.ValFloat:
						t, v := it.At()
						got = append(got, sample{T: t, F: v})
					case chunkenc.ValHistogram:
						t, h := it.AtHistogram(nil)
						got = append(got, sample{T: t, H: h})
					case chunkenc.ValFloatHistogram:
						t, fh := it.AtFloatHistogram(nil)
						got = append(got, sample{T: t, FH: fh})
					}
				}
				require.NoError(tb, it.Err())
				require.Equal(tb, c.MinTimeMs, got[len(got)-int(chk.NumSamples())].T)
			}
			out[ls.String()] = got
		}
	}
	return out, order
}

func toLabels(pairs []*ingesterpb.LabelPair) labels.Labels {
	b := labels.NewScratchBuilder(len(pairs))
	for _, p := range pairs {
		b.Add(string(p.Name), string(p.Value))
	}
	return b.Labels()
}

// defaultTenant are dial options that give calls whose context names no
// tenant the default one, as every request has with multi-tenancy off.
func defaultTenant() []grpc.DialOption {
	orDefault := func(ctx context.Context) context.Context {
		if _, err := tenant.FromContext(ctx); err != nil {
			return tenant.With(ctx, tenant.DefaultTenant)
		}
		return ctx
	}
	return []grpc.DialOption{
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(orDefault(ctx), method, req, reply, cc, opts...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(orDefault(ctx), desc, cc, method, opts...)
		}),
	}
}
