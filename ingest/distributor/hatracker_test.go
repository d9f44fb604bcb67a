package distributor

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

func haConfig() HATrackerConfig {
	var cfg HATrackerConfig
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	cfg.Enable = true
	cfg.UpdateTimeout = model.Duration(time.Second)
	cfg.UpdateTimeoutJitterMax = 0
	cfg.FailoverTimeout = model.Duration(3 * time.Second)
	return cfg
}

// fakeClock is a settable clock for the tracker's state machine.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestTracker(t *testing.T, kv cluster.KV, clock *fakeClock) *HATracker {
	tr, err := NewHATracker(haConfig(), cluster.Namespace(kv, HATrackerRingName), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	tr.now = clock.now
	return tr
}

func TestHATrackerConfigValidate(t *testing.T) {
	var cfg HATrackerConfig
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	require.NoError(t, cfg.Validate(), "the defaults are valid")
	require.False(t, cfg.Enable)

	cfg.FailoverTimeout = cfg.UpdateTimeout + cfg.UpdateTimeoutJitterMax
	require.ErrorContains(t, cfg.Validate(), "ha_tracker_failover_timeout")
	cfg.FailoverTimeout = model.Duration(time.Minute)
	cfg.UpdateTimeout = 0
	require.ErrorContains(t, cfg.Validate(), "ha_tracker_update_timeout must be positive")
}

// TestHATrackerTimeline walks one cluster through election, refreshes,
// deduplication and failover, checking at each step the answer and whether
// the KV was written.
func TestHATrackerTimeline(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	kv := cluster.NewMemKV()
	tr := newTestTracker(t, kv, clock)

	steps := []struct {
		after   time.Duration // advance the clock first
		replica string
		want    error
		writes  float64 // KV writes so far
		elected string
	}{
		{0, "a", nil, 1, "a"},                                // first push elects a
		{0, "b", ErrNotElected, 1, "a"},                      // b is deduplicated
		{500 * time.Millisecond, "a", nil, 1, "a"},           // within the update timeout: cache only
		{600 * time.Millisecond, "a", nil, 2, "a"},           // 1.1 s after the election: refresh
		{2 * time.Second, "b", ErrNotElected, 2, "a"},        // a silent for 2 s < 3 s
		{900 * time.Millisecond, "b", ErrNotElected, 2, "a"}, // 2.9 s
		{100 * time.Millisecond, "b", nil, 3, "b"},           // 3 s: b takes over
		{0, "a", ErrNotElected, 3, "b"},                      // a is back, but b is elected now
		{3100 * time.Millisecond, "a", nil, 4, "a"},          // b silent: a takes over again
		{0, "c", ErrNotElected, 4, "a"},                      // any other replica is refused
		{999 * time.Millisecond, "a", nil, 4, "a"},           // still cached
		{time.Millisecond, "a", nil, 5, "a"},                 // update timeout reached: written
	}
	for i, s := range steps {
		clock.add(s.after)
		err := tr.Check("t1", "prom", s.replica, 0)
		if s.want == nil {
			require.NoError(t, err, "step %d", i)
		} else {
			require.ErrorIs(t, err, s.want, "step %d", i)
		}
		require.Equal(t, s.writes, testutil.ToFloat64(tr.kvWrites), "KV writes after step %d", i)
		got, ok := tr.Elected("t1", "prom")
		require.True(t, ok)
		require.Equal(t, s.elected, got, "elected after step %d", i)
	}
	require.Equal(t, 2.0, testutil.ToFloat64(tr.changes.WithLabelValues("t1", "prom")), "a→b and b→a")

	// The KV holds the election as an instance of the tracker's namespace,
	// which the ingesters' ring does not see.
	require.Zero(t, cluster.Namespace(kv, "").Get().Len())
	in, ok := kv.Get().Get(HATrackerRingName + "/t1/prom")
	require.True(t, ok)
	require.Equal(t, "a", in.Addr)
	require.Equal(t, clock.now().UnixMilli(), in.Timestamp)

	// Clusters and tenants are independent.
	require.NoError(t, tr.Check("t1", "other", "b", 0))
	require.NoError(t, tr.Check("t2", "prom", "b", 0))
	require.ErrorIs(t, tr.Check("t1", "prom", "b", 0), ErrNotElected)

	// The status page lists the elections, sorted.
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/distributor/ha_tracker?format=json", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var st []haStatus
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	require.Len(t, st, 3)
	require.Equal(t, haStatus{Tenant: "t1", Cluster: "other", Replica: "b", ElectedAt: clock.now().UTC(), ReceivedAt: clock.now().UTC(), FailoverInSeconds: 3}, st[0])
	var got []string
	for _, e := range st {
		got = append(got, e.Tenant+"/"+e.Cluster+"="+e.Replica)
	}
	require.Equal(t, []string{"t1/other=b", "t1/prom=a", "t2/prom=b"}, got)
	rec = httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/distributor/ha_tracker", nil))
	require.Contains(t, rec.Body.String(), "<td>t2</td><td>prom</td><td>b</td>")
}

