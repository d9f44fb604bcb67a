package ingester

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// SeriesLimits are the per-tenant limits of active series, counted across
// the cluster before replication; 0 means no limit. *limits.Overrides
// implements them.
type SeriesLimits interface {
	MaxGlobalSeriesPerUser(tenant string) int
	MaxGlobalSeriesPerMetric(tenant string) int
}

// ReplicationFunc reports the replication factor and the number of healthy
// ingesters, from which an ingester derives its share of a global limit.
// It is called on every series creation: it must be cheap.
type ReplicationFunc func() (rf, ingesters int)

// SetSeriesLimits makes the ingester refuse to create series beyond each
// tenant's share of l: global × rf / ingesters, as Mimir shares them (each
// series lives on rf of the ingesters). Samples of a refused series are
// rejected one series at a time (SeriesError reasons PER_USER_SERIES_LIMIT
// and PER_METRIC_SERIES_LIMIT); the rest of the push is written. A nil
// shard counts every series as if this ingester were alone.
func (i *Ingester) SetSeriesLimits(l SeriesLimits, shard ReplicationFunc) {
	if shard == nil {
		shard = func() (int, int) { return 1, 1 }
	}
	i.series.limits.Store(&seriesLimitsConfig{limits: l, shard: shard})
}

// seriesLimitError is returned by the tsdb's appender when the tracker
// refuses a new series.
type seriesLimitError struct {
	tenant        string
	metric        string // set for the per-metric limit
	global, local int
}

func (e *seriesLimitError) Error() string {
	if e.metric != "" {
		return fmt.Sprintf("per-metric series limit of %d exceeded for tenant %q and metric %q (this ingester's share: %d series; limits.max_global_series_per_metric)", e.global, e.tenant, e.metric, e.local)
	}
	return fmt.Sprintf("per-tenant series limit of %d exceeded for tenant %q (this ingester's share: %d series; limits.max_global_series_per_user)", e.global, e.tenant, e.local)
}

// seriesLimitReason tells whether err is a series limit, and which.
func seriesLimitReason(err error) (perMetric, ok bool) {
	var e *seriesLimitError
	if !errors.As(err, &e) {
		return false, false
	}
	return e.metric != "", true
}

type seriesLimitsConfig struct {
	limits SeriesLimits
	shard  ReplicationFunc
}

// seriesTracker counts each tenant's series in the head (the tsdb calls it
// on every creation and deletion, WAL replay included) and refuses new ones
// over the limits. It is the tsdb's SeriesLifecycleCallback.
type seriesTracker struct {
	limits atomic.Pointer[seriesLimitsConfig] // nil: count only
	// enforcing is off while a WAL replays: series already stored are
	// never refused.
	enforcing atomic.Bool

	mu      sync.Mutex
	tenants map[string]*tenantSeries
	desc    *prometheus.Desc
}

type tenantSeries struct {
	n        int
	byMetric map[string]int
}

func newSeriesTracker() *seriesTracker {
	return &seriesTracker{
		tenants: map[string]*tenantSeries{},
		desc: prometheus.NewDesc("pharos_ingester_active_series",
			"Series in the ingester's head (in memory), by tenant.", []string{"tenant"}, nil),
	}
}

// seriesTenant is the tenant a stored series belongs to: the default
// tenant's series carry no tenant label (see tenant.go).
func seriesTenant(ls labels.Labels) string {
	if id := ls.Get(tenant.Label); id != "" {
		return id
	}
	return tenant.DefaultTenant
}

// localLimit is this ingester's share of a global limit.
func localLimit(global, rf, ingesters int) int {
	if global <= 0 || rf <= 0 || ingesters <= 0 || rf >= ingesters {
		return global
	}
	return int(math.Ceil(float64(global) * float64(rf) / float64(ingesters)))
}

// PreCreation implements tsdb.SeriesLifecycleCallback.
func (t *seriesTracker) PreCreation(ls labels.Labels) error {
	cfg := t.limits.Load()
	if cfg == nil || !t.enforcing.Load() {
		return nil
	}
	id := seriesTenant(ls)
	perUser, perMetric := cfg.limits.MaxGlobalSeriesPerUser(id), cfg.limits.MaxGlobalSeriesPerMetric(id)
	if perUser <= 0 && perMetric <= 0 {
		return nil
	}
	rf, ings := cfg.shard()
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.tenants[id]
	if ts == nil {
		return nil
	}
	if local := localLimit(perUser, rf, ings); local > 0 && ts.n >= local {
		return &seriesLimitError{tenant: id, global: perUser, local: local}
	}
	if local := localLimit(perMetric, rf, ings); local > 0 {
		name := ls.Get(model.MetricNameLabel)
		if ts.byMetric[name] >= local {
			return &seriesLimitError{tenant: id, metric: name, global: perMetric, local: local}
		}
	}
	return nil
}

// PostCreation implements tsdb.SeriesLifecycleCallback.
func (t *seriesTracker) PostCreation(ls labels.Labels) {
	id := seriesTenant(ls)
	name := ls.Get(model.MetricNameLabel)
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.tenants[id]
	if ts == nil {
		ts = &tenantSeries{byMetric: map[string]int{}}
		t.tenants[id] = ts
	}
	ts.n++
	ts.byMetric[name]++
}

// PostDeletion implements tsdb.SeriesLifecycleCallback.
func (t *seriesTracker) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ls := range deleted {
		id := seriesTenant(ls)
		ts := t.tenants[id]
		if ts == nil {
			continue
		}
		ts.n--
		name := ls.Get(model.MetricNameLabel)
		if ts.byMetric[name]--; ts.byMetric[name] <= 0 {
			delete(ts.byMetric, name)
		}
		if ts.n <= 0 {
			delete(t.tenants, id)
		}
	}
}

// reset forgets every count, before a reopened tsdb replays its WAL and
// creates its series again; enforcement stays off until opened is called.
func (t *seriesTracker) reset() {
	t.enforcing.Store(false)
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.tenants)
}

// opened turns enforcement on once the tsdb has replayed its WAL.
func (t *seriesTracker) opened() { t.enforcing.Store(true) }

// active returns tenant's series in the head.
func (t *seriesTracker) active(id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ts := t.tenants[id]; ts != nil {
		return ts.n
	}
	return 0
}

// Describe implements prometheus.Collector.
func (t *seriesTracker) Describe(ch chan<- *prometheus.Desc) { ch <- t.desc }

// Collect implements prometheus.Collector.
func (t *seriesTracker) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, ts := range t.tenants {
		ch <- prometheus.MustNewConstMetric(t.desc, prometheus.GaugeValue, float64(ts.n), id)
	}
}
