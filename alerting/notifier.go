package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/tracing"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
)

// ErrNotRunning is returned (and served as 503) while Run has not
// started the notifier or after it stopped.
var ErrNotRunning = errors.New("notifier not running")

var errRunTwice = errors.New("notifier: Run called twice")

// Notifier is one replica of the notifier role. Create it with New,
// mount Handler, then call Run once.
type Notifier struct {
	cfg         Config
	routePrefix string
	logger      *slog.Logger
	reg         prometheus.Registerer

	handler atomic.Pointer[http.Handler]
	ready   chan struct{}
	ran     atomic.Bool

	// mu guards coordinator so Reload never races Run's start or stop.
	mu          sync.Mutex
	coordinator *config.Coordinator
}

// New validates cfg and the alertmanager.yml it names. An invalid file
// is refused with the upstream message, which names the offending field.
// reg must be private to this Notifier (or at least to one Notifier at a
// time): Run registers the upstream alertmanager_* metrics on it.
func New(cfg Config, routePrefix string, logger *slog.Logger, reg prometheus.Registerer) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("notifier config: %w", err)
	}
	if logger == nil || reg == nil {
		return nil, errors.New("notifier: logger and registerer are required")
	}
	if _, err := loadConfig(cfg.ConfigFile); err != nil {
		return nil, err
	}
	if cfg.ExternalURL != "" {
		if _, err := externalURL(cfg.ExternalURL, routePrefix); err != nil {
			return nil, fmt.Errorf("notifier.external-url: %w", err)
		}
	}
	return &Notifier{
		cfg:         cfg,
		routePrefix: "/" + strings.Trim(routePrefix, "/"),
		logger:      logger,
		reg:         reg,
		ready:       make(chan struct{}),
	}, nil
}

// loadConfig is upstream's config.LoadFile plus the location of what it
// refuses and a parse of templated receiver fields (see validate.go).
func loadConfig(file string) (*config.Config, error) {
	c, err := config.LoadFile(file)
	if err != nil {
		if raw, rerr := os.ReadFile(file); rerr == nil {
			if where := locateError(raw); where != "" {
				return nil, fmt.Errorf("load %s: %s: %w", file, where, err)
			}
		}
		return nil, fmt.Errorf("load %s: %w", file, err)
	}
	if err := checkTemplates(c); err != nil {
		return nil, fmt.Errorf("load %s: %w", file, err)
	}
	// Upstream parses template files only when applying; doing it here
	// too refuses a bad `templates:` entry at New/Reload time.
	if _, err := template.FromGlobs(c.Templates); err != nil {
		return nil, fmt.Errorf("load %s: templates: %w", file, err)
	}
	return c, nil
}

// externalURL follows upstream app/url.go; without an explicit URL the
// host name and route prefix are used (we own no listener to take a port
// from).
func externalURL(external, routePrefix string) (*url.URL, error) {
	if external == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		external = "http://" + host + "/" + strings.Trim(routePrefix, "/")
	}
	u, err := url.Parse(external)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: invalid %q scheme, only 'http' and 'https' are supported", u.String(), u.Scheme)
	}
	p := strings.TrimRight(u.Path, "/")
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	u.Path = p
	return u, nil
}

// Ready is closed once Run has started everything and Handler serves.
func (n *Notifier) Ready() <-chan struct{} { return n.ready }

// Handler serves the upstream API v2 (/api/v2/...), the deprecated v1
// stubs, /-/reload, /-/healthy and /-/ready under the route prefix given
// to New. Before Run is ready and after it stops it answers 503.
func (n *Notifier) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := n.handler.Load()
		if h == nil {
			http.Error(w, ErrNotRunning.Error(), http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	})
}

// Reload re-reads the alertmanager.yml. An invalid file is refused with
// an error naming the field and the running configuration stays in
// force. Before Run it only validates the file.
func (n *Notifier) Reload() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	// Our checks first: the coordinator knows only upstream's, which
	// neither locate an error nor parse templated fields.
	if _, err := loadConfig(n.cfg.ConfigFile); err != nil || n.coordinator == nil {
		return err
	}
	if err := n.coordinator.Reload(); err != nil {
		return fmt.Errorf("reload %s: %w", n.cfg.ConfigFile, err)
	}
	return nil
}

