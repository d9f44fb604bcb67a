package cluster

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

var (
	// ErrInstanceNotFound is returned by Forget for an unknown instance.
	ErrInstanceNotFound = errors.New("instance not in the ring")
	// ErrInstanceHealthy is returned by Forget for an instance that still
	// heartbeats: forgetting it would only be undone by its next heartbeat.
	ErrInstanceHealthy = errors.New("instance is healthy")
)

// Ring answers placement questions from the latest descriptor in a KV. The
// sorted token index is rebuilt lazily, on the first call after the
// descriptor changed. Safe for concurrent use.
type Ring struct {
	cfg  Config
	kv   KV
	mu   sync.Mutex // serialises rebuilds
	view atomic.Pointer[ring.View]
}

// NewRing returns a Ring over kv and registers the ring metrics
// (pharos_ring_members{state}, ...) on reg, which may be nil.
func NewRing(cfg Config, kv KV, reg prometheus.Registerer) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Ring{cfg: cfg, kv: kv}
	if reg != nil {
		if err := reg.Register(newRingCollector(r)); err != nil {
			return nil, fmt.Errorf("register ring metrics: %w", err)
		}
	}
	return r, nil
}

// ReplicationFactor returns the configured replication factor.
func (r *Ring) ReplicationFactor() int { return r.cfg.ReplicationFactor }

// View returns an up-to-date immutable view of the ring.
func (r *Ring) View() *ring.View {
	d := r.kv.Get()
	if v := r.view.Load(); v != nil && v.Desc() == d {
		return v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d = r.kv.Get()
	prev := r.view.Load()
	if prev != nil && prev.Desc() == d {
		return prev
	}
	v := ring.NewViewFrom(prev, d, r.cfg.HeartbeatTimeout)
	r.view.Store(v)
	return v
}

// Get returns the replication set for key: see ring.View.ReplicationSet.
func (r *Ring) Get(key uint32, op ring.Operation) (ring.ReplicationSet, error) {
	return r.GetInto(key, op, nil)
}

// GetInto is Get reusing buf for the returned instances, for callers that
// place many keys in a loop.
func (r *Ring) GetInto(key uint32, op ring.Operation, buf []*ring.Instance) (ring.ReplicationSet, error) {
	return r.View().ReplicationSet(key, r.cfg.ReplicationFactor, op, time.Now(), buf)
}

// AllHealthy returns every instance healthy for op with the failures the
// operation tolerates: see ring.View.AllHealthy.
func (r *Ring) AllHealthy(op ring.Operation) (ring.ReplicationSet, error) {
	return r.View().AllHealthy(r.cfg.ReplicationFactor, op, time.Now())
}

// Instances returns the members, tombstones excluded, sorted by ID. The
// slice is shared: do not modify it.
func (r *Ring) Instances() []ring.Instance { return r.View().Instances() }

// Forget removes an unhealthy instance from the ring by writing its
// tombstone, for instances that will not come back.
func (r *Ring) Forget(id string) error {
	now := time.Now()
	d := r.kv.Get()
	in, ok := d.Get(id)
	if !ok || in.State == ring.StateLeft {
		return fmt.Errorf("forget %q: %w", id, ErrInstanceNotFound)
	}
	if now.Sub(in.HeartbeatTime()) <= r.cfg.HeartbeatTimeout {
		return fmt.Errorf("forget %q: %w", id, ErrInstanceHealthy)
	}
	r.kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{id: d.Tombstone(id, now)}})
	return nil
}

type ringCollector struct {
	r                                   *Ring
	membersDesc, tokensDesc, oldestDesc *prometheus.Desc
}

func newRingCollector(r *Ring) ringCollector {
	p := r.cfg.metricPrefix()
	return ringCollector{
		r: r,
		membersDesc: prometheus.NewDesc(p+"members",
			"Ring members by state; unhealthy counts members whose heartbeat is older than the timeout, whatever their state.",
			[]string{"state"}, nil),
		tokensDesc: prometheus.NewDesc(p+"tokens", "Tokens in the ring.", nil, nil),
		oldestDesc: prometheus.NewDesc(p+"oldest_heartbeat_age_seconds",
			"Age of the stalest heartbeat among ring members.", nil, nil),
	}
}

func (c ringCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.membersDesc
	ch <- c.tokensDesc
	ch <- c.oldestDesc
}

func (c ringCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.r.View()
	now := time.Now()
	counts := map[ring.State]int{}
	unhealthy := 0
	var oldest time.Duration
	for _, in := range v.Instances() {
		counts[in.State]++
		age := now.Sub(in.HeartbeatTime())
		oldest = max(oldest, age)
		if age > c.r.cfg.HeartbeatTimeout {
			unhealthy++
		}
	}
	for _, s := range ring.States() {
		if s == ring.StateLeft {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.membersDesc, prometheus.GaugeValue, float64(counts[s]), s.String())
	}
	ch <- prometheus.MustNewConstMetric(c.membersDesc, prometheus.GaugeValue, float64(unhealthy), "unhealthy")
	ch <- prometheus.MustNewConstMetric(c.tokensDesc, prometheus.GaugeValue, float64(v.NumTokens()))
	ch <- prometheus.MustNewConstMetric(c.oldestDesc, prometheus.GaugeValue, oldest.Seconds())
}
