package cluster

import (
	"time"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

// UniformSet returns the replication set every key gets for op now, when
// it is the same for every key (a ring of no more healthy instances than
// the replication factor): see ring.View.UniformReplicationSet. buf, if not
// nil, is reused for the instances.
func (r *Ring) UniformSet(op ring.Operation, buf []*ring.Instance) (ring.ReplicationSet, bool) {
	return r.View().UniformReplicationSet(r.cfg.ReplicationFactor, op, time.Now(), buf)
}
