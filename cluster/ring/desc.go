package ring

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// State is an instance's position in its lifecycle. The numeric values are
// part of the gossip encoding: append, never renumber.
type State uint8

const (
	// StatePending is an instance that is known but owns no tokens yet.
	StatePending State = iota
	// StateJoining owns tokens but does not yet take writes.
	StateJoining
	// StateActive takes writes and serves reads.
	StateActive
	// StateLeaving is shutting down: it serves reads but takes no new writes.
	StateLeaving
	// StateReadOnly is an operator drain: reads only, so the instance can be
	// scaled down once its data has aged out of the other replicas' needs.
	StateReadOnly
	// StateLeft is a tombstone: the instance left the ring (or was forgotten).
	// It carries no tokens and is garbage-collected after a retention period.
	StateLeft

	numStates
)

var stateNames = [...]string{"PENDING", "JOINING", "ACTIVE", "LEAVING", "READONLY", "LEFT"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText makes states readable in JSON and YAML.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses the names printed by String.
func (s *State) UnmarshalText(b []byte) error {
	st, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// ParseState parses a state name as printed by State.String.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown ring state %q", name)
}

// States lists every state, in order, for metrics and status pages.
func States() []State {
	s := make([]State, numStates)
	for i := range s {
		s[i] = State(i)
	}
	return s
}

// Instance is one member's entry in the ring. Instances are values: once an
// Instance is stored in a Desc, neither it nor its Tokens slice is modified;
// updates replace the whole value.
type Instance struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Zone  string `json:"zone,omitempty"`
	State State  `json:"state"`
	// Tokens are sorted ascending and unique within the instance.
	Tokens []uint32 `json:"tokens,omitempty"`
	// Timestamp is the instance's last heartbeat or update, in Unix
	// milliseconds. It orders concurrent versions of the same instance
	// (last writer wins), so writers must make it strictly increase; see
	// NextTimestamp.
	Timestamp int64 `json:"timestamp"`
	// Registered is when the instance first joined, in Unix milliseconds.
	Registered int64 `json:"registered"`
}

// HeartbeatTime returns Timestamp as a time.Time.
func (in *Instance) HeartbeatTime() time.Time { return time.UnixMilli(in.Timestamp) }

// Healthy reports whether the instance heartbeated within timeout of now and
// is in a state that may serve op.
func (in *Instance) Healthy(op Operation, now time.Time, timeout time.Duration) bool {
	return op.allows(in.State) && in.alive(now.UnixMilli(), timeout.Milliseconds())
}

func (in *Instance) alive(nowMs, timeoutMs int64) bool {
	return timeoutMs <= 0 || in.Timestamp >= nowMs-timeoutMs
}

// NextTimestamp returns the timestamp a writer should put on a new version of
// an instance whose current version is prev: now, unless that would not move
// past prev (clock skew between the node that wrote prev and this one, or two
// updates within a millisecond), in which case prev+1 so the update still
// wins the merge.
func NextTimestamp(prev int64, now time.Time) int64 {
	return max(now.UnixMilli(), prev+1)
}

// newer reports whether a supersedes b in the merge order. The order is total
// over instance values (timestamp first, then a deterministic tie-break on
// content), which makes Merge commutative, associative and idempotent even if
// two writers pick the same timestamp.
func newer(a, b *Instance) bool {
	return compareInstances(a, b) > 0
}

func compareInstances(a, b *Instance) int {
	if c := cmp.Compare(a.Timestamp, b.Timestamp); c != 0 {
		return c
	}
	// A tombstone wins a tie: forgetting must not be undone by a heartbeat
	// that happens to carry the same millisecond.
	if c := cmp.Compare(a.State, b.State); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Registered, b.Registered); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Addr, b.Addr); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Zone, b.Zone); c != 0 {
		return c
	}
	return slices.Compare(a.Tokens, b.Tokens)
}

