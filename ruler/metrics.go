package ruler

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	evaluations    *prometheus.CounterVec
	alertsSent     *prometheus.CounterVec
	restoredAlerts prometheus.Counter
	modeChanges    prometheus.Counter
	ruleGroups     *prometheus.GaugeVec
	commitBytes    *prometheus.CounterVec
	commitDuration *prometheus.HistogramVec
}

func newMetrics(r *Ruler, reg prometheus.Registerer) *metrics {
	m := &metrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_ruler_group_evaluations_total",
			Help: "Rule group evaluations run by this replica, by mode (leader or fallback) and tenant.",
		}, []string{"mode", "tenant"}),
		alertsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_ruler_alerts_sent_total",
			Help: "Alerts handed to the notifier client by this replica, by tenant.",
		}, []string{"tenant"}),
		restoredAlerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_ruler_alerts_restored_total",
			Help: "Alerts whose state a new evaluation session restored from the raft log.",
		}),
		modeChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_ruler_mode_changes_total",
			Help: "Changes between follower, leader and fallback.",
		}),
		ruleGroups: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pharos_ruler_rule_groups",
			Help: "Rule groups loaded by the running evaluation session, by tenant.",
		}, []string{"tenant"}),
		commitBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_ruler_raft_commit_bytes_total",
			Help: "Bytes committed to the raft log, by operation.",
		}, []string{"op"}),
		commitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "pharos_ruler_raft_commit_duration_seconds",
			Help:                        "Time to commit one entry to the raft log, by operation.",
			Buckets:                     prometheus.ExponentialBuckets(0.0005, 2, 14),
			NativeHistogramBucketFactor: 1.1,
		}, []string{"op"}),
	}
	reg.MustRegister(m.evaluations, m.alertsSent, m.restoredAlerts, m.modeChanges, m.ruleGroups, m.commitBytes, m.commitDuration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pharos_ruler_raft_leader",
			Help: "1 if this replica is the raft leader.",
		}, func() float64 {
			if r.node != nil && r.node.raft.State() == raft.Leader {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pharos_ruler_evaluating",
			Help: "1 if this replica evaluates rules (as leader or in isolated fallback).",
		}, func() float64 {
			if r.Mode() != ModeFollower {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pharos_ruler_raft_term",
			Help: "Current raft term.",
		}, func() float64 {
			if r.node == nil {
				return 0
			}
			return float64(r.node.raft.CurrentTerm())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pharos_ruler_raft_applied_index",
			Help: "Last raft log index applied to the FSM.",
		}, func() float64 {
			if r.node == nil {
				return 0
			}
			return float64(r.node.raft.AppliedIndex())
		}),
	)
	return m
}

// forget drops the series of a tenant that has no rules left, so the
// tenant label stays bounded by the tenants with rules.
func (m *metrics) forget(id string) {
	l := prometheus.Labels{"tenant": id}
	m.evaluations.DeletePartialMatch(l)
	m.alertsSent.DeletePartialMatch(l)
	m.ruleGroups.DeletePartialMatch(l)
}
