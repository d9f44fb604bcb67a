package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// Options are a Ruler's collaborators.
type Options struct {
	Config Config
	Rules  RulesConfig
	// RaftDir is used when Config.RaftDir is empty.
	RaftDir    string
	Queryable  storage.Queryable
	Engine     promql.QueryEngine
	Appendable storage.AppendableV2
	// DefaultAlertmanagerURLs are used when Config.AlertmanagerURL is empty
	// (the embedded notifier of an all-in-one process).
	DefaultAlertmanagerURLs []string
	// HTTPURL is this process's HTTP base URL, for followers to forward to.
	HTTPURL        string
	ExternalLabels labels.Labels
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	// SDMetrics are the process's service-discovery metrics, shared with
	// the scraper's discovery; nil keeps the notify discovery's apart.
	SDMetrics *discovery.SDMetrics
	// StreamLayer replaces the raft TCP transport (tests).
	StreamLayer raft.StreamLayer
	// HTTPClient is the TLS and basic auth for sending to the notifiers
	// (credentials in an alertmanager_url win); nil sends plainly.
	HTTPClient *commoncfg.HTTPClientConfig
	// HTTPTransport carries requests forwarded to the leader; nil is
	// http.DefaultTransport.
	HTTPTransport http.RoundTripper
	// Tenants decides the tenant of API requests (the process's
	// multitenancy setting).
	Tenants tenant.Resolver
	// Limits bounds each tenant's rule groups; nil is unlimited.
	Limits Limits
}

// Mode is what a replica does about evaluation.
type Mode string

// The modes a replica is in.
const (
	ModeFollower Mode = "follower" // stands by
	ModeLeader   Mode = "leader"   // evaluates, sends, commits state
	ModeFallback Mode = "fallback" // isolated: evaluates and sends, commits nothing
)

// Ruler is one ruler replica.
type Ruler struct {
	opts   Options
	cfg    Config
	logger *slog.Logger
	fsm    *fsm
	node   *raftNode
	parser parser.Parser

	runtimes        *runtimes
	notifyDiscovery *notifyDiscovery
	metrics         *metrics

	mu      sync.Mutex
	files   []string // rule file globs in force
	session *session // the running evaluation, nil when standing by

	mode atomic.Value // Mode
	// lastLeader is when a leader was last known (Unix nanoseconds).
	lastLeader atomic.Int64
	reload     chan struct{}
	extURL     *url.URL
}

// New opens the raft stores and transport, and checks the rule files. It
// evaluates nothing until Run.
func New(opts Options) (*Ruler, error) {
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ruler: %w", err)
	}
	if opts.Queryable == nil || opts.Engine == nil || opts.Appendable == nil {
		return nil, errors.New("ruler: a queryable, an engine and an appendable are required")
	}
	if !opts.Tenants.Enabled && cfg.RuleFilesTenant != tenant.DefaultTenant {
		// Every series then belongs to the default tenant: rules of any
		// other would see no data.
		return nil, fmt.Errorf("ruler: rule_files_tenant: must be %q while multi-tenancy is disabled, not %q", tenant.DefaultTenant, cfg.RuleFilesTenant)
	}
	r := &Ruler{
		opts:   opts,
		cfg:    cfg,
		logger: opts.Logger,
		fsm:    newFSM(),
		parser: parser.NewParser(parser.Options{}),
		reload: make(chan struct{}, 1),
	}
	r.mode.Store(ModeFollower)
	r.lastLeader.Store(time.Now().UnixNano())
	var err error
	if r.extURL, err = url.Parse(cfg.ExternalURL); err != nil {
		return nil, fmt.Errorf("ruler: external_url: %w", err)
	}
	if _, err := r.checkFiles(opts.Rules.Files); err != nil {
		return nil, err
	}
	r.files = opts.Rules.Files

	ams := []string(cfg.AlertmanagerURL)
	if len(ams) == 0 {
		ams = opts.DefaultAlertmanagerURLs
	}
	promCfg, err := alertingConfig(ams, cfg.NotificationTimeout)
	if err != nil {
		return nil, fmt.Errorf("ruler: alertmanager_url: %w", err)
	}
	applyHTTPClient(promCfg, opts.HTTPClient)
	reg := opts.Registerer
	if r.runtimes, err = newRuntimes(cfg.RuleFilesTenant, promCfg, cfg.NotificationQueue, opts.ExternalLabels, reg, opts.Logger); err != nil {
		return nil, fmt.Errorf("ruler: %w", err)
	}
	if r.notifyDiscovery, err = newNotifyDiscovery(promCfg, opts.SDMetrics, opts.Logger, reg); err != nil {
		r.runtimes.stopAll()
		return nil, fmt.Errorf("ruler: %w", err)
	}
	r.metrics = newMetrics(r, reg)

	dir := cfg.RaftDir
	if dir == "" {
		dir = opts.RaftDir
	}
	if r.node, err = openRaft(cfg, dir, opts.StreamLayer, r.fsm, opts.Logger.With("component", "raft")); err != nil {
		return nil, fmt.Errorf("ruler: %w", err)
	}
	return r, nil
}

