package ingester

import (
	"slices"
	"strings"
	"sync"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// metadataStore keeps the latest metadata of each metric family of each
// tenant. It is bounded (max families, all tenants together): once full,
// families not seen before are dropped, because evicting known ones would
// make /api/v1/metadata flap under churn.
type metadataStore struct {
	max int

	mu sync.RWMutex
	// tenants maps a tenant to its families.
	tenants map[string]map[string]metadataEntry
	n       int // families of all tenants
}

type metadataEntry struct {
	typ        ingesterpb.MetricMetadata_MetricType
	help, unit string
}

func newMetadataStore(max int) *metadataStore {
	return &metadataStore{max: max, tenants: map[string]map[string]metadataEntry{}}
}

// update stores md and reports how many entries were dropped because the
// store is full. The strings are copied: md belongs to a pooled request.
func (s *metadataStore) update(tenantID string, md []*ingesterpb.MetricMetadata) (dropped int) {
	if len(md) == 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	families := s.tenants[tenantID]
	for _, m := range md {
		if m == nil || m.MetricFamilyName == "" {
			continue
		}
		old, ok := families[m.MetricFamilyName]
		if ok && old.typ == m.Type && old.help == m.Help && old.unit == m.Unit {
			continue
		}
		if !ok && s.n >= s.max {
			dropped++
			continue
		}
		if families == nil {
			families = map[string]metadataEntry{}
			s.tenants[strings.Clone(tenantID)] = families
		}
		if !ok {
			s.n++
		}
		families[strings.Clone(m.MetricFamilyName)] = metadataEntry{
			typ:  m.Type,
			help: strings.Clone(m.Help),
			unit: strings.Clone(m.Unit),
		}
	}
	return dropped
}

func (s *metadataStore) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.n
}

// query returns the metadata of metric (all metrics if empty), sorted by
// family name, at most limit families (0 = all). We keep one entry per
// family, so any positive limit per metric is already satisfied.
func (s *metadataStore) query(tenantID, metric string, limit int64) []*ingesterpb.MetricMetadata {
	s.mu.RLock()
	defer s.mu.RUnlock()
	families := s.tenants[tenantID]
	if metric != "" {
		e, ok := families[metric]
		if !ok {
			return nil
		}
		return []*ingesterpb.MetricMetadata{e.proto(metric)}
	}
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	slices.Sort(names)
	if limit > 0 && int64(len(names)) > limit {
		names = names[:limit]
	}
	out := make([]*ingesterpb.MetricMetadata, 0, len(names))
	for _, name := range names {
		out = append(out, families[name].proto(name))
	}
	return out
}

func (e metadataEntry) proto(name string) *ingesterpb.MetricMetadata {
	return &ingesterpb.MetricMetadata{Type: e.typ, MetricFamilyName: name, Help: e.help, Unit: e.unit}
}
