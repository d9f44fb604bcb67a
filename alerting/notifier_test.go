package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tutorialConfig is the tutorial's alertmanager.yml, copied verbatim.
const tutorialConfig = "testdata/tutorial-alertmanager.yml"

// defaultConfig returns the flag defaults, as the binary would see them.
func defaultConfig(t *testing.T) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	// The flags leave both empty for the caller (cmd/pharos/app) to derive.
	c.ConfigFile = "alertmanager.yml"
	c.DataDir = t.TempDir()
	return c
}

// fakeSlack records every webhook body it receives, and when.
type fakeSlack struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []slackMsg
	at     []time.Time
}

type slackMsg struct {
	Attachments []struct {
		Title     string `json:"title"`
		TitleLink string `json:"title_link"`
		Text      string `json:"text"`
		Color     string `json:"color"`
	} `json:"attachments"`
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m slackMsg
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("bad slack body %q: %v", b, err)
		}
		f.mu.Lock()
		f.bodies = append(f.bodies, m)
		f.at = append(f.at, time.Now())
		f.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// times returns when each message with this title arrived.
func (f *fakeSlack) times(title string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ts []time.Time
	for i, m := range f.bodies {
		if len(m.Attachments) > 0 && m.Attachments[0].Title == title {
			ts = append(ts, f.at[i])
		}
	}
	return ts
}

func (f *fakeSlack) count(title string) int { return len(f.times(title)) }

func (f *fakeSlack) messages() []slackMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]slackMsg(nil), f.bodies...)
}

// writeTutorialConfig copies the tutorial alertmanager.yml, pointing
// api_url at the fake and shortening group_wait and group_interval (the
// resolved message waits for the next group_interval tick) so the test
// is quick. Everything else is verbatim.
func writeTutorialConfig(t *testing.T, dir, apiURL string) string {
	t.Helper()
	return writeTutorialVariant(t, dir, apiURL, map[string]string{
		"group_wait: 10s":    "group_wait: 1s",
		"group_interval: 5m": "group_interval: 8s",
	})
}

// writeTutorialVariant writes the tutorial alertmanager.yml with api_url
// pointed at the fake and each key of edits (which must occur) replaced.
func writeTutorialVariant(t *testing.T, dir, apiURL string, edits map[string]string) string {
	t.Helper()
	raw, err := os.ReadFile(tutorialConfig)
	require.NoError(t, err)
	s := string(raw)
	edits["https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"] = apiURL
	for old, repl := range edits {
		require.Contains(t, s, old)
		s = strings.Replace(s, old, repl, 1)
	}
	p := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
	return p
}

type replica struct {
	n      *Notifier
	reg    *prometheus.Registry
	srv    *httptest.Server
	cancel context.CancelFunc
	done   chan error
}

const prefix = "/alertmanager"

func (r *replica) url(path string) string { return r.srv.URL + prefix + path }

func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	require.NoError(t, <-r.done)
	r.srv.Close()
}

// peerTimeout × (replicas-1) must stay well below group_interval, as
// upstream assumes (15s vs 5m by default): a replica's flush blocks for
// its position wait, so a longer wait than group_interval makes its
// flushes drift out of phase and the nflog check loses its margin.
const peerTimeout = 1500 * time.Millisecond

func startReplica(t *testing.T, cfgFile, dataDir string, peers []string) *replica {
	t.Helper()
	return startReplicaWith(t, cfgFile, dataDir, func(c *Config) { c.Peers = peers })
}

// startReplicaWith starts a gossiping replica with the test defaults,
// adjusted by opt.
func startReplicaWith(t *testing.T, cfgFile, dataDir string, opt func(*Config)) *replica {
	t.Helper()
	c := defaultConfig(t)
	c.ConfigFile = cfgFile
	c.DataDir = dataDir
	c.ClusterBind = "127.0.0.1:0"
	c.PeerTimeout = peerTimeout
	c.SettleTimeout = time.Second
	c.PushPullInterval = time.Second
	c.ExternalURL = "http://pharos.example" + prefix
	opt(&c)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	n, err := New(c, prefix, logger, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{n: n, reg: reg, srv: httptest.NewServer(n.Handler()), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-r.done:
		t.Fatalf("notifier exited: %v", err)
	}
	return r
}

type status struct {
	Cluster struct {
		Status string `json:"status"`
		Peers  []struct {
			Name    string `json:"name"`
			Address string `json:"address"`
		} `json:"peers"`
	} `json:"cluster"`
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	require.NoError(t, json.Unmarshal(b, v))
}

func postJSON(t *testing.T, url string, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(out))
	return out
}

