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
	Op        string      `json:"op"`
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

// fsm is the replicated state: API rule groups, alert state, and who leads.
type fsm struct {
	mu         sync.RWMutex
	namespaces map[string]map[string]string // namespace → group name → YAML
	groups     map[string]*groupState       // rules.GroupKey → state
	leader     leaderInfo
	// rulesVersion counts rule changes, so the evaluator reloads only then.
	rulesVersion uint64
	changed      chan struct{} // closed and replaced on every rule change
}

func newFSM() *fsm {
	return &fsm{
		namespaces: map[string]map[string]string{},
		groups:     map[string]*groupState{},
		changed:    make(chan struct{}),
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
		var err error
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
	switch c.Op {
	case opSetGroup:
		if c.Namespace == "" || c.Group == "" {
			return fmt.Errorf("%s: namespace and group are required", c.Op)
		}
		ns := f.namespaces[c.Namespace]
		if ns == nil {
			ns = map[string]string{}
			f.namespaces[c.Namespace] = ns
		}
		ns[c.Group] = c.Body
		f.rulesChangedLocked()
	case opDeleteGroup:
		ns := f.namespaces[c.Namespace]
		if _, ok := ns[c.Group]; !ok {
			return errNotFound
		}
		delete(ns, c.Group)
		if len(ns) == 0 {
			delete(f.namespaces, c.Namespace)
		}
		delete(f.groups, rules.GroupKey(apiFile(c.Namespace), c.Group))
		f.rulesChangedLocked()
	case opDeleteNamespace:
		if _, ok := f.namespaces[c.Namespace]; !ok {
			return errNotFound
		}
		for g := range f.namespaces[c.Namespace] {
			delete(f.groups, rules.GroupKey(apiFile(c.Namespace), g))
		}
		delete(f.namespaces, c.Namespace)
		f.rulesChangedLocked()
	case opAlertState:
		if c.GroupKey == "" {
			return fmt.Errorf("%s: group key is required", c.Op)
		}
		if c.State == nil || len(c.State.Rules) == 0 {
			delete(f.groups, c.GroupKey)
		} else {
			f.groups[c.GroupKey] = c.State
		}
	case opLeader:
		if c.Leader == nil {
			return fmt.Errorf("%s: leader is required", c.Op)
		}
		f.leader = *c.Leader
	default:
		return fmt.Errorf("unknown operation %q", c.Op)
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

func (f *fsm) groupState(key string) *groupState {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.groups[key]
}

func (f *fsm) leaderInfo() leaderInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.leader
}

// namespace returns a copy of one namespace's groups, sorted by name.
func (f *fsm) namespace(ns string) []namedGroup {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedGroups(f.namespaces[ns])
}

// allNamespaces returns every namespace's groups.
func (f *fsm) allNamespaces() map[string][]namedGroup {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string][]namedGroup, len(f.namespaces))
	for ns, gs := range f.namespaces {
		out[ns] = sortedGroups(gs)
	}
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
	Namespaces map[string]map[string]string `json:"namespaces"`
	Groups     map[string]*groupState       `json:"groups"`
	Leader     leaderInfo                   `json:"leader"`
}

// Snapshot implements raft.FSM. Group states are replaced, never mutated,
// after Apply, so shallow copies of the maps are a consistent snapshot.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ns := make(map[string]map[string]string, len(f.namespaces))
	for k, v := range f.namespaces {
		ns[k] = maps.Clone(v)
	}
	return &fsmSnapshot{data: snapshotData{Namespaces: ns, Groups: maps.Clone(f.groups), Leader: f.leader}}, nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return fmt.Errorf("decode ruler snapshot: %w", err)
	}
	if d.Namespaces == nil {
		d.Namespaces = map[string]map[string]string{}
	}
	if d.Groups == nil {
		d.Groups = map[string]*groupState{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.namespaces, f.groups, f.leader = d.Namespaces, d.Groups, d.Leader
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
