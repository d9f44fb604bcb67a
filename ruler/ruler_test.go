package ruler

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

// tutorialRules is the tutorial's alerts-firing.yml with `for` shortened
// to what a test can wait for, evaluated every second.
func tutorialRules(forDur string) string {
	return fmt.Sprintf(`groups:
- name: nodes
  interval: 1s
  rules:
  - alert: TooManyNodes
    expr: count(kube_node_info) > 0
    for: %s
    labels:
      severity: notify
    annotations:
      summary: Cluster increased
      description: The number of the nodes in the cluster increased
  - alert: TooFewNodes
    expr: count(kube_node_info) < 1
    for: %s
    labels:
      severity: notify
    annotations:
      summary: Cluster decreased
      description: The number of the nodes in the cluster decreased
`, forDur, forDur)
}

func TestTutorialAlertGoesPendingThenFiring(t *testing.T) {
	c := newCluster(t, 3, tutorialRules("3s"), nil)
	c.store.feedNodes(t, 3)
	l := c.leader()

	var pending *alertSnapshot
	require.Eventually(t, func() bool {
		pending = alertOn(l, "TooManyNodes")
		return pending != nil
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "pending", pending.State, "the first evaluation makes the alert pending, not firing")
	require.Empty(t, c.recv.named("TooManyNodes"), "a pending alert is not sent")

	require.Eventually(t, func() bool { return len(c.recv.named("TooManyNodes")) > 0 }, 15*time.Second, 20*time.Millisecond)
	fired := alertOn(l, "TooManyNodes")
	require.Equal(t, "firing", fired.State)
	require.Equal(t, pending.ActiveAt, fired.ActiveAt)
	held := fired.FiredAt.Sub(fired.ActiveAt)
	require.GreaterOrEqual(t, held, 3*time.Second)
	require.Less(t, held, 3*time.Second+2*time.Second, "fires at the first evaluation after for")

	got := c.recv.named("TooManyNodes")[0]
	require.Equal(t, "Cluster increased", got.Annotations["summary"])
	require.Equal(t, "The number of the nodes in the cluster increased", got.Annotations["description"])
	require.Equal(t, "notify", got.Labels["severity"])
	require.WithinDuration(t, fired.FiredAt, got.StartsAt, time.Millisecond, "startsAt is when it fired, as Prometheus sends it")
	require.Empty(t, c.recv.named("TooFewNodes"))

	// ALERTS is written for the evaluated rule, queryable like any series.
	q, err := c.store.engine.NewInstantQuery(t.Context(), c.store.db, nil, `ALERTS{alertname="TooManyNodes",alertstate="firing"}`, time.Now())
	require.NoError(t, err)
	res := q.Exec(t.Context())
	require.NoError(t, res.Err)
	require.Contains(t, res.String(), "TooManyNodes")

	// Only the leader evaluates.
	for _, rp := range c.replicas {
		n := testutil.ToFloat64(must(rp.r.metrics.evaluations.GetMetricWithLabelValues("leader", tenant.DefaultTenant)))
		if rp == l {
			require.Positive(t, n)
		} else {
			require.Zero(t, n, "follower %s evaluated", rp.addr)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestFailoverKeepsForProgress(t *testing.T) {
	const hold = 5 * time.Second
	c := newCluster(t, 3, tutorialRules("5s"), nil)
	c.store.feedNodes(t, 3)
	old := c.leader()
	var pending *alertSnapshot
	require.Eventually(t, func() bool {
		pending = alertOn(old, "TooManyNodes")
		return pending != nil && time.Since(pending.ActiveAt) > 2*time.Second
	}, 15*time.Second, 20*time.Millisecond)
	require.Equal(t, "pending", pending.State)
	c.stop(old)

	next := c.leader()
	require.NotEqual(t, old.addr, next.addr)
	require.Eventually(t, func() bool { return len(c.recv.named("TooManyNodes")) > 0 }, 20*time.Second, 20*time.Millisecond)
	fired := alertOn(next, "TooManyNodes")
	require.Equal(t, "firing", fired.State)
	require.True(t, pending.ActiveAt.Equal(fired.ActiveAt), "the new leader keeps the pending alert's activeAt: %v, want %v", fired.ActiveAt, pending.ActiveAt)
	late := fired.FiredAt.Sub(pending.ActiveAt.Add(hold))
	require.GreaterOrEqual(t, late, time.Duration(0))
	require.LessOrEqual(t, late, time.Second+200*time.Millisecond, "fires at original activeAt + for, ± one interval")
	require.Positive(t, testutil.ToFloat64(next.r.metrics.restoredAlerts))
}

func TestFailoverWhileFiringKeepsStartsAt(t *testing.T) {
	c := newCluster(t, 3, tutorialRules("1s"), nil)
	c.store.feedNodes(t, 3)
	old := c.leader()
	require.Eventually(t, func() bool { return len(c.recv.named("TooManyNodes")) > 0 }, 15*time.Second, 20*time.Millisecond)
	startsAt := c.recv.named("TooManyNodes")[0].StartsAt
	killedAt := time.Now()
	c.stop(old)
	next := c.leader()
	elected := time.Since(killedAt)

	// Wait for two resends by the new leader.
	before := len(c.recv.named("TooManyNodes"))
	require.Eventually(t, func() bool { return len(c.recv.named("TooManyNodes")) >= before+2 }, 20*time.Second, 20*time.Millisecond)
	got := c.recv.named("TooManyNodes")
	for _, a := range got {
		require.True(t, a.StartsAt.Equal(startsAt), "an alert with a new startsAt was sent: %v, first %v", a.StartsAt, startsAt)
	}
	resend := 2 * time.Second
	for i := 1; i < len(got); i++ {
		gap := got[i].At.Sub(got[i-1].At)
		require.LessOrEqual(t, gap, resend+elected+time.Second+500*time.Millisecond, "gap %v between sends %d and %d", gap, i-1, i)
	}
	require.Equal(t, "firing", alertOn(next, "TooManyNodes").State)
}

func TestPartitionedLeaderStopsSending(t *testing.T) {
	c := newCluster(t, 3, tutorialRules("1s"), nil)
	c.store.feedNodes(t, 3)
	old := c.leader()
	require.Eventually(t, func() bool { return len(c.recv.named("TooManyNodes")) > 0 }, 15*time.Second, 20*time.Millisecond)

	old.stream.setDown(true)
	cut := time.Now()
	// Within its lease (plus the control loop's tick) the old leader
	// stops evaluating; only then can another be elected.
	require.Eventually(t, func() bool { return old.r.Mode() == ModeFollower }, 2*time.Second, 10*time.Millisecond)
	require.Less(t, time.Since(cut), time.Second)
	sentAtStop := testutil.ToFloat64(old.r.metrics.alertsSent.WithLabelValues(tenant.DefaultTenant))
	evalsAtStop := testutil.ToFloat64(must(old.r.metrics.evaluations.GetMetricWithLabelValues("leader", tenant.DefaultTenant)))
	next := c.leader()
	require.NotEqual(t, old.addr, next.addr)
	nextEvals := testutil.ToFloat64(must(next.r.metrics.evaluations.GetMetricWithLabelValues("leader", tenant.DefaultTenant)))
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(must(next.r.metrics.evaluations.GetMetricWithLabelValues("leader", tenant.DefaultTenant))) >= nextEvals+3
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, sentAtStop, testutil.ToFloat64(old.r.metrics.alertsSent.WithLabelValues(tenant.DefaultTenant)), "the cut-off leader kept sending")
	require.Equal(t, evalsAtStop, testutil.ToFloat64(must(old.r.metrics.evaluations.GetMetricWithLabelValues("leader", tenant.DefaultTenant))), "the cut-off leader kept evaluating")
	require.Len(t, c.evaluating(), 1)

	old.stream.setDown(false)
	require.Eventually(t, func() bool { return len(c.evaluating()) == 1 && old.r.leaderAddr() != "" }, 10*time.Second, 20*time.Millisecond)
}

func TestRuleAPIOnFollowerAppliesEverywhere(t *testing.T) {
	c := newCluster(t, 3, "", nil)
	l := c.leader()
	// Serve every replica's API, so that forwarding has somewhere to go.
	urls := map[*replica]string{}
	for _, rp := range c.replicas {
		srv := httptest.NewServer(rp.r.Handler())
		t.Cleanup(srv.Close)
		urls[rp] = srv.URL
	}
	// The leader records its HTTP URL in the log for followers.
	l.r.opts.HTTPURL = urls[l]
	require.NoError(t, l.r.apply(&command{Op: opLeader, Leader: &leaderInfo{ID: l.r.ID(), HTTPURL: urls[l]}}))
	var follower *replica
	for _, rp := range c.replicas {
		if rp != l {
			follower = rp
		}
	}
	require.Eventually(t, func() bool { return follower.r.fsm.leaderInfo().HTTPURL == urls[l] }, 5*time.Second, 10*time.Millisecond)
	group := `name: api-group
interval: 1s
rules:
- alert: Always
  expr: vector(1) > 0
  annotations:
    summary: always on
`
	resp, err := http.Post(urls[follower]+"/api/v1/rules/team-a", "application/yaml", strings.NewReader(group))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))

	for _, rp := range c.replicas {
		require.Eventually(t, func() bool { return len(rp.r.fsm.namespace(tenant.DefaultTenant, "team-a")) == 1 }, 5*time.Second, 10*time.Millisecond, "replica %s", rp.addr)
	}
	require.Eventually(t, func() bool { return len(l.r.RuleGroups()) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "api-group", l.r.RuleGroups()[0].Name())
	require.Equal(t, "api:team-a", l.r.RuleGroups()[0].File())

	resp, err = http.Get(urls[follower] + "/api/v1/rules/team-a/api-group")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "alert: Always")

	// A bad rule is refused with the precise error, and nothing changes.
	bad := `name: api-group
rules:
- alert: Broken
  expr: sum(rate(x[5m])
`
	resp, err = http.Post(urls[follower]+"/api/v1/rules/team-a", "application/yaml", strings.NewReader(bad))
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), `4:9: group \"api-group\", rule 1, \"Broken\": could not parse expression`)
	for _, rp := range c.replicas {
		gs := rp.r.fsm.namespace(tenant.DefaultTenant, "team-a")
		require.Len(t, gs, 1)
		require.Contains(t, gs[0].Body, "Always")
	}

	req, _ := http.NewRequest(http.MethodDelete, urls[follower]+"/api/v1/rules/team-a/api-group", nil)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	for _, rp := range c.replicas {
		require.Eventually(t, func() bool { return len(rp.r.fsm.namespace(tenant.DefaultTenant, "team-a")) == 0 }, 5*time.Second, 10*time.Millisecond)
	}
	require.Eventually(t, func() bool { return len(l.r.RuleGroups()) == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestIsolatedFallbackFiresAndHandsBack(t *testing.T) {
	c := newCluster(t, 3, tutorialRules("2s"), func(cfg *Config) {
		cfg.IsolatedFallback = true
		cfg.IsolatedFallbackAfter = 2 * time.Second
	})
	l := c.leader()
	var lone *replica
	for _, rp := range c.replicas {
		if rp != l {
			lone = rp
			break
		}
	}
	lone.stream.setDown(true)
	cut := time.Now()
	// Nodes appear only after the cut: the majority's leader and the lone
	// replica must each fire on their own.
	c.store.feedNodes(t, 3)
	require.Eventually(t, func() bool { return lone.r.Mode() == ModeFallback }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(lone.r.metrics.alertsSent.WithLabelValues(tenant.DefaultTenant)) > 0
	}, 15*time.Second, 20*time.Millisecond)
	require.Less(t, time.Since(cut), 2*time.Second+2*time.Second+3*time.Second, "fires within fallback time + for (+ intervals)")
	require.Equal(t, "firing", alertOn(lone, "TooManyNodes").State)

	lone.stream.setDown(false)
	require.Eventually(t, func() bool {
		return lone.r.Mode() == ModeFollower && len(c.evaluating()) == 1
	}, 15*time.Second, 20*time.Millisecond)
	evals := testutil.ToFloat64(must(lone.r.metrics.evaluations.GetMetricWithLabelValues("fallback", tenant.DefaultTenant)))
	leader := c.leader()
	before := testutil.ToFloat64(must(leader.r.metrics.evaluations.GetMetricWithLabelValues("leader", tenant.DefaultTenant)))
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(must(leader.r.metrics.evaluations.GetMetricWithLabelValues("leader", tenant.DefaultTenant))) >= before+3
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, evals, testutil.ToFloat64(must(lone.r.metrics.evaluations.GetMetricWithLabelValues("fallback", tenant.DefaultTenant))), "fallback evaluation stopped after healing")
}