type stack []func() error

func (s *stack) push(f func() error) { *s = append(*s, f) }

// drain runs the teardown steps in reverse order, like defers.
func (s stack) drain() error {
	var errs []error
	for i := len(s) - 1; i >= 0; i-- {
		errs = append(errs, s[i]())
	}
	return errors.Join(errs...)
}

// Run joins the gossip cluster, starts silences, the notification log,
// the inhibitor and dispatcher, serves Handler, and blocks until ctx is
// done. It returns after a clean shutdown: dispatch stopped, final
// silence and nflog snapshots written to DataDir, cluster left. Run may
// be called once.
func (n *Notifier) Run(ctx context.Context) error {
	if n.ran.Swap(true) {
		return errRunTwice
	}
	var cleanups stack
	err := n.start(&cleanups)
	if err == nil {
		close(n.ready)
		<-ctx.Done()
	}
	n.handler.Store(nil)
	n.mu.Lock()
	n.coordinator = nil
	n.mu.Unlock()
	return errors.Join(err, cleanups.drain())
}

// start mirrors upstream app.setup step by step (same order, same
// options) minus the HTTP listener, UI, pprof and default-registry
// /metrics, which the caller owns.
//
//nolint:gocyclo // straight-line wiring, like upstream.
func (n *Notifier) start(cleanups *stack) error {
	c := n.cfg
	logger, reg := n.logger, n.reg
	var ff featurecontrol.Flagger = featurecontrol.NoopFlags{}
	m := newMetrics(reg)
	startTime := time.Now()

	if err := os.MkdirAll(c.DataDir, 0o777); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	initialConf, err := loadConfig(c.ConfigFile)
	if err != nil {
		return err
	}
	amURL, err := externalURL(c.ExternalURL, n.routePrefix)
	if err != nil {
		return fmt.Errorf("notifier.external-url: %w", err)
	}

	var (
		peer         *cluster.Peer
		settleCancel = func() {}
	)
	if c.ClusterBind != "" {
		tlsConf, err := cluster.GetTLSTransportConfig(c.ClusterTLSConfigFile)
		if err != nil {
			return fmt.Errorf("gossip tls config: %w", err)
		}
		peer, err = cluster.Create(
			logger.With("component", "cluster"), reg,
			c.ClusterBind, c.ClusterAdvertise, c.Peers, true,
			c.PushPullInterval, c.GossipInterval, c.TCPTimeout,
			c.PeersResolveTimeout, c.ProbeTimeout, c.ProbeInterval,
			tlsConf, false, c.ClusterLabel, c.ClusterPeerName,
		)
		if err != nil {
			return fmt.Errorf("create gossip peer: %w", err)
		}
		cleanups.push(func() error {
			settleCancel()
			err := peer.Leave(10 * time.Second)
			if !shutdownMemberlist(peer) {
				logger.Warn("could not shut down memberlist; gossip sockets stay open until exit")
			}
			if err != nil {
				return fmt.Errorf("leave gossip mesh: %w", err)
			}
			return nil
		})
		m.clusterEnabled.Set(1)
	}

	// The event recorder is behind a feature flag upstream (off by
	// default); a disabled Recorder value is a no-op.
	var eventRec eventrecorder.Recorder

	stopc := make(chan struct{})
	var wg sync.WaitGroup

	nflogFile := filepath.Join(c.DataDir, "nflog")
	notificationLog, err := nflog.New(nflog.Options{
		SnapshotFile: nflogFile,
		Retention:    c.Retention,
		Logger:       logger.With("component", "nflog"),
		Metrics:      reg,
	})
	if err != nil {
		return fmt.Errorf("create notification log: %w", err)
	}
	if peer != nil {
		ch := peer.AddState("nfl", notificationLog, reg)
		notificationLog.SetBroadcast(ch.Broadcast)
	}
	wg.Go(func() { notificationLog.Maintenance(c.MaintenanceInterval, nflogFile, stopc, nil) })
	// Closing stopc makes both Maintenance loops write a final snapshot.
	cleanups.push(func() error {
		close(stopc)
		wg.Wait()
		return nil
	})

	groupMarker := marker.NewGroupMarker()

	silFile := filepath.Join(c.DataDir, "silences")
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
		return fmt.Errorf("create silences: %w", err)
	}
	if peer != nil {
		ch := peer.AddState("sil", silences, reg)
		silences.SetBroadcast(ch.Broadcast)
	}
	wg.Go(func() { silences.Maintenance(c.MaintenanceInterval, silFile, stopc, nil) })

	silencer := silence.NewSilencer(silences, logger, eventRec)

	if peer != nil {
		if err := peer.Join(c.ReconnectInterval, c.ReconnectTimeout); err != nil {
			logger.Warn("unable to join gossip mesh", "err", err)
		}
		settleCtx, cancel := context.WithTimeout(context.Background(), c.SettleTimeout)
		settleCancel = cancel
		go peer.Settle(settleCtx, c.GossipInterval*10)
		eventRec.SetClusterPeer(peer)
	}

	alerts, err := mem.NewAlerts(context.Background(), c.AlertGCInterval, c.PerAlertNameLimit,
		silencer, logger, eventRec, reg, ff)
	if err != nil {
		return fmt.Errorf("create alert store: %w", err)
	}
	cleanups.push(func() error {
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
		return fmt.Errorf("create api: %w", err)
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
	cleanups.push(func() error {
		tracingManager.Stop()
		return nil
	})

	coordinator := config.NewCoordinator(c.ConfigFile, reg, logger.With("component", "configuration"))
	r = &reloader{
		alerts:                      alerts,
		apih:                        apih,
		dispatcherMetrics:           dispatch.NewDispatcherMetrics(false, reg, ff),
		dispatchMaintenanceInterval: 30 * time.Second,
		dispatchStartDelay:          c.DispatchStartDelay,
		eventRecorder:               eventRec,
		externalURL:                 amURL,
		groupMarker:                 groupMarker,
		logger:                      logger,
		metrics:                     m,
		notificationLog:             notificationLog,
		peer:                        peer,
		pipelineBuilder:             notify.NewPipelineBuilder(reg, ff, eventRec),
		retention:                   c.Retention,
		silencer:                    silencer,
		startTime:                   startTime,
		timeoutFunc:                 timeoutFunc,
		tracingMgr:                  tracingManager,
		waitFunc:                    waitFunc,
	}
	cleanups.push(r.stop)
	coordinator.Subscribe(r.reload)
	if err := coordinator.ApplyConfig(initialConf); err != nil {
		return fmt.Errorf("apply %s: %w", c.ConfigFile, err)
	}
	go tracingManager.Run()

	router := route.New().WithInstrumentation(m.instrumentHandler)
	if n.routePrefix != "/" {
		prefix := n.routePrefix
		router.Get("/", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, prefix, http.StatusFound)
		})
		router = router.WithPrefix(n.routePrefix)
	}
	n.registerLifecycle(router)
	var h http.Handler = tracing.Middleware(apih.Register(router, n.routePrefix))

	n.mu.Lock()
	n.coordinator = coordinator
	n.mu.Unlock()
	n.handler.Store(&h)
	return nil
}

// registerLifecycle adds the upstream httpserver endpoints except
// /metrics (default registry) and pprof (DefaultServeMux).
func (n *Notifier) registerLifecycle(r *route.Router) {
	r.Post("/-/reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := n.Reload(); err != nil {
			http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
		}
	})
	ok := func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(http.StatusOK)
		if req.Method == http.MethodGet {
			fmt.Fprint(w, "OK")
		}
	}
	for _, p := range []string{"/-/healthy", "/-/ready"} {
		r.Get(p, ok)
		r.Head(p, ok)
	}
}
