package distributor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// HATrackerRingName is the namespace of the shared KV (cluster.Namespace)
// that holds the HA tracker's elections.
const HATrackerRingName = "ha-tracker"

// HATrackerConfig is the `distributor.ha_tracker:` section. The names are
// Mimir's, so its documentation applies.
type HATrackerConfig struct {
	// Enable turns deduplication of HA Prometheus pairs on.
	Enable bool `yaml:"enable_ha_tracker"`
	// UpdateTimeout is how often, at most, the elected replica's last
	// push is written to the KV; between writes, the distributors only
	// read their cache.
	UpdateTimeout model.Duration `yaml:"ha_tracker_update_timeout"`
	// UpdateTimeoutJitterMax spreads those writes so that many clusters
	// do not all write at once.
	UpdateTimeoutJitterMax model.Duration `yaml:"ha_tracker_update_timeout_jitter_max"`
	// FailoverTimeout is how long the elected replica may stay silent
	// before another replica of its cluster takes over.
	FailoverTimeout model.Duration `yaml:"ha_tracker_failover_timeout"`
}

// RegisterFlags registers the distributor.ha-tracker.* flags.
func (c *HATrackerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enable, "distributor.ha-tracker.enable", false, "Deduplicate samples of HA Prometheus pairs: accept one replica per cluster at a time.")
	c.UpdateTimeout = model.Duration(15 * time.Second)
	fs.Var(&c.UpdateTimeout, "distributor.ha-tracker.update-timeout", "How often at most the elected replica's last push is written to the ring KV.")
	c.UpdateTimeoutJitterMax = model.Duration(5 * time.Second)
	fs.Var(&c.UpdateTimeoutJitterMax, "distributor.ha-tracker.update-timeout-jitter-max", "Maximum random jitter added to the update timeout.")
	c.FailoverTimeout = model.Duration(30 * time.Second)
	fs.Var(&c.FailoverTimeout, "distributor.ha-tracker.failover-timeout", "How long the elected replica may stay silent before another replica takes over.")
}

// Validate reports the first invalid field. The failover timeout must
// exceed the longest interval between two KV writes of a healthy elected
// replica, or the other replica would take over from a live one.
func (c *HATrackerConfig) Validate() error {
	switch {
	case c.UpdateTimeout <= 0:
		return errors.New("ha_tracker.ha_tracker_update_timeout must be positive")
	case c.UpdateTimeoutJitterMax < 0:
		return errors.New("ha_tracker.ha_tracker_update_timeout_jitter_max must not be negative")
	case c.FailoverTimeout <= c.UpdateTimeout+c.UpdateTimeoutJitterMax:
		return fmt.Errorf("ha_tracker.ha_tracker_failover_timeout (%v) must be greater than ha_tracker_update_timeout + ha_tracker_update_timeout_jitter_max (%v)",
			c.FailoverTimeout, c.UpdateTimeout+c.UpdateTimeoutJitterMax)
	}
	return nil
}

// HALimits are the per-tenant settings of HA deduplication. The limits
// (overrides) of the tenant implement it.
type HALimits interface {
	// AcceptHASamples tells whether the tenant's pushes are deduplicated.
	AcceptHASamples(tenant string) bool
	// HAClusterLabel names the label that identifies an HA cluster.
	HAClusterLabel(tenant string) string
	// HAReplicaLabel names the label that identifies a replica in it; it
	// is dropped from the series that are stored.
	HAReplicaLabel(tenant string) string
	// HAMaxClusters bounds the tenant's HA clusters (0: no limit).
	HAMaxClusters(tenant string) int
}

// StaticHALimits gives every tenant the same HA settings.
type StaticHALimits struct {
	Accept                     bool
	ClusterLabel, ReplicaLabel string
	MaxClusters                int
}

// DefaultHALimits are the settings of a tenant without overrides: Mimir's
// labels, deduplication on.
func DefaultHALimits() StaticHALimits {
	return StaticHALimits{Accept: true, ClusterLabel: "cluster", ReplicaLabel: "__replica__", MaxClusters: 100}
}

// AcceptHASamples implements HALimits.
func (s StaticHALimits) AcceptHASamples(string) bool { return s.Accept }

// HAClusterLabel implements HALimits.
func (s StaticHALimits) HAClusterLabel(string) string { return s.ClusterLabel }

// HAReplicaLabel implements HALimits.
func (s StaticHALimits) HAReplicaLabel(string) string { return s.ReplicaLabel }