// startCluster starts three gossiping replicas and waits until each
// sees all three members.
func startCluster(t *testing.T, cfgFile string, dataDirs []string) []*replica {
	t.Helper()
	first := startReplica(t, cfgFile, dataDirs[0], nil)
	var st status
	getJSON(t, first.url("/api/v2/status"), &st)
	require.Len(t, st.Cluster.Peers, 1)
	seed := st.Cluster.Peers[0].Address
	rs := []*replica{first}
	for _, d := range dataDirs[1:] {
		rs = append(rs, startReplica(t, cfgFile, d, []string{seed}))
	}
	for _, r := range rs {
		require.Eventually(t, func() bool {
			var st status
			getJSON(t, r.url("/api/v2/status"), &st)
			return len(st.Cluster.Peers) == 3 && st.Cluster.Status == "ready"
		}, 30*time.Second, 50*time.Millisecond)
	}
	return rs
}

// counter sums a counter family over its series matching label=value.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

func alertBody(ends time.Time) []map[string]any {
	return alertNamed("ClusterIncreased", ends)
}

func alertNamed(name string, ends time.Time) []map[string]any {
	return []map[string]any{{
		"labels": map[string]string{
			"alertname": name, "severity": "notify", "frequency": "low",
		},
		"annotations": map[string]string{
			"summary":     "Cluster increased",
			"description": "The cluster grew from 3 to 4 nodes.",
		},
		"startsAt": time.Now().Add(-time.Minute).Format(time.RFC3339Nano),
		"endsAt":   ends.Format(time.RFC3339Nano),
	}}
}

func TestHASlackExactlyOnce(t *testing.T) {
	t.Parallel()
	slack := newFakeSlack(t)
	dir := t.TempDir()
	cfgFile := writeTutorialConfig(t, dir, slack.srv.URL)
	dirs := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")}
	rs := startCluster(t, cfgFile, dirs)

	// The ruler pushes every firing alert to every replica.
	firing := alertBody(time.Now().Add(time.Hour))
	for _, r := range rs {
		postJSON(t, r.url("/api/v2/alerts"), firing)
	}
	require.Eventually(t, func() bool { return len(slack.messages()) >= 1 }, 30*time.Second, 20*time.Millisecond)
	// The last replica waits 2×peer_timeout before it would send; give
	// it that plus slack to prove the gossiped nflog stops it.
	require.Never(t, func() bool { return len(slack.messages()) > 1 }, 3*peerTimeout, 50*time.Millisecond)
	msg := slack.messages()[0]
	require.Len(t, msg.Attachments, 1)
	require.Equal(t, "Cluster increased", msg.Attachments[0].Title)
	require.Equal(t, "The cluster grew from 3 to 4 nodes.", msg.Attachments[0].Text)
	require.Equal(t, "http://my-prometheus.com/alerts", msg.Attachments[0].TitleLink)
	require.Equal(t, "danger", msg.Attachments[0].Color)

	resolved := alertBody(time.Now())
	for _, r := range rs {
		postJSON(t, r.url("/api/v2/alerts"), resolved)
	}
	require.Eventually(t, func() bool { return len(slack.messages()) >= 2 }, 30*time.Second, 20*time.Millisecond)
	require.Never(t, func() bool { return len(slack.messages()) > 2 }, 3*peerTimeout, 50*time.Millisecond)
	require.Equal(t, "good", slack.messages()[1].Attachments[0].Color, "send_resolved message")

	// Upstream metric names; exactly one replica attempted each send.
	var sent float64
	for _, r := range rs {
		sent += counter(t, r.reg, "alertmanager_notifications_total", "integration", "slack")
		require.Zero(t, counter(t, r.reg, "alertmanager_notifications_failed_total", "integration", "slack"))
	}
	require.Equal(t, 2.0, sent)

	// Kill the replica at position 0 (the one that sends first); the
	// next group is still delivered exactly once by the survivors.
	var killed int
	for i, r := range rs {
		if counter(t, r.reg, "alertmanager_notifications_total", "integration", "slack") > 0 {
			killed = i
		}
	}
	rs[killed].stop(t)
	rs = append(rs[:killed], rs[killed+1:]...)
	for _, r := range rs {
		require.Eventually(t, func() bool {
			var st status
			getJSON(t, r.url("/api/v2/status"), &st)
			return len(st.Cluster.Peers) == 2
		}, 30*time.Second, 50*time.Millisecond)
		postJSON(t, r.url("/api/v2/alerts"), alertNamed("ClusterShrunk", time.Now().Add(time.Hour)))
	}
	require.Eventually(t, func() bool { return len(slack.messages()) >= 3 }, 30*time.Second, 20*time.Millisecond)
	require.Never(t, func() bool { return len(slack.messages()) > 3 }, 3*peerTimeout, 50*time.Millisecond)

	for _, r := range rs {
		r.stop(t)
	}
}

