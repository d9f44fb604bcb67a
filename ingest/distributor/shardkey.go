package distributor

import (
	"github.com/cespare/xxhash/v2"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// keySep is ring.ShardKey's separator.
const keySep = 0xff

// appendTenantKey appends what shardKey hashes before the labels of a
// series of tenantID: nothing for the default tenant, whose keys are
// ring.ShardKey's.
func appendTenantKey(buf []byte, tenantID string) []byte {
	if tenantID == tenant.DefaultTenant {
		return buf
	}
	return append(append(buf, tenantID...), keySep)
}

// shardKey is ring.ShardKey over wire labels, so the distributor does not
// build a labels.Labels per series. The labels must be sorted and free of
// empty values, as validation leaves them; a test pins it to ring.ShardKey.
//
// A series of a tenant other than the default one hashes its tenant first,
// so that the same series of two tenants lands on different ingesters in
// general. The default tenant's keys are ring.ShardKey's unchanged: a
// single-tenant cluster keeps its placement. The routing loop uses
// shardKeyAppend with a buffer it keeps; this is the one-off form.
func shardKey(tenantID string, ls []*ingesterpb.LabelPair) uint32 {
	k, _ := shardKeyAppend(appendTenantKey(nil, tenantID), ls)
	return k
}

// shardKeyAppend is shardKey of the series with labels ls, buf holding
// appendTenantKey's prefix. It lays the key out in buf and hashes it in one
// xxhash.Sum64, which is the same hash as shardKey's digest written a
// slice at a time, at a fraction of its cost: 44 Digest.Writes of a few
// bytes each for 11 labels. It returns buf, grown, for the next series.
func shardKeyAppend(buf []byte, ls []*ingesterpb.LabelPair) (uint32, []byte) {
	for _, l := range ls {
		buf = append(buf, l.Name...)
		buf = append(buf, keySep)
		buf = append(buf, l.Value...)
		buf = append(buf, keySep)
	}
	h := xxhash.Sum64(buf)
	return uint32(h) ^ uint32(h>>32), buf
}
