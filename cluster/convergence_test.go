package cluster

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster/gossip"
	"github.com/pharos-tsdb/pharos/cluster/ring"
)

const gossipInterval = 20 * time.Millisecond

// member is one process of an in-process cluster: gossip, lifecycler, ring.
type member struct {
	id   string
	kv   *gossip.KV
	lc   *Lifecycler
	ring *Ring

	cancelLC, cancelKV context.CancelFunc
	lcDone, kvDone     chan error
	stopOnce           sync.Once
}

func startMember(t *testing.T, id string, unregister bool, join ...string) *member {
	t.Helper()
	var gc gossip.Config
	gc.RegisterFlags(flag.NewFlagSet(id, flag.PanicOnError))
	gc.Bind = "127.0.0.1:0"
	gc.NodeName = id
	gc.Join = join
	gc.GossipInterval = gossipInterval
	gc.PushPullInterval = 500 * time.Millisecond
	gc.ProbeInterval = 200 * time.Millisecond
	gc.ProbeTimeout = 100 * time.Millisecond
	gc.JoinRetryInterval = 50 * time.Millisecond
	gc.LeaveTimeout = 2 * time.Second
	logger := slog.New(slog.DiscardHandler)
	kv, err := gossip.New(gc, logger, prometheus.NewRegistry())
	require.NoError(t, err)

	rc := testRingConfig(id)
	rc.Heartbeat = 200 * time.Millisecond
	rc.HeartbeatTimeout = 10 * time.Second
	rc.UnregisterOnShutdown = unregister
	m := &member{id: id, kv: kv, lcDone: make(chan error, 1), kvDone: make(chan error, 1)}
	m.lc, err = NewLifecycler(rc, kv, "", logger, prometheus.NewRegistry())
	require.NoError(t, err)
	m.ring, err = NewRing(rc, kv, prometheus.NewRegistry())
	require.NoError(t, err)

	var kvCtx, lcCtx context.Context
	kvCtx, m.cancelKV = context.WithCancel(context.Background())
	lcCtx, m.cancelLC = context.WithCancel(context.Background())
	go func() { m.kvDone <- kv.Run(kvCtx) }()
	<-kv.Joined()
	go func() { m.lcDone <- m.lc.Run(lcCtx) }()
	<-m.lc.Active()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// stop shuts the member down in the order a process does: lifecycler
// first (its LEAVING and tombstone go out), then gossip.
// It may run on any goroutine, so it reports with t.Errorf, not require.
func (m *member) stop(t *testing.T) {
	m.stopOnce.Do(func() {
		m.cancelLC()
		if err := <-m.lcDone; err != nil {
			t.Errorf("%s: lifecycler: %v", m.id, err)
		}
		m.cancelKV()
		if err := <-m.kvDone; err != nil {
			t.Errorf("%s: gossip: %v", m.id, err)
		}
		if err := m.kv.Close(); err != nil {
			t.Errorf("%s: close gossip: %v", m.id, err)
		}
	})
}

// shape is the part of a view that must converge; heartbeat timestamps
// keep moving, so they are left out.
func shape(d *ring.Desc) map[string]string {
	out := map[string]string{}
	for id, in := range d.Instances {
		out[id] = fmt.Sprintf("%s %s %v", in.State, in.Addr, in.Tokens)
	}
	return out
}

// converged reports whether every member sees the same ring and that ring
// matches want (id → state).
func converged(members []*member, want map[string]ring.State) bool {
	var ref map[string]string
	for _, m := range members {
		d := m.kv.Get()
		if d.Len() != len(want) {
			return false
		}
		for id, st := range want {
			in, ok := d.Get(id)
			if !ok || in.State != st {
				return false
			}
		}
		s := shape(d)
		if ref == nil {
			ref = s
		} else if !maps.Equal(ref, s) {
			return false
		}
	}
	return true
}

// TestRingConvergence is the Cluster issue's acceptance 4: ten members join,
// three leave, and every member's view converges within a bounded number of
// gossip rounds.
func TestRingConvergence(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ten gossip members")
	}
	// Bound: generous for -race on a loaded two-core machine; the log
	// reports how many rounds it really took.
	const maxRounds = 1500
	bound := maxRounds * gossipInterval

	var members []*member
	for i := range 10 {
		var join []string
		if i > 0 {
			// Join a random earlier member, not always the first: the
			// descriptor must spread through the mesh, not a hub.
			join = []string{members[(i*7)%i].kv.LocalAddr()}
		}
		// Members 7 and 8 will unregister on leaving; 9 keeps its entry.
		members = append(members, startMember(t, fmt.Sprintf("ing-%d", i), i != 9, join...))
	}
	start := time.Now()
	want := map[string]ring.State{}
	for _, m := range members {
		want[m.id] = ring.StateActive
	}
	require.Eventually(t, func() bool { return converged(members, want) }, bound, gossipInterval/2)
	t.Logf("10 joined: converged after %v (%.0f gossip rounds)", time.Since(start), float64(time.Since(start))/float64(gossipInterval))

	// Every member places keys identically once converged.
	for k := uint32(0); k < 1<<32-1<<28; k += 1 << 28 {
		var ref []string
		for _, m := range members {
			rs, err := m.ring.Get(k, ring.Write)
			require.NoError(t, err)
			got := make([]string, len(rs.Instances))
			for i, in := range rs.Instances {
				got[i] = in.ID
			}
			if ref == nil {
				ref = got
			}
			require.Equal(t, ref, got)
		}
	}

	leaving, staying := members[7:], members[:7]
	stopStart := time.Now()
	var wg sync.WaitGroup
	for _, m := range leaving {
		wg.Go(func() { m.stop(t) })
	}
	wg.Wait()
	// Counted from the end of shutdown, though the leave usually spreads
	// while Close waits for the queue to drain.
	start = time.Now()
	want["ing-7"], want["ing-8"], want["ing-9"] = ring.StateLeft, ring.StateLeft, ring.StateLeaving
	require.Eventually(t, func() bool { return converged(staying, want) }, bound, gossipInterval/2)
	t.Logf("3 left: converged %v after shutdown returned, %v (%.0f gossip rounds) after it began",
		time.Since(start), time.Since(stopStart), float64(time.Since(stopStart))/float64(gossipInterval))

	require.Eventually(t, func() bool {
		for _, m := range staying {
			if m.kv.NumMembers() != len(staying) {
				return false
			}
		}
		return true
	}, bound, gossipInterval/2, "memberlist membership")
	for _, m := range staying {
		ids := []string{}
		for _, in := range m.ring.Instances() {
			ids = append(ids, in.ID)
		}
		require.Equal(t, []string{"ing-0", "ing-1", "ing-2", "ing-3", "ing-4", "ing-5", "ing-6", "ing-9"}, ids)
		require.True(t, slices.IsSorted(ids))
	}
}
