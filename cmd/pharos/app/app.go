package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pharos-tsdb/pharos/alerting"
	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/gossip"
	"github.com/pharos-tsdb/pharos/ingest/distributor"
	"github.com/pharos-tsdb/pharos/ingest/scraper"
	"github.com/pharos-tsdb/pharos/limits"
	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/querier/api"
	"github.com/pharos-tsdb/pharos/querier/frontend"
	"github.com/pharos-tsdb/pharos/ruler"
	"github.com/pharos-tsdb/pharos/storage/ingester"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// App is one Pharos process: a set of roles behind one HTTP and one gRPC server.
type App struct {
	cfg    *Config
	logger *slog.Logger
	reg    *prometheus.Registry
	roles  []string

	httpLn, grpcLn net.Listener
	httpSrv        *http.Server
	grpcSrv        *grpc.Server
	grpcHealth     *health.Server
	sec            security // see security.go

	ingester   *ingester.Ingester
	clients    []*ingesterclient.Client // static ingester_client.addresses
	kv         cluster.KV
	gossip     *gossip.KV // nil with the in-memory KV
	ring       *cluster.Ring
	pool       *ingesterclient.Pool
	lifecycler *cluster.Lifecycler // ingester role only
	// ingesterAddr is the address the lifecycler registers the ingester
	// under in the ring; ingester role only.
	ingesterAddr string
	notifier     *alerting.Notifier
	// notifierLn and notifierSrv are the notifier's own HTTP server, nil
	// when it is served under /alertmanager (see notifier.go).
	notifierLn  net.Listener
	notifierSrv *http.Server
	// notifierStop ends the notifier's Run; notifierDone carries its result.
	notifierStop context.CancelFunc
	notifierDone chan error
	distributor  *distributor.Distributor
	overrides    *limits.Overrides      // per-tenant limits; see limits.go
	haTracker    *distributor.HATracker // nil unless enabled; see hatracker.go
	// queryable and engine read the cluster, for the querier and the ruler.
	queryable storage.SampleAndChunkQueryable
	engine    *promql.Engine
	ruler     *ruler.Ruler
	// rulerClosed is set once the ruler is stopped (or closed unrun).
	rulerClosed bool
	// rulerStop ends the ruler's Run; rulerDone carries its result.
	rulerStop context.CancelFunc
	rulerDone chan error
	scraper   *scraper.Scraper
	scrape    *scrapeRole // the scraper ring; see scraper.go

	// bgCancel stops the KV and pool loops, bgDone waits for them;
	// lcCancel and lcDone the same for the lifecycler.
	bgCancel, lcCancel context.CancelFunc
	bgDone             sync.WaitGroup
	lcDone             chan error

	ready    atomic.Bool
	reloadMu sync.Mutex
	// promCfg is the scrape section in force, for /api/v1/status/config.
	promCfg atomic.Pointer[promconfig.Config]

	reloads, reloadFailures prometheus.Counter
	lastReloadSuccess       prometheus.Gauge
}