// HAMaxClusters implements HALimits.
func (s StaticHALimits) HAMaxClusters(string) int { return s.MaxClusters }

// Errors of HATracker.Check.
var (
	// ErrNotElected: the replica is not the elected one of its cluster;
	// its samples are dropped and the push is answered 202 Accepted, so
	// that the sender does not retry.
	ErrNotElected = errors.New("replica is not the elected replica of its HA cluster")
	// ErrTooManyHAClusters: the tenant already has its maximum number of
	// HA clusters (HTTP 400).
	ErrTooManyHAClusters = errors.New("too many HA clusters")
)

// haEntry is one cluster's election as cached. In the KV it is a ring
// instance keyed "<tenant>/<cluster>": Addr holds the replica, Timestamp
// the last accepted push written (Unix ms) and Registered when the replica
// was elected, so the descriptor's last-writer-wins merge orders updates
// and StateLeft is the deletion tombstone that gossip collects.
type haEntry struct {
	replica    string
	receivedAt int64 // Unix ms, also the version: newer entries win
	electedAt  int64
	// refreshAfter is when an accepted push of the elected replica is
	// next written to the KV: receivedAt + update timeout + jitter.
	refreshAfter int64
}

// HATracker elects one replica per (tenant, HA cluster) and shares the
// elections through a KV, so that every distributor accepts the same
// replica. Check reads an in-memory cache and writes to the KV only when an
// election changes or the elected replica's last push is older than the
// update timeout. Run keeps the cache in step with the KV.
//
// It is safe for concurrent use.
type HATracker struct {
	cfg    HATrackerConfig
	kv     cluster.KV
	logger *slog.Logger
	now    func() time.Time
	jitter func() time.Duration

	mu      sync.Mutex
	entries map[string]*haEntry // by "<tenant>/<cluster>"
	// clusters counts the entries of each tenant, for HAMaxClusters.
	clusters map[string]int

	changes   *prometheus.CounterVec
	timestamp *prometheus.GaugeVec
	kvWrites  prometheus.Counter
	deduped   *prometheus.CounterVec
}

// NewHATracker returns a tracker that keeps its elections in kv, which
// should be the HATrackerRingName namespace of the ring's KV. cfg must be
// valid.
func NewHATracker(cfg HATrackerConfig, kv cluster.KV, logger *slog.Logger, reg prometheus.Registerer) (*HATracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &HATracker{
		cfg:      cfg,
		kv:       kv,
		logger:   logger,
		now:      time.Now,
		entries:  map[string]*haEntry{},
		clusters: map[string]int{},
	}
	if j := int64(cfg.UpdateTimeoutJitterMax); j > 0 {
		t.jitter = func() time.Duration { return time.Duration(rand.Int64N(j)) }
	} else {
		t.jitter = func() time.Duration { return 0 }
	}
	f := promauto.With(reg)
	t.changes = f.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_ha_tracker_elected_replica_changes_total",
		Help: "Changes of the elected replica of an HA cluster, as seen by this distributor.",
	}, []string{"tenant", "cluster"})
	t.timestamp = f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pharos_ha_tracker_elected_replica_timestamp_seconds",
		Help: "When the elected replica of an HA cluster last had a push recorded in the KV (recorded at most every update timeout).",
	}, []string{"tenant", "cluster"})
	t.deduped = f.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_distributor_deduped_samples_total",
		Help: "Samples (float and histogram) of HA replicas that were not the elected one, dropped unwritten.",
	}, []string{"tenant", "cluster"})
	t.kvWrites = f.NewCounter(prometheus.CounterOpts{
		Name: "pharos_ha_tracker_kv_writes_total",
		Help: "Elections and refreshes this distributor wrote to the ring KV.",
	})
	return t, nil
}

func haKey(tenant, cluster string) string { return tenant + "/" + cluster }

// splitHAKey inverts haKey: tenant IDs never contain a slash, cluster
// names may.
func splitHAKey(key string) (tenant, cluster string, ok bool) {
	return strings.Cut(key, "/")
}

