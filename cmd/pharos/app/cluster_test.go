package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// testCluster is Pharos processes in this test process, talking over real
// gossip, gRPC and HTTP on loopback: ingesters, and one process running the
// distributor and the querier that the ingesters join.
type testCluster struct {
	t     testing.TB
	rf    int
	front *testNode
	ings  []*testNode
}

type testNode struct {
	id, zone, dir, grpcAddr string
	args                    []string
	app                     *App
	cancel                  context.CancelFunc
	done                    chan error
}

func (n *testNode) running() bool { return n.app != nil }

// clusterArgs are the flags every node shares: fast gossip and heartbeats,
// tokens kept on shutdown (a StatefulSet), loopback everywhere.
func clusterArgs(rf int) []string {
	return []string{
		"-server.http-listen=127.0.0.1:0",
		"-server.graceful-shutdown-timeout=10s",
		"-memberlist.bind=127.0.0.1:0",
		"-memberlist.gossip-interval=20ms",
		"-memberlist.push-pull-interval=300ms",
		"-memberlist.probe-interval=500ms",
		"-memberlist.probe-timeout=400ms",
		"-memberlist.join-retry-interval=50ms",
		"-memberlist.leave-timeout=200ms",
		"-ring.replication-factor=" + strconv.Itoa(rf),
		"-ring.tokens=32",
		"-ring.heartbeat=200ms",
		"-ring.heartbeat-timeout=10s",
		"-ring.unregister-on-shutdown=false",
		// Generous: -race on two loaded cores makes a first push of thousands
		// of new series slow; stopped ingesters still fail at once.
		"-distributor.remote-timeout=30s",
	}
}

func newTestCluster(t testing.TB, rf int, zones []string) *testCluster {
	t.Helper()
	return newTestClusterWith(t, rf, zones)
}

// newTestClusterWith is newTestCluster with frontArgs added to the flags of
// the distributor and querier process.
func newTestClusterWith(t testing.TB, rf int, zones []string, frontArgs ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, rf: rf}
	for i, z := range zones {
		c.ings = append(c.ings, &testNode{id: fmt.Sprintf("ing-%d", i), zone: z, dir: t.TempDir(), grpcAddr: "127.0.0.1:0"})
	}
	// The first ingester seeds the gossip cluster; the rest join the front,
	// which outlives every ingester.
	c.start(c.ings[0], "")
	c.front = &testNode{id: "front", dir: t.TempDir()}
	c.front.args = append(clusterArgs(rf), "-target=distributor,querier", "-storage.path="+c.front.dir,
		"-memberlist.join="+c.ings[0].app.GossipAddr())
	c.front.args = append(c.front.args, frontArgs...)
	c.start(c.front, "")
	for _, n := range c.ings[1:] {
		c.start(n, c.front.app.GossipAddr())
	}
	c.waitActive(len(zones))
	return c
}

// start runs n; an ingester keeps its gRPC address across restarts, as a
// StatefulSet pod keeps its name.
func (c *testCluster) start(n *testNode, seed string) {
	t := c.t
	t.Helper()
	args := n.args
	if n.grpcAddr != "" {
		args = append(clusterArgs(c.rf), "-target=ingester",
			"-storage.path="+n.dir, "-server.grpc-listen="+n.grpcAddr,
			"-ring.instance-id="+n.id, "-ring.zone="+n.zone)
		if seed != "" {
			args = append(args, "-memberlist.join="+seed)
		}
	}
	cfg, err := Load(args)
	require.NoError(t, err)
	var a *App
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A just-stopped node's port may linger for a moment.
		if a, err = New(cfg, slog.New(slog.DiscardHandler)); err == nil || time.Now().After(deadline) {
			break
		}
		runtime.Gosched()
	}
	require.NoError(t, err, "start %s", n.id)
	if n.grpcAddr != "" {
		n.grpcAddr = a.GRPCAddr()
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.app, n.cancel, n.done = a, cancel, make(chan error, 1)
	go func() { n.done <- a.Run(ctx) }()
	t.Cleanup(func() { c.stop(n) })
	require.Eventually(t, func() bool { return httpStatusOf("http://"+a.HTTPAddr()+"/ready") == http.StatusOK },
		30*time.Second, 10*time.Millisecond, "%s not ready", n.id)
}