// New validates cfg, opens the listeners and builds every role. Nothing runs
// until Run; Close releases what New acquired when Run is never called.
func New(cfg *Config, logger *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	roles, _ := cfg.Roles()
	a := &App{cfg: cfg, logger: logger, reg: prometheus.NewRegistry(), roles: roles}
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()
	a.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("pharos"),
	)
	a.reloads = prometheus.NewCounter(prometheus.CounterOpts{Name: "pharos_config_reloads_total", Help: "Configuration reloads attempted."})
	a.reloadFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "pharos_config_reload_failures_total", Help: "Configuration reloads that failed; the previous configuration kept running."})
	a.lastReloadSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pharos_config_last_reload_successful", Help: "Whether the last configuration reload succeeded."})
	a.reg.MustRegister(a.reloads, a.reloadFailures, a.lastReloadSuccess)
	a.lastReloadSuccess.Set(1)

	if err := a.buildSecurity(); err != nil {
		return nil, err
	}
	if a.httpLn, err = net.Listen("tcp", cfg.Server.HTTPListen); err != nil {
		return nil, fmt.Errorf("listen http: %w", err)
	}
	a.grpcSrv = grpc.NewServer(append(ingesterclient.ServerOptions(cfg.Server.GRPCMaxRecvMsgSize, cfg.Server.GRPCMaxSendMsgSize), a.sec.grpcOpts...)...)
	a.grpcHealth = health.NewServer()
	healthpb.RegisterHealthServer(a.grpcSrv, a.grpcHealth)

	if a.has(RoleIngester) {
		if a.grpcLn, err = net.Listen("tcp", cfg.Server.GRPCListen); err != nil {
			return nil, fmt.Errorf("listen grpc: %w", err)
		}
		a.ingester, err = ingester.New(cfg.Storage, logger.With("component", "ingester"), a.reg)
		if err != nil {
			return nil, fmt.Errorf("ingester: %w", err)
		}
		a.ingester.Register(a.grpcSrv)
	}

	if err := a.buildRing(); err != nil {
		return nil, err
	}
	var (
		dings distributor.Ingesters
		qings querier.Ingesters
	)
	if addrs := []string(cfg.IngesterClient.Addresses); len(addrs) > 0 {
		// A fixed ingester list: every ingester gets every series.
		static := make([]ingesterpb.IngesterClient, 0, len(addrs))
		for _, addr := range addrs {
			c, err := ingesterclient.Dial(addr, cfg.IngesterClient.Config)
			if err != nil {
				return nil, err
			}
			a.clients = append(a.clients, c)
			static = append(static, c)
		}
		dings, qings = distributor.StaticIngesters(static), querier.StaticIngesters(static)
	} else if a.ingester != nil && cfg.IngesterClient.LocalShortcut {
		// This process's own ingester is called directly: about a fifth of
		// the CPU of an all-in-one write went to gRPC on loopback (encoding,
		// transport, decoding again).
		local := a.ingester.LocalClient()
		dings = distributor.NewRingIngestersWithLocal(a.ring, a.pool, a.ingesterAddr, local)
		qings = querier.NewRingIngesters(a.ring, a.pool, querier.RingReadConfig{
			MinimizeRequests: cfg.Querier.MinimizeIngesterRequests, Local: local, LocalAddr: a.ingesterAddr,
		})
	} else {
		dings = distributor.NewRingIngesters(a.ring, a.pool)
		qings = querier.NewRingIngesters(a.ring, a.pool, querier.RingReadConfig{MinimizeRequests: cfg.Querier.MinimizeIngesterRequests})
	}

	mux := http.NewServeMux()
	mux.Handle("/ring", a.ring)
	if err := a.buildLimits(mux); err != nil {
		return nil, err
	}
	if a.lifecycler != nil {
		a.registerDrain(mux)
	}
	if a.has(RoleDistributor) {
		a.distributor, err = distributor.New(cfg.Distributor, dings, logger.With("component", "distributor"), a.reg)
		if err != nil {
			return nil, fmt.Errorf("distributor: %w", err)
		}
		a.handleWrite(mux, a.distributor.RemoteWriteHandler())
		if err := a.buildHATracker(mux); err != nil {
			return nil, err
		}
	}
	a.applyLimits()
	if err := a.buildScraper(mux); err != nil {
		return nil, err
	}
	a.promCfg.Store(a.scrapeConfigOrEmpty(cfg))
	if a.has(RoleNotifier) {
		if err := a.buildNotifier(mux); err != nil {
			return nil, err
		}
	}
	if a.has(RoleQuerier) || a.has(RoleRuler) {
		a.queryable = querier.NewLimitedQueryable(qings, a.overrides, a.logger.With("component", "querier"), a.reg)
		a.engine = querier.NewEngine(a.cfg.Querier, a.logger.With("component", "query engine"), a.reg)
	}
	if a.has(RoleRuler) {
		if err := a.buildRuler(mux, dings); err != nil {
			return nil, err
		}
	}
	// A ruler process serves the query API too: /api/v1/rules and
	// /api/v1/alerts are part of it.
	if a.has(RoleQuerier) || a.has(RoleRuler) {
		if err := a.buildQuerier(mux, qings); err != nil {
			return nil, err
		}
	}
	if err := a.registerUI(mux); err != nil {
		return nil, err
	}
	a.registerOperational(mux)
	a.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	return a, nil
}

