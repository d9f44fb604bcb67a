//go:build e2e

package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fullTopology is the cluster: 3 ingesters (zones a, b, c, RF=3),
// 2 distributor+querier fronts, 3 scrapers, 3 rulers, 3 notifiers, the
// exporters and the fake Slack.
func fullTopology(t *testing.T) topology {
	return topology{scrapers: 3, exporters: 6, rulers: 3, notifiers: 3, rules: tutorialRules(t, "alerts.yml")}
}

// TestTutorial replays the tutorial end to end on 16 hosts. Shortened for
// the test: scrape and evaluation every 2s (tutorial: 1m), `for` 20s
// (tutorial: 15m, then 1m), group_interval 15s (tutorial: 5m) so the
// resolve arrives within the test; group_wait stays the tutorial's 10s.
func TestTutorial(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fullTopology(t))
	tl := newTimeline(t)

	tl.step("exporters serve kube_node_info for 3 nodes; waiting for count(kube_node_info) = 3 on both queriers")
	for _, q := range c.fronts {
		require.Eventually(t, func() bool { return instantValue(q.http, "count(kube_node_info)") == "3" },
			60*time.Second, 200*time.Millisecond, "count(kube_node_info) through %s", q.name)
	}
	tl.step("count(kube_node_info) = 3 through %s and %s", c.fronts[0].name, c.fronts[1].name)

	leader := c.leader(c.rulers, 30*time.Second)
	tl.step("ruler leader: %s", leader.name)
	type rulesResp struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
					State  string `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	for _, r := range c.rulers {
		require.Eventually(t, func() bool {
			var rr rulesResp
			if getJSON(r.http+"/api/v1/rules", &rr) != http.StatusOK || len(rr.Data.Groups) != 1 || len(rr.Data.Groups[0].Rules) != 2 {
				return false
			}
			g := rr.Data.Groups[0]
			return g.Name == "nodes" && g.Rules[0].Name == "TooManyNodes" && g.Rules[0].Health == "ok" && g.Rules[0].State == "inactive"
		}, 30*time.Second, 200*time.Millisecond, "tutorial rules through %s", r.name)
	}
	tl.step("the tutorial's rules loaded; TooManyNodes (> 3) evaluated and inactive, seen through all 3 rulers")

	c.setRules(t, tutorialRules(t, "alerts-firing.yml"))
	reloaded := time.Now()
	tl.step("rules changed to `> 0`, for: %s; reloaded on every ruler", alertFor)

	var pendingAt, firingAt, activeAt time.Time
	require.Eventually(t, func() bool {
		st, act := alertState(c.rulers[0], "TooManyNodes")
		if st == "pending" && pendingAt.IsZero() {
			pendingAt, activeAt = time.Now(), act
		}
		if st == "firing" {
			firingAt = time.Now()
			if activeAt.IsZero() {
				activeAt = act
			}
		}
		return st == "firing"
	}, alertFor+30*time.Second, 100*time.Millisecond)
	require.False(t, pendingAt.IsZero(), "TooManyNodes went firing without being seen pending")
	tl.step("TooManyNodes pending %.1fs after the reload, firing %.1fs after activeAt (for: %s)",
		pendingAt.Sub(reloaded).Seconds(), firingAt.Sub(activeAt).Seconds(), alertFor)
	require.InDelta(t, alertFor.Seconds(), firingAt.Sub(activeAt).Seconds(), (2*ruleInterval).Seconds()+1,
		"firing should come `for` after activeAt")

	require.Eventually(t, func() bool { return c.slackCount()["Cluster increased/firing"] >= 1 },
		groupWait+4*notifierPeerTimeout+20*time.Second, 200*time.Millisecond)
	first := c.slackDeliveries()[0]
	tl.step("Slack: %q %s, %.1fs after firing (group_wait %s)", first.title(), first.status(), first.At.Sub(firingAt).Seconds(), groupWait)
	// Every notifier got the alert; all but one must stand down.
	c.requireSlackStays(map[string]int{"Cluster increased/firing": 1}, groupInterval+3*notifierPeerTimeout)
	tl.step("after %s more: still exactly one Slack message", groupInterval+3*notifierPeerTimeout)

	c.setRules(t, tutorialRules(t, "alerts.yml"))
	resolvedAt := time.Now()
	tl.step("condition removed (back to `> 3`); reloaded")
	require.Eventually(t, func() bool {
		st, _ := alertState(c.rulers[0], "TooManyNodes")
		return st == "inactive"
	}, 3*ruleInterval+10*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return c.slackCount()["Cluster increased/resolved"] >= 1 },
		groupInterval+4*notifierPeerTimeout+20*time.Second, 200*time.Millisecond)
	tl.step("Slack: resolved message %.1fs after the change (group_interval %s)", time.Since(resolvedAt).Seconds(), groupInterval)
	c.requireSlackStays(map[string]int{"Cluster increased/firing": 1, "Cluster increased/resolved": 1}, groupInterval+3*notifierPeerTimeout)
	tl.step("done: one firing and one resolved Slack message, nothing else")
}
