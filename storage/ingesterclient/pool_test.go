package ingesterclient_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// labelNamesServer answers LabelNames only: enough to tell a live
// connection from a dead one.
type labelNamesServer struct {
	ingesterpb.UnimplementedIngesterServer
}

func (labelNamesServer) LabelNames(context.Context, *ingesterpb.LabelNamesRequest) (*ingesterpb.LabelNamesResponse, error) {
	return &ingesterpb.LabelNamesResponse{Names: []string{"__name__"}}, nil
}

// LabelValues answers with the tenant the call carries.
func (labelNamesServer) LabelValues(ctx context.Context, _ *ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
	id, err := tenant.FromIncomingContext(ctx)
	if err != nil {
		return nil, err
	}
	return &ingesterpb.LabelValuesResponse{Values: []string{id}}, nil
}

// Every client sends the tenant of the call's context, and refuses a call
// without one before it leaves the process.
func TestClientSendsTenant(t *testing.T) {
	addr, _ := serveOn(t, "127.0.0.1:0")
	c, err := ingesterclient.Dial(addr, poolConfig())
	require.NoError(t, err)
	defer c.Close()
	resp, err := c.LabelValues(tenant.With(t.Context(), "team-a"), &ingesterpb.LabelValuesRequest{Name: "x"})
	require.NoError(t, err)
	require.Equal(t, []string{"team-a"}, resp.Values)
	_, err = c.LabelValues(t.Context(), &ingesterpb.LabelValuesRequest{Name: "x"})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.ErrorContains(t, err, tenant.HeaderName)
}

func serveOn(t *testing.T, addr string) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	s := grpc.NewServer(ingesterclient.ServerOptions(1<<20, 1<<20)...)
	ingesterpb.RegisterIngesterServer(s, labelNamesServer{})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String(), s.Stop
}

func poolConfig() ingesterclient.Config {
	return ingesterclient.Config{MaxRecvMsgSize: 1 << 20, MaxSendMsgSize: 1 << 20, RemoteTimeout: time.Second}
}

func TestPool(t *testing.T) {
	a, _ := serveOn(t, "127.0.0.1:0")
	b, stopB := serveOn(t, "127.0.0.1:0")
	reg := prometheus.NewRegistry()
	p := ingesterclient.NewPool(poolConfig(), slog.New(slog.DiscardHandler), reg)
	ctx := tenant.With(context.Background(), tenant.DefaultTenant)

	ca, err := p.Get(a)
	require.NoError(t, err)
	again, err := p.Get(a)
	require.NoError(t, err)
	require.Same(t, ca, again, "one client per address")
	_, err = ca.LabelNames(ctx, &ingesterpb.LabelNamesRequest{})
	require.NoError(t, err)
	cb, err := p.Get(b)
	require.NoError(t, err)
	_, err = cb.LabelNames(ctx, &ingesterpb.LabelNamesRequest{})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{a, b}, p.Addrs())

	// A dead ingester is dropped by the health check; a is kept.
	stopB()
	require.Eventually(t, func() bool {
		p.CheckHealth(ctx)
		return len(p.Addrs()) == 1
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{a}, p.Addrs())

	// Restarted on the same address, it is reachable through a fresh client.
	_, _ = serveOn(t, b)
	cb2, err := p.Get(b)
	require.NoError(t, err)
	require.NotSame(t, cb, cb2)
	_, err = cb2.LabelNames(ctx, &ingesterpb.LabelNamesRequest{})
	require.NoError(t, err)

	// Addresses that left the ring are closed.
	p.Retain(func(addr string) bool { return addr == b })
	require.Equal(t, []string{b}, p.Addrs())
	_, err = ca.LabelNames(ctx, &ingesterpb.LabelNamesRequest{})
	require.Equal(t, codes.Canceled, status.Code(err), "a removed client is closed")
	require.Equal(t, 3.0, counterValue(t, reg, "pharos_ingester_client_dials_total"))

	require.NoError(t, p.Close())
	_, err = p.Get(a)
	require.ErrorIs(t, err, ingesterclient.ErrPoolClosed)
}

func TestPoolRun(t *testing.T) {
	a, _ := serveOn(t, "127.0.0.1:0")
	p := ingesterclient.NewPool(poolConfig(), nil, nil)
	defer p.Close()
	_, err := p.Get(a)
	require.NoError(t, err)
	_, err = p.Get("127.0.0.1:1") // never listed as a member
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx, 10*time.Millisecond, func() []string { return []string{a} }); close(done) }()
	require.Eventually(t, func() bool { return len(p.Addrs()) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{a}, p.Addrs())
	cancel()
	<-done
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