// ID is this replica's raft server ID (its advertised raft address).
func (r *Ruler) ID() string { return string(r.node.id) }

// Mode is what this replica currently does.
func (r *Ruler) Mode() Mode { return r.mode.Load().(Mode) }

// Run bootstraps raft if needed and runs until ctx ends, then stops
// evaluating, sends what is queued, and shuts raft down.
func (r *Ruler) Run(ctx context.Context) error {
	if err := r.node.bootstrap(ctx, r.cfg.Peers, r.logger); err != nil {
		_ = r.node.shutdown()
		return err
	}
	var wg sync.WaitGroup
	stopFeed := make(chan struct{})
	wg.Go(func() { r.runtimes.run(r.notifyDiscovery.syncCh(), stopFeed) })
	wg.Go(func() { r.notifyDiscovery.run() })

	err := r.control(ctx)

	r.stopSession()
	close(stopFeed)
	r.notifyDiscovery.stop()
	wg.Wait()
	r.runtimes.stopAll()
	return errors.Join(err, r.node.shutdown())
}

// Close releases what New opened, for a ruler whose Run was never called.
func (r *Ruler) Close() error {
	r.notifyDiscovery.cancel()
	r.runtimes.stopAll()
	return r.node.shutdown()
}

// controlInterval bounds how late a replica notices that it lost (or won)
// leadership; it must stay well below the raft lease.
const controlInterval = 50 * time.Millisecond

// control starts and stops evaluation as leadership comes and goes.
func (r *Ruler) control(ctx context.Context) error {
	tick := time.NewTicker(controlInterval)
	defer tick.Stop()
	reconcile := time.NewTicker(10 * time.Second)
	defer reconcile.Stop()
	rulesVersion, rulesChanged := r.fsm.rulesChanged()
	for {
		want := r.wantedMode()
		if cur := r.Mode(); cur != want {
			r.logger.Info("ruler mode changes", "from", cur, "to", want, "leader", r.leaderAddr())
			r.stopSession()
			if want != ModeFollower {
				if err := r.startSession(ctx, want); err != nil {
					r.logger.Error("starting rule evaluation failed; retrying", "mode", want, "err", err)
					want = ModeFollower
				}
			}
			r.mode.Store(want)
			r.metrics.modeChanges.Inc()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.node.raft.LeaderCh():
		case <-rulesChanged:
			var v uint64
			v, rulesChanged = r.fsm.rulesChanged()
			if v != rulesVersion {
				rulesVersion = v
				r.updateSession()
			}
		case <-r.reload:
			r.updateSession()
		case <-reconcile.C:
			if hasDNSPeer(r.cfg.Peers) && r.node.raft.State() == raft.Leader {
				if err := r.node.reconcilePeers(ctx, r.cfg.Peers); err != nil {
					r.logger.Warn("adding ruler peers failed", "err", err)
				}
			}
		}
	}
}

func (r *Ruler) leaderAddr() string {
	addr, _ := r.node.raft.LeaderWithID()
	return string(addr)
}

