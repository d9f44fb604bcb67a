//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitHeadPast waits until ingester p's TSDB head holds a sample newer
// than t: it is receiving writes again.
func waitHeadPast(tb *testing.T, p *proc, t time.Time, within time.Duration) {
	tb.Helper()
	require.Eventually(tb, func() bool {
		v, ok := metric(p, "prometheus_tsdb_head_max_time")
		return ok && int64(v) > t.UnixMilli()
	}, within, 100*time.Millisecond, "%s receives no new samples", p.name)
}

// requireStallBounded reports how long writes were slowed after a fault
// at t, and requires that they ran at full speed again within limit.
//
// A silent ingester (partitioned, not crashed) holds every push until the
// distributor's remote_timeout (5s), because the distributor waits for all
// replicas, not just a quorum; that lasts until the ring marks it
// unhealthy (ring.heartbeat_timeout, 6s here, 1m by default).
func requireStallBounded(t *testing.T, tl *timeline, ws []*writer, fault time.Time, limit time.Duration) {
	t.Helper()
	for _, w := range ws {
		n, until := w.slowSince(fault.Add(-time.Second))
		tl.step("%s: %d batches took over %s to acknowledge, the last ending %.1fs after the fault", w.name, n, slowAckAt, until.Seconds())
		require.Less(t, until, limit, "%s: writes slow for too long", w.name)
	}
}

// waitCaughtUp waits until ingester p holds the latest batches of every
// writer, acknowledged after t: each distributor has seen it healthy
// again (they learn it by gossip, each at its own moment). It returns
// when that was first seen.
func waitCaughtUp(tb *testing.T, p *proc, ws []*writer, t time.Time, within time.Duration) time.Time {
	tb.Helper()
	var at time.Time
	require.Eventually(tb, func() bool {
		for _, w := range ws {
			recent := ackedAfter(w.ackedSnapshot(), t)
			if len(recent) < 3 {
				return false
			}
			problems, err := ingesterHolds(tb.Context(), p, w, recent[len(recent)-3:])
			if err != nil || len(problems) > 0 {
				return false
			}
		}
		at = time.Now()
		return true
	}, within, 200*time.Millisecond, "%s does not receive every writer's batches", p.name)
	return at
}

// ackedAfter is the acknowledged timestamps after t.
func ackedAfter(acked []int64, t time.Time) []int64 {
	for i, ts := range acked {
		if ts > t.UnixMilli() {
			return acked[i:]
		}
	}
	return nil
}

// TestZoneOutage cuts zone b (its ingester) off from every other host with
// iptables, under load: writes and reads go on (quorum 2 of 3, reads
// tolerate one replica missing). After healing, zone b takes new writes
// again. Then its link goes down (ip link set eth0 down) and comes back,
// the same again. Zone b's own TSDB, read directly over gRPC, must hold
// every sample acknowledged since each recovery: it caught up. (Reading
// zone b alone through a querier is refused by design: reads need a
// quorum of replicas, as writes only promise one.)
func TestZoneOutage(t *testing.T) {
	t.Parallel()
	c := newCluster(t, topology{})
	tl := newTimeline(t)
	ingB := c.ingesters[1]
	ws := startLoad(t, c)
	waitAll(t, ws, 20, 30*time.Second)
	tl.step("load running")

	var rest []*host
	for _, h := range c.net.hosts {
		if h != ingB.host {
			rest = append(rest, h)
		}
	}
	ingB.host.partition(rest...)
	cut := time.Now()
	tl.step("zone b partitioned (iptables DROP both ways between %s and the other %d hosts)", ingB.name, len(rest))
	waitAll(t, ws, 50, 90*time.Second)
	tl.step("writes continue: 50 more batches each in %.1fs", time.Since(cut).Seconds())
	requireStallBounded(t, tl, ws, cut, ingesterHBTimeout+15*time.Second)
	began := time.Now()
	requireExactlyOnce(t, c.fronts, ws...)
	tl.step("reads exact during the partition (%.1fs for 4 checks)", time.Since(began).Seconds())

	ingB.host.heal()
	healed := time.Now()
	tl.step("partition healed")
	waitHeadPast(t, ingB, healed, 60*time.Second)
	tl.step("%s receives writes again %.1fs after healing", ingB.name, time.Since(healed).Seconds())
	caughtUp := waitCaughtUp(t, ingB, ws, healed, 60*time.Second)
	tl.step("%s receives every writer's batches %.1fs after healing", ingB.name, caughtUp.Sub(healed).Seconds())
	waitAll(t, ws, 30, 30*time.Second)

	ingB.host.linkDown()
	down := time.Now()
	tl.step("%s: link down", ingB.name)
	waitAll(t, ws, 50, 90*time.Second)
	tl.step("writes continue: 50 more batches each in %.1fs", time.Since(down).Seconds())
	requireStallBounded(t, tl, ws, down, ingesterHBTimeout+15*time.Second)
	requireExactlyOnce(t, c.fronts, ws...)
	tl.step("reads exact with the link down")
	ingB.host.linkUp()
	up := time.Now()
	waitHeadPast(t, ingB, up, 60*time.Second)
	tl.step("link up; %s receives writes again %.1fs later", ingB.name, time.Since(up).Seconds())
	upCaught := waitCaughtUp(t, ingB, ws, up, 60*time.Second)
	tl.step("%s receives every writer's batches %.1fs after the link came up", ingB.name, upCaught.Sub(up).Seconds())
	waitAll(t, ws, 30, 30*time.Second)
	stopLoad(t, c, tl, ws)

	// Zone b's own TSDB, asked directly: every batch acknowledged since it
	// healed (and since its link came back) is there, once.
	for _, w := range ws {
		acked := w.ackedSnapshot()
		for _, window := range []struct {
			name     string
			from, to time.Time
		}{{"after the partition healed", caughtUp, down}, {"after the link came up", upCaught, time.Now()}} {
			var in []int64
			for _, ts := range ackedAfter(acked, window.from) {
				if ts <= window.to.UnixMilli() {
					in = append(in, ts)
				}
			}
			require.NotEmpty(t, in)
			problems, err := ingesterHolds(t.Context(), ingB, w, in)
			require.NoError(t, err)
			require.Empty(t, problems, "%s %s: zone b's own data", w.name, window.name)
			tl.step("%s: the %d batches acknowledged %s are all in %s's own TSDB", w.name, len(in), window.name, ingB.name)
		}
	}
}
