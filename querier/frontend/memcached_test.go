package frontend_test

import (
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/memcachedtest"
	"github.com/pharos-tsdb/pharos/querier/frontend"
)

// memcached is a real memcached server on a loopback port.
type memcached struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// startMemcached runs memcached for the test on a free port. Without the
// binary the test is skipped, unless PHAROS_REQUIRE_MEMCACHED is set
// (.ci/run installs the Debian package and sets it, so CI never skips).
func startMemcached(t testing.TB) *memcached {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return runMemcached(t, addr)
}

// runMemcached runs memcached on addr, starting it again while the port is
// still taken (by a process that just stopped, or the free port's race).
func runMemcached(t testing.TB, addr string) *memcached {
	t.Helper()
	bin := memcachedtest.Binary(t)
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	var m *memcached
	require.Eventually(t, func() bool {
		if m == nil || m.exited() {
			// -U 0: no UDP; -u: memcached refuses to run as root without
			// naming a user.
			cmd := exec.Command(bin, "-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "64", "-u", "nobody")
			require.NoError(t, cmd.Start())
			m = &memcached{addr: addr, cmd: cmd, done: make(chan struct{})}
			go func() { _ = cmd.Wait(); close(m.done) }()
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "memcached on %s", addr)
	t.Cleanup(m.stop)
	return m
}

func (m *memcached) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// stop kills the server and waits until it has exited.
func (m *memcached) stop() {
	_ = m.cmd.Process.Kill()
	<-m.done
}

// forEachBackend runs test once per results cache backend; with turns a
// test's config into one for that backend.
func forEachBackend(t *testing.T, test func(t *testing.T, with func(frontend.Config) frontend.Config)) {
	t.Run(frontend.BackendInMemory, func(t *testing.T) {
		test(t, func(c frontend.Config) frontend.Config { c.CacheBackend = frontend.BackendInMemory; return c })
	})
	t.Run(frontend.BackendMemcached, func(t *testing.T) {
		m := startMemcached(t)
		test(t, func(c frontend.Config) frontend.Config { return memcachedConfig(t, c, m.addr) })
	})
}

// memcachedConfig is c with the memcached backend at addrs, the other
// memcached settings at their defaults.
func memcachedConfig(t testing.TB, c frontend.Config, addrs string) frontend.Config {
	t.Helper()
	var d frontend.Config
	fs := flag.NewFlagSet("frontend", flag.ContinueOnError)
	d.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	c.CacheBackend = frontend.BackendMemcached
	c.Memcached = d.Memcached
	c.Memcached.Addresses = addrs
	require.NoError(t, c.Validate())
	return c
}

// memcachedCalls is pharos_frontend_results_cache_memcached_requests_total
// of op and outcome.
func memcachedCalls(t testing.TB, reg *prometheus.Registry, op, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "pharos_frontend_results_cache_memcached_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["op"] == op && got["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestMemcachedCacheIsShared: a second frontend over the same memcached
// answers a query the first one cached from the cache alone, byte for
// byte; with memcached gone, both answer every query right and count the
// failed calls; a restarted (empty) memcached fills again.
func TestMemcachedCacheIsShared(t *testing.T) {
	m := startMemcached(t)
	cfg := memcachedConfig(t, frontend.Config{SplitInterval: 24 * time.Hour, MaxParallelism: 2, CacheResults: true, MaxCacheFreshness: time.Minute, CacheTTL: time.Hour}, m.addr)
	a := newFixture(t, cfg)
	a.load(t, t0, t0.Add(72*time.Hour))
	// b names the server as dns+, resolved as a headless Service's name
	// would be.
	reg := prometheus.NewRegistry()
	b := frontend.New(memcachedConfig(t, cfg, "dns+"+m.addr), a.upstream, slog.New(slog.DiscardHandler), reg)

	v := rangeParams(`sum by (job) (rate(requests_total[5m]))`, t0.Add(time.Hour), t0.Add(70*time.Hour), "300")
	_, want := get(t, a.upstream, "/api/v1/query_range", v)
	code, got := get(t, a.front, "/api/v1/query_range", v)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, strings.TrimSpace(want), strings.TrimSpace(got))
	require.Equal(t, 3.0, memcachedCalls(t, a.reg, "set", "stored"), "one extent per day")

	code, got = get(t, b, "/api/v1/query_range", v)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, strings.TrimSpace(want), strings.TrimSpace(got), "byte for byte, from the other frontend's extents")
	require.Equal(t, 3.0, memcachedCalls(t, reg, "get", "hit"))
	require.Zero(t, metric(t, reg, "pharos_frontend_query_parts_evaluated_total", ""), "nothing evaluated")

	// Memcached gone: every answer still right, each failed call counted.
	m.stop()
	for _, f := range []http.Handler{a.front, b} {
		code, got = get(t, f, "/api/v1/query_range", v)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, strings.TrimSpace(want), strings.TrimSpace(got))
	}
	require.Equal(t, 3.0, memcachedCalls(t, reg, "get", "error"))
	require.Equal(t, 3.0, memcachedCalls(t, reg, "set", "error"))
	require.Equal(t, 3.0, metric(t, reg, "pharos_frontend_query_parts_evaluated_total", ""))

	// A memcached on the same port again, empty: the frontends fill it and
	// use it, without a restart.
	runMemcached(t, m.addr)
	code, got = get(t, a.front, "/api/v1/query_range", v)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, strings.TrimSpace(want), strings.TrimSpace(got))
	hits := memcachedCalls(t, reg, "get", "hit")
	code, got = get(t, b, "/api/v1/query_range", v)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, strings.TrimSpace(want), strings.TrimSpace(got))
	require.Equal(t, hits+3, memcachedCalls(t, reg, "get", "hit"))
}

// TestMemcachedConfigErrorsNameTheField: a memcached backend without
// usable servers or with an unknown backend name is a config error that
// names the setting.
func TestMemcachedConfigErrorsNameTheField(t *testing.T) {
	base := memcachedConfig(t, frontend.Config{SplitInterval: time.Hour, MaxParallelism: 1, CacheResults: true}, "127.0.0.1:11211")
	for _, tc := range []struct {
		name string
		edit func(*frontend.Config)
		want string
	}{
		{"unknown backend", func(c *frontend.Config) { c.CacheBackend = "redis" }, `results_cache_backend: "redis" is not inmemory or memcached`},
		{"no addresses", func(c *frontend.Config) { c.Memcached.Addresses = " , " }, "results_cache_memcached.addresses: needed"},
		{"no port", func(c *frontend.Config) { c.Memcached.Addresses = "127.0.0.1:11211,dns+memcached" }, `results_cache_memcached.addresses: "dns+memcached"`},
		{"no timeout", func(c *frontend.Config) { c.Memcached.Timeout = 0 }, "results_cache_memcached.timeout"},
		{"no item size", func(c *frontend.Config) { c.Memcached.MaxItemSize = 0 }, "results_cache_memcached.max_item_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			require.ErrorContains(t, c.Validate(), tc.want)
		})
	}
}
