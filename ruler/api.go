package ruler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"maps"

	"github.com/hashicorp/raft"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// maxRuleGroupBytes bounds one rule group posted to the API.
const maxRuleGroupBytes = 1 << 20

// forwardedHeader marks a request a follower forwarded, so it is never
// forwarded twice.
const forwardedHeader = "X-Pharos-Ruler-Forwarded"

// Handler serves the rule configuration API (Cortex/Mimir style, YAML
// bodies) under /api/v1/rules/{namespace}[/{group}] and the raft status
// under /api/v1/status/ruler. Writes on a follower are forwarded to the
// leader, since only it can commit. The rules API acts for the tenant of
// the request (Options.Tenants): a tenant sees and changes only its own
// namespaces.
func (r *Ruler) Handler() http.Handler {
	mux := http.NewServeMux()
	mw := r.opts.Tenants.Middleware
	mux.HandleFunc("GET /api/v1/status/ruler", r.serveStatus)
	// Cortex's paths, and Mimir's (where mimirtool and Grafana Alloy look),
	// which also list every namespace at the prefix itself: at Cortex's
	// that is Prometheus's /api/v1/rules.
	for _, prefix := range []string{"/api/v1/rules", MimirRulesPrefix} {
		mux.Handle("GET "+prefix+"/{namespace}", mw(http.HandlerFunc(r.serveNamespace)))
		mux.Handle("GET "+prefix+"/{namespace}/{group}", mw(http.HandlerFunc(r.serveGroup)))
		mux.Handle("POST "+prefix+"/{namespace}", mw(r.onLeader(http.HandlerFunc(r.setGroup))))
		mux.Handle("DELETE "+prefix+"/{namespace}", mw(r.onLeader(http.HandlerFunc(r.deleteNamespace))))
		mux.Handle("DELETE "+prefix+"/{namespace}/{group}", mw(r.onLeader(http.HandlerFunc(r.deleteGroup))))
	}
	mux.Handle("GET "+MimirRulesPrefix, mw(http.HandlerFunc(r.serveAll)))
	return mux
}

// ForwardToEvaluator wraps the Prometheus /api/v1/rules and /api/v1/alerts
// handlers: the replica that evaluates answers, a follower forwards to the
// leader, which holds the live rule state (health, last error, alerts).
// The request's tenant is resolved first, so next (whose RulesRetriever is
// RulesFor) finds it in the context.
func (r *Ruler) ForwardToEvaluator(next http.Handler) http.Handler {
	return r.opts.Tenants.Middleware(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.Mode() != ModeFollower || req.Header.Get(forwardedHeader) != "" {
			next.ServeHTTP(w, req)
			return
		}
		r.forward(w, req)
	}))
}

// RuleGroups returns the running session's groups of every tenant (none
// on a follower), for status pages. A tenant's API uses RulesFor.
func (r *Ruler) RuleGroups() []*rules.Group {
	var out []*rules.Group
	for _, m := range r.managers() {
		out = append(out, m.RuleGroups()...)
	}
	return out
}

// AlertingRules returns the alerting rules of every tenant; see RuleGroups.
func (r *Ruler) AlertingRules() []*rules.AlertingRule {
	var out []*rules.AlertingRule
	for _, m := range r.managers() {
		out = append(out, m.AlertingRules()...)
	}
	return out
}

// managers returns the running session's rule managers.
func (r *Ruler) managers() []*rules.Manager {
	s := r.current()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*rules.Manager, 0, len(s.managers))
	for _, id := range slices.Sorted(maps.Keys(s.managers)) {
		out = append(out, s.managers[id].manager)
	}
	return out
}

// tenantManager returns the running rule manager of tenant id, nil if it
// has none or this replica does not evaluate.
func (r *Ruler) tenantManager(id string) *rules.Manager {
	s := r.current()
	if s == nil || id == "" {
		return nil
	}
	if tm := s.manager(id); tm != nil {
		return tm.manager
	}
	return nil
}

func (r *Ruler) current() *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.session
}

func (r *Ruler) onLeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.node.raft.State() == raft.Leader || req.Header.Get(forwardedHeader) != "" {
			next.ServeHTTP(w, req)
			return
		}
		r.forward(w, req)
	})
}

// forward proxies req to the leader's HTTP server.
func (r *Ruler) forward(w http.ResponseWriter, req *http.Request) {
	_, leaderID := r.node.raft.LeaderWithID()
	li := r.fsm.leaderInfo()
	if leaderID == "" || string(leaderID) != li.ID || li.HTTPURL == "" {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "no ruler leader is known yet; retry")
		return
	}
	target, err := url.Parse(li.HTTPURL)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", fmt.Sprintf("leader URL %q: %v", li.HTTPURL, err))
		return
	}
	proxy := &httputil.ReverseProxy{
		Transport: r.opts.HTTPTransport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(forwardedHeader, r.ID())
			// The header was copied already; set it from the context in
			// case this replica resolved the tenant otherwise.
			_ = tenant.InjectHeader(pr.In.Context(), pr.Out)
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, http.StatusBadGateway, "unavailable", fmt.Sprintf("forwarding to the ruler leader %s: %v", li.ID, err))
		},
	}
	proxy.ServeHTTP(w, req)
}