// Check decides whether a push of replica of HA cluster cluster of tenant,
// received now, is accepted: nil for the elected replica (electing it if the
// cluster has none, or taking over if the elected one has been silent for
// the failover timeout), ErrNotElected for another replica,
// ErrTooManyHAClusters for a new cluster over the tenant's maxClusters
// (0: no limit). The errors are wrapped with the names involved.
func (t *HATracker) Check(tenant, cluster, replica string, maxClusters int) error {
	now := t.now()
	nowMs := now.UnixMilli()
	key := haKey(tenant, cluster)

	t.mu.Lock()
	e, ok := t.entries[key]
	switch {
	case ok && e.replica == replica && nowMs < e.refreshAfter:
		t.mu.Unlock()
		return nil
	case ok && e.replica != replica && nowMs-e.receivedAt < time.Duration(t.cfg.FailoverTimeout).Milliseconds():
		elected := e.replica
		t.mu.Unlock()
		return fmt.Errorf("%w: cluster %q of tenant %q accepts replica %q, not %q", ErrNotElected, cluster, tenant, elected, replica)
	case !ok && maxClusters > 0 && t.clusters[tenant] >= maxClusters:
		n := t.clusters[tenant]
		t.mu.Unlock()
		return fmt.Errorf("%w: tenant %q has %d HA clusters, the limit (ha_max_clusters) is %d; cluster %q is refused", ErrTooManyHAClusters, tenant, n, maxClusters, cluster)
	}
	// A refresh of the elected replica, an election or a takeover. The
	// version written must beat what the KV holds, which may be newer
	// than the cache if the watch has not delivered it yet.
	cur, inKV := t.kv.Get().Get(key)
	next := ring.Instance{ID: key, Addr: replica, State: ring.StateActive, Timestamp: nowMs, Registered: nowMs}
	if inKV {
		next.Timestamp = ring.NextTimestamp(cur.Timestamp, now)
		if cur.State != ring.StateLeft && cur.Addr == replica {
			next.Registered = cur.Registered
		}
	}
	if ok && e.replica != replica {
		t.logger.Info("HA cluster fails over", "tenant", tenant, "cluster", cluster,
			"from", e.replica, "to", replica, "silent_for", time.Duration(nowMs-e.receivedAt)*time.Millisecond)
	}
	t.applyLocked(key, next)
	t.mu.Unlock()

	t.kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{key: next}})
	t.kvWrites.Inc()
	return nil
}

// applyLocked folds one KV entry into the cache unless the cache already
// holds a newer version of it. t.mu is held.
func (t *HATracker) applyLocked(key string, in ring.Instance) {
	tenant, cluster, ok := splitHAKey(key)
	if !ok {
		return
	}
	e, had := t.entries[key]
	if had && in.Timestamp <= e.receivedAt {
		return
	}
	if in.State == ring.StateLeft {
		if had {
			delete(t.entries, key)
			t.dropCluster(tenant)
			t.changes.DeleteLabelValues(tenant, cluster)
			t.timestamp.DeleteLabelValues(tenant, cluster)
		}
		return
	}
	if !had {
		e = &haEntry{}
		t.entries[key] = e
		t.clusters[tenant]++
	} else if e.replica != in.Addr {
		t.changes.WithLabelValues(tenant, cluster).Inc()
	}
	e.replica, e.receivedAt, e.electedAt = in.Addr, in.Timestamp, in.Registered
	e.refreshAfter = in.Timestamp + (time.Duration(t.cfg.UpdateTimeout) + t.jitter()).Milliseconds()
	t.timestamp.WithLabelValues(tenant, cluster).Set(float64(in.Timestamp) / 1e3)
}

func (t *HATracker) dropCluster(tenant string) {
	if t.clusters[tenant] <= 1 {
		delete(t.clusters, tenant)
	} else {
		t.clusters[tenant]--
	}
}

// Run keeps the cache in step with the KV and removes elections that saw no
// push for haCleanupAge, until ctx ends. It must run for the distributors
// to learn each other's elections.
func (t *HATracker) Run(ctx context.Context) {
	cleanup := time.NewTicker(haCleanupInterval)
	defer cleanup.Stop()
	watch := t.kv.Watch(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-watch:
			if !ok {
				return
			}
			t.sync(d)
		case <-cleanup.C:
			t.cleanup(t.now())
		}
	}
}

// haCleanupAge is how long an election is kept after the last recorded push
// of its replica; haCleanupInterval how often they are checked. Mimir's.
const (
	haCleanupAge      = 30 * time.Minute
	haCleanupInterval = time.Minute
)

