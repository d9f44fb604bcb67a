package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// runApp builds an App from cfg and runs it until the test ends, when
// its shutdown must succeed.
func runApp(t testing.TB, cfg *Config) *App {
	t.Helper()
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return a
}

// startApp runs an all-in-one node on loopback ports from a config file body.
func startApp(t testing.TB, configYAML string) (*App, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "pharos.yml")
	require.NoError(t, os.WriteFile(file, []byte(configYAML), 0o644))
	cfg, err := Load([]string{
		"-config.file=" + file,
		"-server.http-listen=127.0.0.1:0",
		"-server.grpc-listen=127.0.0.1:0",
		"-storage.path=" + filepath.Join(dir, "data"),
	})
	require.NoError(t, err)
	a := runApp(t, cfg)
	base := "http://" + a.HTTPAddr()
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	return a, file
}

type queryResult struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

func instantQuery(t testing.TB, base, q string) queryResult {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	require.NoError(t, err)
	defer resp.Body.Close()
	var r queryResult
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	return r
}

func exporter(t testing.TB, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func scrapeConfig(jobs map[string]string) string {
	var b strings.Builder
	b.WriteString("scrape:\n  global:\n    scrape_interval: 1s\n    scrape_timeout: 1s\n  scrape_configs:\n")
	for job, target := range jobs {
		fmt.Fprintf(&b, "    - job_name: %s\n      static_configs:\n        - targets: [%q]\n", job, target)
	}
	return b.String()
}

func TestAllInOneScrapesAndQueries(t *testing.T) {
	exp := exporter(t, "# TYPE kube_node_info gauge\nkube_node_info{node=\"a\"} 1\nkube_node_info{node=\"b\"} 1\n")
	a, _ := startApp(t, scrapeConfig(map[string]string{"ksm": strings.TrimPrefix(exp.URL, "http://")}))
	base := "http://" + a.HTTPAddr()

	require.Eventually(t, func() bool {
		r := instantQuery(t, base, `count(kube_node_info{job="ksm"})`)
		return r.Status == "success" && len(r.Data.Result) == 1 && r.Data.Result[0].Value[1] == "2"
	}, 30*time.Second, 100*time.Millisecond)
	r := instantQuery(t, base, `up{job="ksm"}`)
	require.Len(t, r.Data.Result, 1)
	require.Equal(t, "1", r.Data.Result[0].Value[1])

	// Metadata of the scraped families and of the scrape's own series,
	// under their names.
	resp, err := http.Get(base + "/api/v1/metadata")
	require.NoError(t, err)
	var md struct {
		Data map[string][]struct {
			Type string `json:"type"`
			Help string `json:"help"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&md))
	resp.Body.Close()
	require.Equal(t, "gauge", md.Data["kube_node_info"][0].Type, "%v", md.Data)
	require.Equal(t, "gauge", md.Data["up"][0].Type, "%v", md.Data)
	require.Equal(t, "Health of the scrape target. 1 means the target is healthy, 0 if the scrape failed.", md.Data["up"][0].Help)
	for name := range md.Data {
		require.True(t, utf8.ValidString(name), "metadata name %q", name)
	}

	// The targets API shows the scraper's view, as Prometheus's does.
	resp, err = http.Get(base + "/api/v1/targets")
	require.NoError(t, err)
	var targets struct {
		Data struct {
			ActiveTargets []struct {
				ScrapePool string `json:"scrapePool"`
				Health     string `json:"health"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&targets))
	resp.Body.Close()
	require.Len(t, targets.Data.ActiveTargets, 1)
	require.Equal(t, "ksm", targets.Data.ActiveTargets[0].ScrapePool)
	require.Equal(t, "up", targets.Data.ActiveTargets[0].Health)

	for _, path := range []string{"/-/healthy", "/ring", "/api/v1/scrape_pools", "/ready", "/-/ready", "/metrics", "/api/v1/status/buildinfo", "/api/v1/labels"} {
		resp, err := http.Get(base + path)
		require.NoError(t, err, path)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
		if path == "/metrics" {
			require.Contains(t, string(body), "pharos_config_last_reload_successful 1")
			require.Contains(t, string(body), "prometheus_tsdb_head_series")
		}
	}
}

func TestReloadAppliesScrapeConfigAndKeepsOldOnError(t *testing.T) {
	one := exporter(t, "metric_one 1\n")
	two := exporter(t, "metric_two 2\n")
	a, file := startApp(t, scrapeConfig(map[string]string{"one": strings.TrimPrefix(one.URL, "http://")}))
	base := "http://" + a.HTTPAddr()
	require.Eventually(t, func() bool { return len(instantQuery(t, base, "metric_one").Data.Result) == 1 }, 30*time.Second, 100*time.Millisecond)

	// A broken file is refused with the line and field, and changes nothing.
	require.NoError(t, os.WriteFile(file, []byte("scrape:\n  scrape_configs:\n    - job_name: x\n      no_such_field: 1\n"), 0o644))
	resp, err := http.Post(base+"/-/reload", "", nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Contains(t, string(body), "line 4")
	require.Contains(t, string(body), "no_such_field")

	require.NoError(t, os.WriteFile(file, []byte(scrapeConfig(map[string]string{
		"one": strings.TrimPrefix(one.URL, "http://"),
		"two": strings.TrimPrefix(two.URL, "http://"),
	})), 0o644))
	resp, err = http.Post(base+"/-/reload", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool { return len(instantQuery(t, base, "metric_two").Data.Result) == 1 }, 30*time.Second, 100*time.Millisecond)

	resp, err = http.Get(base + "/-/reload")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// TestAllInOneNotifier checks the embedded notifier: alertmanager's API v2
// under /alertmanager, alerts accepted and listed, reload through /-/reload.
func TestAllInOneNotifier(t *testing.T) {
	a, _ := startApp(t, "")
	base := "http://" + a.HTTPAddr() + "/alertmanager/api/v2"

	alert := `[{"labels":{"alertname":"TooManyNodes","severity":"notify"},"annotations":{"summary":"Cluster increased"}}]`
	resp, err := http.Post(base+"/alerts", "application/json", strings.NewReader(alert))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/alerts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var alerts []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				State string `json:"state"`
			} `json:"status"`
		}
		if json.NewDecoder(resp.Body).Decode(&alerts) != nil || len(alerts) != 1 {
			return false
		}
		return alerts[0].Labels["alertname"] == "TooManyNodes" && alerts[0].Status.State == "active"
	}, 30*time.Second, 50*time.Millisecond)

	resp, err = http.Get(base + "/status")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), `"config"`)

	resp, err = http.Post("http://"+a.HTTPAddr()+"/-/reload", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = http.Get("http://" + a.HTTPAddr() + "/metrics")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "alertmanager_alerts_received_total")
}