// requestTenant returns the tenant the middleware put into req's context.
func requestTenant(w http.ResponseWriter, req *http.Request) (string, bool) {
	id, err := tenant.FromContext(req.Context())
	if err != nil {
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return "", false
	}
	return id, true
}

// MimirRulesPrefix is where Mimir serves the rules configuration API.
const MimirRulesPrefix = "/prometheus/config/v1/rules"

// serveAll answers every namespace of the tenant, 404 when it has none, as
// Mimir does.
func (r *Ruler) serveAll(w http.ResponseWriter, req *http.Request) {
	id, ok := requestTenant(w, req)
	if !ok {
		return
	}
	out := map[string][]rulefmt.RuleGroup{}
	for _, ns := range r.fsm.namespaces(id) {
		for _, g := range r.fsm.namespace(id, ns) {
			rg, err := parseGroup([]byte(g.Body), r.parser, r.logger)
			if err != nil {
				writeError(w, http.StatusInternalServerError, "internal", err.Error())
				return
			}
			out[ns] = append(out[ns], *rg)
		}
	}
	if len(out) == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no rule groups found")
		return
	}
	writeYAML(w, out)
}

func (r *Ruler) serveNamespace(w http.ResponseWriter, req *http.Request) {
	id, ok := requestTenant(w, req)
	if !ok {
		return
	}
	ns := req.PathValue("namespace")
	groups := r.fsm.namespace(id, ns)
	if len(groups) == 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no rule groups in namespace %q", ns))
		return
	}
	out := make([]rulefmt.RuleGroup, 0, len(groups))
	for _, g := range groups {
		rg, err := parseGroup([]byte(g.Body), r.parser, r.logger)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		out = append(out, *rg)
	}
	writeYAML(w, map[string][]rulefmt.RuleGroup{ns: out})
}

func (r *Ruler) serveGroup(w http.ResponseWriter, req *http.Request) {
	id, ok := requestTenant(w, req)
	if !ok {
		return
	}
	ns, name := req.PathValue("namespace"), req.PathValue("group")
	for _, g := range r.fsm.namespace(id, ns) {
		if g.Name != name {
			continue
		}
		rg, err := parseGroup([]byte(g.Body), r.parser, r.logger)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		writeYAML(w, rg)
		return
	}
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no rule group %q in namespace %q", name, ns))
}

func (r *Ruler) setGroup(w http.ResponseWriter, req *http.Request) {
	id, ok := requestTenant(w, req)
	if !ok {
		return
	}
	ns := req.PathValue("namespace")
	if strings.ContainsAny(ns, "/\x00") || ns == "" {
		writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("invalid namespace %q", ns))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxRuleGroupBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("read body: %v", err))
		return
	}
	rg, err := parseGroup(body, r.parser, r.logger)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	n, exists := r.fsm.groupCount(id, ns, rg.Name)
	if err := checkLimits(r.opts.Limits, id, n, exists, len(rg.Rules)); err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if err := r.apply(&command{Op: opSetGroup, Tenant: id, Namespace: ns, Group: rg.Name, Body: string(body)}); err != nil {
		writeApplyError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	writeJSON(w, map[string]string{"status": "success"})
}

