package ruler

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
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
