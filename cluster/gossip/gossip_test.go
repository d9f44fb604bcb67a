package gossip

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight; that
	// goroutine ends on its own after the probe timeout.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

func TestConfigFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-memberlist.join=a:1,dns+b:2", "-memberlist.join", "dnssrv+_g._tcp.c"}))
	require.Equal(t, ":7946", c.Bind)
	require.Equal(t, []string{"a:1", "dns+b:2", "dnssrv+_g._tcp.c"}, c.Join)
	require.NoError(t, c.Validate())

	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"bad bind", func(c *Config) { c.Bind = "nope" }},
		{"bad port", func(c *Config) { c.Bind = ":99999" }},
		{"bad advertise", func(c *Config) { c.Advertise = "x" }},
		{"bad join scheme", func(c *Config) { c.Join = []string{"dnsa+x:1"} }},
		{"join without port", func(c *Config) { c.Join = []string{"host"} }},
		{"zero interval", func(c *Config) { c.GossipInterval = 0 }},
		{"zero gossip nodes", func(c *Config) { c.GossipNodes = 0 }},
		{"negative leave timeout", func(c *Config) { c.LeaveTimeout = -1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := c
			tc.mod(&bad)
			require.Error(t, bad.Validate())
		})
	}
}

func TestSlogWriter(t *testing.T) {
	var buf bytes.Buffer
	l := newStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Printf("[DEBUG] memberlist: hidden")
	l.Printf("[WARN] memberlist: Was able to connect to x")
	l.Printf("[ERR] memberlist: boom")
	out := buf.String()
	require.NotContains(t, out, "hidden")
	require.Contains(t, out, `level=WARN msg="Was able to connect to x"`)
	require.Contains(t, out, `level=ERROR msg=boom`)
}

// TestConfig returns a memberlist config for fast tests on loopback.
func testConfig(join ...string) Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("t", flag.PanicOnError))
	c.Bind = "127.0.0.1:0"
	c.Join = join
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 200 * time.Millisecond
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.JoinRetryInterval = 50 * time.Millisecond
	c.LeaveTimeout = time.Second
	c.DeadNodeReclaimTime = time.Second
	return c
}

func startKV(t *testing.T, cfg Config, reg prometheus.Registerer) *KV {
	t.Helper()
	kv, err := New(cfg, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = kv.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		require.NoError(t, kv.Close())
	})
	return kv
}

func TestKVGossip(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := startKV(t, testConfig(), reg)
	b := startKV(t, testConfig(a.LocalAddr()), nil)
	<-b.Joined()
	require.Eventually(t, func() bool { return a.NumMembers() == 2 }, 5*time.Second, 10*time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := b.Watch(ctx)
	require.Equal(t, 0, (<-watch).Len(), "watch starts with the current value")

	in := ring.Instance{ID: "ing-1", Addr: "127.0.0.1:9095", State: ring.StateActive, Tokens: []uint32{1, 2, 3}, Timestamp: 100}
	a.Merge(&ring.Desc{Instances: map[string]ring.Instance{in.ID: in}})
	select {
	case d := <-watch:
		got, ok := d.Get("ing-1")
		require.True(t, ok)
		require.Equal(t, in, got)
	case <-time.After(5 * time.Second):
		t.Fatal("update did not arrive")
	}

	// A newer version from b wins on a; an older one is ignored.
	newer := in
	newer.State, newer.Timestamp = ring.StateLeaving, 200
	b.Merge(&ring.Desc{Instances: map[string]ring.Instance{in.ID: newer}})
	older := in
	older.Timestamp = 50
	b.Merge(&ring.Desc{Instances: map[string]ring.Instance{in.ID: older}})
	require.Eventually(t, func() bool {
		got, _ := a.Get().Get("ing-1")
		return got.State == ring.StateLeaving
	}, 5*time.Second, 10*time.Millisecond)
	require.Positive(t, testutil.ToFloat64(a.m.received.WithLabelValues("broadcast")))
	require.Positive(t, testutil.ToFloat64(a.m.sent.WithLabelValues("broadcast")))

	// Garbage does not hurt.
	delegate{a}.NotifyMsg([]byte{1, 2, 3})
	delegate{a}.MergeRemoteState([]byte{9}, false)
	require.Equal(t, 2.0, testutil.ToFloat64(a.m.decodeErrors))
	n, err := testutil.GatherAndCount(reg, "pharos_memberlist_members")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// TestKVLargeUpdate: an instance too big for a UDP packet still spreads, by
// TCP, before any push/pull could carry it.
func TestKVLargeUpdate(t *testing.T) {
	cfg := testConfig()
	cfg.PushPullInterval = time.Hour
	a := startKV(t, cfg, nil)
	cfgB := testConfig(a.LocalAddr())
	cfgB.PushPullInterval = time.Hour
	b := startKV(t, cfgB, nil)
	<-b.Joined()
	require.Eventually(t, func() bool { return a.NumMembers() == 2 }, 5*time.Second, 10*time.Millisecond)

	tokens := make([]uint32, 1000)
	for i := range tokens {
		tokens[i] = uint32(i) * 4_000_000
	}
	in := ring.Instance{ID: "big", State: ring.StateActive, Tokens: tokens, Timestamp: 1}
	require.Greater(t, len((&ring.Desc{Instances: map[string]ring.Instance{"big": in}}).Marshal()), maxPacketMsg)
	a.Merge(&ring.Desc{Instances: map[string]ring.Instance{"big": in}})
	require.Eventually(t, func() bool {
		got, ok := b.Get().Get("big")
		return ok && len(got.Tokens) == 1000
	}, 5*time.Second, 10*time.Millisecond)
}

func TestKVJoinRetriesUntilCancelled(t *testing.T) {
	cfg := testConfig("127.0.0.1:1") // nothing listens there
	kv, err := New(cfg, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- kv.Run(ctx) }()
	select {
	case <-kv.Joined():
		t.Fatal("joined nothing")
	default:
	}
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, kv.Close())
}

func TestKVTombstoneGC(t *testing.T) {
	cfg := testConfig()
	cfg.TombstoneRetention = 50 * time.Millisecond
	a := startKV(t, cfg, nil)
	left := ring.Instance{ID: "gone", State: ring.StateLeft, Timestamp: time.Now().UnixMilli()}
	a.Merge(&ring.Desc{Instances: map[string]ring.Instance{"gone": left}})
	require.Equal(t, 1, a.Get().Len())
	require.Eventually(t, func() bool { return a.Get().Len() == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(a.m.tombstonesRemoved))
}
