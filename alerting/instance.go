package alerting

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/api"
	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/tracing"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// instance is one tenant's Alertmanager: its own alert store, silences,
// notification log, inhibitor, dispatcher, configuration and API v2. Only
// the gossip peer is shared, with one state per tenant and kind, so
// replicas exchange each tenant's silences and notification log apart from
// every other tenant's. With multi-tenancy off the Notifier runs exactly one,
// for tenant.DefaultTenant, wired as upstream's app.setup wires its single
// Alertmanager.
type instance struct {
	id      string
	handler http.Handler
	cleanup stack

	// mu serialises configuration applies. coordinator carries upstream's
	// alertmanager_config_* metrics and calls the reloader.
	mu          sync.Mutex
	coordinator *config.Coordinator
	// applied is the updated_at of the tenant's own configuration in
	// force; the zero time means the fallback (the configured file).
	applied time.Time
	// current is the configuration in force.
	current *config.Config
}

// stateKey names the gossip state of kind ("nfl", "sil") for tenant id.
// Without multi-tenancy the keys stay upstream's, so such a replica still
// gossips with an Alertmanager or an older Pharos.
func (n *Notifier) stateKey(kind, id string) string {
	if !n.cfg.MultiTenant {
		return kind
	}
	return kind + ":" + id
}

// stateDir is where tenant id keeps its silence and nflog snapshots. The
// default tenant keeps the data dir itself, so silences created before
// multi-tenancy was turned on stay with tenant "anonymous" afterwards.
// Tenant IDs are safe path elements (tenant.Validate).
func (n *Notifier) stateDir(id string) string {
	if id == tenant.DefaultTenant {
		return n.cfg.DataDir
	}
	return filepath.Join(n.cfg.DataDir, tenantsDir, id)
}

// tenantsDir holds one directory per tenant under the data dir.
const tenantsDir = "tenants"

// instanceRegisterer is where tenant id's metrics go: the Notifier's own
// registerer with multi-tenancy off (the metrics of a stand-alone
// Alertmanager), otherwise the same names with a `user` label, as Mimir's
// multi-tenant Alertmanager exports them.
func (n *Notifier) instanceRegisterer(id string) prometheus.Registerer {
	if !n.cfg.MultiTenant {
		return n.reg
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"user": id}, n.reg)
}