// Desc is the ring descriptor: every instance by ID, including tombstones.
// It is a state-based CRDT: Merge is a join (commutative, associative,
// idempotent), so replicas that exchanged the same updates in any order and
// any number of times hold equal descriptors.
//
// A Desc handed out by a KV is shared and must be treated as read-only;
// Clone before modifying.
type Desc struct {
	Instances map[string]Instance `json:"instances"`
}

// NewDesc returns an empty descriptor.
func NewDesc() *Desc { return &Desc{Instances: map[string]Instance{}} }

// Clone returns a copy whose map may be modified. Instances are values whose
// token slices are never modified, so they are shared, not copied.
func (d *Desc) Clone() *Desc {
	if d == nil {
		return NewDesc()
	}
	return &Desc{Instances: maps.Clone(d.Instances)}
}

// Len returns the number of entries, tombstones included.
func (d *Desc) Len() int {
	if d == nil {
		return 0
	}
	return len(d.Instances)
}

// Get returns the entry for id, tombstones included.
func (d *Desc) Get(id string) (Instance, bool) {
	if d == nil {
		return Instance{}, false
	}
	in, ok := d.Instances[id]
	return in, ok
}

// Merge folds other into d, keeping the newer version of each instance, and
// returns the entries of d that changed (nil when nothing did). Gossip
// forwards only that delta, so an update that carries nothing new stops
// spreading. other is not modified.
func (d *Desc) Merge(other *Desc) (changed *Desc) {
	if other == nil {
		return nil
	}
	if d.Instances == nil {
		d.Instances = map[string]Instance{}
	}
	for id, in := range other.Instances {
		cur, ok := d.Instances[id]
		if ok && !newer(&in, &cur) {
			continue
		}
		d.Instances[id] = in
		if changed == nil {
			changed = NewDesc()
		}
		changed.Instances[id] = in
	}
	return changed
}

// Updates returns the entries of other that would change d if merged (nil
// when none would), without modifying d. Holders of a shared, read-only Desc
// use it to skip copying when a message brings nothing new.
func (d *Desc) Updates(other *Desc) *Desc {
	if other == nil {
		return nil
	}
	var out *Desc
	for id, in := range other.Instances {
		if cur, ok := d.Get(id); ok && !newer(&in, &cur) {
			continue
		}
		if out == nil {
			out = NewDesc()
		}
		out.Instances[id] = in
	}
	return out
}

// Tombstone returns the LEFT entry that records id leaving the ring at now.
// Its timestamp is past the current entry's so it wins the merge.
func (d *Desc) Tombstone(id string, now time.Time) Instance {
	prev, _ := d.Get(id)
	return Instance{
		ID:         id,
		Addr:       prev.Addr,
		Zone:       prev.Zone,
		State:      StateLeft,
		Timestamp:  NextTimestamp(prev.Timestamp, now),
		Registered: prev.Registered,
	}
}

// RemoveTombstones deletes tombstones older than retention at now and
// returns how many it removed. It is a local clean-up, never gossiped: every
// member does it on its own once the tombstone has had time to spread. A
// member partitioned away for longer than retention may re-introduce the old
// entry; it then shows as unhealthy and is forgotten again.
func (d *Desc) RemoveTombstones(now time.Time, retention time.Duration) int {
	cutoff := now.Add(-retention).UnixMilli()
	n := 0
	for id, in := range d.Instances {
		if in.State == StateLeft && in.Timestamp < cutoff {
			delete(d.Instances, id)
			n++
		}
	}
	return n
}

// Equal reports whether d and o hold the same entries.
func (d *Desc) Equal(o *Desc) bool {
	if d.Len() != o.Len() {
		return false
	}
	if d.Len() == 0 {
		return true
	}
	for id, a := range d.Instances {
		b, ok := o.Instances[id]
		if !ok || compareInstances(&a, &b) != 0 || a.ID != b.ID {
			return false
		}
	}
	return true
}

// Members returns the non-tombstone instances sorted by ID.
func (d *Desc) Members() []Instance {
	if d == nil {
		return nil
	}
	out := make([]Instance, 0, len(d.Instances))
	for _, in := range d.Instances {
		if in.State != StateLeft {
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
