package alerting

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v2"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// call sends a request as tenant id ("" for none) and returns the status
// code and body.
func call(t *testing.T, method, url, id string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	if id != "" {
		req.Header.Set(tenant.HeaderName, id)
	}
	if method == http.MethodPost && strings.Contains(url, "/api/v2/") {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(out)
}

// callOK is call that requires the given status code.
func callOK(t *testing.T, code int, method, url, id string, body any) string {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	default:
		var err error
		b, err = json.Marshal(v)
		require.NoError(t, err)
	}
	got, out := call(t, method, url, id, b)
	require.Equal(t, code, got, out)
	return out
}

// startTenantCluster starts three multi-tenant replicas on dirs and waits
// until each sees all three members.
func startTenantCluster(t *testing.T, cfgFile string, dirs []string) []*replica {
	t.Helper()
	mt := func(peers []string) func(*Config) {
		return func(c *Config) {
			c.MultiTenant = true
			c.Peers = peers
		}
	}
	first := startReplicaWith(t, cfgFile, dirs[0], mt(nil))
	var st status
	require.NoError(t, json.Unmarshal([]byte(callOK(t, http.StatusOK, http.MethodGet, first.url("/api/v2/status"), "probe", nil)), &st))
	require.Len(t, st.Cluster.Peers, 1)
	seed := st.Cluster.Peers[0].Address
	rs := []*replica{first}
	for _, d := range dirs[1:] {
		rs = append(rs, startReplicaWith(t, cfgFile, d, mt([]string{seed})))
	}
	for _, r := range rs {
		require.Eventually(t, func() bool {
			var st status
			require.NoError(t, json.Unmarshal([]byte(callOK(t, http.StatusOK, http.MethodGet, r.url("/api/v2/status"), "probe", nil)), &st))
			return len(st.Cluster.Peers) == 3 && st.Cluster.Status == "ready"
		}, 30*time.Second, 50*time.Millisecond)
	}
	t.Cleanup(func() {
		for _, r := range rs {
			if r.srv != nil {
				r.stop(t)
			}
		}
	})
	return rs
}

