package distributor

import "github.com/pharos-tsdb/pharos/cluster/ring"

// uniformIngesters is implemented by Ingesters that can tell when every
// series, whatever its shard key, goes to the same ingesters, so that a push
// skips hashing and placing each series.
type uniformIngesters interface {
	// UniformWriteReplicas returns what WriteReplicas would return for every
	// key, reusing buf, and true; or false when replicas may differ between
	// keys or WriteReplicas would fail.
	UniformWriteReplicas(buf []*ring.Instance) (ring.ReplicationSet, bool)
}

// UniformWriteReplicas implements uniformIngesters: a ring of no more
// ACTIVE instances than the replication factor (in every zone) puts every
// series on all of them.
func (ri ringIngesters) UniformWriteReplicas(buf []*ring.Instance) (ring.ReplicationSet, bool) {
	return ri.r.UniformSet(ring.Write, buf)
}
