package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// haWriter is a Prometheus-shaped remote-write 1.0 sender, one replica of
// an HA pair: every interval it sends one sample of ha_up{cluster="prom",
// __replica__=<replica>} whose value names the replica, and records the
// HTTP status of each push.
type haWriter struct {
	replica string
	value   float64
	url     string

	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	codes []int
	errs  int
}

func startHAWriter(base, replica string, value float64, interval time.Duration) *haWriter {
	w := &haWriter{replica: replica, value: value, url: base + "/api/v1/write", stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			w.push()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *haWriter) push() {
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: []prompb.Label{
			{Name: "__name__", Value: "ha_up"}, {Name: "__replica__", Value: w.replica},
			{Name: "cluster", Value: "prom"}, {Name: "job", Value: "node"},
		},
		Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: w.value}},
	}}}
	raw, _ := req.Marshal()
	hreq, _ := http.NewRequest(http.MethodPost, w.url, bytes.NewReader(snappy.Encode(nil, raw)))
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(hreq)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.errs++
		return
	}
	resp.Body.Close()
	w.codes = append(w.codes, resp.StatusCode)
}

// halt stops the writer after its current push.
func (w *haWriter) halt() {
	close(w.stop)
	<-w.done
}

func (w *haWriter) statuses() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int(nil), w.codes...)
}

type haSample struct {
	ts int64
	v  float64
}

// haSeries returns every stored ha_up series (by its label set) with its
// raw samples of the last window.
func haSeries(t testing.TB, base string, window time.Duration) map[string][]haSample {
	t.Helper()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/query?query=%s&time=%s", base,
		url.QueryEscape(fmt.Sprintf("ha_up[%dms]", window.Milliseconds())), unixSeconds(time.Now())))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.NoError(t, json.Unmarshal(body, &r))
	out := map[string][]haSample{}
	for _, s := range r.Data.Result {
		key := fmt.Sprint(s.Metric)
		for _, v := range s.Values {
			f, err := strconv.ParseFloat(v[1].(string), 64)
			require.NoError(t, err)
			out[key] = append(out[key], haSample{ts: int64(v[0].(float64) * 1000), v: f})
		}
	}
	return out
}

// TestHAPairFailover is acceptance 3 of the tenants issue: two distributors
// (gossip between them, one ingester), replica a of HA cluster "prom"
// writing to the first and replica b to the second. Only a's samples are
// stored, without the replica label; once a stops, b is accepted after the
// failover timeout, and the stored series has no gap longer than the
// failover timeout plus one interval (plus slack for a loaded machine).
func TestHAPairFailover(t *testing.T) {
	const (
		interval = 200 * time.Millisecond
		failover = 2 * time.Second
		// slack covers HTTP and scheduling delays of a push on two loaded
		// cores (with -race). Gossip delay cannot lengthen the gap: a
		// distributor that learns a's last refresh late fails over earlier,
		// not later.
		slack = 500 * time.Millisecond
	)
	c := &testCluster{t: t, rf: 1}
	c.ings = []*testNode{{id: "ing-0", dir: t.TempDir(), grpcAddr: "127.0.0.1:0"}}
	c.start(c.ings[0], "")
	front := func(id string) *testNode {
		n := &testNode{id: id, dir: t.TempDir()}
		n.args = append(clusterArgs(1), "-target=distributor,querier", "-storage.path="+n.dir,
			"-memberlist.join="+c.ings[0].app.GossipAddr(),
			"-distributor.ha-tracker.enable=true",
			"-limits.accept-ha-samples=true",
			"-distributor.ha-tracker.update-timeout=500ms",
			"-distributor.ha-tracker.update-timeout-jitter-max=200ms",
			"-distributor.ha-tracker.failover-timeout="+failover.String())
		c.start(n, "")
		return n
	}
	c.front = front("front-1")
	front2 := front("front-2")
	c.waitActive(1)
	base1, base2 := c.base(), "http://"+front2.app.HTTPAddr()
	require.Eventually(t, func() bool { return len(front2.app.Ring().Instances()) == 1 }, 30*time.Second, 10*time.Millisecond)

	// a starts first, as one replica of a pair always does by a little,
	// and is elected; b, at the other distributor, learns it by gossip.
	a := startHAWriter(base1, "a", 1, interval)
	require.Eventually(t, func() bool {
		r, ok := front2.app.haTracker.Elected("anonymous", "prom")
		return ok && r == "a"
	}, 10*time.Second, 10*time.Millisecond, "the election reaches the second distributor")
	b := startHAWriter(base2, "b", 2, interval)
	start := time.Now()

	// Both replicas write side by side for a while.
	require.Eventually(t, func() bool { return len(b.statuses()) >= int(2*failover/interval) }, 30*time.Second, 10*time.Millisecond)
	stored := haSeries(t, base1, time.Since(start)+time.Minute)
	require.Len(t, stored, 1, "one series, without the replica label: %v", stored)
	for key, samples := range stored {
		require.Equal(t, "map[__name__:ha_up cluster:prom job:node]", key)
		for _, s := range samples {
			require.Equal(t, 1.0, s.v, "only a's samples are stored")
		}
		require.GreaterOrEqual(t, len(samples), int(2*failover/interval)-2)
	}
	for _, code := range a.statuses() {
		require.Equal(t, http.StatusNoContent, code)
	}
	for _, code := range b.statuses() {
		require.Equal(t, http.StatusAccepted, code, "b's pushes are accepted and dropped")
	}
	require.Positive(t, metricValue(t, base2, "pharos_distributor_deduped_samples_total", `cluster="prom",tenant="anonymous"`))
	var elections []struct{ Tenant, Cluster, Replica string }
	getInto(t, base2+"/distributor/ha_tracker?format=json", &elections)
	require.Equal(t, []struct{ Tenant, Cluster, Replica string }{{"anonymous", "prom", "a"}}, elections)

	// a stops: b takes over once a has been silent for the failover timeout.
	a.halt()
	stopped := time.Now()
	require.Eventually(t, func() bool {
		r, ok := front2.app.haTracker.Elected("anonymous", "prom")
		return ok && r == "b"
	}, failover+10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		r, ok := c.front.app.haTracker.Elected("anonymous", "prom")
		return ok && r == "b"
	}, 10*time.Second, 10*time.Millisecond, "the failover reaches the first distributor")
	took := time.Since(stopped)
	// A few of b's samples after the takeover.
	require.Eventually(t, func() bool {
		n := 0
		for _, s := range haSeries(t, base1, time.Since(start)+time.Minute) {
			for _, x := range s {
				if x.v == 2 {
					n++
				}
			}
		}
		return n >= 3
	}, 10*time.Second, 10*time.Millisecond)
	b.halt()

	stored = haSeries(t, base1, time.Since(start)+time.Minute)
	require.Len(t, stored, 1)
	var samples []haSample
	for _, s := range stored {
		samples = s
	}
	var gap time.Duration
	switches := 0
	for i := 1; i < len(samples); i++ {
		gap = max(gap, time.Duration(samples[i].ts-samples[i-1].ts)*time.Millisecond)
		if samples[i].v != samples[i-1].v {
			switches++
			require.Equal(t, 2.0, samples[i].v, "a then b, never back")
		}
	}
	require.Equal(t, 1, switches)
	t.Logf("takeover %v after a stopped; largest gap in the stored series %v (bound %v + %v + slack %v)", took, gap, failover, interval, slack)
	require.LessOrEqual(t, gap, failover+interval+slack)
	// The replica that took over waited for the failover timeout less the
	// longest interval between two refreshes of a (update timeout + jitter)
	// and the latency of its own push.
	require.GreaterOrEqual(t, gap, failover-700*time.Millisecond-interval)
	require.Positive(t, metricValue(t, base2, "pharos_ha_tracker_elected_replica_changes_total", `cluster="prom",tenant="anonymous"`))

	// b's answers: 202 while a was elected, 204 once b was.
	codes := b.statuses()
	first := slices.Index(codes, http.StatusNoContent)
	require.Positive(t, first)
	for i, code := range codes {
		if i < first {
			require.Equal(t, http.StatusAccepted, code)
		} else {
			require.Equal(t, http.StatusNoContent, code)
		}
	}
}

