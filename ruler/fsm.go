package ruler

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// The operations of the replicated log. Each entry is one JSON command.
const (
	opSetGroup        = "set_group"
	opDeleteGroup     = "delete_group"
	opDeleteNamespace = "delete_namespace"
	opAlertState      = "alert_state"
	opLeader          = "leader"
)

type command struct {
	Op string `json:"op"`
	// Tenant owns the group; empty in entries written before tenants
	// existed, which belong to tenant.DefaultTenant.
	Tenant    string      `json:"tenant,omitempty"`
	Namespace string      `json:"ns,omitempty"`
	Group     string      `json:"group,omitempty"`
	Body      string      `json:"body,omitempty"` // one rule group, YAML
	GroupKey  string      `json:"key,omitempty"`  // rules.GroupKey(file, name)
	State     *groupState `json:"state,omitempty"`
	Leader    *leaderInfo `json:"leader,omitempty"`
}

// groupState is the alert state of one rule group: per alerting rule
// (keyed by ruleKey), the alerts it holds.
type groupState struct {
	Rules map[string][]alertState `json:"rules"`
}

// alertState is what a new leader needs to continue an alert where the old
// one left it. Times are Unix nanoseconds, 0 for the zero time.
type alertState struct {
	Labels          map[string]string `json:"labels"`
	State           string            `json:"state"`
	Value           jsonFloat         `json:"value"`
	ActiveAt        int64             `json:"active_at,omitempty"`
	FiredAt         int64             `json:"fired_at,omitempty"`
	ResolvedAt      int64             `json:"resolved_at,omitempty"`
	LastSentAt      int64             `json:"last_sent_at,omitempty"`
	ValidUntil      int64             `json:"valid_until,omitempty"`
	KeepFiringSince int64             `json:"keep_firing_since,omitempty"`
}

// leaderInfo tells followers where to forward API requests.
type leaderInfo struct {
	ID      string `json:"id"`
	HTTPURL string `json:"http_url"`
	Term    uint64 `json:"term"`
}

// jsonFloat keeps NaN and ±Inf, which encoding/json refuses.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatFloat(float64(f), 'g', -1, 64)), nil
}

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("alert value: %w", err)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("alert value: %w", err)
	}
	*f = jsonFloat(v)
	return nil
}

func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func stateOf(a *rules.Alert) alertState {
	return alertState{
		Labels:          a.Labels.Map(),
		State:           a.State.String(),
		Value:           jsonFloat(a.Value),
		ActiveAt:        toNanos(a.ActiveAt),
		FiredAt:         toNanos(a.FiredAt),
		ResolvedAt:      toNanos(a.ResolvedAt),
		LastSentAt:      toNanos(a.LastSentAt),
		ValidUntil:      toNanos(a.ValidUntil),
		KeepFiringSince: toNanos(a.KeepFiringSince),
	}
}

// apply copies the durable fields onto an alert the seeding evaluation
// created.
func (s alertState) apply(a *rules.Alert) {
	switch s.State {
	case "firing":
		a.State = rules.StateFiring
	case "pending":
		a.State = rules.StatePending
	default:
		a.State = rules.StateInactive
	}
	a.Value = float64(s.Value)
	a.ActiveAt = fromNanos(s.ActiveAt)
	a.FiredAt = fromNanos(s.FiredAt)
	a.ResolvedAt = fromNanos(s.ResolvedAt)
	a.LastSentAt = fromNanos(s.LastSentAt)
	a.ValidUntil = fromNanos(s.ValidUntil)
	a.KeepFiringSince = fromNanos(s.KeepFiringSince)
}

// sameDurable reports whether two states agree on everything a failover
// needs; the value alone changing is not worth a log entry.
func (s alertState) sameDurable(o alertState) bool {
	return s.State == o.State && s.ActiveAt == o.ActiveAt && s.FiredAt == o.FiredAt &&
		s.ResolvedAt == o.ResolvedAt && s.LastSentAt == o.LastSentAt &&
		s.KeepFiringSince == o.KeepFiringSince && maps.Equal(s.Labels, o.Labels)
}

func (s alertState) labels() labels.Labels { return labels.FromMap(s.Labels) }

// sameGroupState reports whether two group states are durably equal.
func sameGroupState(a, b *groupState) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Rules) != len(b.Rules) {
		return false
	}
	for k, as := range a.Rules {
		bs, ok := b.Rules[k]
		if !ok || len(as) != len(bs) {
			return false
		}
		// Both lists are sorted by labels (see collectState).
		for i := range as {
			if !as[i].sameDurable(bs[i]) {
				return false
			}
		}
	}
	return true
}

