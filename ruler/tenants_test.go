package ruler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// tenantStore stands in front of the test tsdb as the ingesters do for
// the cluster: every select is limited to the tenant of its context (by
// the reserved label), and it records which tenants reads and writes came
// with, so a test sees the context a rule manager evaluates in.
type tenantStore struct {
	db       *tsdb.DB
	mu       sync.Mutex
	selects  map[string]int // by tenant, "" for none
	appends  map[string]int
	noTenant int
}

func newTenantStore(db *tsdb.DB) *tenantStore {
	return &tenantStore{db: db, selects: map[string]int{}, appends: map[string]int{}}
}

func (ts *tenantStore) record(m map[string]int, ctx context.Context) string {
	id, err := tenant.FromContext(ctx)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err != nil {
		ts.noTenant++
	}
	m[id]++
	return id
}

func (ts *tenantStore) seen() (selects, appends []string, noTenant int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for id := range ts.selects {
		selects = append(selects, id)
	}
	for id := range ts.appends {
		appends = append(appends, id)
	}
	slices.Sort(selects)
	slices.Sort(appends)
	return selects, appends, ts.noTenant
}

func (ts *tenantStore) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := ts.db.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &tenantQuerier{Querier: q, ts: ts}, nil
}

func (ts *tenantStore) AppenderV2(ctx context.Context) storage.AppenderV2 {
	ts.record(ts.appends, ctx)
	return ts.db.AppenderV2(ctx)
}

type tenantQuerier struct {
	storage.Querier
	ts *tenantStore
}

func (q *tenantQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	id := q.ts.record(q.ts.selects, ctx)
	ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, tenant.Label, id))
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}

// writeTenantNodes stores n kube_node_info series of tenant id.
func (s *storageT) writeTenantNodes(t testing.TB, id string, n int) {
	app := s.db.Appender(context.Background())
	ts := time.Now().UnixMilli()
	for i := range n {
		_, err := app.Append(0, labels.FromStrings("__name__", "kube_node_info", "node", fmt.Sprintf("%s-%d", id, i), tenant.Label, id), ts, 1)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

// apiServers serves each replica's rules API and a stand-in for the
// Prometheus /api/v1/rules (behind ForwardToEvaluator) on real HTTP.
type apiServers struct {
	t      testing.TB
	mu     sync.Mutex
	rulers map[string]*Ruler // by raft address
	urls   map[string]string
}

func newAPIServers(t testing.TB) *apiServers {
	return &apiServers{t: t, rulers: map[string]*Ruler{}, urls: map[string]string{}}
}

// options gives a replica its HTTP URL (its server is created once per
// raft address and survives restarts).
func (a *apiServers) options(o *Options) {
	addr := o.StreamLayer.(*switchStream).Addr().String()
	a.mu.Lock()
	defer a.mu.Unlock()
	if u, ok := a.urls[addr]; ok {
		o.HTTPURL = u
		return
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		a.mu.Lock()
		r := a.rulers[addr]
		a.mu.Unlock()
		if r == nil {
			http.Error(w, "replica down", http.StatusServiceUnavailable)
			return
		}
		mux := http.NewServeMux()
		mux.Handle("/api/v1/rules/", r.Handler())
		mux.Handle(MimirRulesPrefix, r.Handler())
		mux.Handle(MimirRulesPrefix+"/", r.Handler())
		mux.Handle("/api/v1/rules", r.ForwardToEvaluator(listAlerts(r)))
		mux.ServeHTTP(w, req)
	}))
	a.t.Cleanup(srv.Close)
	a.urls[addr], o.HTTPURL = srv.URL, srv.URL
}

func (a *apiServers) register(c *clusterT) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rp := range c.replicas {
		a.rulers[rp.addr] = rp.r
	}
}

func (a *apiServers) url(rp *replica) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.urls[rp.addr]
}

type listedAlert struct {
	Rule     string    `json:"rule"`
	State    string    `json:"state"`
	ActiveAt time.Time `json:"activeAt"`
}

type listedRules struct {
	Groups []string      `json:"groups"`
	Rules  []string      `json:"rules"`
	Alerts []listedAlert `json:"alerts"`
}

