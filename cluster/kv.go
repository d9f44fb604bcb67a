package cluster

import (
	"context"
	"sync"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

// KV holds the ring descriptor. *gossip.KV implements it across processes;
// MemKV within one process.
type KV interface {
	// Get returns the current descriptor, shared and read-only.
	Get() *ring.Desc
	// Merge folds delta into the descriptor (last writer wins per
	// instance) and propagates what changed.
	Merge(delta *ring.Desc)
	// Watch delivers the current descriptor and then every new version
	// (possibly skipping intermediate ones) until ctx ends.
	Watch(ctx context.Context) <-chan *ring.Desc
}

// MemKV is a KV inside one process: the all-in-one mode, and several
// lifecyclers sharing one ring in tests.
type MemKV struct {
	mu       sync.Mutex
	desc     *ring.Desc
	watchers map[chan *ring.Desc]struct{}
}

// NewMemKV returns an empty in-memory KV.
func NewMemKV() *MemKV {
	return &MemKV{desc: ring.NewDesc(), watchers: map[chan *ring.Desc]struct{}{}}
}

// Get implements KV.
func (m *MemKV) Get() *ring.Desc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.desc
}

// Merge implements KV.
func (m *MemKV) Merge(delta *ring.Desc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := m.desc.Updates(delta)
	if changed == nil {
		return
	}
	next := m.desc.Clone()
	next.Merge(changed)
	m.desc = next
	for ch := range m.watchers {
		select {
		case <-ch:
		default:
		}
		ch <- next
	}
}

// Watch implements KV.
func (m *MemKV) Watch(ctx context.Context) <-chan *ring.Desc {
	ch := make(chan *ring.Desc, 1)
	m.mu.Lock()
	ch <- m.desc
	m.watchers[ch] = struct{}{}
	m.mu.Unlock()
	context.AfterFunc(ctx, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.watchers, ch)
		close(ch)
	})
	return ch
}
