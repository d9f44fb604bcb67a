package cluster

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

func TestNamespaceSeparatesRings(t *testing.T) {
	kv := NewMemKV()
	ingesters, scrapers := Namespace(kv, ""), Namespace(kv, "scraper")
	reg := prometheus.NewRegistry()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sw := scrapers.Watch(ctx)
	require.Equal(t, 0, (<-sw).Len())

	runLifecycler(t, newLifecycler(t, testRingConfig("ing-1"), ingesters, ""))
	scfg := testRingConfig("node-a")
	scfg.Name = "scraper"
	sl, err := NewLifecycler(scfg, scrapers, "", slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	runLifecycler(t, sl)

	// The shared descriptor holds both, the scraper under its prefix.
	_, ok := kv.Get().Get("scraper/node-a")
	require.True(t, ok)
	require.Equal(t, 2, kv.Get().Len())

	ir, err := NewRing(testRingConfig(""), ingesters, reg)
	require.NoError(t, err)
	sr, err := NewRing(scfg, scrapers, reg)
	require.NoError(t, err, "a named ring's metrics do not collide with the ingester ring's")
	require.Equal(t, []string{"ing-1"}, ids(ir.Instances()))
	require.Equal(t, []string{"node-a"}, ids(sr.Instances()))
	require.Same(t, scrapers.Get(), scrapers.Get(), "cached while unchanged")
	require.Equal(t, 1.0, gauge(t, reg, "pharos_scraper_ring_members", "ACTIVE"))
	require.Equal(t, 1.0, gauge(t, reg, "pharos_ring_members", "ACTIVE"))

	// The scraper's watch saw its own registration but not the ingester's.
	require.Eventually(t, func() bool {
		select {
		case d := <-sw:
			_, ok := d.Get("node-a")
			return ok && d.Len() == 1
		default:
			return false
		}
	}, 5*time.Second, time.Millisecond)

	// An ingester heartbeat is not a scraper ring change.
	kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{"ing-2": {ID: "ing-2", State: ring.StateActive, Timestamp: time.Now().UnixMilli()}}})
	select {
	case d := <-sw:
		_, ok := d.Get("node-a")
		require.True(t, ok, "only scraper changes are delivered")
		require.Equal(t, 1, d.Len())
	default:
	}
	cancel()
	require.Eventually(t, func() bool {
		for range sw {
		}
		return true
	}, 5*time.Second, time.Millisecond, "watch closes with its context")
}

func ids(ins []ring.Instance) []string {
	out := make([]string, len(ins))
	for i := range ins {
		out[i] = ins[i].ID
	}
	return out
}