func TestHATrackerMaxClusters(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	tr := newTestTracker(t, cluster.NewMemKV(), clock)
	require.NoError(t, tr.Check("t1", "c1", "a", 2))
	require.NoError(t, tr.Check("t1", "c2", "a", 2))
	err := tr.Check("t1", "c3", "a", 2)
	require.ErrorIs(t, err, ErrTooManyHAClusters)
	require.ErrorContains(t, err, `tenant "t1" has 2 HA clusters, the limit (ha_max_clusters) is 2; cluster "c3" is refused`)
	require.ErrorIs(t, tr.Check("t1", "c1", "b", 2), ErrNotElected, "known clusters are not limited")
	require.NoError(t, tr.Check("t2", "c3", "a", 2), "the limit is per tenant")

	// An idle cluster is removed after the cleanup age and frees its place.
	clock.add(haCleanupAge - time.Second)
	require.NoError(t, tr.Check("t1", "c2", "a", 2))
	clock.add(2 * time.Second)
	tr.cleanup(clock.now())
	_, ok := tr.Elected("t1", "c1")
	require.False(t, ok)
	in, ok := tr.kv.Get().Get("t1/c1")
	require.True(t, ok)
	require.Equal(t, ring.StateLeft, in.State, "the removal is a tombstone in the KV")
	_, ok = tr.Elected("t1", "c2")
	require.True(t, ok, "c2 was refreshed")
	require.NoError(t, tr.Check("t1", "c1", "z", 2), "after its tombstone, c1 elects anew")
	got, _ := tr.Elected("t1", "c1")
	require.Equal(t, "z", got)
	require.ErrorIs(t, tr.Check("t1", "c3", "a", 2), ErrTooManyHAClusters, "c1 took the free place")
}

// TestHATrackerShared: two trackers on one KV, as two distributors on one
// gossip cluster, agree on the elected replica and fail over together.
func TestHATrackerShared(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	kv := cluster.NewMemKV()
	t1, t2 := newTestTracker(t, kv, clock), newTestTracker(t, kv, clock)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { t1.Run(ctx) })
	wg.Go(func() { t2.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	require.NoError(t, t1.Check("t", "prom", "a", 0))
	require.Eventually(t, func() bool { r, _ := t2.Elected("t", "prom"); return r == "a" }, 5*time.Second, time.Millisecond)
	require.ErrorIs(t, t2.Check("t", "prom", "b", 0), ErrNotElected)

	// a's refreshes through t1 keep it elected on t2.
	for range 5 {
		clock.add(time.Second)
		require.NoError(t, t1.Check("t", "prom", "a", 0))
		want := clock.now().UnixMilli()
		require.Eventually(t, func() bool {
			t2.mu.Lock()
			defer t2.mu.Unlock()
			return t2.entries["t/prom"].receivedAt == want
		}, 5*time.Second, time.Millisecond)
		require.ErrorIs(t, t2.Check("t", "prom", "b", 0), ErrNotElected)
	}
	// a stops; b, through t2, takes over after the failover timeout, and t1 learns it.
	clock.add(3 * time.Second)
	require.NoError(t, t2.Check("t", "prom", "b", 0))
	require.Eventually(t, func() bool { r, _ := t1.Elected("t", "prom"); return r == "b" }, 5*time.Second, time.Millisecond)
	require.ErrorIs(t, t1.Check("t", "prom", "a", 0), ErrNotElected)
}

func haRequest(ls ...string) *ingesterpb.PushRequest {
	return &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{pushSeries(ls...), pushSeries(append(ls, "x", "y")...)}}
}