// A notification is sent only after the alert state that says it was sent
// is committed: a leader lost between the two would otherwise leave a
// successor that fires the alert anew, with another startsAt.
func TestAlertSentOnlyOnceCommitted(t *testing.T) {
	c := newCluster(t, 3, tutorialRules("1s"), nil)
	l := c.leader()
	require.Eventually(t, func() bool { return len(l.r.RuleGroups()) == 1 }, 5*time.Second, 10*time.Millisecond)
	g := l.r.RuleGroups()[0]
	group, id := rules.GroupKey(g.File(), g.Name()), l.r.cfg.RuleFilesTenant

	var fsms []*fsm
	for _, rp := range c.replicas {
		fsms = append(fsms, rp.r.fsm)
	}
	var mu sync.Mutex
	var uncommitted []receivedAlert
	c.recv.mu.Lock()
	c.recv.check = func(a receivedAlert) {
		for _, f := range fsms {
			st := f.groupState(id, group)
			if st == nil {
				continue
			}
			for _, as := range st.Rules {
				for _, s := range as {
					// What SendAlerts makes of the state: startsAt is
					// when it fired, endsAt when it resolved or, while
					// firing, until when this send holds.
					end := fromNanos(s.ValidUntil)
					if s.ResolvedAt != 0 {
						end = fromNanos(s.ResolvedAt)
					}
					// API v2 carries milliseconds.
					ms := func(t time.Time) int64 { return t.UnixMilli() }
					if maps.Equal(s.Labels, a.Labels) && ms(fromNanos(s.FiredAt)) == ms(a.StartsAt) && ms(end) == ms(a.EndsAt) {
						return
					}
				}
			}
		}
		mu.Lock()
		uncommitted = append(uncommitted, a)
		mu.Unlock()
	}
	c.recv.mu.Unlock()

	setNodes := c.store.feedNodes(t, 3)
	require.Eventually(t, func() bool { return len(c.recv.named("TooManyNodes")) >= 3 }, 15*time.Second, 20*time.Millisecond)
	setNodes(0)
	require.Eventually(t, func() bool {
		for _, a := range c.recv.named("TooManyNodes") {
			if !a.EndsAt.After(a.At) {
				return true
			}
		}
		return false
	}, 15*time.Second, 20*time.Millisecond, "no resolved notification")
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, uncommitted, "alerts reached the notifier before their firing state was committed")
}