// listAlerts answers what the Prometheus API would take from RulesFor.
func listAlerts(r *Ruler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tr := r.RulesFor(req.Context())
		out := listedRules{Groups: []string{}, Rules: []string{}, Alerts: []listedAlert{}}
		for _, g := range tr.RuleGroups() {
			out.Groups = append(out.Groups, g.File()+";"+g.Name())
		}
		for _, ar := range tr.AlertingRules() {
			out.Rules = append(out.Rules, ar.Name())
			for _, al := range ar.ActiveAlerts() {
				out.Alerts = append(out.Alerts, listedAlert{Rule: ar.Name(), State: al.State.String(), ActiveAt: al.ActiveAt})
			}
		}
		slices.Sort(out.Rules)
		writeJSON(w, out)
	})
}

// do sends one API request as tenant id ("" sends no header).
func do(t testing.TB, method, url, id, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if id != "" {
		req.Header.Set(tenant.HeaderName, id)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func listed(t testing.TB, url, id string) listedRules {
	t.Helper()
	code, body := do(t, http.MethodGet, url+"/api/v1/rules", id, "")
	require.Equal(t, http.StatusOK, code, body)
	var out listedRules
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	return out
}

type fixedLimits struct{ groups, rules map[string]int }

func (l fixedLimits) RulerMaxRuleGroupsPerTenant(id string) int { return l.groups[id] }
func (l fixedLimits) RulerMaxRulesPerRuleGroup(id string) int   { return l.rules[id] }

// Both tenants name their group the same; their rules differ. Tenant a has
// three nodes and b one, so a rule of b that saw a's data would fire.
const (
	groupOfA = `name: nodes
interval: 1s
rules:
- alert: Nodes
  expr: count(kube_node_info) >= 3
  for: 2s
  labels:
    owner: a
- record: nodes:count
  expr: count(kube_node_info)
`
	groupOfB = `name: nodes
interval: 1s
rules:
- alert: Nodes
  expr: count(kube_node_info) >= 1
  for: 2s
  labels:
    owner: b
- alert: SeesOtherTenant
  expr: count(kube_node_info) >= 2
`
)

func TestTenantsHaveTheirOwnRulesAlertsAndState(t *testing.T) {
	servers := newAPIServers(t)
	var (
		storeOnce sync.Once
		store     *tenantStore
	)
	c := newClusterWith(t, 3, "", nil, func(o *Options) {
		servers.options(o)
		storeOnce.Do(func() { store = newTenantStore(o.Queryable.(*tsdb.DB)) })
		o.Queryable, o.Appendable = store, store
		o.Tenants = tenant.Resolver{Enabled: true}
		o.Limits = fixedLimits{groups: map[string]int{"team-a": 1}, rules: map[string]int{"team-b": 2}}
	})
	servers.register(c)
	c.store.writeTenantNodes(t, "team-a", 3)
	c.store.writeTenantNodes(t, "team-b", 1)

	l := c.leader()
	var follower *replica
	for _, rp := range c.replicas {
		if rp != l {
			follower = rp
		}
	}
	fURL := servers.url(follower)
	require.Eventually(t, func() bool { return follower.r.fsm.leaderInfo().HTTPURL == servers.url(l) }, 5*time.Second, 10*time.Millisecond)

	// Writes go through a follower, which forwards them with the tenant.
	code, body := do(t, http.MethodPost, fURL+"/api/v1/rules/infra", "", groupOfA)
	require.Equal(t, http.StatusUnauthorized, code, body)
	require.Contains(t, body, tenant.HeaderName)
	code, body = do(t, http.MethodPost, fURL+"/api/v1/rules/infra", "team-a", groupOfA)
	require.Equal(t, http.StatusAccepted, code, body)
	code, body = do(t, http.MethodPost, fURL+"/api/v1/rules/infra", "team-b", groupOfB)
	require.Equal(t, http.StatusAccepted, code, body)

	// Each tenant reads its own group under the same name; a third has none.
	for _, rp := range c.replicas {
		require.Eventually(t, func() bool {
			return len(rp.r.fsm.namespace("team-a", "infra")) == 1 && len(rp.r.fsm.namespace("team-b", "infra")) == 1
		}, 5*time.Second, 10*time.Millisecond)
	}
	code, body = do(t, http.MethodGet, fURL+"/api/v1/rules/infra/nodes", "team-a", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "owner: a")
	require.NotContains(t, body, "SeesOtherTenant")
	code, body = do(t, http.MethodGet, fURL+"/api/v1/rules/infra", "team-b", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "SeesOtherTenant")
	require.NotContains(t, body, "owner: a")
	code, _ = do(t, http.MethodGet, fURL+"/api/v1/rules/infra", "team-c", "")
	require.Equal(t, http.StatusNotFound, code)
	// Mimir's paths: the same groups, and every namespace at once.
	code, body = do(t, http.MethodGet, fURL+MimirRulesPrefix, "team-b", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "infra:\n")
	require.Contains(t, body, "SeesOtherTenant")
	require.NotContains(t, body, "owner: a")
	code, body = do(t, http.MethodGet, fURL+MimirRulesPrefix+"/infra/nodes", "team-a", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "owner: a")
	code, _ = do(t, http.MethodGet, fURL+MimirRulesPrefix, "team-c", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = do(t, http.MethodDelete, fURL+"/api/v1/rules/infra/nodes", "team-c", "")
	require.Equal(t, http.StatusNotFound, code, "a tenant cannot delete another's group")

	// Limits: 400 naming the limit and the tenant, the other tenant unaffected.
	other := strings.Replace(groupOfA, "name: nodes", "name: more", 1)
	code, body = do(t, http.MethodPost, fURL+"/api/v1/rules/infra", "team-a", other)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "ruler_max_rule_groups_per_tenant")
	require.Contains(t, body, `\"team-a\"`)
	code, body = do(t, http.MethodPost, fURL+"/api/v1/rules/infra", "team-a", strings.Replace(groupOfA, "owner: a", "owner: a2", 1))
	require.Equal(t, http.StatusAccepted, code, "replacing a group adds none: %s", body)
	code, body = do(t, http.MethodPost, fURL+"/api/v1/rules/infra", "team-b", groupOfB+"- record: x\n  expr: vector(1)\n")
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "ruler_max_rules_per_rule_group")
	require.Contains(t, body, `\"team-b\"`)

	// The leader evaluates both; each tenant's alerts reach the notifier
	// under its own X-Scope-OrgID, and b's rules never see a's data.
	require.Eventually(t, func() bool {
		var a, b bool
		for _, al := range c.recv.named("Nodes") {
			if al.EndsAt.After(time.Now()) || al.EndsAt.IsZero() {
				a = a || al.Labels["owner"] == "a2"
				b = b || al.Labels["owner"] == "b"
			}
		}
		return a && b
	}, 20*time.Second, 50*time.Millisecond, "both tenants' alerts fire")
	for _, al := range c.recv.named("Nodes") {
		want := map[string]string{"a": "team-a", "a2": "team-a", "b": "team-b"}[al.Labels["owner"]]
		require.Equal(t, want, al.Tenant, "alert %v", al.Labels)
	}
	require.Empty(t, c.recv.named("SeesOtherTenant"), "a rule of team-b saw team-a's series")
	selects, appends, none := store.seen()
	require.Equal(t, []string{"team-a", "team-b"}, selects)
	require.Equal(t, []string{"team-a", "team-b"}, appends)
	require.Zero(t, none, "a query or write without a tenant")

	// The Prometheus API on a follower forwards to the leader and lists
	// the asking tenant's rules only.
	la, lb := listed(t, fURL, "team-a"), listed(t, fURL, "team-b")
	require.Equal(t, []string{"Nodes"}, la.Rules)
	require.Equal(t, []string{"Nodes", "SeesOtherTenant"}, lb.Rules)
	require.Equal(t, []string{"api:infra;nodes"}, la.Groups)
	require.Empty(t, listed(t, fURL, "team-c").Rules)
	code, _ = do(t, http.MethodGet, fURL+"/api/v1/rules", "", "")
	require.Equal(t, http.StatusUnauthorized, code)

	// Metrics carry the tenant.
	require.Equal(t, 1.0, testutil.ToFloat64(l.r.metrics.ruleGroups.WithLabelValues("team-a")))
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(l.r.metrics.evaluations.WithLabelValues(string(ModeLeader), "team-b")) > 0
	}, 5*time.Second, 20*time.Millisecond)

	// Both tenants' alert state survives a failover.
	require.Eventually(t, func() bool {
		la, lb = listed(t, fURL, "team-a"), listed(t, fURL, "team-b")
		return len(la.Alerts) == 1 && la.Alerts[0].State == "firing" && len(lb.Alerts) == 1 && lb.Alerts[0].State == "firing"
	}, 10*time.Second, 50*time.Millisecond)
	for _, id := range []string{"team-a", "team-b"} {
		require.Eventually(t, func() bool {
			st := follower.r.fsm.groupState(id, "api:infra;nodes")
			return st != nil && len(st.Rules) == 1
		}, 5*time.Second, 20*time.Millisecond, "state of %s replicated", id)
	}
	c.stop(l)
	next := c.leader()
	nURL := servers.url(next)
	require.Eventually(t, func() bool {
		na, nb := listed(t, nURL, "team-a"), listed(t, nURL, "team-b")
		return len(na.Alerts) == 1 && len(nb.Alerts) == 1
	}, 10*time.Second, 50*time.Millisecond)
	na, nb := listed(t, nURL, "team-a"), listed(t, nURL, "team-b")
	require.Equal(t, "firing", na.Alerts[0].State)
	require.True(t, la.Alerts[0].ActiveAt.Equal(na.Alerts[0].ActiveAt), "team-a activeAt %v, then %v", la.Alerts[0].ActiveAt, na.Alerts[0].ActiveAt)
	require.Equal(t, "firing", nb.Alerts[0].State)
	require.True(t, lb.Alerts[0].ActiveAt.Equal(nb.Alerts[0].ActiveAt), "team-b activeAt %v, then %v", lb.Alerts[0].ActiveAt, nb.Alerts[0].ActiveAt)

	// A tenant without groups loses its manager, notifier and metrics.
	code, body = do(t, http.MethodDelete, nURL+"/api/v1/rules/infra", "team-a", "")
	require.Equal(t, http.StatusAccepted, code, body)
	// The manager leaves the session first; its metrics and notifier
	// client go once it has stopped.
	kept := func() bool {
		next.r.runtimes.mu.Lock()
		defer next.r.runtimes.mu.Unlock()
		_, ok := next.r.runtimes.byID["team-a"]
		return ok
	}
	require.Eventually(t, func() bool {
		return next.r.tenantManager("team-a") == nil && !kept() && testutil.CollectAndCount(next.r.metrics.ruleGroups) == 1
	}, 5*time.Second, 20*time.Millisecond, "team-a's manager, notifier client and metrics are gone; only team-b's series is left")
	require.NotNil(t, next.r.tenantManager("team-b"))
	require.Equal(t, 1, testutil.CollectAndCount(next.r.metrics.ruleGroups, "pharos_ruler_rule_groups"))
}

