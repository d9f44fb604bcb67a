package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

	// Reload with `> 0`: pending first, then firing after `for`. A third
	// rule in the same group reads the ALERTS series the first one writes,
	// as the alert generator specification requires.
	derived := `  - alert: NodesAlertSeen
    expr: ALERTS{alertname="TooManyNodes",alertstate="firing"}
    labels:
      severity: info
`
	require.NoError(t, os.WriteFile(rulesFile, []byte(tutorialRulesFor("> 0", "3s")+derived), 0o644))
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
		for _, al := range r.Data.Alerts {
			if al.Labels["alertname"] != "TooManyNodes" {
				continue
			}
			require.Equal(t, "Cluster increased", al.Annotations["summary"])
			if al.State == "pending" {
				sawPending = true
			}
			return al.State == "firing"
		}
		return false
	}, 30*time.Second, 50*time.Millisecond)
	require.True(t, sawPending, "the alert went firing without being pending first")
	require.Eventually(t, func() bool {
		var r alertsResp
		rulerGetJSON(t, base+"/api/v1/alerts", &r)
		for _, al := range r.Data.Alerts {
			if al.Labels["alertname"] == "NodesAlertSeen" && al.State == "firing" {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "a rule reading ALERTS of an earlier rule in its group")

	// The embedded notifier has it, and ALERTS is queryable.
	var generatorURL string
	require.Eventually(t, func() bool {
		var alerts []struct {
			Labels       map[string]string `json:"labels"`
			Annotations  map[string]string `json:"annotations"`
			GeneratorURL string            `json:"generatorURL"`
		}
		rulerGetJSON(t, base+"/alertmanager/api/v2/alerts", &alerts)
		for _, al := range alerts {
			if al.Labels["alertname"] == "TooManyNodes" && al.Annotations["description"] == "The number of the nodes in the cluster increased" {
				generatorURL = al.GeneratorURL
				return true
			}
		}
		return false
	}, 15*time.Second, 100*time.Millisecond)
	// Absolute, as Prometheus's: this host's UI, for a receiver to follow.
	u, err := url.Parse(generatorURL)
	require.NoError(t, err)
	b, err := url.Parse(base)
	require.NoError(t, err)
	require.True(t, u.IsAbs(), generatorURL)
	require.Equal(t, b.Port(), u.Port(), generatorURL)
	require.Equal(t, "/graph", u.Path, generatorURL)
	require.Equal(t, "count(kube_node_info) > 0", u.Query().Get("g0.expr"))
	require.Eventually(t, func() bool {
		r := instantQuery(t, base, `ALERTS{alertname="TooManyNodes",alertstate="firing"}`)
		return len(r.Data.Result) == 1
	}, 10*time.Second, 100*time.Millisecond)

	// An invalid rule file is refused on reload, naming file, line, group
	// and rule; the old rules keep running.
	require.NoError(t, os.WriteFile(rulesFile, []byte(strings.Replace(tutorialRulesFor("> 0", "3s")+derived, "count(kube_node_info) < 1", "count(kube_node_info <", 1)), 0o644))
	resp, err = http.Post(base+"/-/reload", "", nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Contains(t, string(body), rulesFile+": 14:11: group \"nodes\", rule 2, \"TooFewNodes\": could not parse expression")
	var r alertsResp
	rulerGetJSON(t, base+"/api/v1/alerts", &r)
	require.Len(t, r.Data.Alerts, 2, "the old rules keep running")
	for _, al := range r.Data.Alerts {
		require.Equal(t, "firing", al.State)
	}
}

// TestRulersShareRulesAcrossProcesses runs three processes with a ruler
// each, peers of one raft cluster over TCP: a rule group posted to a
// follower's HTTP API is committed, evaluated by the leader, and the
// follower's /api/v1/rules answers with the leader's live state.
func TestRulersShareRulesAcrossProcesses(t *testing.T) {
	var raftAddrs []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		raftAddrs = append(raftAddrs, l.Addr().String())
		l.Close()
	}
	var apps []*App
	for i := range 3 {
		dir := t.TempDir()
		cfg, err := Load([]string{
			"-server.http-listen=127.0.0.1:0",
			"-server.grpc-listen=127.0.0.1:0",
			"-storage.path=" + dir,
			"-ruler.raft-bind=" + raftAddrs[i],
			"-ruler.peers=" + strings.Join(raftAddrs, ","),
			"-ruler.evaluation-interval=1s",
		})
		require.NoError(t, err)
		a := runApp(t, cfg)
		apps = append(apps, a)
	}
	mode := func(a *App) string {
		var st struct {
			Data struct {
				Mode string `json:"mode"`
			} `json:"data"`
		}
		if rulerGetJSON(t, "http://"+a.HTTPAddr()+"/api/v1/status/ruler", &st) != http.StatusOK {
			return ""
		}
		return st.Data.Mode
	}
	var leader, follower *App
	require.Eventually(t, func() bool {
		leader, follower = nil, nil
		for _, a := range apps {
			switch mode(a) {
			case "leader":
				leader = a
			case "follower":
				follower = a
			}
		}
		return leader != nil && follower != nil
	}, 30*time.Second, 50*time.Millisecond)

	group := "name: shared\ninterval: 1s\nrules:\n- alert: Always\n  expr: vector(1)\n  labels:\n    severity: notify\n"
	require.Eventually(t, func() bool {
		resp, err := http.Post("http://"+follower.HTTPAddr()+"/api/v1/rules/team-a", "application/yaml", strings.NewReader(group))
		require.NoError(t, err)
		resp.Body.Close()
		// 503 until the follower has learned the leader's HTTP address.
		return resp.StatusCode == http.StatusAccepted
	}, 10*time.Second, 50*time.Millisecond)

	type rulesResp struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				File  string `json:"file"`
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
					State  string `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	for _, a := range apps {
		require.Eventually(t, func() bool {
			var r rulesResp
			if rulerGetJSON(t, "http://"+a.HTTPAddr()+"/api/v1/rules", &r) != http.StatusOK || len(r.Data.Groups) != 1 {
				return false
			}
			g := r.Data.Groups[0]
			return g.Name == "shared" && g.File == "api:team-a" && g.Rules[0].Health == "ok" && g.Rules[0].State == "firing"
		}, 20*time.Second, 100*time.Millisecond, "rules seen through %s", a.HTTPAddr())
	}
	resp, err := http.Get("http://" + follower.HTTPAddr() + "/api/v1/rules/team-a")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "team-a:\n  - name: shared")
}