func TestRestartAllKeepsAlertState(t *testing.T) {
	c := newCluster(t, 3, tutorialRules("1s"), nil)
	setNodes := c.store.feedNodes(t, 3)
	c.leader()
	require.Eventually(t, func() bool { return len(c.recv.named("TooManyNodes")) > 0 }, 15*time.Second, 20*time.Millisecond)
	startsAt := c.recv.named("TooManyNodes")[0].StartsAt
	for _, rp := range c.replicas {
		c.stop(rp)
	}
	n := len(c.recv.named("TooManyNodes"))
	for _, rp := range c.replicas {
		c.start(rp, c.peers())
	}
	l := c.leader()
	require.Eventually(t, func() bool { return len(c.recv.named("TooManyNodes")) >= n+2 }, 20*time.Second, 20*time.Millisecond)
	for _, a := range c.recv.named("TooManyNodes") {
		require.True(t, a.StartsAt.Equal(startsAt), "restart re-fired the alert: startsAt %v, first %v", a.StartsAt, startsAt)
	}
	require.Equal(t, "firing", alertOn(l, "TooManyNodes").State)

	// The resolve is still sent once the condition ends, with the same
	// startsAt and endsAt at the resolving evaluation.
	setNodes(0)
	require.Eventually(t, func() bool {
		for _, a := range c.recv.named("TooManyNodes") {
			if !a.EndsAt.IsZero() && a.EndsAt.Before(a.At.Add(time.Second)) && a.StartsAt.Equal(startsAt) {
				return true
			}
		}
		return false
	}, 15*time.Second, 20*time.Millisecond, "no resolved notification")
	require.Nil(t, alertOn(l, "TooManyNodes"), "resolved alerts are not active")
}