func TestRuleFilesTenantNeedsMultitenancy(t *testing.T) {
	cfg := testConfig()
	cfg.RuleFilesTenant = "ops"
	s := newStorage(t)
	opts := Options{Config: cfg, RaftDir: t.TempDir(), Queryable: s.db, Engine: s.engine, Appendable: s.db,
		Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()}
	_, err := New(opts)
	require.ErrorContains(t, err, "rule_files_tenant")
}

func TestRuleFilesBelongToTheirTenant(t *testing.T) {
	var (
		once  sync.Once
		store *tenantStore
	)
	c := newClusterWith(t, 1, tutorialRules("0s"), func(cfg *Config) { cfg.RuleFilesTenant = "ops" }, func(o *Options) {
		once.Do(func() { store = newTenantStore(o.Queryable.(*tsdb.DB)) })
		o.Queryable, o.Appendable = store, store
		o.Tenants = tenant.Resolver{Enabled: true}
	})
	c.store.writeTenantNodes(t, "ops", 4)
	c.store.writeTenantNodes(t, "other", 1)
	l := c.leader()
	require.Eventually(t, func() bool { return len(c.recv.named("TooManyNodes")) > 0 }, 10*time.Second, 20*time.Millisecond)
	for _, al := range c.recv.named("TooManyNodes") {
		require.Equal(t, "ops", al.Tenant)
	}
	selects, _, none := store.seen()
	require.Equal(t, []string{"ops"}, selects)
	require.Zero(t, none)
	require.Len(t, l.r.RulesFor(tenant.With(context.Background(), "ops")).RuleGroups(), 1)
	require.Empty(t, l.r.RulesFor(tenant.With(context.Background(), tenant.DefaultTenant)).RuleGroups())
}
