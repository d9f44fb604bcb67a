package ring

import "time"

// UniformReplicationSet returns the replication set that ReplicationSet
// returns for every key at now, when it is the same set for every key: a
// caller can then send a whole batch of keys to that set without placing
// each key. ok is false when sets may differ between keys, and when
// ReplicationSet would fail (too few healthy instances, empty ring), so
// that the caller places keys one by one and reports ReplicationSet's
// errors.
//
// The set is the same for every key when every instance healthy for op is
// in it. ReplicationSet's walk goes once round the whole ring and picks
// healthy instances until it has rf' = min(rf, instances owning tokens); it
// skips an instance only when it is unhealthy, already picked, or its zone
// already holds perZone = ceil(rf'/zones) picks. So with H the healthy
// instances owning tokens: if |H| <= rf' and no zone holds more than
// perZone of H, the walk from any key meets every member of H before it
// could stop, and never skips one for its zone, so it picks exactly H. In
// any other case some key may get a different subset, and ok is false:
// that is conservative (a ring of more healthy instances than rf can still
// give every key the same set, by accident of its tokens) but never
// wrong.
//
// Instances come in ID order, not in the walk order of any one key, and
// point into the View; buf, if not nil, is reused for them.
func (v *View) UniformReplicationSet(rf int, op Operation, now time.Time, buf []*Instance) (rs ReplicationSet, ok bool) {
	if v.owning == 0 {
		return ReplicationSet{}, false
	}
	rf = v.effectiveRF(rf)
	perZone := (rf + len(v.zones) - 1) / len(v.zones)
	var zoneCount [8]int
	zc := v.zoneCounts(&zoneCount)
	nowMs := now.UnixMilli()
	picked := buf[:0]
	for i := range v.instances {
		in := &v.instances[i]
		if len(in.Tokens) == 0 || !op.allows(in.State) || !in.alive(nowMs, v.timeoutMs) {
			continue
		}
		z := v.zone[i]
		if len(picked) == rf || zc[z] == perZone {
			// More healthy instances than a set holds, in all or in
			// this zone: which ones a key gets depends on the key.
			return ReplicationSet{Instances: picked[:0]}, false
		}
		zc[z]++
		picked = append(picked, in)
	}
	q := quorum(rf, op)
	if len(picked) < q {
		return ReplicationSet{Instances: picked[:0]}, false
	}
	return ReplicationSet{Instances: picked, MaxErrors: len(picked) - q}, true
}
