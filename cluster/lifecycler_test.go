package cluster

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

func testRingConfig(id string) Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("t", flag.PanicOnError))
	c.InstanceID = id
	c.InstanceAddr = id + ":9095"
	c.Tokens = 16
	c.Heartbeat = 10 * time.Millisecond
	c.HeartbeatTimeout = time.Second
	return c
}

func TestConfig(t *testing.T) {
	c := testRingConfig("a")
	require.NoError(t, c.validateInstance())
	require.Equal(t, 3, c.ReplicationFactor)
	require.True(t, c.UnregisterOnShutdown)
	require.Equal(t, 10*time.Second, c.autoForgetAfter())
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"rf", func(c *Config) { c.ReplicationFactor = 0 }},
		{"tokens", func(c *Config) { c.Tokens = 0 }},
		{"heartbeat", func(c *Config) { c.Heartbeat = 0 }},
		{"timeout below heartbeat", func(c *Config) { c.HeartbeatTimeout = c.Heartbeat }},
		{"forget below timeout", func(c *Config) { c.AutoForgetAfter = c.HeartbeatTimeout }},
		{"no id", func(c *Config) { c.InstanceID = "" }},
		{"no addr", func(c *Config) { c.InstanceAddr = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := c
			tc.mod(&bad)
			require.Error(t, bad.validateInstance())
		})
	}
}

// runLifecycler starts l and returns a function that stops it and waits.
func runLifecycler(t *testing.T, l *Lifecycler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)
	select {
	case <-l.Active():
	case err := <-done:
		t.Fatalf("lifecycler ended: %v", err)
	}
	return stop
}

func newLifecycler(t *testing.T, cfg Config, kv KV, tokensPath string) *Lifecycler {
	t.Helper()
	l, err := NewLifecycler(cfg, kv, tokensPath, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	return l
}

func TestLifecyclerRegistersAndHeartbeats(t *testing.T) {
	kv := NewMemKV()
	path := filepath.Join(t.TempDir(), "data", "tokens")
	l := newLifecycler(t, testRingConfig("ing-1"), kv, path)
	stop := runLifecycler(t, l)

	in, ok := kv.Get().Get("ing-1")
	require.True(t, ok)
	require.Equal(t, ring.StateActive, in.State)
	require.Equal(t, "ing-1:9095", in.Addr)
	require.Len(t, in.Tokens, 16)
	require.IsIncreasing(t, in.Tokens)
	require.Equal(t, in.Tokens, l.Tokens())
	saved, err := loadTokens(path)
	require.NoError(t, err)
	require.Equal(t, in.Tokens, saved)

	first := in.Timestamp
	require.Eventually(t, func() bool {
		in, _ := kv.Get().Get("ing-1")
		return in.Timestamp > first
	}, 5*time.Second, 5*time.Millisecond, "heartbeat")

	require.NoError(t, l.SetState(ring.StateReadOnly))
	in, _ = kv.Get().Get("ing-1")
	require.Equal(t, ring.StateReadOnly, in.State)
	require.Error(t, l.SetState(ring.StateLeft))

	stop()
	in, _ = kv.Get().Get("ing-1")
	require.Equal(t, ring.StateLeft, in.State, "unregister_on_shutdown leaves a tombstone")
	require.Empty(t, in.Tokens)
	require.ErrorIs(t, l.SetState(ring.StateActive), ErrNotRunning)
}

func TestLifecyclerRestartKeepsTokens(t *testing.T) {
	tests := []struct {
		name       string
		unregister bool
		tokensFile bool
		wantState  ring.State // after the first stop
	}{
		{"tokens file, unregister", true, true, ring.StateLeft},
		{"tokens file, keep entry", false, true, ring.StateLeaving},
		{"no tokens file, keep entry", false, false, ring.StateLeaving},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kv := NewMemKV()
			cfg := testRingConfig("ing-1")
			cfg.UnregisterOnShutdown = tc.unregister
			path := ""
			if tc.tokensFile {
				path = filepath.Join(t.TempDir(), "tokens")
			}
			l := newLifecycler(t, cfg, kv, path)
			stop := runLifecycler(t, l)
			tokens := l.Tokens()
			registered, _ := kv.Get().Get("ing-1")
			stop()
			in, _ := kv.Get().Get("ing-1")
			require.Equal(t, tc.wantState, in.State)

			l2 := newLifecycler(t, cfg, kv, path)
			runLifecycler(t, l2)
			in, _ = kv.Get().Get("ing-1")
			require.Equal(t, ring.StateActive, in.State)
			require.Equal(t, tokens, in.Tokens, "restart keeps the token ranges")
			if !tc.unregister {
				require.Equal(t, registered.Registered, in.Registered)
			}
		})
	}
}

func TestLifecyclerTokensFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(path, []byte(`{"tokens":[30,10,20,10]}`), 0o644))
	kv := NewMemKV()
	l := newLifecycler(t, testRingConfig("ing-1"), kv, path)
	runLifecycler(t, l)
	tokens := l.Tokens()
	require.Len(t, tokens, 16, "topped up to the configured count")
	require.Subset(t, tokens, []uint32{10, 20, 30})

	require.NoError(t, os.WriteFile(path, []byte(`not json`), 0o644))
	bad := newLifecycler(t, testRingConfig("ing-2"), kv, path)
	require.Error(t, bad.Run(context.Background()))
}

func TestLifecyclerAvoidsTakenTokensAndForgetsDead(t *testing.T) {
	kv := NewMemKV()
	cfg := testRingConfig("ing-1")
	cfg.AutoForgetAfter = 2 * cfg.HeartbeatTimeout
	now := time.Now()
	dead := ring.Instance{ID: "dead", State: ring.StateActive, Tokens: []uint32{1, 2}, Timestamp: now.Add(-time.Hour).UnixMilli()}
	stale := ring.Instance{ID: "stale", State: ring.StateActive, Tokens: []uint32{3}, Timestamp: now.Add(-cfg.HeartbeatTimeout - time.Millisecond).UnixMilli()}
	kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{"dead": dead, "stale": stale}})

	l := newLifecycler(t, cfg, kv, "")
	runLifecycler(t, l)
	require.NotContains(t, l.Tokens(), uint32(1))
	require.Eventually(t, func() bool {
		in, _ := kv.Get().Get("dead")
		return in.State == ring.StateLeft
	}, 5*time.Second, 5*time.Millisecond)
	in, _ := kv.Get().Get("stale")
	require.Equal(t, ring.StateActive, in.State, "unhealthy but not yet past auto_forget_after")
}

// TestLifecyclerOverridesWrongTombstone: a peer that forgot this instance
// by mistake is overruled by the next heartbeat.
func TestLifecyclerOverridesWrongTombstone(t *testing.T) {
	kv := NewMemKV()
	l := newLifecycler(t, testRingConfig("ing-1"), kv, "")
	runLifecycler(t, l)
	tomb := kv.Get().Tombstone("ing-1", time.Now().Add(time.Second)) // from a peer with a fast clock
	kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{"ing-1": tomb}})
	require.Eventually(t, func() bool {
		in, _ := kv.Get().Get("ing-1")
		return in.State == ring.StateActive && len(in.Tokens) == 16
	}, 5*time.Second, 5*time.Millisecond)
}

// TestLifecyclerResolvesTokenConflicts: of two instances that drew the same
// token, the one with the greater ID replaces it; the other keeps it.
func TestLifecyclerResolvesTokenConflicts(t *testing.T) {
	kv := NewMemKV()
	path := filepath.Join(t.TempDir(), "tokens")
	cfg := testRingConfig("ing-b")
	l := newLifecycler(t, cfg, kv, path)
	runLifecycler(t, l)
	mine := l.Tokens()
	shared := mine[3]

	now := time.Now().UnixMilli()
	kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{
		"ing-a": {ID: "ing-a", State: ring.StateActive, Tokens: []uint32{shared}, Timestamp: now},
		"ing-c": {ID: "ing-c", State: ring.StateActive, Tokens: []uint32{mine[5]}, Timestamp: now},
	}})
	require.Eventually(t, func() bool {
		in, _ := kv.Get().Get("ing-b")
		return !slices.Contains(in.Tokens, shared) && len(in.Tokens) == 16
	}, 5*time.Second, 5*time.Millisecond)
	in, _ := kv.Get().Get("ing-b")
	require.Contains(t, in.Tokens, mine[5], "ing-c has the greater ID and must move, not ing-b")
	require.Equal(t, in.Tokens, l.Tokens())
	require.Eventually(t, func() bool {
		saved, err := loadTokens(path)
		return err == nil && slices.Equal(saved, in.Tokens)
	}, 5*time.Second, 5*time.Millisecond, "tokens file follows")
}