func (c *testCluster) stop(n *testNode) {
	if !n.running() {
		return
	}
	n.cancel()
	require.NoError(c.t, <-n.done)
	n.app = nil
}

func (c *testCluster) restart(n *testNode) { c.start(n, c.front.app.GossipAddr()) }

// waitActive waits until the front sees n ACTIVE ingesters.
func (c *testCluster) waitActive(n int) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		active := 0
		for _, in := range c.front.app.Ring().Instances() {
			if in.State == ring.StateActive {
				active++
			}
		}
		return active == n
	}, 30*time.Second, 10*time.Millisecond)
}

func httpStatusOf(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// remoteWrite sends series to base's /api/v1/write (remote write 1.0).
func remoteWrite(t testing.TB, base string, series []prompb.TimeSeries) (int, string) {
	t.Helper()
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// genSeries is n series of metric m (labels id, mod) with one sample each
// at ts, value id + ts.
func genSeries(from, n int, ts int64) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, n)
	for i := range out {
		id := from + i
		out[i] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "m"},
				{Name: "id", Value: strconv.Itoa(id)},
				{Name: "mod", Value: strconv.Itoa(id % 7)},
			},
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(id) + float64(ts)/1000}},
		}
	}
	return out
}

// writeAll pushes series in requests of batch series, requiring 2xx.
func writeAll(t testing.TB, base string, series []prompb.TimeSeries, batch int) {
	t.Helper()
	for i := 0; i < len(series); i += batch {
		code, body := remoteWrite(t, base, series[i:min(i+batch, len(series))])
		require.Equal(t, http.StatusNoContent, code, body)
	}
}

type apiResponse struct {
	Status string          `json:"status"`
	Error  string          `json:"error"`
	Data   json.RawMessage `json:"data"`
}

// query runs an instant query at ts and returns the HTTP status and the body.
func query(t testing.TB, base, q string, ts int64) (int, apiResponse) {
	t.Helper()
	u := fmt.Sprintf("%s/api/v1/query?query=%s&time=%s", base, url.QueryEscape(q),
		strconv.FormatFloat(float64(ts)/1000, 'f', 3, 64))
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	var r apiResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	return resp.StatusCode, r
}

