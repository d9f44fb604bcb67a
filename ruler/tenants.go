package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// Limits are the per-tenant limits the rules API enforces. Zero means
// unlimited. Implementations must be safe for concurrent use; the values
// may change at any time (runtime overrides), so they are checked when a
// group is posted, never when the log is applied.
type Limits interface {
	RulerMaxRuleGroupsPerTenant(tenant string) int
	RulerMaxRulesPerRuleGroup(tenant string) int
}

// checkLimits refuses a group that would take tenant id over its limits.
// exists says the group replaces one of the same name, which adds no group.
func checkLimits(l Limits, id string, groups int, exists bool, rules int) error {
	if l == nil {
		return nil
	}
	if max := l.RulerMaxRulesPerRuleGroup(id); max > 0 && rules > max {
		return fmt.Errorf("tenant %q: the rule group has %d rules, over the limit ruler_max_rules_per_rule_group of %d", id, rules, max)
	}
	if max := l.RulerMaxRuleGroupsPerTenant(id); max > 0 && !exists && groups+1 > max {
		return fmt.Errorf("tenant %q has %d rule groups, the limit ruler_max_rule_groups_per_tenant is %d; delete one first", id, groups, max)
	}
	return nil
}

// tenantRuntime is what a tenant's evaluation keeps beyond one session:
// its notifier client, whose queue outlives a leadership change, and its
// rule-group metrics, labelled with the tenant.
type tenantRuntime struct {
	id          string
	notifier    *notifier.Manager
	ruleMetrics *rules.Metrics
	reg         *trackingRegisterer
	tsets       chan map[string][]*targetgroup.Group
	done        chan struct{}
}

// runtimes holds the runtime of each tenant that has rules on an
// evaluating replica, plus the rule files' tenant, whose notifier always
// exists (it answers /api/v1/alertmanagers).
type runtimes struct {
	home    string
	cfg     *promconfig.Config
	queue   int
	extLbls labels.Labels
	reg     prometheus.Registerer
	logger  *slog.Logger
	// drainTimeout is notifierDrainTimeout, shorter in tests.
	drainTimeout time.Duration

	// shared holds the process-wide rule timing summaries and histograms,
	// which every tenant's metrics use: a summary costs ~70 KiB.
	shared *rules.Metrics

	mu      sync.Mutex
	byID    map[string]*tenantRuntime
	last    map[string][]*targetgroup.Group // latest alertmanager targets
	started bool
	stopped bool
}

func newRuntimes(home string, cfg *promconfig.Config, queue int, ext labels.Labels, reg prometheus.Registerer, logger *slog.Logger) (*runtimes, error) {
	rs := &runtimes{home: home, cfg: cfg, queue: queue, extLbls: ext, reg: reg, logger: logger, byID: map[string]*tenantRuntime{},
		drainTimeout: notifierDrainTimeout}
	rs.shared = rules.NewGroupMetrics(nil)
	if err := registerAll(reg, rs.shared.EvalDuration, rs.shared.EvalDurationHistogram, rs.shared.IterationDuration, rs.shared.IterationDurationHistogram); err != nil {
		return nil, fmt.Errorf("rule metrics: %w", err)
	}
	if _, err := rs.get(home); err != nil {
		return nil, err
	}
	return rs, nil
}

// get returns the runtime of tenant id, creating (and, once started,
// running) it.
func (rs *runtimes) get(id string) (*tenantRuntime, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rt := rs.byID[id]; rt != nil {
		return rt, nil
	}
	if rs.stopped {
		return nil, errors.New("the ruler is stopping")
	}
	reg := &trackingRegisterer{reg: prometheus.WrapRegistererWith(prometheus.Labels{"tenant": id}, rs.reg)}
	rt := &tenantRuntime{
		id:  id,
		reg: reg,
		// The notifier keeps only the latest target set; one is enough.
		tsets: make(chan map[string][]*targetgroup.Group, 1),
		done:  make(chan struct{}),
	}
	rt.notifier = notifier.NewManager(&notifier.Options{
		QueueCapacity: rs.queue,
		// As Prometheus by default: what is queued at shutdown is sent,
		// not left for the next leader's resend.
		DrainOnShutdown: true,
		ExternalLabels:  rs.extLbls,
		Registerer:      reg,
		// The notifier (Pharos's or Mimir's) files each alert under the
		// tenant of the request.
		Do: func(ctx context.Context, client *http.Client, req *http.Request) (*http.Response, error) {
			if client == nil {
				client = http.DefaultClient
			}
			req.Header.Set(tenant.HeaderName, id)
			return client.Do(req.WithContext(ctx))
		},
	}, model.UTF8Validation, rs.logger.With("component", "notifier client", "tenant", id))
	if err := rt.notifier.ApplyConfig(rs.cfg); err != nil {
		reg.unregisterAll()
		return nil, fmt.Errorf("tenant %q: alertmanagers: %w", id, err)
	}
	rt.ruleMetrics = rs.ruleMetrics(reg)
	rs.byID[id] = rt
	if rs.started {
		rs.runLocked(rt)
	}
	return rt, nil
}

