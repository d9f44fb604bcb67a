package querier

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// clientPool is the part of *ingesterclient.Pool the read path uses.
type clientPool interface {
	Get(addr string) (*ingesterclient.Client, error)
}

// ringIngesters reads from the ingesters the ring says may hold data.
type ringIngesters struct {
	r    *cluster.Ring
	pool clientPool
	cfg  RingReadConfig
	// turn rotates which ingesters a minimized read set leaves to stand by,
	// so that every replica serves its share of the reads.
	turn *atomic.Uint64
}

// RingReadConfig is how NewRingIngesters builds read sets.
type RingReadConfig struct {
	// MinimizeRequests asks, of the instances healthy for reads, only as
	// many as a complete answer needs (all but the failures the
	// replication factor tolerates) and keeps the others as standbys for
	// the asked ones that fail. See ReadSet.
	MinimizeRequests bool
	// Local, if set, is the client of the process's own ingester, whose
	// ring address is LocalAddr: reads from it go through Local (see
	// ingester.LocalClient), which skips encoding and transport, instead of
	// a connection of the pool. A minimized read set asks it first.
	Local     ingesterpb.IngesterClient
	LocalAddr string
}

// NewRingIngesters returns the Ingesters of a ring: each query asks the
// instances healthy for reads (ACTIVE, LEAVING, READONLY), with clients from
// p, and tolerates the failures the replication factor allows: RF−quorum
// instances, or with zones RF−quorum whole zones, less those already known
// dead from stale heartbeats.
func NewRingIngesters(r *cluster.Ring, p *ingesterclient.Pool, cfg RingReadConfig) Ingesters {
	return ringIngesters{r: r, pool: p, cfg: cfg, turn: new(atomic.Uint64)}
}

// ReadSet implements Ingesters.
func (ri ringIngesters) ReadSet() (ReadSet, error) {
	rs, err := ri.r.AllHealthy(ring.Read)
	if err != nil {
		if errors.Is(err, ring.ErrTooFewHealthy) {
			err = fmt.Errorf("%w; unhealthy: %s", err, strings.Join(ri.unhealthy(rs), ", "))
		}
		return ReadSet{}, promql.ErrStorage{Err: fmt.Errorf("ingester ring: %w", err)}
	}
	set := ReadSet{
		Ingesters:           make([]Ingester, len(rs.Instances)),
		MaxErrors:           rs.MaxErrors,
		MaxUnavailableZones: rs.MaxUnavailableZones,
	}
	for i, in := range rs.Instances {
		ing := Ingester{Name: instanceName(in), Zone: in.Zone}
		if ri.cfg.Local != nil && in.Addr == ri.cfg.LocalAddr {
			ing.Client = ri.cfg.Local
		} else if c, err := ri.pool.Get(in.Addr); err != nil {
			ing.Err = err
		} else {
			ing.Client = c
		}
		set.Ingesters[i] = ing
	}
	if ri.cfg.MinimizeRequests {
		ri.minimize(&set)
	}
	return set, nil
}

// minimize moves the ingesters set need not ask to its standbys: as many as
// it tolerates failures. With zones it tolerates whole zones, and a standby
// stands in for a single ingester, so a set is minimized only when no two
// of its ingesters share a zone (three zones of one ingester each, say).
//
// Those asked are, in order: the ingesters with a client over those without
// (which would fail at once), the process's own, then the others starting
// at a turn that moves with every set.
func (ri ringIngesters) minimize(set *ReadSet) {
	spare := set.MaxErrors
	if set.MaxUnavailableZones > 0 {
		spare = set.MaxUnavailableZones
		zones := make(map[string]struct{}, len(set.Ingesters))
		for _, ing := range set.Ingesters {
			if _, dup := zones[ing.Zone]; dup {
				return
			}
			zones[ing.Zone] = struct{}{}
		}
	}
	if spare <= 0 || spare >= len(set.Ingesters) {
		return
	}
	ings := set.Ingesters
	rank := func(ing *Ingester) int {
		switch {
		case ing.Err != nil:
			return 2
		case ri.cfg.Local != nil && ing.Client == ri.cfg.Local:
			return 0
		}
		return 1
	}
	// Rotate first, then order by rank; the stable sort keeps the rotation
	// within a rank.
	k := int(ri.turn.Add(1) % uint64(len(ings)))
	rotated := append(slices.Clone(ings[k:]), ings[:k]...)
	slices.SortStableFunc(rotated, func(a, b Ingester) int { return rank(&a) - rank(&b) })
	n := len(ings) - spare
	set.Ingesters, set.Standby = rotated[:n:n], rotated[n:]
}

// unhealthy names the token owners that rs left out although their state
// serves reads: those whose heartbeat is stale.
func (ri ringIngesters) unhealthy(rs ring.ReplicationSet) []string {
	var out []string
	for _, in := range ri.r.Instances() {
		if len(in.Tokens) == 0 || rs.Includes(in.ID) {
			continue
		}
		if in.State == ring.StateActive || in.State == ring.StateLeaving || in.State == ring.StateReadOnly {
			out = append(out, fmt.Sprintf("%s (last heartbeat %s ago)", instanceName(&in), time.Since(in.HeartbeatTime()).Round(time.Second)))
		}
	}
	return out
}

// instanceName is how errors and warnings name an instance: its ID, its
// address (which operators see in logs and /ring) and its zone.
func instanceName(in *ring.Instance) string {
	if in.Zone != "" {
		return fmt.Sprintf("%s@%s (zone %s)", in.ID, in.Addr, in.Zone)
	}
	return fmt.Sprintf("%s@%s", in.ID, in.Addr)
}
