package scraper

import (
	"context"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
)

// Sharding decides which targets this scraper owns.
type Sharding interface {
	// Owns returns a predicate over target keys for the ring as it is now.
	// A sync takes one predicate and uses it for every target, so one sync
	// sees one ring.
	Owns() func(key uint32) bool
	// Changes delivers a value whenever ownership may have changed, until
	// ctx ends. Spurious values are fine: a sync that changes nothing is
	// not passed on.
	Changes(ctx context.Context) <-chan struct{}
}

// RingSharding gives each target to the first ACTIVE, healthy instance of
// the scraper ring at or after the target's key.
type RingSharding struct {
	ring    *cluster.Ring
	kv      cluster.KV
	id      string
	recheck time.Duration
}

// NewRingSharding shards by r, a ring over kv, for the instance id. recheck
// is how often ownership is re-evaluated without a ring change, which is
// how a scraper that stopped heartbeating loses its targets: use the
// ring's heartbeat period.
func NewRingSharding(r *cluster.Ring, kv cluster.KV, id string, recheck time.Duration) *RingSharding {
	return &RingSharding{ring: r, kv: kv, id: id, recheck: recheck}
}

// Owns implements Sharding.
func (s *RingSharding) Owns() func(uint32) bool {
	v, now := s.ring.View(), time.Now()
	buf := make([]*ring.Instance, 0, 1)
	return func(key uint32) bool {
		rs, err := v.ReplicationSet(key, 1, ring.Write, now, buf)
		return err == nil && len(rs.Instances) == 1 && rs.Instances[0].ID == s.id
	}
}

// Changes implements Sharding.
func (s *RingSharding) Changes(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	w := s.kv.Watch(ctx)
	go func() {
		t := time.NewTicker(s.recheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w:
				if !ok {
					return
				}
			case <-t.C:
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// targetRef is where a discovered target sits on the ring: id is its
// identity (scrape pool and labels after relabelling, or its discovered
// labels when relabelling drops it), key the ring key derived from id.
type targetRef struct {
	id  uint64
	key uint32
}

// preparedSet is a discovery update with every target's ref computed, so
// a ring change re-decides ownership without relabelling again. refs
// parallels tsets: refs[job][i][j] is tsets[job][i].Targets[j].
type preparedSet struct {
	tsets map[string][]*targetgroup.Group
	refs  map[string][][]targetRef
}

var (
	sep     = []byte{0xff}
	dropped = []byte{0xfe}
)

// prepare relabels every target with its pool's configuration, as the
// scrape pool will, to place it. A job without a configuration (a
// discovery update racing a reload that removed it) keeps its targets
// unplaced; the scrape manager ignores such jobs.
func prepare(tsets map[string][]*targetgroup.Group, cfgs map[string]*promconfig.ScrapeConfig) *preparedSet {
	p := &preparedSet{tsets: tsets, refs: make(map[string][][]targetRef, len(tsets))}
	lb := labels.NewBuilder(labels.EmptyLabels())
	var d xxhash.Digest
	for job, groups := range tsets {
		cfg := cfgs[job]
		if cfg == nil {
			continue
		}
		refs := make([][]targetRef, len(groups))
		for i, tg := range groups {
			if tg == nil {
				continue
			}
			refs[i] = make([]targetRef, len(tg.Targets))
			for j, tl := range tg.Targets {
				lset, err := scrape.PopulateLabels(lb, cfg, tl, tg.Labels)
				var id uint64
				if err == nil && !lset.IsEmpty() {
					id = activeID(&d, job, lset)
				} else {
					// Dropped or invalid: placed by what discovery saw, so
					// one scraper shows it (or logs its error), not all.
					scrape.PopulateDiscoveredLabels(lb, cfg, tl, tg.Labels)
					id = droppedID(&d, job, lb.Labels())
				}
				refs[i][j] = targetRef{id: id, key: ring.FoldKey(id)}
			}
		}
		p.refs[job] = refs
	}
	return p
}

// activeID hashes the pool and the target's public labels (those a
// scrape.Target's Labels returns), so that it can be recomputed from a
// running target.
func activeID(d *xxhash.Digest, job string, lset labels.Labels) uint64 {
	d.Reset()
	_, _ = d.WriteString(job)
	_, _ = d.Write(sep)
	lset.Range(func(l labels.Label) {
		if strings.HasPrefix(l.Name, model.ReservedLabelPrefix) {
			return
		}
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sep)
	})
	return d.Sum64()
}

func droppedID(d *xxhash.Digest, job string, lset labels.Labels) uint64 {
	d.Reset()
	_, _ = d.WriteString(job)
	_, _ = d.Write(dropped)
	lset.Range(func(l labels.Label) {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sep)
	})
	return d.Sum64()
}

// shard keeps the targets owns accepts. Every job of p stays in the result,
// with empty groups if need be: the scrape manager only syncs the pools
// named in an update, so a job left out would keep its old targets. owned
// holds the ids of the kept targets, seen those of all placed ones.
func (p *preparedSet) shard(owns func(uint32) bool) (out map[string][]*targetgroup.Group, owned, seen map[uint64]struct{}) {
	out = make(map[string][]*targetgroup.Group, len(p.tsets))
	owned, seen = map[uint64]struct{}{}, map[uint64]struct{}{}
	for job, groups := range p.tsets {
		refs, ok := p.refs[job]
		if !ok {
			out[job] = groups
			continue
		}
		kept := make([]*targetgroup.Group, 0, len(groups))
		for i, tg := range groups {
			if tg == nil {
				continue
			}
			ng := &targetgroup.Group{Source: tg.Source, Labels: tg.Labels}
			for j, tl := range tg.Targets {
				r := refs[i][j]
				seen[r.id] = struct{}{}
				if owns(r.key) {
					owned[r.id] = struct{}{}
					ng.Targets = append(ng.Targets, tl)
				}
			}
			kept = append(kept, ng)
		}
		out[job] = kept
	}
	return out, owned, seen
}