// TestHAPairsPerTenant: in an all-in-one process (the in-memory KV) with
// multi-tenancy on, elections are per tenant. Two tenants run a pair each
// under the same cluster name; each tenant's first replica is elected, and
// each reads only its own, deduplicated series. A third tenant without
// accept_ha_samples (a runtime override) keeps both replicas.
func TestHAPairsPerTenant(t *testing.T) {
	dir := t.TempDir()
	overrides := filepath.Join(dir, "overrides.yml")
	require.NoError(t, os.WriteFile(overrides, []byte("overrides:\n  t3:\n    accept_ha_samples: false\n"), 0o644))
	a, _ := startApp(t, fmt.Sprintf(`multitenancy: {enabled: true}
distributor:
  ha_tracker: {enable_ha_tracker: true}
limits: {accept_ha_samples: true}
runtime_config: {file: %q}
`, overrides))
	base := "http://" + a.HTTPAddr()
	now := time.Now().UnixMilli()
	write := func(id, replica string, ts int64) int {
		code, body := writeV1As(t, base, "/api/v1/write", id, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "ha_up"}, {Name: "__replica__", Value: replica}, {Name: "cluster", Value: "prom"},
			},
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(replica[0])}},
		}}})
		require.Less(t, code, 300, body)
		return code
	}
	require.Equal(t, http.StatusNoContent, write("t1", "a", now))
	require.Equal(t, http.StatusNoContent, write("t2", "b", now), "t2's election is its own")
	require.Equal(t, http.StatusAccepted, write("t1", "b", now+1))
	require.Equal(t, http.StatusAccepted, write("t2", "a", now+1))
	require.Equal(t, http.StatusNoContent, write("t3", "a", now))
	require.Equal(t, http.StatusNoContent, write("t3", "b", now))

	for id, want := range map[string][]map[string]string{
		"t1": {{"__name__": "ha_up", "cluster": "prom"}},
		"t2": {{"__name__": "ha_up", "cluster": "prom"}},
		"t3": {{"__name__": "ha_up", "cluster": "prom", "__replica__": "a"}, {"__name__": "ha_up", "cluster": "prom", "__replica__": "b"}},
	} {
		var got struct{ Result []promSample }
		apiGetAs(t, base, "/api/v1/query", url.Values{"query": {"ha_up[1m]"}, "time": {unixSeconds(time.UnixMilli(now + 1000))}}, id, &got)
		var metrics []map[string]string
		for _, s := range got.Result {
			metrics = append(metrics, s.Metric)
			if id != "t3" {
				require.Len(t, s.Values, 1, id)
				require.Equal(t, map[string]string{"t1": "97", "t2": "98"}[id], s.Values[0][1], "%s stores its elected replica's sample", id)
			}
		}
		require.ElementsMatch(t, want, metrics, id)
	}
}