// Stopping sends what the notifier has queued (as Prometheus drains its
// queue), but an Alertmanager that takes requests and never answers must
// not hold the stop for a send timeout per batch: the drain is bounded.
func TestStopBoundsTheNotificationDrain(t *testing.T) {
	var received atomic.Int32
	unblock := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		<-unblock
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(unblock) }) // first, so that Close returns
	c := newClusterWith(t, 1, `groups:
- name: always
  interval: 100ms
  rules:
  - alert: Always
    expr: vector(1) > 0
`, func(cfg *Config) { cfg.AlertmanagerURL = []string{hung.URL} }, nil)
	rp := c.leader()
	rp.r.runtimes.drainTimeout = 200 * time.Millisecond
	require.Eventually(t, func() bool { return received.Load() > 0 }, 20*time.Second, 20*time.Millisecond,
		"a send to the hung Alertmanager is under way")
	// The resend after ResendDelay waits in the queue behind it.
	require.Eventually(t, func() bool {
		mfs, err := rp.reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "prometheus_notifications_queue_length" {
				for _, m := range mf.GetMetric() {
					if m.GetGauge().GetValue() > 0 {
						return true
					}
				}
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "alerts are queued")

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		c.stop(rp)
	}()
	require.Eventually(t, func() bool {
		select {
		case <-stopped:
			return true
		default:
			return false
		}
	}, 5*time.Second, 20*time.Millisecond, "the stop waited on the hung Alertmanager")
}