// buildRing sets up the ring's KV (in memory for a lone all-in-one process,
// gossip otherwise), the ring, the client pool and, for an ingester, its
// lifecycler.
func (a *App) buildRing() error {
	cfg := a.cfg
	if strings.TrimSpace(cfg.Target) == RoleAll && len(cfg.Memberlist.Join) == 0 {
		a.kv = cluster.NewMemKV()
	} else {
		g, err := gossip.New(cfg.Memberlist, a.logger.With("component", "memberlist"), a.reg)
		if err != nil {
			return fmt.Errorf("memberlist: %w", err)
		}
		a.gossip, a.kv = g, g
	}
	var err error
	// The ingesters' ring is the KV's unnamed namespace: other rings
	// (the scrapers') share the KV and must not receive series.
	ingKV := cluster.Namespace(a.kv, "")
	if a.ring, err = cluster.NewRing(cfg.Ring, ingKV, a.reg); err != nil {
		return fmt.Errorf("ring: %w", err)
	}
	a.pool = ingesterclient.NewPool(cfg.IngesterClient.Config, a.logger.With("component", "ingester client pool"), a.reg)
	if a.ingester == nil {
		return nil
	}
	rc := cfg.Ring
	if rc.InstanceAddr == "" {
		rc.InstanceAddr = advertiseAddr(a.grpcLn.Addr(), a.gossip == nil)
	}
	a.ingesterAddr = rc.InstanceAddr
	a.lifecycler, err = cluster.NewLifecycler(rc, ingKV, filepath.Join(cfg.Storage.Path, "tokens"), a.logger.With("component", "ring"), a.reg)
	if err != nil {
		return fmt.Errorf("ring: %w", err)
	}
	return nil
}

func (a *App) buildQuerier(mux *http.ServeMux, ings querier.Ingesters) error {
	reg := a.reg
	queryable, engine := a.queryable, a.engine
	var db func() *tsdb.DB
	if ing := a.ingester; ing != nil {
		db = ing.DB
	}
	// The targets pages show this process's scraper; merging every
	// scraper's view comes with scrape sharding.
	var (
		targets func(context.Context) v1.TargetRetriever
		pools   func(context.Context) v1.ScrapePoolsRetriever
		rules   func(context.Context) v1.RulesRetriever
		ams     func(context.Context) v1.AlertmanagerRetriever
	)
	if a.ruler != nil {
		// ForwardToEvaluator has put the request's tenant into ctx.
		rules = func(ctx context.Context) v1.RulesRetriever { return a.ruler.RulesFor(ctx) }
		ams = func(context.Context) v1.AlertmanagerRetriever { return a.ruler }
	}
	if a.scraper != nil {
		m := a.scraper.Manager()
		targets = func(context.Context) v1.TargetRetriever { return m }
		pools = func(context.Context) v1.ScrapePoolsRetriever { return m }
	}
	apiHandler, err := api.New(api.Options{
		Queryable:     queryable,
		Engine:        engine,
		Metadata:      api.MetadataFunc(querier.NewMetadataFunc(ings)),
		Exemplars:     querier.NewExemplarQueryable(ings),
		PromConfig:    func() promconfig.Config { return *a.promCfg.Load() },
		Flags:         a.flagsMap(),
		LocalTSDB:     db,
		MultiTenant:   a.cfg.Multitenancy.Enabled,
		Targets:       targets,
		ScrapePools:   pools,
		Rules:         rules,
		Alertmanagers: ams,
		Scrapers:      a.scraperEndpoints,
		ScraperClient: a.sec.client,
		Ready:         a.readyHandler,
		Logger:        a.logger.With("component", "api"),
		Registerer:    reg,
		Gatherer:      reg,
		LookbackDelta: time.Duration(a.cfg.Querier.LookbackDelta),
		QueryTimeout:  time.Duration(a.cfg.Querier.Timeout),
		RemoteRead:    a.cfg.Querier.RemoteRead,
		ListenAddress: a.cfg.Server.HTTPListen,
		Version: &v1.PrometheusVersion{
			Version:   version.Version,
			Revision:  version.Revision,
			Branch:    version.Branch,
			BuildUser: version.BuildUser,
			BuildDate: version.BuildDate,
			GoVersion: version.GoVersion,
		},
	})
	if err != nil {
		return fmt.Errorf("query api: %w", err)
	}
	// The query frontend splits and caches range queries; everything
	// else passes through it to the upstream handler.
	h := a.tenants().Middleware(frontend.New(a.cfg.QueryFrontend, apiHandler.Handler(), a.logger.With("component", "query frontend"), reg))
	mux.Handle("/api/v1/", h)
	mux.Handle("/federate", a.tenants().Middleware(apiHandler.Federate()))
	if a.ruler != nil {
		// Only the evaluating ruler knows rule health and live alerts;
		// a follower forwards these two to it.
		fwd := a.ruler.ForwardToEvaluator(h)
		mux.Handle("/api/v1/rules", fwd)
		mux.Handle("/api/v1/alerts", fwd)
	}
	return nil
}

func (a *App) has(role string) bool { return slices.Contains(a.roles, role) }

// HTTPAddr is the address the HTTP server listens on (useful with ":0").
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// GRPCAddr is the address the gRPC server listens on, "" without an ingester.
func (a *App) GRPCAddr() string {
	if a.grpcLn == nil {
		return ""
	}
	return a.grpcLn.Addr().String()
}

