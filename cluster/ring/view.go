package ring

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// ErrTooFewHealthy is returned when fewer healthy instances than the quorum
// of an operation can be found.
var ErrTooFewHealthy = errors.New("too few healthy instances in the ring")

// ErrEmptyRing is returned when the ring holds no instance owning tokens.
var ErrEmptyRing = errors.New("ring is empty")

// Operation is what a replication set is for; it decides which states count
// as healthy.
type Operation uint8

const (
	// Write sets hold ACTIVE instances only: a JOINING, LEAVING or READONLY
	// instance is skipped and the walk continues to the next instance.
	Write Operation = iota
	// Read sets also accept LEAVING and READONLY instances, which still hold
	// data.
	Read
)

func (op Operation) String() string {
	if op == Write {
		return "write"
	}
	return "read"
}

func (op Operation) allows(s State) bool {
	switch s {
	case StateActive:
		return true
	case StateLeaving, StateReadOnly:
		return op == Read
	default:
		return false
	}
}

// WriteQuorum is how many replicas must acknowledge a write: a majority of rf.
func WriteQuorum(rf int) int { return rf/2 + 1 }

// ReadQuorum is how many replicas a read must hear from so that, together
// with a write quorum, at least one of them holds every acknowledged sample
// (R + W > RF). For odd rf it equals WriteQuorum.
func ReadQuorum(rf int) int { return rf - WriteQuorum(rf) + 1 }

func quorum(rf int, op Operation) int {
	if op == Write {
		return WriteQuorum(rf)
	}
	return ReadQuorum(rf)
}

// ReplicationSet is the set of instances an operation on one key (or on the
// whole ring) goes to, and how many of them may fail without failing the
// operation. Instances point into the View and are read-only.
type ReplicationSet struct {
	Instances []*Instance
	// MaxErrors is how many of Instances may fail (error or time out) with
	// the operation still succeeding.
	MaxErrors int
	// MaxUnavailableZones, for zone-aware sets from View.AllHealthy, is how
	// many zones may fail entirely; MaxErrors is then zero and failures are
	// counted per zone instead. Zero otherwise.
	MaxUnavailableZones int
}

// Includes reports whether the set contains the instance with id.
func (rs ReplicationSet) Includes(id string) bool {
	for _, in := range rs.Instances {
		if in.ID == id {
			return true
		}
	}
	return false
}

// View is an immutable, lookup-optimised snapshot of a Desc: the sorted token
// list with the owner of each token. Build one per descriptor change and
// share it between goroutines.
type View struct {
	desc      *Desc
	instances []Instance // members, sorted by ID; tombstones excluded
	tokens    []uint32   // sorted ascending; ties ordered by owner index
	owners    []int32    // owners[i] indexes instances for tokens[i]
	zone      []int32    // zone index of each instance
	zones     []string   // distinct zones of instances owning tokens, sorted
	owning    int        // instances owning at least one token
	timeoutMs int64
}

// NewView indexes d. heartbeatTimeout is how stale a heartbeat may be before
// the instance counts as unhealthy; zero disables the check. d must not be
// modified afterwards.
func NewView(d *Desc, heartbeatTimeout time.Duration) *View {
	v := &View{desc: d, instances: d.Members(), timeoutMs: heartbeatTimeout.Milliseconds()}
	type tok struct {
		t     uint32
		owner int32
	}
	n := 0
	zoneSet := map[string]struct{}{}
	for i := range v.instances {
		n += len(v.instances[i].Tokens)
		if len(v.instances[i].Tokens) > 0 {
			v.owning++
			zoneSet[v.instances[i].Zone] = struct{}{}
		}
	}
	for z := range zoneSet {
		v.zones = append(v.zones, z)
	}
	slices.Sort(v.zones)
	v.zone = make([]int32, len(v.instances))
	for i := range v.instances {
		z, _ := slices.BinarySearch(v.zones, v.instances[i].Zone)
		v.zone[i] = int32(z)
	}
	all := make([]tok, 0, n)
	for i := range v.instances {
		for _, t := range v.instances[i].Tokens {
			all = append(all, tok{t, int32(i)})
		}
	}
	slices.SortFunc(all, func(a, b tok) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.owner, b.owner)
	})
	v.tokens = make([]uint32, n)
	v.owners = make([]int32, n)
	for i, t := range all {
		v.tokens[i], v.owners[i] = t.t, t.owner
	}
	return v
}

