//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Load for the ingester scenarios: two Prometheus-like senders, one per
// distributor, 100 series each, a batch every 100ms: 2000 samples/s.
const (
	loadSeries = 100
	loadEvery  = 100 * time.Millisecond
)

func startLoad(t *testing.T, c *cluster) []*writer {
	return []*writer{
		startWriter(t, "w1", c.fronts[0].http, loadSeries, loadEvery),
		startWriter(t, "w2", c.fronts[1].http, loadSeries, loadEvery),
	}
}

// waitAll waits until every writer has n more batches acknowledged than
// now.
func waitAll(t *testing.T, ws []*writer, n int, within time.Duration) {
	t.Helper()
	want := make([]int, len(ws))
	for i, w := range ws {
		want[i] = w.count() + n
	}
	require.Eventually(t, func() bool {
		for i, w := range ws {
			if w.count() < want[i] {
				return false
			}
		}
		return true
	}, within, 20*time.Millisecond, "fewer than %d more acknowledged writes in %s: %v", n, within, ws)
}

// stopLoad stops the writers and requires that nothing was refused for
// good and every acknowledged sample is read back exactly once through
// both queriers.
func stopLoad(t *testing.T, c *cluster, tl *timeline, ws []*writer) {
	t.Helper()
	for _, w := range ws {
		w.halt()
		w.requireNoDrops(t)
		tl.step("%s: %s", w.name, w.stats())
	}
	requireExactlyOnce(t, c.fronts, ws...)
}

// TestIngesterKill9UnderLoad: an ingester dies with kill -9 in the middle
// of writes and comes back from its WAL; later another one does. With
// RF=3 and a write quorum of 2, no acknowledged sample may be lost and no
// write may fail for good; the window written while one replica was down
// lives on the other two, so reads stay exact after the second crash too.
// Last, all three die at once: the senders retry through the outage, and
// every acknowledged sample comes back from the WALs.
func TestIngesterKill9UnderLoad(t *testing.T) {
	t.Parallel()
	c := newCluster(t, topology{})
	tl := newTimeline(t)
	ws := startLoad(t, c)
	waitAll(t, ws, 30, 30*time.Second)
	tl.step("load running: 2 writers x %d series every %s", loadSeries, loadEvery)

	c.ingesters[1].kill9()
	tl.step("kill -9 %s", c.ingesters[1].name)
	waitAll(t, ws, 50, 60*time.Second)
	tl.step("writes continue on the two others")
	requireExactlyOnce(t, c.fronts, ws...)
	tl.step("reads exact with %s down", c.ingesters[1].name)

	began := time.Now()
	c.ingesters[1].restart()
	tl.step("%s restarted, WAL replayed, ACTIVE and ready in %.1fs", c.ingesters[1].name, time.Since(began).Seconds())
	waitAll(t, ws, 30, 30*time.Second)

	c.ingesters[0].kill9()
	tl.step("kill -9 %s: the window %s missed now lives only on %s", c.ingesters[0].name, c.ingesters[1].name, c.ingesters[2].name)
	waitAll(t, ws, 30, 60*time.Second)
	requireExactlyOnce(t, c.fronts, ws...)
	tl.step("reads exact with %s down", c.ingesters[0].name)
	c.ingesters[0].restart()
	waitAll(t, ws, 30, 30*time.Second)
	tl.step("%s back", c.ingesters[0].name)

	// A power cut: every replica dies at once. Writes fail (no quorum) and
	// are retried by the senders until the ingesters are back; whatever was
	// acknowledged before is in their WALs.
	before := make([]int, len(ws))
	for i, w := range ws {
		before[i] = w.stats().Retries
	}
	for _, ing := range c.ingesters {
		ing.kill9()
	}
	cut := time.Now()
	tl.step("kill -9 all three ingesters at once")
	require.Eventually(t, func() bool { return ws[0].stats().Retries > before[0]+3 }, 30*time.Second, 50*time.Millisecond,
		"writes kept succeeding with every ingester dead")
	for _, ing := range c.ingesters {
		ing.startProc()
	}
	for _, ing := range c.ingesters {
		ing.waitReady()
	}
	tl.step("all three restarted and ready %.1fs after the cut", time.Since(cut).Seconds())
	waitAll(t, ws, 30, 60*time.Second)
	for i, w := range ws {
		s := w.stats()
		tl.step("%s: %d retries across the outage; longest wait for an acknowledgement %s", w.name, s.Retries-before[i], s.Slowest.Round(time.Millisecond))
	}

	stopLoad(t, c, tl, ws)
}
