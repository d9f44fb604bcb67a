package distributor

import (
	"context"
	"flag"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingester"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

func TestShardKeyMatchesRing(t *testing.T) {
	for _, ls := range [][]string{
		{"__name__", "up"},
		{"__name__", "http_requests_total", "job", "api", "path", "/ü"},
		{"a", "bc"}, {"ab", "c"},
	} {
		ts := pushSeries(ls...)
		require.Equal(t, ring.ShardKey(labels.FromStrings(ls...)), shardKey(tenant.DefaultTenant, ts.Labels), "%v", ls)
	}
}

// The same series of two tenants gets different ring keys, so in general
// different ingesters; the default tenant keeps the placement of a cluster
// without tenants.
func TestShardKeyHasTenant(t *testing.T) {
	ts := pushSeries("__name__", "up", "job", "node")
	def, a, b := shardKey(tenant.DefaultTenant, ts.Labels), shardKey("team-a", ts.Labels), shardKey("team-b", ts.Labels)
	require.NotEqual(t, def, a)
	require.NotEqual(t, a, b)
	require.Equal(t, a, shardKey("team-a", ts.Labels))
}

type ringIngester struct {
	id, addr string
	stop     func()
}

// startRingCluster runs n ingesters on loopback and registers them in an
// in-memory ring with replication factor rf.
func startRingCluster(t *testing.T, n, rf int) (*Distributor, *cluster.Ring, []ringIngester) {
	t.Helper()
	kv := cluster.NewMemKV()
	rng := rand.New(rand.NewPCG(1, 2))
	taken := map[uint32]struct{}{}
	var ings []ringIngester
	for i := range n {
		var icfg ingester.Config
		icfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
		icfg.Path = t.TempDir()
		ing, err := ingester.New(icfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		require.NoError(t, err)
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := grpc.NewServer(ingesterclient.ServerOptions(100<<20, 100<<20)...)
		ing.Register(srv)
		go func() { _ = srv.Serve(lis) }()
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				srv.Stop()
				require.NoError(t, ing.Close(context.Background()))
			}
		}
		t.Cleanup(stop)
		id := "ing-" + strconv.Itoa(i)
		tokens := ring.GenerateTokens(32, taken, rng)
		for _, tk := range tokens {
			taken[tk] = struct{}{}
		}
		kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{id: {
			ID: id, Addr: lis.Addr().String(), State: ring.StateActive, Tokens: tokens, Timestamp: time.Now().Add(time.Hour).UnixMilli(),
		}}})
		ings = append(ings, ringIngester{id: id, addr: lis.Addr().String(), stop: stop})
	}
	rcfg := cluster.Config{ReplicationFactor: rf, Tokens: 32, Heartbeat: time.Second, HeartbeatTimeout: 2 * time.Hour}
	r, err := cluster.NewRing(rcfg, kv, nil)
	require.NoError(t, err)
	pool := ingesterclient.NewPool(clientConfig(), nil, nil)
	t.Cleanup(func() { _ = pool.Close() })
	d, err := New(defaultConfig(), NewRingIngesters(r, pool), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	return d, r, ings
}

func seriesIDs(t *testing.T, addr string) []string {
	c, err := ingesterclient.Dial(addr, clientConfig())
	require.NoError(t, err)
	defer c.Close()
	resp, err := c.LabelValues(tenant.With(t.Context(), tenant.DefaultTenant), &ingesterpb.LabelValuesRequest{Name: "id", EndMs: time.Now().Add(time.Hour).UnixMilli()})
	require.NoError(t, err)
	return resp.Values
}

func ringRequest(n int, ts int64, v float64) *ingesterpb.PushRequest {
	req := &ingesterpb.PushRequest{}
	for i := range n {
		s := pushSeries("__name__", "r", "id", strconv.Itoa(i))
		s.Samples[0].TimestampMs, s.Samples[0].Value = ts, v
		req.Series = append(req.Series, s)
	}
	return req
}

func TestRingRouting(t *testing.T) {
	const n = 400
	d, r, ings := startRingCluster(t, 4, 3)
	now := time.Now().UnixMilli()
	res, err := d.Push(t.Context(), ringRequest(n, now, 1))
	require.NoError(t, err)
	require.Empty(t, res.Rejected)
	require.Equal(t, uint64(n), res.SamplesWritten)

	// Every series is on exactly the three ingesters the ring names.
	holders := map[string][]string{}
	for _, ing := range ings {
		for _, id := range seriesIDs(t, ing.addr) {
			holders[id] = append(holders[id], ing.id)
		}
	}
	require.Len(t, holders, n)
	for i := range n {
		rs, err := r.Get(ring.ShardKey(labels.FromStrings("__name__", "r", "id", strconv.Itoa(i))), ring.Write)
		require.NoError(t, err)
		var want []string
		for _, in := range rs.Instances {
			want = append(want, in.ID)
		}
		slices.Sort(want)
		got := holders[strconv.Itoa(i)]
		slices.Sort(got)
		require.Equal(t, want, got, "series %d", i)
	}

	// The same sample again is idempotent; a different value at the same
	// timestamp is rejected by every replica: a 4xx rejection, not an error.
	res, err = d.Push(t.Context(), ringRequest(n, now, 1))
	require.NoError(t, err)
	require.Empty(t, res.Rejected)
	res, err = d.Push(t.Context(), ringRequest(3, now, 2))
	require.NoError(t, err)
	require.Len(t, res.Rejected, 3)
	require.Equal(t, ReasonDuplicateSample, res.Rejected[0].Reason)

	// One ingester down: every series still has two of three acks.
	ings[0].stop()
	_, err = d.Push(t.Context(), ringRequest(n, now+1000, 1))
	require.NoError(t, err)

	// Two down: series whose replicas include both lose quorum; the error
	// names the replication set.
	ings[1].stop()
	_, err = d.Push(t.Context(), ringRequest(n, now+2000, 1))
	require.ErrorIs(t, err, ErrWriteQuorum)
	require.Equal(t, 503, httpStatus(err))
	require.Contains(t, err.Error(), "push to ingester ing-0 ("+ings[0].addr+")")
	require.Contains(t, err.Error(), "push to ingester ing-1 ("+ings[1].addr+")")
}

func TestRingRoutingTooFewHealthy(t *testing.T) {
	d, _, _ := startRingCluster(t, 1, 3)
	// One instance: the ring clamps RF to 1, so writes go through.
	_, err := d.Push(t.Context(), ringRequest(10, time.Now().UnixMilli(), 1))
	require.NoError(t, err)

	empty, err := cluster.NewRing(cluster.Config{ReplicationFactor: 3, Tokens: 1, Heartbeat: time.Second, HeartbeatTimeout: time.Minute}, cluster.NewMemKV(), nil)
	require.NoError(t, err)
	d2, err := New(defaultConfig(), NewRingIngesters(empty, ingesterclient.NewPool(clientConfig(), nil, nil)), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	_, err = d2.Push(t.Context(), ringRequest(1, time.Now().UnixMilli(), 1))
	require.ErrorIs(t, err, ring.ErrEmptyRing)
	require.Equal(t, 503, httpStatus(err))
}
