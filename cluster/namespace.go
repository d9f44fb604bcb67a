package cluster

import (
	"context"
	"strings"
	"sync"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

// nsSep separates a ring's name from an instance ID in the shared
// descriptor. Host names and instance IDs never contain it.
const nsSep = "/"

// Namespace returns a KV holding one ring inside kv, so several rings (the
// ingesters', the scrapers') share one gossip cluster and one descriptor
// without seeing each other. Instances of ring name are stored as
// "name/<id>"; the returned KV shows them with the prefix stripped and
// prefixes what it merges. The empty name is the ring of unprefixed IDs:
// the ingesters', which predates namespaces, so their gossip encoding is
// unchanged.
//
// Get returns the same *ring.Desc for as long as the underlying descriptor
// does not change, which keeps Ring's view cache effective. Watch delivers
// only versions in which this ring's instances changed.
func Namespace(kv KV, name string) KV {
	return &nsKV{kv: kv, name: name, prefix: name + nsSep}
}

type nsKV struct {
	kv           KV
	name, prefix string

	mu          sync.Mutex
	src, filter *ring.Desc // last underlying descriptor and its filtered form
}

// owns reports whether key belongs to this namespace; id is the key
// without the prefix.
func (n *nsKV) owns(key string) (id string, ok bool) {
	if n.name == "" {
		return key, !strings.Contains(key, nsSep)
	}
	return strings.CutPrefix(key, n.prefix)
}

func (n *nsKV) filtered(d *ring.Desc) *ring.Desc {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d == n.src && n.filter != nil {
		return n.filter
	}
	out := ring.NewDesc()
	for key, in := range d.Instances {
		id, ok := n.owns(key)
		if !ok {
			continue
		}
		in.ID = id
		out.Instances[id] = in
	}
	n.src, n.filter = d, out
	return out
}

// Get implements KV.
func (n *nsKV) Get() *ring.Desc { return n.filtered(n.kv.Get()) }

// Merge implements KV.
func (n *nsKV) Merge(delta *ring.Desc) {
	if n.name == "" {
		n.kv.Merge(delta)
		return
	}
	out := &ring.Desc{Instances: make(map[string]ring.Instance, delta.Len())}
	for id, in := range delta.Instances {
		in.ID = n.prefix + id
		out.Instances[in.ID] = in
	}
	n.kv.Merge(out)
}

// Watch implements KV. The channel closes when ctx ends or the underlying
// watch closes.
func (n *nsKV) Watch(ctx context.Context) <-chan *ring.Desc {
	in := n.kv.Watch(ctx)
	out := make(chan *ring.Desc, 1)
	go func() {
		defer close(out)
		var last *ring.Desc
		for d := range in {
			f := n.filtered(d)
			if last != nil && f.Equal(last) {
				continue
			}
			last = f
			select {
			case <-out: // drop the stale version, as the other KVs do
			default:
			}
			out <- f
		}
	}()
	return out
}