// labelValues asks one ingester directly over gRPC.
func labelValues(t testing.TB, addr, name string) []string {
	t.Helper()
	c, err := ingesterclient.Dial(addr, ingesterclient.Config{MaxRecvMsgSize: 256 << 20, MaxSendMsgSize: 1 << 20, RemoteTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	resp, err := c.LabelValues(tenant.With(t.Context(), tenant.DefaultTenant), &ingesterpb.LabelValuesRequest{Name: name, StartMs: 0, EndMs: time.Now().Add(time.Hour).UnixMilli()})
	require.NoError(t, err)
	return resp.Values
}

func (c *testCluster) base() string { return "http://" + c.front.app.HTTPAddr() }

var clusterQueries = []string{
	`count(m)`, `sum(m)`, `sum by (mod) (m)`, `max(m)`, `m{id="7"}`, `topk(3, m)`, `count(m{mod="3"})`,
}

func seriesCount(t testing.TB) int {
	switch {
	case testing.Short():
		return 3000
	case raceEnabled:
		return 8000
	}
	return 100000
}

func TestClusterReplicatesEverySeries(t *testing.T) {
	n := seriesCount(t)
	c := newTestCluster(t, 3, []string{"", "", ""})
	single, _ := startApp(t, "")
	singleBase := "http://" + single.HTTPAddr()

	ts := time.Now().Add(-time.Minute).UnixMilli()
	series := genSeries(0, n, ts)
	writeAll(t, c.base(), series, 5000)
	writeAll(t, singleBase, series, 5000)

	for _, ing := range c.ings {
		require.Len(t, labelValues(t, ing.grpcAddr, "id"), n, "ingester %s holds every series", ing.id)
	}
	for _, q := range clusterQueries {
		code, got := query(t, c.base(), q, ts+1000)
		require.Equal(t, http.StatusOK, code, got.Error)
		_, want := query(t, singleBase, q, ts+1000)
		requireSameResult(t, want.Data, got.Data, q)
	}
}

// requireSameResult compares two answers' data. An instant vector's order
// is not part of the answer (the API only keeps it for sort and friends,
// which these queries do not use): a single node yields groups in the
// order its head created the series, a cluster in the merged label order.
func requireSameResult(t testing.TB, want, got json.RawMessage, msgAndArgs ...any) {
	t.Helper()
	require.JSONEq(t, string(normalizedResult(t, want)), string(normalizedResult(t, got)), msgAndArgs...)
}

func normalizedResult(t testing.TB, data json.RawMessage) json.RawMessage {
	t.Helper()
	var d struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	}
	require.NoError(t, json.Unmarshal(data, &d))
	if d.ResultType != "vector" {
		return data
	}
	metricOf := func(r json.RawMessage) string {
		var e struct {
			Metric map[string]string `json:"metric"`
		}
		require.NoError(t, json.Unmarshal(r, &e))
		return labels.FromMap(e.Metric).String()
	}
	slices.SortStableFunc(d.Result, func(a, b json.RawMessage) int { return strings.Compare(metricOf(a), metricOf(b)) })
	out, err := json.Marshal(d)
	require.NoError(t, err)
	return out
}

func TestClusterSurvivesOneIngesterDown(t *testing.T) {
	const n = 300
	c := newTestCluster(t, 3, []string{"", "", ""})
	now := time.Now().Add(-5 * time.Minute).UnixMilli()
	writeAll(t, c.base(), genSeries(0, n, now), n)
	tokensBefore := c.front.app.Ring().View().Desc().Instances["ing-0"].Tokens

	exact := func(ts int64, wantCount int) {
		t.Helper()
		code, r := query(t, c.base(), `count(m)`, ts)
		require.Equal(t, http.StatusOK, code, r.Error)
		require.Contains(t, string(r.Data), fmt.Sprintf(`"%d"`, wantCount))
		code, r = query(t, c.base(), `m{id="42"}`, ts)
		require.Equal(t, http.StatusOK, code, r.Error)
		require.Contains(t, string(r.Data), strconv.FormatFloat(42+float64(ts-ts%1000)/1000, 'f', -1, 64))
	}
	exact(now, n)

	// One down: writes still 2xx, reads exact.
	c.stop(c.ings[0])
	writeAll(t, c.base(), genSeries(0, n, now+1000), n)
	exact(now+1000, n)

	// Two down: no quorum for writes or reads, and the errors say where.
	c.stop(c.ings[1])
	code, body := remoteWrite(t, c.base(), genSeries(0, n, now+2000))
	require.GreaterOrEqual(t, code, 500, body)
	require.Contains(t, body, "write quorum not reached")
	code, r := query(t, c.base(), `count(m)`, now+1000)
	require.GreaterOrEqual(t, code, 500)
	require.Regexp(t, `ing-[01]`, r.Error, "the error names the failed ingesters")

	// Restarted: WAL replay, same tokens, ACTIVE again, reads exact again.
	c.restart(c.ings[0])
	require.Len(t, labelValues(t, c.ings[0].grpcAddr, "id"), n, "replayed from the WAL")
	c.waitActive(2)
	require.Equal(t, tokensBefore, c.front.app.Ring().View().Desc().Instances["ing-0"].Tokens)
	// The front's connection to ing-0 recovers within the client pool's
	// health check and reconnect backoff.
	require.Eventually(t, func() bool {
		code, _ := query(t, c.base(), `count(m)`, now+1000)
		return code == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	exact(now+1000, n)
	writeAll(t, c.base(), genSeries(0, n, now+3000), n)
	exact(now+3000, n)
}

func TestClusterZones(t *testing.T) {
	const n = 600
	zones := []string{"a", "a", "b", "b", "c", "c"}
	c := newTestCluster(t, 3, zones)
	now := time.Now().Add(-5 * time.Minute).UnixMilli()
	series := genSeries(0, n, now)
	writeAll(t, c.base(), series, n)

	// Each series sits on three ingesters, one per zone: as the ring says,
	// and as the ingesters' own contents show.
	holders := map[string][]string{}
	for i, ing := range c.ings {
		for _, id := range labelValues(t, ing.grpcAddr, "id") {
			holders[id] = append(holders[id], zones[i])
		}
	}
	require.Len(t, holders, n)
	for _, s := range series {
		lbls := labels.New(labels.Label{Name: "__name__", Value: "m"}, labels.Label{Name: "id", Value: s.Labels[1].Value},
			labels.Label{Name: "mod", Value: s.Labels[2].Value})
		rs, err := c.front.app.Ring().Get(ring.ShardKey(lbls), ring.Write)
		require.NoError(t, err)
		var ringZones []string
		for _, in := range rs.Instances {
			ringZones = append(ringZones, in.Zone)
		}
		slices.Sort(ringZones)
		got := holders[s.Labels[1].Value]
		slices.Sort(got)
		require.Equal(t, []string{"a", "b", "c"}, ringZones)
		require.Equal(t, []string{"a", "b", "c"}, got, "series %s", s.Labels[1].Value)
	}

	// Zone a down entirely: writes and reads still succeed.
	c.stop(c.ings[0])
	c.stop(c.ings[1])
	writeAll(t, c.base(), genSeries(0, n, now+1000), n)
	code, r := query(t, c.base(), `count(m)`, now+1000)
	require.Equal(t, http.StatusOK, code, r.Error)
	require.Contains(t, string(r.Data), fmt.Sprintf(`"%d"`, n))
}

// TestClusterAckedSamplesSurviveRestarts writes while ingesters stop and
// restart at random; every sample acknowledged with 2xx must then be read
// back exactly once.
func TestClusterAckedSamplesSurviveRestarts(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	const nSeries = 20
	steps, events := 120, 6
	if testing.Short() {
		steps, events = 60, 4
	}
	c := newTestCluster(t, 3, []string{"", "", ""})
	start := time.Now().Add(-10 * time.Minute).UnixMilli()

	// The schedule: at a few random steps, stop or restart a random
	// ingester, so the cluster passes through full health, one down (writes
	// acknowledged) and two or three down (writes refused).
	schedule := map[int]int{}
	for len(schedule) < events {
		schedule[1+rng.IntN(steps-1)] = rng.IntN(len(c.ings))
	}
	acked := map[string][]float64{} // id → acked sample values, by step
	ok, failed := 0, 0
	for step := range steps {
		if i, ok := schedule[step]; ok {
			if ing := c.ings[i]; ing.running() {
				c.stop(ing)
			} else {
				c.restart(ing)
			}
		}
		ts := start + int64(step)*1000
		series := genSeries(0, nSeries, ts)
		code, body := remoteWrite(t, c.base(), series)
		switch {
		case code == http.StatusNoContent:
			ok++
			for _, s := range series {
				acked[s.Labels[1].Value] = append(acked[s.Labels[1].Value], s.Samples[0].Value)
			}
		case code >= 500:
			failed++
		default:
			t.Fatalf("step %d: unexpected %d: %s", step, code, body)
		}
	}
	for _, ing := range c.ings {
		if !ing.running() {
			c.restart(ing)
		}
	}
	c.waitActive(len(c.ings))
	t.Logf("%d writes acknowledged, %d failed", ok, failed)
	require.NotZero(t, ok)

	end := start + int64(steps)*1000
	rangeSel := fmt.Sprintf(`m[%ds]`, steps+5)
	code, r := query(t, c.base(), rangeSel, end)
	require.Equal(t, http.StatusOK, code, r.Error)
	var matrix struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(r.Data, &matrix))
	got := map[string]map[float64]int{}
	for _, s := range matrix.Result {
		m := map[float64]int{}
		for _, v := range s.Values {
			f, err := strconv.ParseFloat(v[1].(string), 64)
			require.NoError(t, err)
			m[f]++
		}
		got[s.Metric["id"]] = m
	}
	for id, values := range acked {
		for _, v := range values {
			require.Equal(t, 1, got[id][v], "series %s: acked sample %v returned %d times", id, v, got[id][v])
		}
	}
}