// tenantOf returns the tenant a command acts for.
func (c *command) tenantOf() (string, error) {
	if c.Tenant == "" {
		return tenant.DefaultTenant, nil
	}
	if err := tenant.Validate(c.Tenant); err != nil {
		return "", err
	}
	return c.Tenant, nil
}

// tenantRules is one tenant's part of the FSM. Namespaces, group names and
// group keys are the tenant's own: two tenants may use the same ones.
type tenantRules struct {
	namespaces map[string]map[string]string // namespace → group name → YAML
	groups     map[string]*groupState       // rules.GroupKey → state
}

func newTenantRules() *tenantRules {
	return &tenantRules{namespaces: map[string]map[string]string{}, groups: map[string]*groupState{}}
}

// fsm is the replicated state: API rule groups and alert state per
// tenant, and who leads.
type fsm struct {
	mu sync.RWMutex
	// tenants holds only tenants with a group or some alert state.
	tenants map[string]*tenantRules
	leader  leaderInfo
	// rulesVersion counts rule changes, so the evaluator reloads only then.
	rulesVersion uint64
	changed      chan struct{} // closed and replaced on every rule change
}

func newFSM() *fsm {
	return &fsm{
		tenants: map[string]*tenantRules{},
		changed: make(chan struct{}),
	}
}

// Apply implements raft.FSM. An invalid entry is answered with an error
// value and changes nothing; it never panics, since every replica applies it.
func (f *fsm) Apply(l *raft.Log) any {
	c, err := decodeCommand(l.Data)
	if err != nil {
		return fmt.Errorf("decode log entry %d: %w", l.Index, err)
	}
	return f.applyCommand(c)
}

// Log entries are JSON; large ones (alert state of big groups, where label
// sets repeat) are snappy-compressed behind a marker byte JSON never
// starts with.
const (
	compressedMarker   = 's'
	compressAboveBytes = 1024
)

func encodeCommand(c *command) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if len(b) <= compressAboveBytes {
		return b, nil
	}
	return append([]byte{compressedMarker}, snappy.Encode(nil, b)...), nil
}

func decodeCommand(data []byte) (*command, error) {
	if len(data) > 0 && data[0] == compressedMarker {
		// snappy.Decode allocates the length the header claims before it
		// reads a byte, so a corrupt entry of 8 bytes could ask for 4 GiB.
		// No snappy block expands more than 32 times (a 3-byte copy tag
		// yields at most 64 bytes).
		n, err := snappy.DecodedLen(data[1:])
		if err != nil {
			return nil, err
		}
		if n > 32*len(data)+64 {
			return nil, fmt.Errorf("compressed command claims %d bytes from %d: corrupt", n, len(data))
		}
		if data, err = snappy.Decode(nil, data[1:]); err != nil {
			return nil, err
		}
	}
	var c command
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func (f *fsm) applyCommand(c *command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Op == opLeader {
		if c.Leader == nil {
			return fmt.Errorf("%s: leader is required", c.Op)
		}
		f.leader = *c.Leader
		return nil
	}
	id, err := c.tenantOf()
	if err != nil {
		return fmt.Errorf("%s: %w", c.Op, err)
	}
	t := f.tenants[id]
	if t == nil {
		t = newTenantRules()
	}
	switch c.Op {
	case opSetGroup:
		if c.Namespace == "" || c.Group == "" {
			return fmt.Errorf("%s: namespace and group are required", c.Op)
		}
		ns := t.namespaces[c.Namespace]
		if ns == nil {
			ns = map[string]string{}
			t.namespaces[c.Namespace] = ns
		}
		ns[c.Group] = c.Body
		f.rulesChangedLocked()
	case opDeleteGroup:
		ns := t.namespaces[c.Namespace]
		if _, ok := ns[c.Group]; !ok {
			return errNotFound
		}
		delete(ns, c.Group)
		if len(ns) == 0 {
			delete(t.namespaces, c.Namespace)
		}
		delete(t.groups, rules.GroupKey(apiFile(c.Namespace), c.Group))
		f.rulesChangedLocked()
	case opDeleteNamespace:
		if _, ok := t.namespaces[c.Namespace]; !ok {
			return errNotFound
		}
		for g := range t.namespaces[c.Namespace] {
			delete(t.groups, rules.GroupKey(apiFile(c.Namespace), g))
		}
		delete(t.namespaces, c.Namespace)
		f.rulesChangedLocked()
	case opAlertState:
		if c.GroupKey == "" {
			return fmt.Errorf("%s: group key is required", c.Op)
		}
		if c.State == nil || len(c.State.Rules) == 0 {
			delete(t.groups, c.GroupKey)
		} else {
			t.groups[c.GroupKey] = c.State
		}
	default:
		return fmt.Errorf("unknown operation %q", c.Op)
	}
	if len(t.namespaces) == 0 && len(t.groups) == 0 {
		delete(f.tenants, id)
	} else {
		f.tenants[id] = t
	}
	return nil
}

func (f *fsm) rulesChangedLocked() {
	f.rulesVersion++
	close(f.changed)
	f.changed = make(chan struct{})
}

// rulesChanged returns the current rules version and a channel closed at
// the next change.
func (f *fsm) rulesChanged() (uint64, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.rulesVersion, f.changed
}

func (f *fsm) groupState(id, key string) *groupState {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if t := f.tenants[id]; t != nil {
		return t.groups[key]
	}
	return nil
}

func (f *fsm) leaderInfo() leaderInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.leader
}