// noopT lets assert's matchers serve as conditions for require.Eventually.
type noopT struct{}

func (noopT) Errorf(string, ...any) {}

type apiSilence struct {
	ID       string `json:"id"`
	Matchers []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"matchers"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
}

func silenceIDs(t *testing.T, r *replica) []string {
	var ss []apiSilence
	getJSON(t, r.url("/api/v2/silences"), &ss)
	var ids []string
	for _, s := range ss {
		if s.Status.State == "active" {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

func TestSilenceGossipAndPersistence(t *testing.T) {
	t.Parallel()
	slack := newFakeSlack(t)
	dir := t.TempDir()
	cfgFile := writeTutorialConfig(t, dir, slack.srv.URL)
	dirs := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")}
	rs := startCluster(t, cfgFile, dirs)

	out := postJSON(t, rs[0].url("/api/v2/silences"), map[string]any{
		"matchers":  []map[string]any{{"name": "alertname", "value": "ClusterIncreased", "isRegex": false, "isEqual": true}},
		"startsAt":  time.Now().Format(time.RFC3339Nano),
		"endsAt":    time.Now().Add(time.Hour).Format(time.RFC3339Nano),
		"createdBy": "test",
		"comment":   "maintenance",
	})
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	require.NoError(t, json.Unmarshal(out, &created))
	require.NotEmpty(t, created.SilenceID)
	// And one through amtool, also on A.
	byAmtool := strings.TrimSpace(mustAmtool(t, "--alertmanager.url="+rs[0].url(""), "silence", "add",
		"alertname=ClusterShrunk", "--comment=maintenance", "--author=test", "--duration=1h"))
	want := []string{created.SilenceID, byAmtool}
	for _, r := range rs[1:] {
		require.Eventually(t, func() bool {
			return assert.ElementsMatch(noopT{}, want, silenceIDs(t, r))
		}, 10*time.Second, 20*time.Millisecond)
	}

	// The silenced alert pushed to B and C produces no notification.
	for _, r := range rs[1:] {
		postJSON(t, r.url("/api/v2/alerts"), alertBody(time.Now().Add(time.Hour)))
	}
	require.Never(t, func() bool { return len(slack.messages()) > 0 }, 3*time.Second, 50*time.Millisecond)

	// Restart the whole cluster: the silence comes back from the
	// snapshots written at shutdown, not from a surviving peer.
	for _, r := range rs {
		r.stop(t)
	}
	for _, d := range dirs {
		_, err := os.Stat(filepath.Join(d, "silences"))
		require.NoError(t, err)
	}
	rs = startCluster(t, cfgFile, dirs)
	for _, r := range rs {
		require.ElementsMatch(t, want, silenceIDs(t, r))
	}
	for _, r := range rs {
		r.stop(t)
	}
}

// TestMetricNames: the upstream alertmanager metric names operators'
// dashboards and alerts use are exported, notification counters per
// integration from the start.
func TestMetricNames(t *testing.T) {
	slack := newFakeSlack(t)
	r := startReplica(t, writeTutorialConfig(t, t.TempDir(), slack.srv.URL), t.TempDir(), nil)
	defer r.stop(t)
	mfs, err := r.reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{
		"alertmanager_notifications_total",
		"alertmanager_notifications_failed_total",
		"alertmanager_notification_requests_total",
		"alertmanager_notification_latency_seconds",
		"alertmanager_alerts_received_total",
		"alertmanager_silences",
		"alertmanager_nflog_queries_total",
		"alertmanager_config_last_reload_successful",
		"alertmanager_cluster_enabled",
		"alertmanager_cluster_members",
		"alertmanager_cluster_health_score",
		"alertmanager_cluster_peer_info",
		"alertmanager_cluster_messages_received_total",
		"alertmanager_cluster_messages_sent_total",
		"alertmanager_cluster_failed_peers",
		"alertmanager_peer_position",
	} {
		require.True(t, names[n], "missing metric %s", n)
	}
	require.Zero(t, counter(t, r.reg, "alertmanager_notifications_total", "integration", "slack"))
}