// newInstance builds and starts tenant id's Alertmanager with conf, in the
// order of upstream app.setup. peer may be nil (no clustering).
//
//nolint:gocyclo // straight-line wiring, like upstream.
func (n *Notifier) newInstance(id string, conf *config.Config, peer *cluster.Peer) (_ *instance, err error) {
	c := n.cfg
	logger := n.logger
	if c.MultiTenant {
		logger = logger.With("user", id)
	}
	reg := n.instanceRegisterer(id)
	inst := &instance{id: id}
	defer func() {
		if err != nil {
			err = fmt.Errorf("tenant %s: %w", id, errors.Join(err, inst.cleanup.drain()))
		}
	}()
	var ff featurecontrol.Flagger = featurecontrol.NoopFlags{}
	m := newMetrics(reg)
	if peer != nil {
		m.clusterEnabled.Set(1)
	}
	dir := n.stateDir(id)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return inst, fmt.Errorf("create data dir: %w", err)
	}

	// The event recorder is behind a feature flag upstream (off by
	// default); a disabled Recorder value is a no-op.
	var eventRec eventrecorder.Recorder

	stopc := make(chan struct{})
	var wg sync.WaitGroup

	nflogFile := filepath.Join(dir, "nflog")
	notificationLog, err := nflog.New(nflog.Options{
		SnapshotFile: nflogFile,
		Retention:    c.Retention,
		Logger:       logger.With("component", "nflog"),
		Metrics:      reg,
	})
	if err != nil {
		return inst, fmt.Errorf("create notification log: %w", err)
	}
	if peer != nil {
		ch := peer.AddState(n.stateKey("nfl", id), notificationLog, n.reg)
		notificationLog.SetBroadcast(ch.Broadcast)
	}
	wg.Go(func() { notificationLog.Maintenance(c.MaintenanceInterval, nflogFile, stopc, nil) })
	// Closing stopc makes both Maintenance loops write a final snapshot.
	inst.cleanup.push(func() error {
		close(stopc)
		wg.Wait()
		return nil
	})

	groupMarker := marker.NewGroupMarker()

	silFile := filepath.Join(dir, "silences")
	silences, err := silence.New(silence.Options{
		SnapshotFile: silFile,
		Retention:    c.Retention,
		Limits: silence.Limits{
			MaxSilences:         func() int { return c.MaxSilences },
			MaxSilenceSizeBytes: func() int { return c.MaxSilenceSizeBytes },
		},
		Logger:        logger.With("component", "silences"),
		Metrics:       reg,
		EventRecorder: eventRec,
	})
	if err != nil {
		return inst, fmt.Errorf("create silences: %w", err)
	}
	if peer != nil {
		ch := peer.AddState(n.stateKey("sil", id), silences, n.reg)
		silences.SetBroadcast(ch.Broadcast)
	}
	wg.Go(func() { silences.Maintenance(c.MaintenanceInterval, silFile, stopc, nil) })

	silencer := silence.NewSilencer(silences, logger, eventRec)
	if peer != nil {
		eventRec.SetClusterPeer(peer)
	}

	alerts, err := mem.NewAlerts(context.Background(), c.AlertGCInterval, c.PerAlertNameLimit,
		silencer, logger, eventRec, reg, ff)
	if err != nil {
		return inst, fmt.Errorf("create alert store: %w", err)
	}
	inst.cleanup.push(func() error {
		alerts.Close()
		return nil
	})

	var r *reloader
	groupFn := func(ctx context.Context, routeFilter func(*dispatch.Route) bool, alertFilter func(*alert.Alert, time.Time) bool) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
		return r.groups(ctx, routeFilter, alertFilter)
	}
	// A nil *cluster.Peer in the interface would look like a peer.
	var clusterPeer cluster.ClusterPeer
	if peer != nil {
		clusterPeer = peer
	}
	apih, err := api.New(api.Options{
		Alerts:          alerts,
		Silences:        silences,
		GroupMutedFunc:  groupMarker.Muted,
		Peer:            clusterPeer,
		Timeout:         c.APITimeout,
		Concurrency:     c.APIConcurrency,
		Logger:          logger.With("component", "api"),
		Registry:        reg,
		RequestDuration: m.requestDuration,
		GroupFunc:       groupFn,
	})
	if err != nil {
		return inst, fmt.Errorf("create api: %w", err)
	}

	waitFunc := func() time.Duration { return 0 }
	if peer != nil {
		// Only the first peer in the member list sends at once; the
		// others wait their position times peer_timeout and then find
		// the send in the gossiped nflog.
		waitFunc = func() time.Duration { return time.Duration(peer.Position()) * c.PeerTimeout }
	}
	timeoutFunc := func(d time.Duration) time.Duration {
		if d < notify.MinTimeout {
			d = notify.MinTimeout
		}
		return d + waitFunc()
	}

	tracingManager := tracing.NewManager(logger.With("component", "tracing"))
	inst.cleanup.push(func() error {
		tracingManager.Stop()
		return nil
	})

	// A tenant's configuration comes from the config API, not a file:
	// its coordinator only applies (ApplyConfig), it never re-reads.
	inst.coordinator = config.NewCoordinator(c.ConfigFile, reg, logger.With("component", "configuration"))
	r = &reloader{
		alerts:                      alerts,
		apih:                        apih,
		dispatcherMetrics:           dispatch.NewDispatcherMetrics(false, reg, ff),
		dispatchMaintenanceInterval: 30 * time.Second,
		dispatchStartDelay:          c.DispatchStartDelay,
		eventRecorder:               eventRec,
		externalURL:                 n.amURL,
		groupMarker:                 groupMarker,
		logger:                      logger,
		metrics:                     m,
		notificationLog:             notificationLog,
		peer:                        peer,
		pipelineBuilder:             notify.NewPipelineBuilder(reg, ff, eventRec),
		retention:                   c.Retention,
		silencer:                    silencer,
		startTime:                   time.Now(),
		timeoutFunc:                 timeoutFunc,
		tracingMgr:                  tracingManager,
		waitFunc:                    waitFunc,
	}
	inst.cleanup.push(r.stop)
	inst.coordinator.Subscribe(r.reload)
	if err := inst.coordinator.ApplyConfig(conf); err != nil {
		return inst, fmt.Errorf("apply configuration: %w", err)
	}
	inst.current = conf
	go tracingManager.Run()

	router := route.New().WithInstrumentation(m.instrumentHandler)
	if n.routePrefix != "/" {
		prefix := n.routePrefix
		router.Get("/", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, prefix, http.StatusFound)
		})
		router = router.WithPrefix(n.routePrefix)
	}
	if !c.MultiTenant {
		// With tenants, the lifecycle endpoints belong to the process,
		// not to one tenant (see tenantHandler).
		n.registerLifecycle(router)
	}
	inst.handler = tracing.Middleware(apih.Register(router, n.routePrefix))
	return inst, nil
}

// apply puts conf in force; own is the updated_at of the tenant's own
// configuration, the zero time for the fallback.
func (i *instance) apply(conf *config.Config, own time.Time) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := i.coordinator.ApplyConfig(conf); err != nil {
		return fmt.Errorf("tenant %s: apply configuration: %w", i.id, err)
	}
	i.applied, i.current = own, conf
	return nil
}

// own returns the updated_at of the tenant's configuration in force, zero
// for the fallback.
func (i *instance) own() time.Time {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.applied
}

// config returns the configuration in force.
func (i *instance) config() *config.Config {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.current
}

// stop stops dispatching and writes the final silence and nflog snapshots.
// The gossip states stay registered with the peer (upstream offers no way
// to remove one); they answer from memory until the peer leaves.
func (i *instance) stop() error { return i.cleanup.drain() }