func (r *Ruler) deleteGroup(w http.ResponseWriter, req *http.Request) {
	id, ok := requestTenant(w, req)
	if !ok {
		return
	}
	err := r.apply(&command{Op: opDeleteGroup, Tenant: id, Namespace: req.PathValue("namespace"), Group: req.PathValue("group")})
	if err != nil {
		writeApplyError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	writeJSON(w, map[string]string{"status": "success"})
}

func (r *Ruler) deleteNamespace(w http.ResponseWriter, req *http.Request) {
	id, ok := requestTenant(w, req)
	if !ok {
		return
	}
	if err := r.apply(&command{Op: opDeleteNamespace, Tenant: id, Namespace: req.PathValue("namespace")}); err != nil {
		writeApplyError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	writeJSON(w, map[string]string{"status": "success"})
}

func writeApplyError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, errNotLeader):
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// Status is the ruler's raft view, as /api/v1/status/ruler reports it.
type Status struct {
	ID               string       `json:"id"`
	Mode             Mode         `json:"mode"`
	RaftState        string       `json:"raftState"`
	Leader           string       `json:"leader"`
	LeaderHTTPURL    string       `json:"leaderHTTPURL,omitempty"`
	Term             uint64       `json:"term"`
	AppliedIndex     uint64       `json:"appliedIndex"`
	LastIndex        uint64       `json:"lastIndex"`
	Peers            []StatusPeer `json:"peers"`
	IsolatedFallback bool         `json:"isolatedFallback"`
	RuleGroups       int          `json:"ruleGroups"`
}

// StatusPeer is one raft voter.
type StatusPeer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Status reports this replica's raft view.
func (r *Ruler) Status() Status {
	ra := r.node.raft
	leaderAddr, leaderID := ra.LeaderWithID()
	st := Status{
		ID:               r.ID(),
		Mode:             r.Mode(),
		RaftState:        ra.State().String(),
		Leader:           string(leaderAddr),
		Term:             ra.CurrentTerm(),
		AppliedIndex:     ra.AppliedIndex(),
		LastIndex:        ra.LastIndex(),
		IsolatedFallback: r.cfg.IsolatedFallback,
		RuleGroups:       len(r.RuleGroups()),
	}
	if li := r.fsm.leaderInfo(); li.ID == string(leaderID) {
		st.LeaderHTTPURL = li.HTTPURL
	}
	if f := ra.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Peers = append(st.Peers, StatusPeer{ID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String(), Leader: s.ID == leaderID})
		}
	}
	return st
}

func (r *Ruler) serveStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{"status": "success", "data": r.Status()})
}

func writeJSON(w http.ResponseWriter, v any) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	_ = json.NewEncoder(w).Encode(v)
}

func writeYAML(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/yaml")
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	_ = enc.Encode(v)
	_ = enc.Close()
}

// writeError answers in the Prometheus API's error shape.
func writeError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": typ, "error": msg})
}

// lineCol finds the line numbers rulefmt and yaml put in their errors:
// leading "line:col: " pairs, and "line N".
var lineCol = regexp.MustCompile(`^(\d+):(\d+): (?:(\d+):(\d+): )?|(line )(\d+)`)

// shiftLines takes the wrapper's first line and two-column indent out of
// a lineCol match.
func shiftLines(m string) string {
	sm := lineCol.FindStringSubmatch(m)
	sub := func(s string, d int) string {
		n, _ := strconv.Atoi(s)
		return strconv.Itoa(max(n-d, 1))
	}
	if sm[5] != "" {
		return sm[5] + sub(sm[6], 1)
	}
	out := sub(sm[1], 1) + ":" + sub(sm[2], 2) + ": "
	if sm[3] != "" {
		out += sub(sm[3], 1) + ":" + sub(sm[4], 2) + ": "
	}
	return out
}

// parseGroup validates one rule group in YAML, as a rule file's entry
// under `groups:` would be validated (expressions, templates, durations),
// and reports lines as they are in body.
func parseGroup(body []byte, p parser.Parser, logger *slog.Logger) (*rulefmt.RuleGroup, error) {
	text := strings.TrimPrefix(strings.TrimLeft(string(body), "\n"), "---\n")
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("empty rule group")
	}
	var b strings.Builder
	b.WriteString("groups:\n")
	for i, line := range strings.Split(text, "\n") {
		if i == 0 {
			b.WriteString("- ")
		} else {
			b.WriteString("  ")
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if logger == nil {
		logger = promslog.NewNopLogger()
	}
	rgs, errs := rulefmt.Parse([]byte(b.String()), false, model.UTF8Validation, p, logger)
	if len(errs) > 0 {
		var msgs []string
		for _, err := range errs {
			// The wrapper added one line and two columns to the body.
			// A decoding error comes twice (rules and line positions are
			// decoded separately); say it once.
			if m := lineCol.ReplaceAllStringFunc(err.Error(), shiftLines); !slices.Contains(msgs, m) {
				msgs = append(msgs, m)
			}
		}
		return nil, fmt.Errorf("invalid rule group: %s", strings.Join(msgs, "; "))
	}
	if len(rgs.Groups) != 1 {
		return nil, fmt.Errorf("invalid rule group: want one group, got %d", len(rgs.Groups))
	}
	return &rgs.Groups[0], nil
}

// Alertmanagers implements the Prometheus API's AlertmanagerRetriever:
// the notifiers this replica sends to.
func (r *Ruler) Alertmanagers() []*url.URL { return r.runtimes.homeNotifier().Alertmanagers() }

// DroppedAlertmanagers implements the Prometheus API's AlertmanagerRetriever.
func (r *Ruler) DroppedAlertmanagers() []*url.URL {
	return r.runtimes.homeNotifier().DroppedAlertmanagers()
}