// ruleMetrics returns the rule-group metrics of one tenant: the per-group
// vectors registered on reg (labelled with the tenant), the timings shared.
func (rs *runtimes) ruleMetrics(reg prometheus.Registerer) *rules.Metrics {
	m := rules.NewGroupMetrics(nil)
	m.EvalDuration, m.EvalDurationHistogram = rs.shared.EvalDuration, rs.shared.EvalDurationHistogram
	m.IterationDuration, m.IterationDurationHistogram = rs.shared.IterationDuration, rs.shared.IterationDurationHistogram
	reg.MustRegister(m.IterationsMissed, m.IterationsScheduled, m.EvalTotal, m.EvalFailures, m.GroupInterval,
		m.GroupLastEvalTime, m.GroupLastDuration, m.GroupLastRuleDurationSum, m.GroupLastRestoreDuration,
		m.GroupRules, m.GroupSamples)
	return m
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (rs *runtimes) runLocked(rt *tenantRuntime) {
	if rs.last != nil {
		rt.tsets <- rs.last
	}
	go func() {
		defer close(rt.done)
		rt.notifier.Run(rt.tsets)
	}()
}

// run starts every runtime's notifier and feeds them the alertmanagers
// that discovery finds until stop.
func (rs *runtimes) run(tsets <-chan map[string][]*targetgroup.Group, stop <-chan struct{}) {
	rs.mu.Lock()
	rs.started = true
	for _, rt := range rs.byID {
		rs.runLocked(rt)
	}
	rs.mu.Unlock()
	for {
		select {
		case <-stop:
			return
		case ts := <-tsets:
			rs.mu.Lock()
			rs.last = ts
			for _, rt := range rs.byID {
				// Replace a set the notifier has not read yet.
				select {
				case <-rt.tsets:
				default:
				}
				rt.tsets <- ts
			}
			rs.mu.Unlock()
		}
	}
}

// retain stops the runtimes of tenants not in keep, except home's.
func (rs *runtimes) retain(keep map[string][]string) {
	rs.mu.Lock()
	var drop []*tenantRuntime
	for id, rt := range rs.byID {
		if _, ok := keep[id]; !ok && id != rs.home {
			drop = append(drop, rt)
			delete(rs.byID, id)
		}
	}
	started := rs.started
	rs.mu.Unlock()
	rs.stopRuntimes(drop, started)
}

// stopAll stops every runtime; get fails afterwards.
func (rs *runtimes) stopAll() {
	rs.mu.Lock()
	rs.stopped = true
	all := rs.byID
	rs.byID = map[string]*tenantRuntime{}
	started := rs.started
	rs.mu.Unlock()
	rs.stopRuntimes(slices.Collect(maps.Values(all)), started)
}

// notifierDrainTimeout bounds how long stopping runtimes waits for their
// notifiers to send what is queued (DrainOnShutdown): an unreachable
// Alertmanager would otherwise hold a shutdown for a send timeout per
// batch. What is not sent by then is left to the next leader's resend.
const notifierDrainTimeout = 10 * time.Second

// stopRuntimes stops the notifiers of rts together and waits for them, up
// to notifierDrainTimeout in all; started says whether they were run.
func (rs *runtimes) stopRuntimes(rts []*tenantRuntime, started bool) {
	for _, rt := range rts {
		rt.notifier.Stop()
	}
	deadline := time.NewTimer(rs.drainTimeout)
	defer deadline.Stop()
	expired := false
	for _, rt := range rts {
		if started && !expired {
			select {
			case <-rt.done:
			case <-deadline.C:
				expired = true
			}
		}
		if expired {
			select {
			case <-rt.done:
			default:
				rs.logger.Warn("notifications still queued after the drain timeout; left to the next leader's resend",
					"tenant", rt.id, "timeout", rs.drainTimeout)
			}
		}
		rt.reg.unregisterAll()
	}
}

func (rs *runtimes) homeNotifier() *notifier.Manager {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rt := rs.byID[rs.home]; rt != nil {
		return rt.notifier
	}
	return nil
}

// trackingRegisterer remembers what it registered, so that a tenant's
// metrics go away with the tenant.
type trackingRegisterer struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	cs  []prometheus.Collector
}

func (t *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := t.reg.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

func (t *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *trackingRegisterer) Unregister(c prometheus.Collector) bool { return t.reg.Unregister(c) }

func (t *trackingRegisterer) unregisterAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.cs {
		t.reg.Unregister(c)
	}
	t.cs = nil
}

// TenantRules are one tenant's live rule groups and alerts, as the
// Prometheus API's RulesRetriever; empty on a replica that does not
// evaluate.
type TenantRules struct {
	r  *Ruler
	id string
}

// RulesFor returns the rules of the tenant of ctx (an API request's). With
// multi-tenancy off a context without a tenant is the default tenant's;
// with it on, such a context sees no rules.
func (r *Ruler) RulesFor(ctx context.Context) TenantRules {
	id, err := tenant.FromContext(ctx)
	if err != nil && !r.opts.Tenants.Enabled {
		id = tenant.DefaultTenant
	}
	return TenantRules{r: r, id: id}
}

// RuleGroups implements the Prometheus API's RulesRetriever.
func (t TenantRules) RuleGroups() []*rules.Group {
	if m := t.r.tenantManager(t.id); m != nil {
		return m.RuleGroups()
	}
	return []*rules.Group{}
}

// AlertingRules implements the Prometheus API's RulesRetriever.
func (t TenantRules) AlertingRules() []*rules.AlertingRule {
	if m := t.r.tenantManager(t.id); m != nil {
		return m.AlertingRules()
	}
	return []*rules.AlertingRule{}
}
