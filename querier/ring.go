package querier

import (
	"errors"
	"fmt"
	"strings"
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

// ringIngesters reads from every ingester the ring says may hold data.
type ringIngesters struct {
	r    *cluster.Ring
	pool clientPool
	// local, if set, is the client of the process's own ingester, whose
	// ring address is localAddr.
	localAddr string
	local     ingesterpb.IngesterClient
}

// NewRingIngesters returns the Ingesters of a ring: each query asks every
// instance healthy for reads (ACTIVE, LEAVING, READONLY), with clients from
// p, and tolerates the failures the replication factor allows: RF−quorum
// instances, or with zones RF−quorum whole zones, less those already known
// dead from stale heartbeats.
func NewRingIngesters(r *cluster.Ring, p *ingesterclient.Pool) Ingesters {
	return ringIngesters{r: r, pool: p}
}

// NewRingIngestersWithLocal is NewRingIngesters for a process that runs an
// ingester itself, registered in r at localAddr: reads from it go through
// local (see ingester.LocalClient), which skips encoding and transport,
// instead of a connection of p. A nil local is NewRingIngesters.
func NewRingIngestersWithLocal(r *cluster.Ring, p *ingesterclient.Pool, localAddr string, local ingesterpb.IngesterClient) Ingesters {
	return ringIngesters{r: r, pool: p, localAddr: localAddr, local: local}
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
		if ri.local != nil && in.Addr == ri.localAddr {
			ing.Client = ri.local
		} else if c, err := ri.pool.Get(in.Addr); err != nil {
			ing.Err = err
		} else {
			ing.Client = c
		}
		set.Ingesters[i] = ing
	}
	return set, nil
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
