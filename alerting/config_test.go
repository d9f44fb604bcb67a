package alerting

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no config file", func(c *Config) { c.ConfigFile = "" }, "notifier.config-file"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "notifier.data-dir"},
		{"zero retention", func(c *Config) { c.Retention = 0 }, "notifier.retention"},
		{"zero peer timeout", func(c *Config) { c.PeerTimeout = 0 }, "notifier.peer-timeout"},
		{"zero peer timeout without cluster", func(c *Config) { c.PeerTimeout = 0; c.ClusterBind = "" }, ""},
		{"negative start delay", func(c *Config) { c.DispatchStartDelay = -time.Second }, "notifier.dispatch-start-delay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig(t)
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestPeerFlagRepeats(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-notifier.peer=a:9094", "-notifier.peer=b:9094"}))
	require.Equal(t, []string{"a:9094", "b:9094"}, c.Peers)
}

const validConfig = `
route:
  receiver: slack
receivers:
- name: slack
  slack_configs:
  - api_url: http://127.0.0.1:1/hook
`

// withChild adds a child route to validConfig.
func withChild(child string) string {
	return strings.Replace(validConfig, "  receiver: slack\n", "  receiver: slack\n  routes:\n  - "+child+"\n", 1)
}

// Each invalid config must be refused by New and by Reload of a running
// notifier with upstream's message, prefixed by the YAML path at fault.
var invalidConfigs = []struct {
	name, yaml, wantErr string
}{
	{"unknown receiver", strings.Replace(validConfig, "receiver: slack", "receiver: nope", 1), `route.receiver: undefined receiver "nope"`},
	{"unknown receiver in child route", withChild("receiver: nope"), `route.routes[0].receiver: undefined receiver "nope"`},
	{"bad matcher", withChild("receiver: slack\n    matchers: ['severity=~\"[\"']"), "route.routes[0].matchers: error parsing regexp: missing closing ]"},
	{"bad matcher syntax", withChild("receiver: slack\n    matchers: ['sev erity=x']"), "route.routes[0].matchers: bad matcher format"},
	{"bad match_re", withChild("receiver: slack\n    match_re: {severity: '['}"), "route.routes[0].match_re: error parsing regexp"},
	{"bad inhibit matcher", validConfig + "inhibit_rules:\n- target_matchers: ['a=~\"[\"']\n", "inhibit_rules[0]: error parsing regexp"},
	{"missing api_url", strings.Replace(validConfig, "  - api_url: http://127.0.0.1:1/hook", "  - channel: '#x'", 1), `receivers[0] ("slack").slack_configs[0]: no Slack API URL`},
	{"bad title template", validConfig + "    title: '{{ .CommonAnnotations.summary '\n", `receivers[0] ("slack").slack_configs[0].title: template: :1: unclosed action`},
	{"unknown template function", validConfig + "    text: '{{ .CommonAnnotations.summary | nosuchfunc }}'\n", `receivers[0] ("slack").slack_configs[0].text: template: :1: function "nosuchfunc" not defined`},
	{"bad template file", validConfig + "templates: ['BADTEMPLATE']\n", "templates"},
	{"unknown field", validConfig + "gloabl: {}\n", "gloabl"},
}

// Templated fields that parse are accepted, whatever they reference.
func TestTemplatedFieldsAccepted(t *testing.T) {
	dir := t.TempDir()
	c := defaultConfig(t)
	c.ConfigFile = filepath.Join(dir, "am.yml")
	y := validConfig + "    title: '{{ template \"slack.default.title\" . }}'\n    text: '{{ range .Alerts }}{{ .Annotations.description | toUpper }}{{ end }}'\n"
	require.NoError(t, os.WriteFile(c.ConfigFile, []byte(y), 0o644))
	_, err := New(c, "", slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.tmpl"), []byte(`{{ define "x" }}{{ .Foo `), 0o644))
	for _, tc := range invalidConfigs {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig(t)
			c.DataDir = t.TempDir()
			c.ConfigFile = filepath.Join(dir, "am.yml")
			y := strings.Replace(tc.yaml, "BADTEMPLATE", filepath.Join(dir, "bad.tmpl"), 1)
			require.NoError(t, os.WriteFile(c.ConfigFile, []byte(y), 0o644))
			_, err := New(c, "", slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestReloadKeepsRunningConfig(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.tmpl"), []byte(`{{ define "x" }}{{ .Foo `), 0o644))
	c := defaultConfig(t)
	c.DataDir = t.TempDir()
	c.ClusterBind = ""
	c.ConfigFile = filepath.Join(dir, "am.yml")
	require.NoError(t, os.WriteFile(c.ConfigFile, []byte(validConfig), 0o644))
	n, err := New(c, prefix, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()

	resp, err := http.Get(srv.URL + prefix + "/api/v2/status")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "before Run")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	<-n.Ready()
	r := &replica{n: n, srv: srv}

	receivers := func() []string {
		var rs []struct {
			Name string `json:"name"`
		}
		getJSON(t, r.url("/api/v2/receivers"), &rs)
		var names []string
		for _, x := range rs {
			names = append(names, x.Name)
		}
		return names
	}
	require.Equal(t, []string{"slack"}, receivers())

	for _, tc := range invalidConfigs {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(tc.yaml, "BADTEMPLATE", filepath.Join(dir, "bad.tmpl"), 1)
			require.NoError(t, os.WriteFile(c.ConfigFile, []byte(y), 0o644))
			require.ErrorContains(t, n.Reload(), tc.wantErr)

			resp, err := http.Post(r.url("/-/reload"), "", nil)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
			require.Contains(t, string(body), tc.wantErr)
			require.Equal(t, []string{"slack"}, receivers(), "old config keeps running")
		})
	}

	// A valid change is applied by /-/reload.
	next := validConfig + "- name: pager\n  webhook_configs:\n  - url: http://127.0.0.1:1/\n"
	next = strings.Replace(next, "  receiver: slack\n", "  receiver: slack\n  routes:\n  - receiver: pager\n    matchers: ['severity=\"page\"']\n", 1)
	require.NoError(t, os.WriteFile(c.ConfigFile, []byte(next), 0o644))
	resp, err = http.Post(r.url("/-/reload"), "", nil)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.ElementsMatch(t, []string{"slack", "pager"}, receivers())

	cancel()
	require.NoError(t, <-done)
	require.ErrorIs(t, n.Run(context.Background()), errRunTwice)
}

// The tutorial file is accepted verbatim and routes the tutorial alert
// to the child route with its own repeat_interval.
func TestTutorialConfigVerbatim(t *testing.T) {
	c := defaultConfig(t)
	c.ConfigFile = tutorialConfig
	c.DataDir = t.TempDir()
	_, err := New(c, "/alertmanager", slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)

	conf, err := config.LoadFile(tutorialConfig)
	require.NoError(t, err)
	root := dispatch.NewRoute(conf.Route, nil)
	for _, tc := range []struct {
		labels model.LabelSet
		repeat time.Duration
		wait   time.Duration
	}{
		{model.LabelSet{"alertname": "ClusterIncreased", "severity": "notify", "frequency": "low"}, 5 * 24 * time.Hour, 10 * time.Second},
		{model.LabelSet{"alertname": "Other", "severity": "notify"}, 3 * time.Hour, 10 * time.Second},
	} {
		rs := root.Match(tc.labels)
		require.Len(t, rs, 1)
		require.Equal(t, "slack", rs[0].RouteOpts.Receiver)
		require.Equal(t, tc.repeat, rs[0].RouteOpts.RepeatInterval)
		require.Equal(t, tc.wait, rs[0].RouteOpts.GroupWait)
		require.Equal(t, 5*time.Minute, rs[0].RouteOpts.GroupInterval)
	}
}
