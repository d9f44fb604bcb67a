package querier_test

import (
	"context"
	"errors"
	"flag"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/pharos-tsdb/pharos/ingest/distributor"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/storage/ingester"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// node is a real ingester on a t.TempDir tsdb behind a real gRPC server on
// loopback, and a client dialled to it.
type node struct {
	ing    *ingester.Ingester
	client *ingesterclient.Client
	srv    *grpc.Server
	served chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// ingesterConfig is the flag defaults, as teststorage tunes its tsdb:
// series are loaded one after the other, so the appendable window must be
// long, and nothing may expire.
func ingesterConfig(tb testing.TB, dir string) ingester.Config {
	tb.Helper()
	var cfg ingester.Config
	fs := flag.NewFlagSet("ingester", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(tb, fs.Parse(nil))
	cfg.Path = dir
	cfg.Retention = 0
	cfg.MinBlockDuration = model.Duration(24 * time.Hour)
	cfg.MaxBlockDuration = model.Duration(24 * time.Hour)
	cfg.WALCompression = "none"
	// Hundreds of tiny tsdbs are opened per run; the default 16k stripes
	// made opening them most of the conformance tests' time.
	cfg.HeadStripeSize = 64
	return cfg
}

func startNode(tb testing.TB, cfg ingester.Config) *node {
	tb.Helper()
	return startNodeWith(tb, cfg)
}

// startNodeWith is startNode with more options for the gRPC server, such
// as interceptors that count or fail its calls.
func startNodeWith(tb testing.TB, cfg ingester.Config, opts ...grpc.ServerOption) *node {
	tb.Helper()
	ing, err := ingester.New(cfg, nil, prometheus.NewRegistry())
	require.NoError(tb, err)
	srv := grpc.NewServer(append(ingesterclient.ServerOptions(64<<20, 64<<20), opts...)...)
	ing.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	n := &node{ing: ing, srv: srv, served: make(chan struct{})}
	go func() {
		defer close(n.served)
		_ = srv.Serve(lis)
	}()
	var ccfg ingesterclient.Config
	ccfg.RegisterFlags("ingester.client.", flag.NewFlagSet("client", flag.ContinueOnError))
	n.client, err = ingesterclient.Dial(lis.Addr().String(), ccfg, defaultTenant()...)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, n.Close()) })
	return n
}

// Close stops the server and closes the ingester; it may be called again.
func (n *node) Close() error {
	n.closeOnce.Do(func() {
		cerr := n.client.Close()
		n.srv.Stop()
		<-n.served
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.closeErr = errors.Join(cerr, n.ing.Close(ctx))
	})
	return n.closeErr
}

func newDistributor(tb testing.TB, ings ...ingesterpb.IngesterClient) *distributor.Distributor {
	tb.Helper()
	return newDistributorOver(tb, distributor.StaticIngesters(ings))
}

func newDistributorOver(tb testing.TB, ings distributor.Ingesters) *distributor.Distributor {
	tb.Helper()
	var cfg distributor.Config
	fs := flag.NewFlagSet("distributor", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(tb, fs.Parse(nil))
	// promqltest data lives around 1970 and the label limits are Mimir's,
	// far above anything the scripts load: only the past limit matters, and
	// it is off by default.
	d, err := distributor.New(cfg, ings, nil, prometheus.NewRegistry())
	require.NoError(tb, err)
	return d
}

// clusterStorage is a storage.Storage whose writes go distributor → gRPC →
// ingesters and whose reads go gRPC QueryStream → querier.Queryable.
type clusterStorage struct {
	storage.SampleAndChunkQueryable
	app   storage.AppendableV2
	nodes []*node
	pool  *ingesterclient.Pool // ring storages only
}

var _ storage.Storage = (*clusterStorage)(nil)

func newClusterStorage(tb testing.TB, replicas int) *clusterStorage {
	tb.Helper()
	s := &clusterStorage{}
	clients := make([]ingesterpb.IngesterClient, replicas)
	for i := range replicas {
		n := startNode(tb, ingesterConfig(tb, tb.TempDir()))
		s.nodes = append(s.nodes, n)
		clients[i] = n.client
	}
	s.app = newDistributor(tb, clients...).AppendableV2()
	s.SampleAndChunkQueryable = querier.NewQueryable(querier.StaticIngesters(clients), nil, nil)
	return s
}

// Appender is the deprecated v1 API, which promqltest no longer uses.
func (s *clusterStorage) Appender(context.Context) storage.Appender { return nil }

func (s *clusterStorage) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return s.app.AppenderV2(ctx)
}

func (s *clusterStorage) StartTime() (int64, error) { return math.MinInt64, nil }

// newRingStorage is a clusterStorage of replicas ingesters in a ring with
// RF = replicas: the distributor places every series through the same ring
// the querier reads (so it lands on all of them), and every series comes
// back from each replica and must be de-duplicated.
func newRingStorage(tb testing.TB, replicas int) *clusterStorage {
	tb.Helper()
	c := newRingCluster(tb, replicas, make([]string, replicas))
	s := &clusterStorage{nodes: c.nodes, pool: c.pool, SampleAndChunkQueryable: c.q}
	s.app = newDistributorOver(tb, distributor.NewRingIngesters(c.ring, c.pool)).AppendableV2()
	return s
}

func (s *clusterStorage) Close() error {
	var errs []error
	if s.pool != nil {
		errs = append(errs, s.pool.Close())
	}
	for _, n := range s.nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

// defaultTenant are dial options that give calls whose context names no
// tenant the default one, as the tenant middleware does with multi-tenancy
// off; the upstream PromQL test scripts query with contexts of their own.
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