// Desc returns the descriptor the view was built from.
func (v *View) Desc() *Desc { return v.desc }

// Instances returns the members (tombstones excluded) sorted by ID. The
// slice is shared: do not modify it.
func (v *View) Instances() []Instance { return v.instances }

// Zones returns the distinct zones of token-owning instances, sorted. A ring
// without zones has one zone, "".
func (v *View) Zones() []string { return v.zones }

// NumTokens returns the number of tokens in the ring.
func (v *View) NumTokens() int { return len(v.tokens) }

// effectiveRF clamps rf to the number of instances owning tokens, so a
// one-node development ring configured with RF 3 works as RF 1. Instances
// that crashed still own tokens and count, so losing replicas does not
// silently lower the quorum; only instances that left do.
func (v *View) effectiveRF(rf int) int { return max(min(rf, v.owning), 1) }

// ReplicationSet returns the instances that own key for op: walking the ring
// clockwise from the first token >= key, the first rf distinct instances
// healthy for op. Unhealthy instances are skipped and the walk goes on, so
// a write still reaches rf replicas while instances are down or in
// transition, as long as enough healthy instances exist.
//
// Zones: with zones set, at most ceil(rf/zones) replicas share a zone, which
// means rf distinct zones when there are at least rf zones, and an even
// spread (for example 2+1 for RF 3 over two zones) when there are fewer.
// The zone count is taken over every token-owning instance, healthy or not,
// so a zone outage shrinks the set rather than doubling up replicas in the
// surviving zones; placement therefore does not move when a zone fails.
//
// The result is an error wrapping ErrTooFewHealthy when fewer than the
// operation's quorum of rf are found. buf, if not nil, is reused for the
// returned Instances.
func (v *View) ReplicationSet(key uint32, rf int, op Operation, now time.Time, buf []*Instance) (ReplicationSet, error) {
	if v.owning == 0 {
		return ReplicationSet{}, ErrEmptyRing
	}
	rf = v.effectiveRF(rf)
	perZone := (rf + len(v.zones) - 1) / len(v.zones)
	var zoneCount [8]int
	zc := v.zoneCounts(&zoneCount)
	nowMs := now.UnixMilli()
	picked := buf[:0]
	start := sort.Search(len(v.tokens), func(i int) bool { return v.tokens[i] >= key })
	for i, n := 0, len(v.tokens); i < n && len(picked) < rf; i++ {
		idx := start + i
		if idx >= n {
			idx -= n
		}
		o := v.owners[idx]
		in := &v.instances[o]
		if containsInstance(picked, in) {
			continue
		}
		z := v.zone[o]
		if zc[z] >= perZone {
			continue
		}
		if !op.allows(in.State) || !in.alive(nowMs, v.timeoutMs) {
			continue
		}
		zc[z]++
		picked = append(picked, in)
	}
	q := quorum(rf, op)
	rs := ReplicationSet{Instances: picked, MaxErrors: len(picked) - q}
	if len(picked) < q {
		return rs, fmt.Errorf("%w: %d of %d replicas healthy for %s, quorum %d", ErrTooFewHealthy, len(picked), rf, op, q)
	}
	return rs, nil
}

// zoneCounts returns a zeroed counter per zone, in stack when the zones
// fit (any sane zone count does), so that placing a key allocates nothing.
func (v *View) zoneCounts(stack *[8]int) []int {
	if len(v.zones) <= len(stack) {
		return stack[:len(v.zones)]
	}
	return make([]int, len(v.zones))
}