// namespace returns a copy of one of a tenant's namespaces, its groups
// sorted by name.
func (f *fsm) namespace(id, ns string) []namedGroup {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if t := f.tenants[id]; t != nil {
		return sortedGroups(t.namespaces[ns])
	}
	return nil
}

// namespaces returns the names of a tenant's namespaces, sorted.
func (f *fsm) namespaces(id string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if t := f.tenants[id]; t != nil {
		return slices.Sorted(maps.Keys(t.namespaces))
	}
	return nil
}

// groupCount returns how many API groups a tenant has, and whether it has
// the group ns/name already.
func (f *fsm) groupCount(id, ns, name string) (n int, exists bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.tenants[id]
	if t == nil {
		return 0, false
	}
	for nsName, gs := range t.namespaces {
		n += len(gs)
		if nsName == ns {
			_, exists = gs[name]
		}
	}
	return n, exists
}

// apiTenants returns the tenants that have API rule groups, sorted.
func (f *fsm) apiTenants() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []string
	for id, t := range f.tenants {
		if len(t.namespaces) > 0 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

type namedGroup struct{ Name, Body string }

func sortedGroups(m map[string]string) []namedGroup {
	out := make([]namedGroup, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, namedGroup{name, m[name]})
	}
	return out
}

// snapshotData is the FSM in one JSON document.
type snapshotData struct {
	Tenants map[string]*tenantSnapshot `json:"tenants,omitempty"`
	// Namespaces and Groups are how snapshots written before tenants
	// existed hold the rules and state, which belong to the default tenant.
	// New snapshots leave them empty.
	Namespaces map[string]map[string]string `json:"namespaces,omitempty"`
	Groups     map[string]*groupState       `json:"groups,omitempty"`
	Leader     leaderInfo                   `json:"leader"`
}

type tenantSnapshot struct {
	Namespaces map[string]map[string]string `json:"namespaces,omitempty"`
	Groups     map[string]*groupState       `json:"groups,omitempty"`
}

// Snapshot implements raft.FSM. Group states are replaced, never mutated,
// after Apply, so shallow copies of the maps are a consistent snapshot.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := snapshotData{Tenants: make(map[string]*tenantSnapshot, len(f.tenants)), Leader: f.leader}
	for id, t := range f.tenants {
		ns := make(map[string]map[string]string, len(t.namespaces))
		for k, v := range t.namespaces {
			ns[k] = maps.Clone(v)
		}
		d.Tenants[id] = &tenantSnapshot{Namespaces: ns, Groups: maps.Clone(t.groups)}
	}
	return &fsmSnapshot{data: d}, nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return fmt.Errorf("decode ruler snapshot: %w", err)
	}
	tenants := map[string]*tenantRules{}
	add := func(id string, ts *tenantSnapshot) {
		if ts == nil {
			return
		}
		t := tenants[id]
		if t == nil {
			t = newTenantRules()
		}
		maps.Copy(t.namespaces, ts.Namespaces)
		maps.Copy(t.groups, ts.Groups)
		if len(t.namespaces) > 0 || len(t.groups) > 0 {
			tenants[id] = t
		}
	}
	add(tenant.DefaultTenant, &tenantSnapshot{Namespaces: d.Namespaces, Groups: d.Groups})
	for id, ts := range d.Tenants {
		if err := tenant.Validate(id); err != nil {
			return fmt.Errorf("decode ruler snapshot: %w", err)
		}
		add(id, ts)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tenants, f.leader = tenants, d.Leader
	f.rulesChangedLocked()
	return nil
}

type fsmSnapshot struct{ data snapshotData }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(&s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write ruler snapshot: %w", err)
	}
	return sink.Close()
}

func (*fsmSnapshot) Release() {}

// apiFile is the rule "file" of groups managed through the API: the
// namespace, marked so it cannot be mistaken for a path.
func apiFile(namespace string) string { return apiFilePrefix + namespace }

const apiFilePrefix = "api:"