// TestDedupeHA checks how Push applies the tracker to requests.
func TestDedupeHA(t *testing.T) {
	e := newEnv(t, nil)
	reg := prometheus.NewRegistry()
	tr, err := NewHATracker(haConfig(), cluster.Namespace(cluster.NewMemKV(), HATrackerRingName), nil, reg)
	require.NoError(t, err)
	limits := DefaultHALimits()
	limits.MaxClusters = 1
	e.dist.SetHATracker(tr, limits)
	ctx := tenant.With(context.Background(), tenant.DefaultTenant)

	// The elected replica: written, without the replica label.
	res, err := e.dist.Push(ctx, haRequest("__name__", "m", "cluster", "prom", "__replica__", "a"))
	require.NoError(t, err)
	require.False(t, res.Deduplicated)
	require.EqualValues(t, 2, res.SamplesWritten)
	// The other replica: nothing written, counted.
	req := haRequest("__name__", "m", "cluster", "prom", "__replica__", "b")
	res, err = e.dist.Push(ctx, req)
	require.NoError(t, err)
	require.True(t, res.Deduplicated)
	require.Zero(t, res.SamplesWritten)
	require.Equal(t, 2.0, testutil.ToFloat64(tr.deduped.WithLabelValues(tenant.DefaultTenant, "prom")))
	// A cluster label alone is not an HA pair: written as it is.
	res, err = e.dist.Push(ctx, haRequest("__name__", "n", "cluster", "prom"))
	require.NoError(t, err)
	require.False(t, res.Deduplicated)
	require.EqualValues(t, 2, res.SamplesWritten)
	// Neither is a replica label alone.
	res, err = e.dist.Push(ctx, haRequest("__name__", "o", "__replica__", "b"))
	require.NoError(t, err)
	require.EqualValues(t, 2, res.SamplesWritten)
	// A second cluster is over the tenant's limit of one.
	res, err = e.dist.Push(ctx, haRequest("__name__", "m", "cluster", "other", "__replica__", "a"))
	require.NoError(t, err)
	require.Len(t, res.Rejected, 2)
	require.Equal(t, ReasonTooManyHAClusters, res.Rejected[0].Reason)
	require.Contains(t, res.Rejected[0].Error(), "ha_max_clusters")

	// Over HTTP, the other replica is answered 202 Accepted.
	srv := httptest.NewServer(tenant.Resolver{}.Middleware(e.dist.RemoteWriteHandler()))
	t.Cleanup(srv.Close)
	write := func(body []byte) response { return post(t, srv.URL, "application/x-protobuf", "snappy", body) }
	body := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series([]string{"__name__", "m", "cluster", "prom", "__replica__", "b"}, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1}),
	}})
	require.Equal(t, 202, write(body).code)
	body = encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series([]string{"__name__", "m", "cluster", "prom", "__replica__", "a"}, prompb.Sample{Timestamp: time.Now().UnixMilli() + 1, Value: 1}),
	}})
	resp := write(body)
	require.Equal(t, 204, resp.code, resp.body)

	// Stored: one series m{cluster="prom"} (no replica label) with a's samples only.
	require.Equal(t, 3, e.samplesOf(t, "m"))
	names := e.labelNames(t, "m")
	require.NotContains(t, names, "__replica__")
	require.Contains(t, names, "cluster")

	// Remote write 2.0 carries the labels as symbols: the same decisions.
	v2 := func(replica string, ts int64) []byte {
		st := writev2.NewSymbolTable()
		req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "v2", "cluster", "prom", "__replica__", replica), nil),
			Samples:    []writev2.Sample{{Timestamp: ts, Value: 1}},
		}}}
		req.Symbols = st.Symbols()
		return encode(t, req)
	}
	now := time.Now().UnixMilli()
	require.Equal(t, 202, post(t, srv.URL, ctV2, "snappy", v2("b", now)).code)
	resp = post(t, srv.URL, ctV2, "snappy", v2("a", now+1))
	require.Equal(t, 204, resp.code, resp.body)
	require.Equal(t, 1, e.samplesOf(t, "v2"))
	require.NotContains(t, e.labelNames(t, "v2"), "__replica__")

	// A tenant that does not accept HA samples keeps the replica label.
	limits.Accept = false
	e.dist.SetHATracker(tr, limits)
	res, err = e.dist.Push(ctx, haRequest("__name__", "p", "cluster", "prom", "__replica__", "b"))
	require.NoError(t, err)
	require.False(t, res.Deduplicated)
	require.Contains(t, e.labelNames(t, "p"), "__replica__")
}

// labelNames asks the ingester for the label names of metric's series.
func (e *env) labelNames(t testing.TB, metric string) []string {
	resp, err := e.client.LabelNames(tenant.With(context.Background(), tenant.DefaultTenant), &ingesterpb.LabelNamesRequest{
		StartMs: math.MinInt64, EndMs: math.MaxInt64,
		Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_EQ, Name: "__name__", Value: metric}},
	})
	require.NoError(t, err)
	return resp.Names
}

// BenchmarkHATrackerCheck measures the per-push cost of the tracker for the
// elected replica and for the deduplicated one (the cache path both take
// between KV writes), over 100 clusters, from parallel pushes.
func BenchmarkHATrackerCheck(b *testing.B) {
	for _, replica := range []string{"a", "b"} {
		b.Run("replica="+replica, func(b *testing.B) {
			tr, err := NewHATracker(haConfig(), cluster.Namespace(cluster.NewMemKV(), HATrackerRingName), nil, prometheus.NewRegistry())
			require.NoError(b, err)
			clusters := make([]string, 100)
			for i := range clusters {
				clusters[i] = "c" + strconv.Itoa(i)
				require.NoError(b, tr.Check("t", clusters[i], "a", 0))
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					_ = tr.Check("t", clusters[i%len(clusters)], replica, 0)
					i++
				}
			})
		})
	}
}