func containsInstance(s []*Instance, in *Instance) bool {
	for _, p := range s {
		if p == in {
			return true
		}
	}
	return false
}

// AllHealthy returns every token-owning instance healthy for op, for
// operations that fan out to the whole ring (queries). Instances that are
// alive but in a state op does not accept (JOINING for reads) are left out
// and do not count as failures: they hold no data the operation needs.
// Instances whose heartbeat is stale are failures. Without zones the set
// tolerates rf-quorum failures in total (conservatively, as if all failures
// hit one replication set); with zones, rf-quorum whole zones.
func (v *View) AllHealthy(rf int, op Operation, now time.Time) (ReplicationSet, error) {
	if v.owning == 0 {
		return ReplicationSet{}, ErrEmptyRing
	}
	rf = v.effectiveRF(rf)
	tolerated := rf - quorum(rf, op)
	nowMs := now.UnixMilli()
	var rs ReplicationSet
	dead := 0
	deadZones := map[int32]struct{}{}
	for i := range v.instances {
		in := &v.instances[i]
		if len(in.Tokens) == 0 {
			continue
		}
		if !in.alive(nowMs, v.timeoutMs) {
			dead++
			deadZones[v.zone[i]] = struct{}{}
			continue
		}
		if op.allows(in.State) {
			rs.Instances = append(rs.Instances, in)
		}
	}
	if len(v.zones) > 1 {
		if len(deadZones) > tolerated {
			return rs, fmt.Errorf("%w: instances down in %d zones, %d tolerated", ErrTooFewHealthy, len(deadZones), tolerated)
		}
		// Callers count failures per zone: any number of instances may fail
		// as long as they sit in at most MaxUnavailableZones zones.
		rs.MaxUnavailableZones = tolerated - len(deadZones)
		return rs, nil
	}
	if dead > tolerated {
		return rs, fmt.Errorf("%w: %d instances down, %d tolerated", ErrTooFewHealthy, dead, tolerated)
	}
	rs.MaxErrors = tolerated - dead
	return rs, nil
}

// TokenShares returns, for each instance owning tokens, the fraction of the
// 2^32 key space it is the first owner of (the primary replica). Shares sum
// to 1.
func (v *View) TokenShares() map[string]float64 {
	out := make(map[string]float64, v.owning)
	n := len(v.tokens)
	if n == 0 {
		return out
	}
	const space = float64(1 << 32)
	for i := range v.tokens {
		// Token i owns the keys (tokens[i-1], tokens[i]]; the first token
		// wraps around from the last.
		var width uint64
		if i == 0 {
			width = uint64(v.tokens[0]) + (1 << 32) - uint64(v.tokens[n-1])
		} else {
			width = uint64(v.tokens[i]) - uint64(v.tokens[i-1])
		}
		out[v.instances[v.owners[i]].ID] += float64(width) / space
	}
	return out
}

// NewViewFrom is NewView, reusing prev's token index when d's members own
// exactly the tokens they owned in prev. Heartbeats change the descriptor
// every few seconds per instance without moving tokens, so this turns most
// rebuilds from a sort of every token into a linear comparison.
func NewViewFrom(prev *View, d *Desc, heartbeatTimeout time.Duration) *View {
	if prev == nil {
		return NewView(d, heartbeatTimeout)
	}
	members := d.Members()
	if len(members) != len(prev.instances) {
		return NewView(d, heartbeatTimeout)
	}
	for i := range members {
		a, b := &members[i], &prev.instances[i]
		if a.ID != b.ID || a.Zone != b.Zone || !slices.Equal(a.Tokens, b.Tokens) {
			return NewView(d, heartbeatTimeout)
		}
	}
	v := *prev
	v.desc, v.instances, v.timeoutMs = d, members, heartbeatTimeout.Milliseconds()
	return &v
}