// sync folds a version of the KV into the cache. Entries missing from d
// (tombstones already collected) are dropped from the cache too, unless
// they are recent: Check caches what it writes before merging it, so d may
// predate them.
func (t *HATracker) sync(d *ring.Desc) {
	recent := t.now().Add(-time.Duration(t.cfg.FailoverTimeout)).UnixMilli()
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, in := range d.Instances {
		t.applyLocked(key, in)
	}
	for key, e := range t.entries {
		if _, ok := d.Instances[key]; !ok && e.receivedAt < recent {
			t.applyLocked(key, ring.Instance{ID: key, State: ring.StateLeft, Timestamp: e.receivedAt + 1})
		}
	}
}

// cleanup writes tombstones for the elections idle for haCleanupAge at
// now, so that a cluster that is gone frees its place under the tenant's
// limit. Any distributor may do it; a later push elects anew.
func (t *HATracker) cleanup(now time.Time) {
	cutoff := now.Add(-haCleanupAge).UnixMilli()
	var dead *ring.Desc
	t.mu.Lock()
	for key, e := range t.entries {
		if e.receivedAt >= cutoff {
			continue
		}
		tomb := ring.Instance{ID: key, Addr: e.replica, State: ring.StateLeft, Timestamp: ring.NextTimestamp(e.receivedAt, now), Registered: e.electedAt}
		if dead == nil {
			dead = ring.NewDesc()
		}
		dead.Instances[key] = tomb
		t.applyLocked(key, tomb)
	}
	t.mu.Unlock()
	if dead != nil {
		t.kv.Merge(dead)
		t.kvWrites.Inc()
	}
}

// Elected returns the replica elected for cluster of tenant, as cached.
func (t *HATracker) Elected(tenant, cluster string) (replica string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[haKey(tenant, cluster)]
	if !ok {
		return "", false
	}
	return e.replica, true
}

// ReasonTooManyHAClusters is the rejection reason of a push from an HA
// cluster over the tenant's ha_max_clusters.
const ReasonTooManyHAClusters = "too_many_ha_clusters"

// SetHATracker makes Push deduplicate HA Prometheus pairs with t, under the
// per-tenant settings limits. It must be called before the first Push.
func (d *Distributor) SetHATracker(t *HATracker, limits HALimits) {
	d.ha, d.haLimits = t, limits
}

// dedupeHA applies the HA tracker to req, as Mimir does: the first series
// decides for the whole request, since one Prometheus sends one external
// label set. It reports done when nothing of req is to be written: a
// non-elected replica (res.Deduplicated), or a cluster over the tenant's
// limit (every series rejected). Otherwise it has removed the replica label
// from every series of an HA request (relabelled), so that both replicas
// write the same series.
func (d *Distributor) dedupeHA(ctx context.Context, req *ingesterpb.PushRequest, res *PushResult) (done, relabelled bool) {
	if len(req.Series) == 0 {
		return false, false
	}
	id, err := tenant.FromContext(ctx)
	if err != nil {
		id = tenant.DefaultTenant // the scrape and rule paths carry none while tenancy is off
	}
	if !d.haLimits.AcceptHASamples(id) {
		return false, false
	}
	clusterLabel, replicaLabel := d.haLimits.HAClusterLabel(id), d.haLimits.HAReplicaLabel(id)
	var cluster, replica string
	for _, l := range req.Series[0].Labels {
		switch string(l.Name) {
		case clusterLabel:
			cluster = string(l.Value)
		case replicaLabel:
			replica = string(l.Value)
		}
	}
	if cluster == "" || replica == "" {
		return false, false
	}
	switch err := d.ha.Check(id, cluster, replica, d.haLimits.HAMaxClusters(id)); {
	case errors.Is(err, ErrNotElected):
		n := 0
		for _, ts := range req.Series {
			n += len(ts.Samples) + len(ts.Histograms)
		}
		d.ha.deduped.WithLabelValues(id, cluster).Add(float64(n))
		res.Deduplicated = true
		return true, false
	case err != nil:
		for i, ts := range req.Series {
			d.reject(res, Rejection{Index: i, Reason: ReasonTooManyHAClusters, Series: FormatSeries(ts.Labels),
				Message: err.Error(), Samples: len(ts.Samples), Histograms: len(ts.Histograms)})
		}
		return true, false
	}
	for _, ts := range req.Series {
		ts.Labels = slices.DeleteFunc(ts.Labels, func(l *ingesterpb.LabelPair) bool { return string(l.Name) == replicaLabel })
	}
	return false, true
}