// tenantSilences returns the IDs of tenant id's active silences on r.
func tenantSilences(t *testing.T, r *replica, id string) []string {
	var ss []apiSilence
	require.NoError(t, json.Unmarshal([]byte(callOK(t, http.StatusOK, http.MethodGet, r.url("/api/v2/silences"), id, nil)), &ss))
	var ids []string
	for _, s := range ss {
		if s.Status.State == "active" {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// runs reports whether tenant id's Alertmanager runs in n.
func runs(n *Notifier, id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.instances[id]
	return ok
}

// configBody is a config API body: A's alertmanager.yml (the grouped
// tutorial pointed at its own Slack, with the title from a template file).
func configBody(t *testing.T, apiURL string) []byte {
	t.Helper()
	raw, err := os.ReadFile(groupedTutorial(t, apiURL))
	require.NoError(t, err)
	cfg := strings.Replace(string(raw), `title: "{{ .CommonAnnotations.summary }}"`, `title: '{{ template "pharos.title" . }}'`, 1)
	cfg = "templates: ['*.tmpl']\n" + cfg
	b, err := yaml.Marshal(userConfig{
		AlertmanagerConfig: cfg,
		TemplateFiles:      map[string]string{"title.tmpl": `{{ define "pharos.title" }}A: {{ .CommonAnnotations.summary }}{{ end }}`},
	})
	require.NoError(t, err)
	return b
}

// TestTenantNotifiers: three multi-tenant replicas. Tenant A stores its own
// configuration (its Slack); B has none and runs the fallback (the file,
// another Slack). The same alert for A and B notifies each tenant's
// receiver once; A's silence mutes only A, is seen only by A and reaches
// every replica; A's configuration and silence survive a restart of all
// three replicas.
func TestTenantNotifiers(t *testing.T) {
	t.Parallel()
	slackA, slackFallback := newFakeSlack(t), newFakeSlack(t)
	dir := t.TempDir()
	cfgFile := groupedTutorial(t, slackFallback.srv.URL)
	dirs := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")}
	rs := startTenantCluster(t, cfgFile, dirs)

	// No tenant, no answer: API v2 and config API alike.
	for _, p := range []string{"/api/v2/alerts", "/api/v2/silences", "/api/v1/alerts"} {
		code, body := call(t, http.MethodGet, rs[0].url(p), "", nil)
		require.Equal(t, http.StatusUnauthorized, code, p)
		require.Contains(t, body, tenant.HeaderName)
	}
	callOK(t, http.StatusOK, http.MethodGet, rs[0].url("/-/ready"), "", nil)
	callOK(t, http.StatusNotFound, http.MethodGet, rs[0].url("/api/v1/alerts"), "A", nil)

	// A's configuration, stored on one replica, reaches every replica.
	body := configBody(t, slackA.srv.URL)
	callOK(t, http.StatusCreated, http.MethodPost, rs[1].url("/api/v1/alerts"), "A", body)
	for _, r := range rs {
		require.Eventually(t, func() bool {
			code, got := call(t, http.MethodGet, r.url("/api/v1/alerts"), "A", nil)
			return code == http.StatusOK && strings.Contains(got, "pharos.title")
		}, 10*time.Second, 20*time.Millisecond)
	}
	callOK(t, http.StatusNotFound, http.MethodGet, rs[0].url("/api/v1/alerts"), "B", nil)

	// The same alert for A and B, pushed to every replica as the ruler
	// does: one message each, to each tenant's receiver.
	for _, r := range rs {
		for _, id := range []string{"A", "B"} {
			callOK(t, http.StatusOK, http.MethodPost, r.url("/api/v2/alerts"), id, alertNamed("DiskFull", time.Now().Add(time.Hour)))
		}
	}
	// A's messages are titled by its template file, the fallback's by
	// the summary.
	exactlyOnce(t, slackA, "A: Cluster increased")
	exactlyOnce(t, slackFallback, "Cluster increased")
	require.Len(t, slackA.messages(), 1)
	require.Len(t, slackFallback.messages(), 1)

	// A silences NodeDown on one replica; every replica has it for A,
	// none shows it to B.
	out := callOK(t, http.StatusOK, http.MethodPost, rs[0].url("/api/v2/silences"), "A", map[string]any{
		"matchers":  []map[string]any{{"name": "alertname", "value": "NodeDown", "isRegex": false, "isEqual": true}},
		"startsAt":  time.Now().Format(time.RFC3339Nano),
		"endsAt":    time.Now().Add(time.Hour).Format(time.RFC3339Nano),
		"createdBy": "test",
		"comment":   "A's maintenance",
	})
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	for _, r := range rs {
		require.Eventually(t, func() bool {
			return assert.ElementsMatch(noopT{}, []string{created.SilenceID}, tenantSilences(t, r, "A"))
		}, 10*time.Second, 20*time.Millisecond)
		require.Empty(t, tenantSilences(t, r, "B"))
	}
	for _, r := range rs {
		for _, id := range []string{"A", "B"} {
			callOK(t, http.StatusOK, http.MethodPost, r.url("/api/v2/alerts"), id, titled("NodeDown", time.Now().Add(time.Hour)))
		}
	}
	exactlyOnce(t, slackFallback, "NodeDown")
	require.Zero(t, slackA.count("A: NodeDown"), "A's silence mutes A's alert")
	// A sees its alert as suppressed, B its own as active.
	var alerts []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	require.NoError(t, json.Unmarshal([]byte(callOK(t, http.StatusOK, http.MethodGet, rs[2].url("/api/v2/alerts?filter=alertname%3D%22NodeDown%22"), "A", nil)), &alerts))
	require.Len(t, alerts, 1)
	require.Equal(t, "suppressed", alerts[0].Status.State)
	require.NoError(t, json.Unmarshal([]byte(callOK(t, http.StatusOK, http.MethodGet, rs[2].url("/api/v2/alerts?filter=alertname%3D%22NodeDown%22"), "B", nil)), &alerts))
	require.Len(t, alerts, 1)
	require.Equal(t, "active", alerts[0].Status.State)

	// A tenant that talks to one replica only runs on all three (its
	// marker gossips), so its silence reaches them all.
	out = callOK(t, http.StatusOK, http.MethodPost, rs[0].url("/api/v2/silences"), "C", map[string]any{
		"matchers":  []map[string]any{{"name": "alertname", "value": "NodeDown", "isRegex": false, "isEqual": true}},
		"startsAt":  time.Now().Format(time.RFC3339Nano),
		"endsAt":    time.Now().Add(time.Hour).Format(time.RFC3339Nano),
		"createdBy": "test",
		"comment":   "C's maintenance",
	})
	var createdC struct {
		SilenceID string `json:"silenceID"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &createdC))
	for _, r := range rs[1:] {
		require.Eventually(t, func() bool { return runs(r.n, "C") }, 10*time.Second, 20*time.Millisecond)
		require.Eventually(t, func() bool {
			return assert.ElementsMatch(noopT{}, []string{createdC.SilenceID}, tenantSilences(t, r, "C"))
		}, 10*time.Second, 20*time.Millisecond)
	}

	// Per-tenant metrics carry the tenant as `user`, as in Mimir.
	require.Positive(t, counter(t, rs[0].reg, "alertmanager_alerts_received_total", "user", "A"))
	require.Positive(t, counter(t, rs[0].reg, "alertmanager_alerts_received_total", "user", "B"))

	// Restart every replica: A's configuration and silence come back
	// from disk.
	for _, r := range rs {
		r.stop(t)
		r.srv = nil
	}
	rs = startTenantCluster(t, cfgFile, dirs)
	for _, r := range rs {
		got := callOK(t, http.StatusOK, http.MethodGet, r.url("/api/v1/alerts"), "A", nil)
		var uc userConfig
		require.NoError(t, yaml.Unmarshal([]byte(got), &uc))
		require.Contains(t, uc.AlertmanagerConfig, slackA.srv.URL)
		require.Contains(t, uc.TemplateFiles, "title.tmpl")
		require.Equal(t, []string{created.SilenceID}, tenantSilences(t, r, "A"))
		require.Empty(t, tenantSilences(t, r, "B"))
	}

	// Deleting A's configuration returns A to the fallback everywhere.
	callOK(t, http.StatusOK, http.MethodDelete, rs[0].url("/api/v1/alerts"), "A", nil)
	for _, r := range rs {
		require.Eventually(t, func() bool {
			code, _ := call(t, http.MethodGet, r.url("/api/v1/alerts"), "A", nil)
			return code == http.StatusNotFound
		}, 10*time.Second, 20*time.Millisecond)
	}
	for _, r := range rs {
		callOK(t, http.StatusOK, http.MethodPost, r.url("/api/v2/alerts"), "A", titled("AfterDelete", time.Now().Add(time.Hour)))
	}
	exactlyOnce(t, slackFallback, "AfterDelete")
	require.Zero(t, slackA.count("A: AfterDelete"))
}

// TestTenantConfigRefused: the config API answers 400 naming the field at
// fault, and stores nothing.
func TestTenantConfigRefused(t *testing.T) {
	t.Parallel()
	slack := newFakeSlack(t)
	r := startReplicaWith(t, groupedTutorial(t, slack.srv.URL), t.TempDir(), func(c *Config) {
		c.MultiTenant = true
		c.ClusterBind = ""
	})
	t.Cleanup(func() { r.stop(t) })
	good := "route: {receiver: x}\nreceivers: [{name: x}]\n"
	for _, tc := range []struct {
		name string
		body userConfig
		want string
	}{
		{"empty", userConfig{}, "alertmanager_config: must not be empty"},
		{"unknown receiver", userConfig{AlertmanagerConfig: "route: {receiver: nope}\nreceivers: [{name: x}]\n"}, "route.receiver"},
		{"bad slack config", userConfig{AlertmanagerConfig: "route: {receiver: x}\nreceivers:\n- name: x\n  slack_configs:\n  - api_url: 'http://x'\n    title: '{{ .Bad '\n"}, `receivers[0] ("x").slack_configs[0].title`},
		{"host file", userConfig{AlertmanagerConfig: "route: {receiver: x}\nreceivers:\n- name: x\n  slack_configs:\n  - api_url_file: /etc/passwd\n"}, "receivers[0].slack_configs[0].api_url_file: settings that read files"},
		{"template outside", userConfig{AlertmanagerConfig: "templates: ['/etc/*']\n" + good}, "alertmanager_config: templates[0]"},
		{"template path", userConfig{AlertmanagerConfig: good, TemplateFiles: map[string]string{"../x.tmpl": ""}}, `template_files: "../x.tmpl" is not a plain file name`},
		{"template syntax", userConfig{AlertmanagerConfig: good, TemplateFiles: map[string]string{"x.tmpl": "{{ define }}"}}, "template_files.x.tmpl"},
	} {
		b, err := yaml.Marshal(tc.body)
		require.NoError(t, err)
		code, out := call(t, http.MethodPost, r.url("/api/v1/alerts"), "A", b)
		require.Equal(t, http.StatusBadRequest, code, tc.name)
		require.Contains(t, out, tc.want, tc.name)
	}
	code, out := call(t, http.MethodPost, r.url("/api/v1/alerts"), "A", []byte("alertmanager_config: x\nunknown_key: 1\n"))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, out, "unknown_key")
	callOK(t, http.StatusNotFound, http.MethodGet, r.url("/api/v1/alerts"), "A", nil)
	b, err := yaml.Marshal(userConfig{AlertmanagerConfig: good})
	require.NoError(t, err)
	callOK(t, http.StatusCreated, http.MethodPost, r.url("/api/v1/alerts"), "A", b)
	callOK(t, http.StatusMethodNotAllowed, http.MethodPut, r.url("/api/v1/alerts"), "A", b)
}

// TestTenantLimit: beyond notifier.max_tenants a new tenant gets 429; the
// running ones are served.
func TestTenantLimit(t *testing.T) {
	t.Parallel()
	slack := newFakeSlack(t)
	r := startReplicaWith(t, groupedTutorial(t, slack.srv.URL), t.TempDir(), func(c *Config) {
		c.MultiTenant = true
		c.ClusterBind = ""
		c.MaxTenants = 2
	})
	t.Cleanup(func() { r.stop(t) })
	callOK(t, http.StatusOK, http.MethodGet, r.url("/api/v2/alerts"), "A", nil)
	callOK(t, http.StatusOK, http.MethodGet, r.url("/api/v2/alerts"), "B", nil)
	code, out := call(t, http.MethodGet, r.url("/api/v2/alerts"), "C", nil)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Contains(t, out, "notifier.max_tenants")
	callOK(t, http.StatusOK, http.MethodGet, r.url("/api/v2/alerts"), "A", nil)
	mfs, err := r.reg.Gather()
	require.NoError(t, err)
	var tenants float64
	for _, mf := range mfs {
		if mf.GetName() == "pharos_notifier_tenants" {
			tenants = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	require.Equal(t, 2.0, tenants)
}

// TestTenantConfigsMerge: the replicated store is a last-writer-wins map
// in which a marker loses to anything, and it survives a reopen.
func TestTenantConfigsMerge(t *testing.T) {
	t0 := time.Now()
	cfg := func(s string, at time.Duration) tenantConfig {
		return tenantConfig{AlertmanagerConfig: s, UpdatedAt: t0.Add(at)}
	}
	marker := func(at time.Duration) tenantConfig { return tenantConfig{UpdatedAt: t0.Add(at)} }
	tomb := func(at time.Duration) tenantConfig { return tenantConfig{Deleted: true, UpdatedAt: t0.Add(at)} }
	for _, tc := range []struct {
		name      string
		have, in  tenantConfig
		wantWins  bool
		wantFound bool
	}{
		{"newer config", cfg("a", 0), cfg("b", time.Second), true, true},
		{"older config", cfg("a", time.Second), cfg("b", 0), false, true},
		{"newer marker loses", cfg("a", 0), marker(time.Hour), false, true},
		{"older config beats marker", marker(time.Hour), cfg("a", 0), true, true},
		{"newer tombstone", cfg("a", 0), tomb(time.Second), true, false},
		{"older tombstone", cfg("a", time.Second), tomb(0), false, true},
		{"config after tombstone", tomb(0), cfg("a", time.Second), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), tenantConfigsFile)
			s, err := openTenantConfigs(file, time.Hour, discardLogger())
			require.NoError(t, err)
			b, err := json.Marshal(map[string]tenantConfig{"A": tc.have})
			require.NoError(t, err)
			require.NoError(t, s.Merge(b))
			b, err = json.Marshal(map[string]tenantConfig{"A": tc.in})
			require.NoError(t, err)
			require.NoError(t, s.Merge(b))
			got, _ := s.entry("A")
			want := tc.have
			if tc.wantWins {
				want = tc.in
			}
			require.True(t, want.UpdatedAt.Equal(got.UpdatedAt))
			require.Equal(t, want.AlertmanagerConfig, got.AlertmanagerConfig)
			_, found := s.get("A")
			require.Equal(t, tc.wantFound, found)

			// The file holds what the map holds.
			s2, err := openTenantConfigs(file, time.Hour, discardLogger())
			require.NoError(t, err)
			got2, _ := s2.entry("A")
			require.True(t, got.UpdatedAt.Equal(got2.UpdatedAt))
			require.Equal(t, got.AlertmanagerConfig, got2.AlertmanagerConfig)
		})
	}

	// A local write always wins locally, even behind a faster clock.
	s, err := openTenantConfigs(filepath.Join(t.TempDir(), tenantConfigsFile), time.Hour, discardLogger())
	require.NoError(t, err)
	b, err := json.Marshal(map[string]tenantConfig{"A": cfg("remote", time.Hour)})
	require.NoError(t, err)
	require.NoError(t, s.Merge(b))
	_, err = s.put("A", cfg("local", 0))
	require.NoError(t, err)
	got, _ := s.get("A")
	require.Equal(t, "local", got.AlertmanagerConfig)
	// An announcement never replaces it.
	require.NoError(t, s.announce("A"))
	got, _ = s.get("A")
	require.Equal(t, "local", got.AlertmanagerConfig)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestTenantAmtool: amtool reaches a tenant's Alertmanager with the
// X-Scope-OrgID header from its --http.config.file, and its silence is the
// tenant's alone.
func TestTenantAmtool(t *testing.T) {
	t.Parallel()
	slack := newFakeSlack(t)
	r := startReplicaWith(t, groupedTutorial(t, slack.srv.URL), t.TempDir(), func(c *Config) {
		c.MultiTenant = true
		c.ClusterBind = ""
	})
	t.Cleanup(func() { r.stop(t) })
	httpConfig := filepath.Join(t.TempDir(), "http.yml")
	require.NoError(t, os.WriteFile(httpConfig, []byte("http_headers:\n  X-Scope-OrgID:\n    values: [team-a]\n"), 0o600))
	id := strings.TrimSpace(mustAmtool(t, "--alertmanager.url="+r.url(""), "--http.config.file="+httpConfig,
		"silence", "add", "alertname=NodeDown", "--comment=maintenance", "--author=test", "--duration=1h"))
	require.Equal(t, []string{id}, tenantSilences(t, r, "team-a"))
	require.Empty(t, tenantSilences(t, r, "team-b"))
	out := mustAmtool(t, "--alertmanager.url="+r.url(""), "--http.config.file="+httpConfig, "silence", "query", "-q")
	require.Equal(t, id, strings.TrimSpace(out))
	// Without the header amtool is refused.
	out, err := amtool(t, "--alertmanager.url="+r.url(""), "silence", "query")
	require.Error(t, err)
	require.Contains(t, out, "401")
}

// TestTenantConcurrentStart: first requests of many tenants at once, a
// configuration stored and the fallback reloaded meanwhile: each tenant
// gets one Alertmanager, and each ends with what is stored for it.
func TestTenantConcurrentStart(t *testing.T) {
	t.Parallel()
	slack := newFakeSlack(t)
	r := startReplicaWith(t, groupedTutorial(t, slack.srv.URL), t.TempDir(), func(c *Config) {
		c.MultiTenant = true
		c.ClusterBind = ""
	})
	t.Cleanup(func() { r.stop(t) })
	own, err := yaml.Marshal(userConfig{AlertmanagerConfig: "route: {receiver: own}\nreceivers: [{name: own}]\n"})
	require.NoError(t, err)
	tenants := []string{"t0", "t1", "t2", "t3", "t4"}
	var wg sync.WaitGroup
	for range 4 {
		for _, id := range tenants {
			wg.Go(func() {
				code, body := call(t, http.MethodGet, r.url("/api/v2/alerts"), id, nil)
				assert.Equal(t, http.StatusOK, code, body)
			})
		}
	}
	wg.Go(func() {
		code, body := call(t, http.MethodPost, r.url("/api/v1/alerts"), "t0", own)
		assert.Equal(t, http.StatusCreated, code, body)
	})
	wg.Go(func() {
		for range 5 {
			assert.NoError(t, r.n.Reload())
		}
	})
	wg.Wait()
	r.n.mu.Lock()
	require.Len(t, r.n.instances, len(tenants))
	require.Empty(t, r.n.starting)
	r.n.mu.Unlock()
	var st struct {
		Config struct {
			Original string `json:"original"`
		} `json:"config"`
	}
	for _, id := range tenants {
		require.NoError(t, json.Unmarshal([]byte(callOK(t, http.StatusOK, http.MethodGet, r.url("/api/v2/status"), id, nil)), &st))
		if id == "t0" {
			require.Contains(t, st.Config.Original, "receiver: own")
		} else {
			require.Contains(t, st.Config.Original, "receiver: slack")
		}
	}
}
