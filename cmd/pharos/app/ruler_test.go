package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tutorialRulesFor is the tutorial's alerts-firing.yml with a test-sized `for`.
func tutorialRulesFor(cond, forDur string) string {
	return fmt.Sprintf(`groups:
- name: nodes
  interval: 1s
  rules:
  - alert: TooManyNodes
    expr: count(kube_node_info) %s
    for: %s
    labels:
      severity: notify
    annotations:
      summary: Cluster increased
      description: The number of the nodes in the cluster increased
  - alert: TooFewNodes
    expr: count(kube_node_info) < 1
    for: %s
    labels:
      severity: notify
    annotations:
      summary: Cluster decreased
      description: The number of the nodes in the cluster decreased
`, cond, forDur, forDur)
}

func rulerGetJSON(t testing.TB, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if v != nil {
		require.NoError(t, json.Unmarshal(body, v), string(body))
	}
	return resp.StatusCode
}

// TestAllInOneRulerReplaysTheTutorial scrapes kube_node_info for 3 nodes,
// evaluates the tutorial's rules (first `> 3`, which stays inactive, then
// `> 0` after a reload), and follows TooManyNodes from pending to firing
// into the embedded notifier.
func TestAllInOneRulerReplaysTheTutorial(t *testing.T) {
	ksm := exporter(t, "# TYPE kube_node_info gauge\n"+
		`kube_node_info{node="node-a"} 1`+"\n"+
		`kube_node_info{node="node-b"} 1`+"\n"+
		`kube_node_info{node="node-c"} 1`+"\n")
	rulesFile := filepath.Join(t.TempDir(), "alerts.yml")
	require.NoError(t, os.WriteFile(rulesFile, []byte(tutorialRulesFor("> 3", "3s")), 0o644))
	cfg := scrapeConfig(map[string]string{"kube-state-metrics": strings.TrimPrefix(ksm.URL, "http://")}) +
		"rules:\n  files: [" + rulesFile + "]\n" +
		"ruler:\n  evaluation_interval: 1s\n  resend_delay: 1s\n"
	a, _ := startApp(t, cfg)
	base := "http://" + a.HTTPAddr()

	var status struct {
		Data struct {
			Mode   string `json:"mode"`
			Leader string `json:"leader"`
		} `json:"data"`
	}
	require.Eventually(t, func() bool {
		rulerGetJSON(t, base+"/api/v1/status/ruler", &status)
		return status.Data.Mode == "leader"
	}, 15*time.Second, 50*time.Millisecond)

	type rulesResp struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				File  string `json:"file"`
				Rules []struct {
					Name   string `json:"name"`
					State  string `json:"state"`
					Health string `json:"health"`
					Alerts []struct {
						State       string            `json:"state"`
						Annotations map[string]string `json:"annotations"`
						ActiveAt    *time.Time        `json:"activeAt"`
					} `json:"alerts"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	// `> 3` with 3 nodes: evaluated, healthy, inactive.
	require.Eventually(t, func() bool {
		var r rulesResp
		rulerGetJSON(t, base+"/api/v1/rules", &r)
		if len(r.Data.Groups) != 1 || len(r.Data.Groups[0].Rules) != 2 {
			return false
		}
		tm := r.Data.Groups[0].Rules[0]
		return tm.Name == "TooManyNodes" && tm.Health == "ok" && tm.State == "inactive"
	}, 20*time.Second, 100*time.Millisecond)

	// Reload with `> 0`: pending first, then firing after `for`.
	require.NoError(t, os.WriteFile(rulesFile, []byte(tutorialRulesFor("> 0", "3s")), 0o644))
	resp, err := http.Post(base+"/-/reload", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	type alertsResp struct {
		Data struct {
			Alerts []struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
				State       string            `json:"state"`
				ActiveAt    time.Time         `json:"activeAt"`
			} `json:"alerts"`
		} `json:"data"`
	}
	var sawPending bool
	require.Eventually(t, func() bool {
		var r alertsResp
		rulerGetJSON(t, base+"/api/v1/alerts", &r)
		if len(r.Data.Alerts) != 1 {
			return false
		}
		al := r.Data.Alerts[0]
		require.Equal(t, "TooManyNodes", al.Labels["alertname"])
		require.Equal(t, "Cluster increased", al.Annotations["summary"])
		if al.State == "pending" {
			sawPending = true
		}
		return al.State == "firing"
	}, 30*time.Second, 50*time.Millisecond)
	require.True(t, sawPending, "the alert went firing without being pending first")

	// The embedded notifier has it, and ALERTS is queryable.
	require.Eventually(t, func() bool {
		var alerts []struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		}
		rulerGetJSON(t, base+"/alertmanager/api/v2/alerts", &alerts)
		return len(alerts) == 1 && alerts[0].Labels["alertname"] == "TooManyNodes" &&
			alerts[0].Annotations["description"] == "The number of the nodes in the cluster increased"
	}, 15*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool {
		r := instantQuery(t, base, `ALERTS{alertname="TooManyNodes",alertstate="firing"}`)
		return len(r.Data.Result) == 1
	}, 10*time.Second, 100*time.Millisecond)

	// An invalid rule file is refused on reload, naming file, line, group
	// and rule; the old rules keep running.
	require.NoError(t, os.WriteFile(rulesFile, []byte(strings.Replace(tutorialRulesFor("> 0", "3s"), "count(kube_node_info) < 1", "count(kube_node_info <", 1)), 0o644))
	resp, err = http.Post(base+"/-/reload", "", nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Contains(t, string(body), rulesFile+": 14:11: group \"nodes\", rule 2, \"TooFewNodes\": could not parse expression")
	var r alertsResp
	rulerGetJSON(t, base+"/api/v1/alerts", &r)
	require.Len(t, r.Data.Alerts, 1)
	require.Equal(t, "firing", r.Data.Alerts[0].State)
}
