package distributor

import (
	"fmt"
	"strconv"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// Ingesters is how the distributor finds the ingesters of a series. Both
// methods are called for every push, from many goroutines at once.
type Ingesters interface {
	// WriteReplicas returns the ingesters a series with shard key key (see
	// ring.ShardKey) is written to, reusing buf for the instances, and how
	// many of them may fail. An error means the write cannot reach quorum.
	WriteReplicas(key uint32, buf []*ring.Instance) (ring.ReplicationSet, error)
	// Client returns the connection to the ingester at addr, one of the
	// addresses WriteReplicas returned.
	Client(addr string) (ingesterpb.IngesterClient, error)
}

// NewRingIngesters places series with r (write operation: ACTIVE instances)
// and reaches them through p.
func NewRingIngesters(r *cluster.Ring, p *ingesterclient.Pool) Ingesters {
	return ringIngesters{r: r, p: p}
}

// NewRingIngestersWithLocal is NewRingIngesters for a process that runs an
// ingester itself, registered in r at localAddr: pushes to it go through
// local (see ingester.LocalClient), which skips encoding and transport,
// instead of a connection of p. A nil local is NewRingIngesters.
func NewRingIngestersWithLocal(r *cluster.Ring, p *ingesterclient.Pool, localAddr string, local ingesterpb.IngesterClient) Ingesters {
	return ringIngesters{r: r, p: p, localAddr: localAddr, local: local}
}

type ringIngesters struct {
	r *cluster.Ring
	p *ingesterclient.Pool
	// local, if set, is the client of the process's own ingester, whose
	// ring address is localAddr.
	localAddr string
	local     ingesterpb.IngesterClient
}

func (ri ringIngesters) WriteReplicas(key uint32, buf []*ring.Instance) (ring.ReplicationSet, error) {
	return ri.r.GetInto(key, ring.Write, buf)
}

func (ri ringIngesters) Client(addr string) (ingesterpb.IngesterClient, error) {
	if ri.local != nil && addr == ri.localAddr {
		return ri.local, nil
	}
	return ri.p.Get(addr)
}

// StaticIngesters is a fixed list of ingesters that all get every series:
// the replication factor is the length of the list. The distributor sends
// whole requests to them without hashing series.
type StaticIngesters []ingesterpb.IngesterClient

// WriteReplicas implements Ingesters: every ingester, named "static-<i>".
func (s StaticIngesters) WriteReplicas(_ uint32, buf []*ring.Instance) (ring.ReplicationSet, error) {
	if len(s) == 0 {
		return ring.ReplicationSet{}, ErrNoIngesters
	}
	buf = buf[:0]
	for i := range s {
		buf = append(buf, &ring.Instance{ID: staticAddr(i), Addr: staticAddr(i), State: ring.StateActive})
	}
	return ring.ReplicationSet{Instances: buf, MaxErrors: len(s) - ring.WriteQuorum(len(s))}, nil
}

// Client implements Ingesters.
func (s StaticIngesters) Client(addr string) (ingesterpb.IngesterClient, error) {
	var i int
	if _, err := fmt.Sscanf(addr, "static-%d", &i); err != nil || i < 0 || i >= len(s) {
		return nil, fmt.Errorf("unknown static ingester %q", addr)
	}
	return s[i], nil
}

func staticAddr(i int) string { return "static-" + strconv.Itoa(i) }
