package ruler

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// BenchmarkEvaluationRound evaluates 1000 rules (500 recording, 500
// alerting; 10 groups of 100) over 100k series on the leader of a 3-ruler
// raft cluster, one round per iteration, with evaluation time 15s later
// each round. It reports the round's wall time, and the raft bytes and
// commit latency that the alert state of a round costs. Alerting rules
// match 10 series each (5000 alerts): pending in round 1, firing from
// round 3, re-sent every 4 rounds (1m resend delay).
func BenchmarkEvaluationRound(b *testing.B) {
	const (
		metrics   = 1000
		perMetric = 100
		groups    = 10
		step      = 15 * time.Second
	)
	var rf strings.Builder
	rf.WriteString("groups:\n")
	for g := range groups {
		fmt.Fprintf(&rf, "- name: bench-%d\n  interval: 24h\n  rules:\n", g)
		for i := range metrics / groups {
			m := g*(metrics/groups) + i
			if i%2 == 0 {
				fmt.Fprintf(&rf, "  - record: job:bench_metric_%d:sum\n    expr: sum by (job) (bench_metric_%d)\n", m, m)
			} else {
				fmt.Fprintf(&rf, "  - alert: Bench%d\n    expr: bench_metric_%d > %d\n    for: 30s\n    annotations:\n      summary: value {{ $value }}\n", m, m, perMetric-11)
			}
		}
	}
	c := newCluster(b, 3, rf.String(), func(cfg *Config) {
		cfg.ResendDelay = time.Minute
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
	})
	// 100k series with a sample every 30s over 20 minutes.
	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	for k := range 40 {
		app := c.store.db.Appender(context.Background())
		ts := start.Add(time.Duration(k) * 30 * time.Second).UnixMilli()
		for m := range metrics {
			name := "bench_metric_" + strconv.Itoa(m)
			for i := range perMetric {
				_, err := app.Append(0, labels.FromStrings("__name__", name, "job", "job-"+strconv.Itoa(i%10), "instance", "i-"+strconv.Itoa(i)), ts, float64(i))
				require.NoError(b, err)
			}
		}
		require.NoError(b, app.Commit())
	}
	l := c.leader()
	var s *session
	require.Eventually(b, func() bool {
		s = l.r.current()
		return s != nil && s.manager(tenant.DefaultTenant) != nil && len(s.manager(tenant.DefaultTenant).manager.RuleGroups()) == groups
	}, 30*time.Second, 10*time.Millisecond)
	iterate := l.r.iterate(s, tenant.DefaultTenant)
	gs := s.manager(tenant.DefaultTenant).manager.RuleGroups()
	ctx := context.Background()
	bytesBefore := testutil.ToFloat64(must(l.r.metrics.commitBytes.GetMetricWithLabelValues(opAlertState)))

	b.ResetTimer()
	ts := start.Add(time.Minute)
	for i := range b.N {
		if ts.After(start.Add(19 * time.Minute)) {
			b.Fatal("the data covers 72 rounds; run with -benchtime=Nx, N ≤ 72")
		}
		for _, g := range gs {
			iterate(ctx, g, ts)
			for _, r := range g.Rules() {
				if r.LastError() != nil {
					b.Fatalf("round %d at %v (start %v): %s: %v", i, ts, start, r.Name(), r.LastError())
				}
			}
		}
		ts = ts.Add(step)
	}
	b.StopTimer()
	for _, g := range gs {
		for _, r := range g.Rules() {
			require.NoError(b, r.LastError(), r.Name())
		}
	}
	var firing int
	for _, ar := range l.r.AlertingRules() {
		if ar.State() == rules.StateFiring {
			firing++
		}
	}
	bytes := testutil.ToFloat64(must(l.r.metrics.commitBytes.GetMetricWithLabelValues(opAlertState))) - bytesBefore
	b.ReportMetric(bytes/float64(b.N), "raft-bytes/round")
	b.ReportMetric(float64(firing), "firing-rules")
	sum, count := histogramSumCount(b, l, opAlertState)
	if count > 0 {
		b.ReportMetric(sum/count*1e3, "ms/commit")
		b.ReportMetric(count/float64(b.N), "commits/round")
	}
}

func histogramSumCount(b *testing.B, rp *replica, op string) (sum, count float64) {
	mfs, err := rp.reg.Gather()
	require.NoError(b, err)
	for _, mf := range mfs {
		if mf.GetName() != "pharos_ruler_raft_commit_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "op" && lp.GetValue() == op {
					return m.GetHistogram().GetSampleSum(), float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return 0, 0
}

// BenchmarkTenants adds 100 tenants, each with one group of two rules, to
// a single-ruler leader per iteration, and waits until each has its rule
// manager; then deletes them. It reports what a tenant with rules costs
// the leader: time to start evaluating it, goroutines and heap while it
// runs, and the goroutines left once all are gone (0 but for the
// raft and discovery goroutines that come and go on their own).
func BenchmarkTenants(b *testing.B) {
	const tenants = 100
	c := newCluster(b, 1, "", nil)
	l := c.leader()
	body := "name: g\ninterval: 1m\nrules:\n- record: r\n  expr: vector(1)\n- alert: A\n  expr: vector(1) > 2\n"
	managers := func() int {
		s := l.r.current()
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.managers)
	}
	var startDur time.Duration
	var goroutines, heap, leftover float64
	for b.Loop() {
		g0, h0 := runtime.NumGoroutine(), heapInUse()
		t0 := time.Now()
		for i := range tenants {
			require.NoError(b, l.r.apply(&command{Op: opSetGroup, Tenant: fmt.Sprintf("t-%d", i), Namespace: "ns", Group: "g", Body: body}))
		}
		require.Eventually(b, func() bool { return managers() == tenants }, 30*time.Second, time.Millisecond)
		startDur += time.Since(t0)
		goroutines += float64(runtime.NumGoroutine() - g0)
		heap += float64(heapInUse()) - float64(h0)
		for i := range tenants {
			require.NoError(b, l.r.apply(&command{Op: opDeleteNamespace, Tenant: fmt.Sprintf("t-%d", i), Namespace: "ns"}))
		}
		require.Eventually(b, func() bool { return managers() == 0 }, 30*time.Second, time.Millisecond)
		if !assert.Eventually(b, func() bool { return runtime.NumGoroutine() <= g0+2 }, 5*time.Second, 10*time.Millisecond) {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			b.FailNow()
		}
		leftover += float64(runtime.NumGoroutine() - g0)
	}
	n := float64(b.N * tenants)
	b.ReportMetric(float64(startDur.Microseconds())/n, "µs/tenant-start")
	b.ReportMetric(goroutines/n, "goroutines/tenant")
	b.ReportMetric(heap/n, "heap-bytes/tenant")
	b.ReportMetric(leftover/float64(b.N), "goroutines-left")
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
