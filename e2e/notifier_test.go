//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitNotifierMembers waits until each given notifier sees the given
// number of members in its gossip cluster.
func (c *cluster) waitNotifierMembers(want map[*proc]int, within time.Duration) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		for p, n := range want {
			if v, ok := metric(p, "alertmanager_cluster_members"); !ok || int(v) != n {
				return false
			}
		}
		return true
	}, within, 200*time.Millisecond, "notifier cluster membership not %v", want)
}

func (c *cluster) allNotifiers(n int) map[*proc]int {
	m := map[*proc]int{}
	for _, p := range c.nots {
		m[p] = n
	}
	return m
}

// TestNotifierPartition splits the notifier cluster, then isolates the
// replica that would send. Alertmanager's promise is at least once: while
// split, each side notifies on its own (one duplicate per extra side is
// allowed); after healing nothing is re-sent and the resolve goes out
// once; a notifier cut off from everyone, rulers included, loses nothing,
// the others send in its place. Timing as in TestTutorial.
func TestNotifierPartition(t *testing.T) {
	t.Parallel()
	c := newCluster(t, topology{scrapers: 1, rulers: 3, notifiers: 3, rules: tutorialRules(t, "alerts.yml")})
	tl := newTimeline(t)
	c.waitNotifierMembers(c.allNotifiers(3), 30*time.Second)
	n1, n2, n3 := c.nots[0], c.nots[1], c.nots[2]

	n3.host.partition(n1.host, n2.host)
	c.waitNotifierMembers(map[*proc]int{n1: 2, n2: 2, n3: 1}, 60*time.Second)
	tl.step("%s cut off from %s and %s, and each side knows it (the rulers still reach all three)", n3.name, n1.name, n2.name)

	c.setRules(t, tutorialRules(t, "alerts-firing.yml"))
	changed := time.Now()
	tl.step("rules changed to `> 0`: TooManyNodes will fire after %s", alertFor)
	require.Eventually(t, func() bool { return c.slackCount()["Cluster increased/firing"] >= 1 },
		alertFor+groupWait+4*notifierPeerTimeout+30*time.Second, 200*time.Millisecond, "firing notification lost")
	first := time.Now()
	// Give the second side time to send too; more than one per side is a bug.
	require.Never(t, func() bool { return c.slackCount()["Cluster increased/firing"] > 2 },
		groupInterval+3*notifierPeerTimeout, 250*time.Millisecond, "more than one firing message per side")
	split := c.slackCount()["Cluster increased/firing"]
	tl.step("while split: %d firing message(s) (allowed: 1 or 2, one per side), the first %.1fs after the rule change", split, first.Sub(changed).Seconds())

	n3.host.heal()
	healed := time.Now()
	c.waitNotifierMembers(c.allNotifiers(3), 60*time.Second)
	tl.step("healed; the three notifiers see each other again after %.1fs", time.Since(healed).Seconds())
	c.requireSlackStays(map[string]int{"Cluster increased/firing": split}, groupInterval+3*notifierPeerTimeout)
	tl.step("after healing: nothing re-sent (nflogs merged)")

	c.setRules(t, tutorialRules(t, "alerts.yml"))
	require.Eventually(t, func() bool { return c.slackCount()["Cluster increased/resolved"] >= 1 },
		groupInterval+4*notifierPeerTimeout+20*time.Second, 200*time.Millisecond, "resolved notification lost")
	c.requireSlackStays(map[string]int{"Cluster increased/firing": split, "Cluster increased/resolved": 1}, groupInterval+3*notifierPeerTimeout)
	tl.step("condition removed: exactly one resolved message")

	// The notifier at position 0 sends first; isolate it from every host.
	var sender *proc
	require.Eventually(t, func() bool {
		for _, p := range c.nots {
			if v, ok := metric(p, "alertmanager_peer_position"); ok && v == 0 {
				sender = p
				return true
			}
		}
		return false
	}, 10*time.Second, 200*time.Millisecond)
	var rest []*host
	for _, h := range c.net.hosts {
		if h != sender.host {
			rest = append(rest, h)
		}
	}
	sender.host.partition(rest...)
	tl.step("%s (peer position 0, the one that sends) cut off from all %d other hosts", sender.name, len(rest))
	c.setRules(t, tutorialRules(t, "alerts-firing.yml"))
	require.Eventually(t, func() bool { return c.slackCount()["Cluster increased/firing"] > split },
		alertFor+groupWait+4*notifierPeerTimeout+30*time.Second, 200*time.Millisecond, "firing notification lost with the sender isolated")
	again := c.slackCount()["Cluster increased/firing"] - split
	c.requireSlackStays(map[string]int{"Cluster increased/firing": split + again, "Cluster increased/resolved": 1}, groupInterval+3*notifierPeerTimeout)
	tl.step("with %s isolated: %d firing message from the others (none lost)", sender.name, again)
	require.Equal(t, 1, again, "the two connected notifiers must send once between them")
}
