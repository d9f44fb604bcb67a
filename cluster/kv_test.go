package cluster

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster/gossip"
	"github.com/pharos-tsdb/pharos/cluster/ring"
)

var (
	_ KV = (*gossip.KV)(nil)
	_ KV = (*MemKV)(nil)
)

func TestMemKVWatch(t *testing.T) {
	kv := NewMemKV()
	ctx, cancel := context.WithCancel(context.Background())
	w := kv.Watch(ctx)
	require.Equal(t, 0, (<-w).Len())

	for i := range 3 {
		kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{"a": {ID: "a", Timestamp: int64(i + 1)}}})
	}
	// A slow reader skips to the latest version.
	d := <-w
	in, _ := d.Get("a")
	require.Equal(t, int64(3), in.Timestamp)

	kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{"a": {ID: "a", Timestamp: 1}}})
	select {
	case <-w:
		t.Fatal("a stale update must not notify")
	default:
	}
	cancel()
	_, open := <-w
	require.False(t, open, "closed when ctx ends")
}