// wantedMode decides from raft's view what this replica should do.
func (r *Ruler) wantedMode() Mode {
	now := time.Now()
	if r.node.raft.State() == raft.Leader {
		r.lastLeader.Store(now.UnixNano())
		return ModeLeader
	}
	if r.leaderAddr() != "" {
		r.lastLeader.Store(now.UnixNano())
		return ModeFollower
	}
	if r.cfg.IsolatedFallback && now.Sub(time.Unix(0, r.lastLeader.Load())) > r.cfg.IsolatedFallbackAfter {
		return ModeFallback
	}
	return ModeFollower
}

// mayAct reports whether a session of the given mode may still evaluate
// and send. A leader asks raft itself, not the control loop's last view,
// so that it stops within the lease.
func (r *Ruler) mayAct(mode Mode) bool {
	switch mode {
	case ModeLeader:
		return r.node.raft.State() == raft.Leader
	case ModeFallback:
		return r.wantedMode() == ModeFallback
	}
	return false
}

// session is one period of evaluation: a rules.Manager per tenant with
// rules, as the Cortex ruler runs one per user, built when the replica
// becomes leader (or falls back) and stopped when it stops. Each manager's
// context carries its tenant, so its queries read and its recording rules
// and ALERTS write that tenant's series only.
type session struct {
	mode   Mode
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	managers map[string]*tenantManager // by tenant
	// seeded holds the groups whose alerts were restored from the FSM;
	// committed the alert state last committed per group; outboxes the
	// alerts of each group waiting for their commit.
	seeded    map[stateKey]bool
	committed map[stateKey]*groupState
	outboxes  map[stateKey]*outbox
}

// stateKey names a group's alert state: its tenant and rules.GroupKey.
type stateKey struct{ tenant, group string }

type tenantManager struct {
	manager *rules.Manager
	done    chan struct{}
	// deliver sends alerts of one rule to the tenant's Alertmanagers.
	deliver func(ctx context.Context, expr string, alerts ...*rules.Alert)
}

func (s *session) manager(id string) *tenantManager {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.managers[id]
}

