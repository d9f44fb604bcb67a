//go:build e2e

package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// others is ps without p.
func others(ps []*proc, p *proc) []*proc {
	return slices.DeleteFunc(slices.Clone(ps), func(q *proc) bool { return q == p })
}

// requireNotifiersHold asserts, for a window, that every notifier holds
// TooManyNodes active with the given startsAt: no gap in the alert (it
// would expire and resolve) and no restart of it (a new startsAt).
func (c *cluster) requireNotifiersHold(startsAt time.Time, window time.Duration) {
	c.t.Helper()
	broken := func() string {
		for _, n := range c.nots {
			as, ok := notifierAlerts(n)
			if !ok {
				continue // a notifier that does not answer is another scenario's fault
			}
			found := false
			for _, a := range as {
				if a.Labels["alertname"] != "TooManyNodes" {
					continue
				}
				found = true
				if a.Status.State != "active" || !a.StartsAt.Equal(startsAt) {
					return n.name + ": " + a.Status.State + " since " + a.StartsAt.String()
				}
			}
			if !found {
				return n.name + ": alert gone"
			}
		}
		return ""
	}
	// The condition is checked once a tick for the whole window: holding
	// is a property of the window, not an event to wait for.
	var why string
	if !assert.Never(c.t, func() bool { why = broken(); return why != "" }, window, 250*time.Millisecond) {
		c.t.Fatalf("notifiers lost or restarted the alert (startsAt %s): %s", startsAt, why)
	}
}