// GossipAddr is the address memberlist peers reach this process at, "" with
// the in-memory ring of a lone all-in-one process.
func (a *App) GossipAddr() string {
	if a.gossip == nil {
		return ""
	}
	return a.gossip.LocalAddr()
}

// Ring is the process's view of the ingester ring.
func (a *App) Ring() *cluster.Ring { return a.ring }

// Registry is the process's metrics registry.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// Run serves until ctx is cancelled, then shuts down: it stops scraping,
// drains HTTP requests, lets the ingester finish in-flight pushes and close
// its TSDB, and stops gRPC. It returns the first error that ended it.
func (a *App) Run(ctx context.Context) error {
	errc := make(chan error, 6)
	go func() {
		if err := a.serveHTTP(a.httpSrv, a.httpLn, a.logger.With("component", "http")); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
		}
	}()
	if a.grpcLn != nil {
		go func() {
			if err := a.grpcSrv.Serve(a.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("grpc server: %w", err)
			}
		}()
	}
	bgCtx, bgCancel := context.WithCancel(context.Background())
	a.bgCancel = bgCancel
	if a.gossip != nil {
		a.bgDone.Go(func() {
			if err := a.gossip.Run(bgCtx); err != nil {
				errc <- fmt.Errorf("memberlist: %w", err)
			}
		})
	}
	if a.clients == nil {
		a.bgDone.Go(func() { a.pool.Run(bgCtx, poolCheckInterval, a.ringAddrs) })
	}
	a.startHATracker(bgCtx)
	a.startLimits(bgCtx)
	if err := a.startScraper(ctx); err != nil {
		return errors.Join(err, a.shutdown())
	}
	a.startNotifier(errc)
	if a.ingester != nil {
		if err := a.ingester.Ready(ctx); err != nil && ctx.Err() == nil {
			a.shutdown()
			return fmt.Errorf("ingester: %w", err)
		}
		if err := a.joinRing(ctx); err != nil {
			a.shutdown()
			return err
		}
	}
	if a.notifier != nil {
		select {
		case <-a.notifier.Ready():
		case err := <-a.notifierDone:
			a.notifierDone = nil
			return errors.Join(fmt.Errorf("notifier: %w", err), a.shutdown())
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		return a.shutdown()
	}
	// Rules query the ingesters and send to the notifier: both are up now.
	a.startRuler(errc)
	a.ready.Store(true)
	a.grpcHealth.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	a.logger.Info("pharos is ready", "roles", a.roles, "http", a.HTTPAddr(), "grpc", a.GRPCAddr())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	case err := <-a.lcDone:
		a.lcDone = nil
		runErr = fmt.Errorf("ring lifecycler: %w", err)
	}
	return errors.Join(runErr, a.shutdown())
}

// poolCheckInterval is how often unhealthy ingester connections and those
// of ingesters that left the ring are closed.
const poolCheckInterval = time.Second

func (a *App) ringAddrs() []string {
	ins := a.ring.Instances()
	out := make([]string, len(ins))
	for i := range ins {
		out[i] = ins[i].Addr
	}
	return out
}

// joinRing registers the ingester once the WAL is replayed and gossip has
// reached a peer (so it finds its previous entry), and waits for ACTIVE:
// the process is ready only then.
func (a *App) joinRing(ctx context.Context) error {
	if a.gossip != nil {
		select {
		case <-a.gossip.Joined():
		case <-ctx.Done():
			return nil
		}
	}
	lcCtx, cancel := context.WithCancel(context.Background())
	a.lcCancel = cancel
	a.lcDone = make(chan error, 1)
	go func() { a.lcDone <- a.lifecycler.Run(lcCtx) }()
	select {
	case <-a.lifecycler.Active():
		return nil
	case <-ctx.Done():
		return nil
	case err := <-a.lcDone:
		a.lcDone = nil
		if err == nil {
			err = errors.New("stopped before joining")
		}
		return fmt.Errorf("ring lifecycler: %w", err)
	}
}

