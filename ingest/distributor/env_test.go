package distributor

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingester"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// env is a real ingester (tsdb in a temp dir) behind real gRPC, a
// distributor dialled to it and the remote-write handler on an HTTP server.
type env struct {
	ing    *ingester.Ingester
	client *ingesterclient.Client
	dist   *Distributor
	http   *httptest.Server
}

func defaultConfig() Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return cfg
}

func clientConfig() ingesterclient.Config {
	var cfg ingesterclient.Config
	cfg.RegisterFlags("ingester.client.", flag.NewFlagSet("", flag.PanicOnError))
	return cfg
}

// startIngester runs an ingester on 127.0.0.1:0 and returns its address.
func startIngester(t testing.TB, dir string) (*ingester.Ingester, string) {
	var icfg ingester.Config
	icfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	icfg.Path = dir
	ing, err := ingester.New(icfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(ingesterclient.ServerOptions(100<<20, 100<<20)...)
	ing.Register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		require.NoError(t, ing.Close(context.Background()))
	})
	return ing, lis.Addr().String()
}

func newEnv(t testing.TB, mod func(*Config)) *env {
	ing, addr := startIngester(t, t.TempDir())
	client, err := ingesterclient.Dial(addr, clientConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })

	cfg := defaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	dist, err := New(cfg, StaticIngesters{client}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/write", dist.RemoteWriteHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{ing: ing, client: client, dist: dist, http: srv}
}

type response struct {
	code   int
	body   string
	header http.Header
}

func post(t testing.TB, url, contentType, encoding string, body []byte) response {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{code: resp.StatusCode, body: string(b), header: resp.Header}
}

func (e *env) write(t testing.TB, contentType string, body []byte) response {
	return post(t, e.http.URL+"/api/v1/write", contentType, "snappy", body)
}

type marshaler interface{ Marshal() ([]byte, error) }

func encode(t testing.TB, m marshaler) []byte {
	b, err := m.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

// series builds a 1.0 series from name/value pairs and (timestamp, value) samples.
func series(ls []string, samples ...prompb.Sample) prompb.TimeSeries {
	ts := prompb.TimeSeries{Samples: samples}
	for i := 0; i < len(ls); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: ls[i], Value: ls[i+1]})
	}
	return ts
}

// metricNames asks the ingester which metric names it stores.
func (e *env) metricNames(t testing.TB) []string {
	resp, err := e.client.LabelValues(tenant.With(context.Background(), tenant.DefaultTenant), &ingesterpb.LabelValuesRequest{
		Name: "__name__", StartMs: math.MinInt64, EndMs: math.MaxInt64,
	})
	require.NoError(t, err)
	return resp.Values
}

// samplesOf returns the number of samples the ingester stores for a metric.
func (e *env) samplesOf(t testing.TB, name string) int {
	stream, err := e.client.QueryStream(tenant.With(context.Background(), tenant.DefaultTenant), &ingesterpb.QueryRequest{
		StartMs: math.MinInt64, EndMs: math.MaxInt64,
		Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_EQ, Name: "__name__", Value: name}},
	})
	require.NoError(t, err)
	n := 0
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return n
		}
		require.NoError(t, err)
		for _, s := range resp.Series {
			for _, c := range s.Chunks {
				n += chunkSamples(t, c)
			}
		}
	}
}