// TestRulerLeaderFrozen freezes the raft leader with SIGSTOP twice: while
// TooManyNodes is pending, and while it fires. Expected, as in the ruler
// issue: one new leader each time; the alert fires at the original
// activeAt + for (± one evaluation), keeps its startsAt, never lapses in
// the notifiers, and Slack gets exactly one firing and one resolved
// message. The frozen leader, thawed, rejoins as a follower and sends
// nothing. Timing as in TestTutorial (evaluation 2s, for 20s, resend 5s).
func TestRulerLeaderFrozen(t *testing.T) {
	t.Parallel()
	c := newCluster(t, topology{scrapers: 1, rulers: 3, notifiers: 3, rules: tutorialRules(t, "alerts-firing.yml")})
	tl := newTimeline(t)

	l1 := c.leader(c.rulers, 30*time.Second)
	var activeAt time.Time
	require.Eventually(t, func() bool {
		st, act := alertState(l1, "TooManyNodes")
		activeAt = act
		return st == "pending"
	}, 60*time.Second, 100*time.Millisecond)
	tl.step("leader %s: TooManyNodes pending since %s", l1.name, activeAt.Format(time.TimeOnly))

	require.Eventually(t, func() bool { return time.Since(activeAt) > alertFor*2/5 }, alertFor, 50*time.Millisecond)
	l1.pause()
	tl.step("SIGSTOP %s, %.1fs into `for`", l1.name, time.Since(activeAt).Seconds())
	l2 := c.leader(others(c.rulers, l1), 30*time.Second)
	tl.step("new leader: %s", l2.name)

	var firedAt time.Time
	require.Eventually(t, func() bool {
		st, act := alertState(l2, "TooManyNodes")
		if st == "pending" || st == "firing" {
			require.True(t, act.Equal(activeAt), "the new leader restarted `for`: activeAt %s, was %s", act, activeAt)
		}
		firedAt = time.Now()
		return st == "firing"
	}, alertFor+20*time.Second, 100*time.Millisecond)
	late := firedAt.Sub(activeAt.Add(alertFor))
	tl.step("firing %.1fs after activeAt + for", late.Seconds())
	require.Less(t, late, ruleInterval+time.Second, "the new leader fired late: `for` progress lost")
	require.Greater(t, late, -time.Second, "fired before activeAt + for")

	require.Eventually(t, func() bool { return c.slackCount()["Cluster increased/firing"] == 1 },
		groupWait+4*notifierPeerTimeout+20*time.Second, 200*time.Millisecond)
	tl.step("Slack: one firing message")

	l1.resume()
	tl.step("SIGCONT %s", l1.name)
	require.Equal(t, l2, c.leader(c.rulers, 30*time.Second), "the thawed leader must not take over")
	tl.step("%s is a follower; %s still leads", l1.name, l2.name)

	var startsAt time.Time
	require.Eventually(t, func() bool {
		as, _ := notifierAlerts(c.nots[0])
		for _, a := range as {
			if a.Labels["alertname"] == "TooManyNodes" {
				startsAt = a.StartsAt
				return true
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond)

	l2.pause()
	tl.step("SIGSTOP %s while firing", l2.name)
	l3 := c.leader(others(c.rulers, l2), 30*time.Second)
	tl.step("new leader: %s", l3.name)
	// The alert is valid in the notifiers for 4 x resend delay after a
	// send; a failover that lost it, or one that re-fired it as new,
	// shows within this window.
	window := 4*resendDelay + groupInterval
	c.requireNotifiersHold(startsAt, window)
	st, act := alertState(l3, "TooManyNodes")
	require.Equal(t, "firing", st)
	require.True(t, act.Equal(activeAt), "activeAt changed across failover: %s, was %s", act, activeAt)
	c.requireSlackStays(map[string]int{"Cluster increased/firing": 1}, time.Second)
	tl.step("for %s after the freeze: every notifier held the alert with startsAt %s; no new Slack message", window, startsAt.Format(time.TimeOnly))

	l2.resume()
	tl.step("SIGCONT %s", l2.name)
	require.Equal(t, l3, c.leader(c.rulers, 30*time.Second))

	c.setRules(t, tutorialRules(t, "alerts.yml"))
	tl.step("condition removed; reloaded on every ruler")
	require.Eventually(t, func() bool { return c.slackCount()["Cluster increased/resolved"] == 1 },
		groupInterval+4*notifierPeerTimeout+20*time.Second, 200*time.Millisecond)
	c.requireSlackStays(map[string]int{"Cluster increased/firing": 1, "Cluster increased/resolved": 1}, groupInterval+3*notifierPeerTimeout)
	tl.step("Slack: exactly one firing and one resolved message over two failovers")
}

// TestRulerLeaderPartitioned cuts the firing leader's host off from the
// other two rulers with iptables, while it still reaches the notifiers and
// the ingesters: the case a freeze does not cover, since a partitioned
// leader can still send. Raft makes the ruler CP: it must stop evaluating
// within its lease, one of the others takes over from the replicated
// state, the notifiers keep the alert with its startsAt, and Slack hears
// nothing new. After healing there is still one leader, and the resolve
// goes out once.
func TestRulerLeaderPartitioned(t *testing.T) {
	t.Parallel()
	c := newCluster(t, topology{scrapers: 1, rulers: 3, notifiers: 3, rules: tutorialRules(t, "alerts-firing.yml")})
	tl := newTimeline(t)
	l1 := c.leader(c.rulers, 30*time.Second)
	require.Eventually(t, func() bool { return c.slackCount()["Cluster increased/firing"] == 1 },
		alertFor+groupWait+4*notifierPeerTimeout+30*time.Second, 200*time.Millisecond)
	var startsAt time.Time
	require.Eventually(t, func() bool {
		as, _ := notifierAlerts(c.nots[0])
		for _, a := range as {
			if a.Labels["alertname"] == "TooManyNodes" {
				startsAt = a.StartsAt
				return true
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond)
	tl.step("leader %s: TooManyNodes firing, one Slack message", l1.name)

	var peers []*host
	for _, r := range others(c.rulers, l1) {
		peers = append(peers, r.host)
	}
	l1.host.partition(peers...)
	cut := time.Now()
	tl.step("%s cut off from the other rulers (it still reaches notifiers and ingesters)", l1.name)
	require.Eventually(t, func() bool {
		v, ok := metric(l1, "pharos_ruler_evaluating")
		return ok && v == 0 && rulerMode(l1) != "leader"
	}, 10*time.Second, 20*time.Millisecond, "the cut-off leader keeps evaluating")
	tl.step("%s stopped evaluating %.2fs after the cut (mode %q)", l1.name, time.Since(cut).Seconds(), rulerMode(l1))
	l2 := c.leader(others(c.rulers, l1), 30*time.Second)
	tl.step("new leader: %s, %.1fs after the cut", l2.name, time.Since(cut).Seconds())
	evals, _ := metric(l1, "pharos_ruler_group_evaluations_total")

	window := 4*resendDelay + groupInterval
	c.requireNotifiersHold(startsAt, window)
	c.requireSlackStays(map[string]int{"Cluster increased/firing": 1}, time.Second)
	after, _ := metric(l1, "pharos_ruler_group_evaluations_total")
	require.Equal(t, evals, after, "the cut-off ruler evaluated while partitioned")
	tl.step("for %s: %s evaluated nothing, the notifiers held the alert, no new Slack message", window, l1.name)

	l1.host.heal()
	tl.step("healed")
	require.Equal(t, l2, c.leader(c.rulers, 30*time.Second), "leadership moved back on healing")
	c.setRules(t, tutorialRules(t, "alerts.yml"))
	require.Eventually(t, func() bool { return c.slackCount()["Cluster increased/resolved"] == 1 },
		groupInterval+4*notifierPeerTimeout+20*time.Second, 200*time.Millisecond)
	c.requireSlackStays(map[string]int{"Cluster increased/firing": 1, "Cluster increased/resolved": 1}, groupInterval+3*notifierPeerTimeout)
	tl.step("%s still leads; condition removed: exactly one resolved message", l2.name)
}