func (r *Ruler) startSession(ctx context.Context, mode Mode) error {
	if mode == ModeLeader {
		// Everything an earlier leader committed must be in the FSM
		// before it is read.
		if err := r.node.raft.Barrier(10 * time.Second).Error(); err != nil {
			return fmt.Errorf("raft barrier: %w", err)
		}
		term := r.node.raft.CurrentTerm()
		if err := r.apply(&command{Op: opLeader, Leader: &leaderInfo{ID: r.ID(), HTTPURL: r.opts.HTTPURL, Term: term}}); err != nil {
			return fmt.Errorf("record leader: %w", err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &session{mode: mode, ctx: sctx, cancel: cancel, managers: map[string]*tenantManager{}, seeded: map[stateKey]bool{}, committed: map[stateKey]*groupState{}, outboxes: map[stateKey]*outbox{}}
	r.mu.Lock()
	r.session = s
	r.mu.Unlock()
	if err := r.loadRules(s); err != nil {
		r.logger.Error("loading rules failed", "err", err)
	}
	r.logger.Info("rule evaluation started", "mode", mode)
	return nil
}

// startManager creates and runs the rules.Manager of tenant id.
func (r *Ruler) startManager(s *session, id string) (*tenantManager, error) {
	rt, err := r.runtimes.get(id)
	if err != nil {
		return nil, err
	}
	send := rules.SendAlerts(rt.notifier, r.extURL.String())
	mode := s.mode
	deliver := func(ctx context.Context, expr string, alerts ...*rules.Alert) {
		if len(alerts) == 0 || !r.mayAct(mode) {
			return
		}
		r.metrics.alertsSent.WithLabelValues(id).Add(float64(len(alerts)))
		send(ctx, expr, alerts...)
	}
	m := rules.NewManager(&rules.ManagerOptions{
		ExternalURL: r.extURL,
		QueryFunc:   rules.EngineQueryFunc(r.opts.Engine, r.opts.Queryable),
		NotifyFunc: func(ctx context.Context, expr string, alerts ...*rules.Alert) {
			if ob := outboxFrom(ctx); ob != nil {
				ob.hold(expr, alerts)
				return
			}
			deliver(ctx, expr, alerts...)
		},
		// Groups run with this context: the engine hands it to Select,
		// and the group to AppenderV2.
		Context:                tenant.With(s.ctx, id),
		AppendableV2:           r.opts.Appendable,
		Queryable:              r.opts.Queryable,
		Logger:                 r.logger.With("component", "rule manager", "tenant", id),
		ResendDelay:            r.cfg.ResendDelay,
		OutageTolerance:        time.Hour,
		ForGracePeriod:         10 * time.Minute,
		GroupLoader:            &groupLoader{fsm: r.fsm, tenant: id, parser: r.parser, logger: r.logger},
		DefaultRuleQueryOffset: func() time.Duration { return r.cfg.QueryOffset },
		Metrics:                rt.ruleMetrics,
		Parser:                 r.parser,
	})
	// A first, empty update marks the manager as restored, so the rule
	// groups skip Prometheus's restore from ALERTS_FOR_STATE: state comes
	// from the FSM instead (see seed).
	if err := m.Update(r.cfg.EvaluationInterval, nil, r.opts.ExternalLabels, r.extURL.String(), nil); err != nil {
		return nil, fmt.Errorf("rule manager of tenant %q: %w", id, err)
	}
	tm := &tenantManager{manager: m, done: make(chan struct{}), deliver: deliver}
	go func() {
		defer close(tm.done)
		m.Run()
	}()
	s.mu.Lock()
	s.managers[id] = tm
	s.mu.Unlock()
	return tm, nil
}

func (tm *tenantManager) stop() {
	tm.manager.Stop()
	<-tm.done
}

func (r *Ruler) stopSession() {
	r.mu.Lock()
	s := r.session
	r.session = nil
	r.mu.Unlock()
	if s == nil {
		return
	}
	s.cancel()
	s.mu.Lock()
	managers := s.managers
	s.managers = map[string]*tenantManager{}
	s.mu.Unlock()
	for _, tm := range managers {
		tm.stop()
	}
	r.metrics.ruleGroups.Reset()
	r.logger.Info("rule evaluation stopped", "mode", s.mode)
}

// updateSession reloads the rules of the running session, if any.
func (r *Ruler) updateSession() {
	r.mu.Lock()
	s := r.session
	r.mu.Unlock()
	if s == nil {
		return
	}
	if err := r.loadRules(s); err != nil {
		r.logger.Error("loading rules failed; the previous rules keep running", "err", err)
	}
}

// loadRules hands each tenant's manager its rule files and API
// namespaces: the rule files belong to ruler.rule_files_tenant. A tenant
// that gained rules gets a manager, one that has none left loses it.
func (r *Ruler) loadRules(s *session) error {
	r.mu.Lock()
	globs := slices.Clone(r.files)
	r.mu.Unlock()
	files, err := expandGlobs(globs)
	if err != nil {
		return err
	}
	want := map[string][]string{}
	if len(files) > 0 {
		want[r.cfg.RuleFilesTenant] = files
	}
	for _, id := range r.fsm.apiTenants() {
		for _, ns := range r.fsm.namespaces(id) {
			want[id] = append(want[id], apiFile(ns))
		}
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(want)) {
		tm := s.manager(id)
		if tm == nil {
			if tm, err = r.startManager(s, id); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		fs := want[id]
		sort.Strings(fs)
		if err := tm.manager.Update(r.cfg.EvaluationInterval, fs, r.opts.ExternalLabels, r.extURL.String(), r.iterate(s, id)); err != nil {
			errs = append(errs, fmt.Errorf("tenant %q: %w", id, err))
		}
		r.metrics.ruleGroups.WithLabelValues(id).Set(float64(len(tm.manager.RuleGroups())))
	}
	s.mu.Lock()
	var gone []string
	for id := range s.managers {
		if _, ok := want[id]; !ok {
			gone = append(gone, id)
		}
	}
	s.mu.Unlock()
	for _, id := range gone {
		s.mu.Lock()
		tm := s.managers[id]
		delete(s.managers, id)
		for k := range s.seeded {
			if k.tenant == id {
				delete(s.seeded, k)
				delete(s.committed, k)
				delete(s.outboxes, k)
			}
		}
		s.mu.Unlock()
		tm.stop()
		r.metrics.forget(id)
		r.logger.Info("tenant has no rules left; its evaluation stopped", "tenant", id)
	}
	r.runtimes.retain(want)
	return errors.Join(errs...)
}

// iterate wraps one evaluation of a group of tenant id: it refuses to
// evaluate when this replica may no longer act, seeds alert state before
// a group's first evaluation, and commits changed state after each. A
// leader sends the evaluation's alerts only once that state is committed
// (see outbox).
func (r *Ruler) iterate(s *session, id string) rules.GroupEvalIterationFunc {
	return func(ctx context.Context, g *rules.Group, ts time.Time) {
		if !r.mayAct(s.mode) {
			return
		}
		key := stateKey{id, rules.GroupKey(g.File(), g.Name())}
		s.mu.Lock()
		seeded := s.seeded[key]
		s.seeded[key] = true
		s.mu.Unlock()
		if !seeded {
			st := r.fsm.groupState(id, key.group)
			r.seed(ctx, g, st, ts)
			s.mu.Lock()
			s.committed[key] = st
			s.mu.Unlock()
		}
		if s.mode != ModeLeader {
			rules.DefaultEvalIterationFunc(ctx, g, ts)
			r.metrics.evaluations.WithLabelValues(string(s.mode), id).Inc()
			return
		}
		s.mu.Lock()
		ob := s.outboxes[key]
		if ob == nil {
			ob = &outbox{}
			s.outboxes[key] = ob
		}
		prev := s.committed[key]
		s.mu.Unlock()
		rules.DefaultEvalIterationFunc(withOutbox(ctx, ob), g, ts)
		r.metrics.evaluations.WithLabelValues(string(s.mode), id).Inc()
		if st := collectState(g); !sameGroupState(prev, st) {
			if err := r.apply(&command{Op: opAlertState, Tenant: id, GroupKey: key.group, State: st}); err != nil {
				r.logger.Warn("committing alert state failed; its alerts wait for the next commit", "tenant", id, "group", key.group, "err", err)
				return
			}
			s.mu.Lock()
			s.committed[key] = st
			s.mu.Unlock()
		}
		tm := s.manager(id)
		if tm == nil {
			return // the tenant's rules are gone
		}
		ob.flush(func(expr string, alerts []*rules.Alert) { tm.deliver(ctx, expr, alerts...) })
	}
}

// seed gives each alerting rule of g the alerts st holds, before g's first
// evaluation under this session. The upstream rule creates an alert only
// from a query result, so the rule is evaluated once with a query that
// returns exactly the stored alerts; the alerts it creates then get the
// stored state. Nothing is written or sent by that evaluation.
func (r *Ruler) seed(ctx context.Context, g *rules.Group, st *groupState, ts time.Time) {
	if st == nil {
		return
	}
	n := 0
	forEachAlertingRule(g, func(key string, ar *rules.AlertingRule) {
		stored := st.Rules[key]
		if len(stored) == 0 {
			return
		}
		byHash := make(map[uint64]alertState, len(stored))
		vec := make(promql.Vector, 0, len(stored))
		for _, a := range stored {
			ls := a.labels()
			byHash[ls.Hash()] = a
			vec = append(vec, promql.Sample{Metric: ls, F: float64(a.Value), T: ts.UnixMilli()})
		}
		query := func(context.Context, string, time.Time) (promql.Vector, error) { return vec, nil }
		if _, err := ar.Eval(ctx, 0, ts, query, r.extURL, 0); err != nil {
			r.logger.Warn("restoring alert state failed", "rule", ar.Name(), "err", err)
			return
		}
		ar.ForEachActiveAlert(func(a *rules.Alert) {
			if s, ok := byHash[a.Labels.Hash()]; ok {
				s.apply(a)
				n++
			}
		})
	})
	if n > 0 {
		r.metrics.restoredAlerts.Add(float64(n))
		r.logger.Info("alert state restored", "group", rules.GroupKey(g.File(), g.Name()), "alerts", n)
	}
}

// collectState reads the durable state of g's alerts.
func collectState(g *rules.Group) *groupState {
	st := &groupState{Rules: map[string][]alertState{}}
	forEachAlertingRule(g, func(key string, ar *rules.AlertingRule) {
		var as []alertState
		ar.ForEachActiveAlert(func(a *rules.Alert) { as = append(as, stateOf(a)) })
		if len(as) == 0 {
			return
		}
		sort.Slice(as, func(i, j int) bool {
			return labels.Compare(as[i].labels(), as[j].labels()) < 0
		})
		st.Rules[key] = as
	})
	return st
}

// forEachAlertingRule calls f with each alerting rule of g and its key:
// name and labels, plus an ordinal for rules that share both, as the
// upstream CopyState matches rules across reloads.
func forEachAlertingRule(g *rules.Group, f func(key string, ar *rules.AlertingRule)) {
	seen := map[string]int{}
	for _, rule := range g.Rules() {
		ar, ok := rule.(*rules.AlertingRule)
		if !ok {
			continue
		}
		k := ar.Name() + ar.Labels().String()
		if n := seen[k]; n > 0 {
			k = fmt.Sprintf("%s#%d", k, n)
		}
		seen[ar.Name()+ar.Labels().String()]++
		f(k, ar)
	}
}

// apply commits one command on the leader.
func (r *Ruler) apply(c *command) error {
	b, err := encodeCommand(c)
	if err != nil {
		return fmt.Errorf("encode %s: %w", c.Op, err)
	}
	start := time.Now()
	f := r.node.raft.Apply(b, 10*time.Second)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return errNotLeader
		}
		return fmt.Errorf("raft apply %s: %w", c.Op, err)
	}
	r.metrics.commitBytes.WithLabelValues(c.Op).Add(float64(len(b)))
	r.metrics.commitDuration.WithLabelValues(c.Op).Observe(time.Since(start).Seconds())
	if resp, ok := f.Response().(error); ok && resp != nil {
		return resp
	}
	return nil
}

var (
	errNotLeader = errors.New("this ruler is not the raft leader")
	errNotFound  = errors.New("not found")
)

// Reload re-reads the rule files (same or new globs); invalid files are
// refused and the previous rules keep running.
func (r *Ruler) Reload(files []string) error {
	if _, err := r.checkFiles(files); err != nil {
		return err
	}
	r.mu.Lock()
	r.files = slices.Clone(files)
	r.mu.Unlock()
	select {
	case r.reload <- struct{}{}:
	default:
	}
	return nil
}

// checkFiles parses every rule file as promtool check rules does; errors
// name file, line, group and rule.
func (r *Ruler) checkFiles(globs []string) (int, error) {
	files, err := expandGlobs(globs)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, f := range files {
		rgs, fileErrs := rulefmt.ParseFile(f, false, model.UTF8Validation, r.parser, r.logger)
		errs = append(errs, fileErrs...)
		if rgs != nil {
			for _, g := range rgs.Groups {
				n += len(g.Rules)
			}
		}
	}
	if len(errs) > 0 {
		return 0, fmt.Errorf("rule files: %w", errors.Join(errs...))
	}
	return n, nil
}

func expandGlobs(globs []string) ([]string, error) {
	var files []string
	for _, pat := range globs {
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("rules.files %q: %w", pat, err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	return slices.Compact(files), nil
}

// groupLoader loads rule files from disk and a tenant's API namespaces
// from the FSM.
type groupLoader struct {
	fsm    *fsm
	tenant string
	parser parser.Parser
	logger *slog.Logger
}

func (l *groupLoader) Load(identifier string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	ns, ok := cutAPIFile(identifier)
	if !ok {
		return rulefmt.ParseFile(identifier, ignoreUnknownFields, scheme, l.parser, l.logger)
	}
	out := &rulefmt.RuleGroups{}
	for _, g := range l.fsm.namespace(l.tenant, ns) {
		rg, err := parseGroup([]byte(g.Body), l.parser, l.logger)
		if err != nil {
			return nil, []error{fmt.Errorf("namespace %q: %w", ns, err)}
		}
		out.Groups = append(out.Groups, *rg)
	}
	return out, nil
}

func (l *groupLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

func cutAPIFile(identifier string) (string, bool) {
	if len(identifier) > len(apiFilePrefix) && identifier[:len(apiFilePrefix)] == apiFilePrefix {
		return identifier[len(apiFilePrefix):], true
	}
	return "", false
}