// shutdown stops every role in the reverse order of the data flow, so that
// nothing acknowledged is lost: producers first, storage last.
func (a *App) shutdown() error {
	a.logger.Info("shutting down")
	a.ready.Store(false)
	a.grpcHealth.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Server.GracefulShutdownTimeout)
	defer cancel()

	var errs []error
	if err := a.stopRuler(); err != nil {
		errs = append(errs, err)
	}
	if err := a.stopScraper(); err != nil {
		errs = append(errs, err)
	}
	if err := a.httpSrv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := a.stopNotifier(ctx); err != nil {
		errs = append(errs, err)
	}
	// Leave the ring before closing storage, so distributors stop sending
	// here while pushes in flight still land.
	if a.lcCancel != nil {
		a.lcCancel()
		if a.lcDone != nil {
			if err := <-a.lcDone; err != nil {
				errs = append(errs, fmt.Errorf("ring lifecycler: %w", err))
			}
		}
		a.lcCancel, a.lcDone = nil, nil
	}
	if a.ingester != nil {
		if err := a.ingester.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close ingester: %w", err))
		}
		a.ingester = nil
	}
	stopped := make(chan struct{})
	go func() { a.grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		a.grpcSrv.Stop()
	}
	errs = append(errs, a.closeClients())
	if a.bgCancel != nil {
		a.bgCancel()
		a.bgDone.Wait()
	}
	errs = append(errs, a.closeRing())
	a.logger.Info("shutdown complete")
	return errors.Join(errs...)
}

// closeAll releases what New acquired, for a New that failed half-way.
func (a *App) closeAll() {
	_ = a.stopRuler()
	if a.httpLn != nil {
		a.httpLn.Close()
	}
	if a.grpcLn != nil {
		a.grpcLn.Close()
	}
	if a.notifierLn != nil {
		a.notifierLn.Close()
	}
	if a.ingester != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.ingester.Close(ctx)
	}
	_ = a.closeClients()
	_ = a.closeRing()
}

// closeRing closes the pool and, last, the gossip KV, so that the final
// ring updates (LEAVING) go out before memberlist stops.
func (a *App) closeRing() error {
	var errs []error
	if a.pool != nil {
		errs = append(errs, a.pool.Close())
		a.pool = nil
	}
	if a.gossip != nil {
		errs = append(errs, a.gossip.Close())
		a.gossip = nil
	}
	return errors.Join(errs...)
}

func (a *App) closeClients() error {
	var errs []error
	for _, c := range a.clients {
		errs = append(errs, c.Close())
	}
	a.clients = nil
	return errors.Join(errs...)
}

func (a *App) scrapeConfigOrEmpty(cfg *Config) *promconfig.Config {
	if cfg.Scrape != nil {
		return cfg.Scrape
	}
	// Load, not a copy of DefaultConfig: the scrape manager only accepts a
	// config that config.Load has validated.
	empty, err := promconfig.Load("", a.logger)
	if err != nil {
		panic(fmt.Sprintf("empty prometheus config does not load: %v", err))
	}
	return empty
}

// Reload re-reads the configuration file and applies what can change at run
// time (the scrape section). An invalid file changes nothing.
func (a *App) Reload() (err error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	a.reloads.Inc()
	defer func() {
		if err != nil {
			a.reloadFailures.Inc()
			a.lastReloadSuccess.Set(0)
			a.logger.Error("configuration reload failed; the previous configuration keeps running", "err", err)
			return
		}
		a.lastReloadSuccess.Set(1)
		a.logger.Info("configuration reloaded", "file", a.cfg.file)
	}()
	next, err := Load(a.cfg.args)
	if err != nil {
		return err
	}
	if err := next.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	if a.notifier != nil {
		// The notifier re-reads its own alertmanager.yml; its path is the
		// one it started with.
		if err := a.notifier.Reload(); err != nil {
			return fmt.Errorf("notifier: %w", err)
		}
	}
	if a.ruler != nil {
		if err := a.ruler.Reload(next.Rules.Files); err != nil {
			return err
		}
	}
	promCfg := a.scrapeConfigOrEmpty(next)
	if a.scraper != nil {
		if err := a.scraper.ApplyConfig(promCfg); err != nil {
			return err
		}
	}
	a.promCfg.Store(promCfg)
	return nil
}

// advertiseAddr is the address other processes reach a listener at: its
// own, or with a wildcard host the first private address of this host
// (loopback when local is set, or when there is none).
func advertiseAddr(addr net.Addr, local bool) string {
	tcp, ok := addr.(*net.TCPAddr)
	if local || !ok || (tcp.IP != nil && !tcp.IP.IsUnspecified()) {
		return loopbackAddr(addr)
	}
	ifaces, _ := net.InterfaceAddrs()
	for _, ia := range ifaces {
		if ipn, ok := ia.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && ipn.IP.IsGlobalUnicast() {
			return net.JoinHostPort(ipn.IP.String(), strconv.Itoa(tcp.Port))
		}
	}
	return loopbackAddr(addr)
}

// loopbackAddr turns a wildcard listen address into one a local client can dial.
func loopbackAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP == nil || tcp.IP.IsUnspecified() {
		_, port, _ := net.SplitHostPort(addr.String())
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr.String()
}
