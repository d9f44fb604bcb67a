package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/tsdb"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pharos-tsdb/pharos/ingest/distributor"
	"github.com/pharos-tsdb/pharos/ingest/scraper"
	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/querier/api"
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

	ingester    *ingester.Ingester
	clients     []*ingesterclient.Client
	distributor *distributor.Distributor
	scraper     *scraper.Scraper

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

	if a.httpLn, err = net.Listen("tcp", cfg.Server.HTTPListen); err != nil {
		return nil, fmt.Errorf("listen http: %w", err)
	}
	a.grpcSrv = grpc.NewServer(ingesterclient.ServerOptions(cfg.Server.GRPCMaxRecvMsgSize, cfg.Server.GRPCMaxSendMsgSize)...)
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

	if a.has(RoleDistributor) || a.has(RoleQuerier) {
		addrs := []string(cfg.IngesterClient.Addresses)
		if len(addrs) == 0 {
			// All-in-one: the same gRPC path as a cluster, over loopback.
			addrs = []string{loopbackAddr(a.grpcLn.Addr())}
		}
		for _, addr := range addrs {
			c, err := ingesterclient.Dial(addr, cfg.IngesterClient.Config)
			if err != nil {
				return nil, err
			}
			a.clients = append(a.clients, c)
		}
	}
	ings := staticIngesters(a.clients)

	mux := http.NewServeMux()
	if a.has(RoleDistributor) {
		a.distributor, err = distributor.New(cfg.Distributor, ings, logger.With("component", "distributor"), a.reg)
		if err != nil {
			return nil, fmt.Errorf("distributor: %w", err)
		}
		mux.Handle("/api/v1/write", a.distributor.RemoteWriteHandler())
	}
	if a.has(RoleQuerier) {
		if err := a.buildQuerier(mux, ings); err != nil {
			return nil, err
		}
	}
	if a.has(RoleScraper) {
		if a.distributor == nil {
			return nil, errors.New("the scraper role needs the distributor role in the same process")
		}
		a.scraper, err = scraper.New(scraper.Options{
			Appendable: a.distributor.AppendableV2(),
			Logger:     logger.With("component", "scraper"),
			Registerer: a.reg,
		})
		if err != nil {
			return nil, fmt.Errorf("scraper: %w", err)
		}
	}
	a.promCfg.Store(a.scrapeConfigOrEmpty(cfg))
	a.registerOperational(mux)
	a.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	return a, nil
}

func (a *App) buildQuerier(mux *http.ServeMux, ings staticIngesters) error {
	reg := a.reg
	queryable := querier.NewQueryable(ings, a.logger.With("component", "querier"), reg)
	engine := querier.NewEngine(a.cfg.Querier, a.logger.With("component", "query engine"), reg)
	var db *tsdb.DB
	if a.ingester != nil {
		db = a.ingester.DB()
	}
	apiHandler, err := api.New(api.Options{
		Queryable:     queryable,
		Engine:        engine,
		Metadata:      api.MetadataFunc(querier.NewMetadataFunc(ings)),
		PromConfig:    func() promconfig.Config { return *a.promCfg.Load() },
		Flags:         a.flagsMap(),
		LocalTSDB:     db,
		Ready:         a.readyHandler,
		Logger:        a.logger.With("component", "api"),
		Registerer:    reg,
		Gatherer:      reg,
		LookbackDelta: time.Duration(a.cfg.Querier.LookbackDelta),
		QueryTimeout:  time.Duration(a.cfg.Querier.Timeout),
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
	mux.Handle("/api/v1/", apiHandler.Handler())
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

// Registry is the process's metrics registry.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// Run serves until ctx is cancelled, then shuts down: it stops scraping,
// drains HTTP requests, lets the ingester finish in-flight pushes and close
// its TSDB, and stops gRPC. It returns the first error that ended it.
func (a *App) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() {
		if err := a.httpSrv.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
	if a.scraper != nil {
		if err := a.scraper.ApplyConfig(a.promCfg.Load()); err != nil {
			a.shutdown()
			return fmt.Errorf("scrape config: %w", err)
		}
		a.scraper.Run()
	}
	if a.ingester != nil {
		if err := a.ingester.Ready(ctx); err != nil && ctx.Err() == nil {
			a.shutdown()
			return fmt.Errorf("ingester: %w", err)
		}
	}
	a.ready.Store(true)
	a.grpcHealth.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	a.logger.Info("pharos is ready", "roles", a.roles, "http", a.HTTPAddr(), "grpc", a.GRPCAddr())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	return errors.Join(runErr, a.shutdown())
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
	if a.scraper != nil {
		a.scraper.Stop()
	}
	if err := a.httpSrv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
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
	a.logger.Info("shutdown complete")
	return errors.Join(errs...)
}

// closeAll releases what New acquired, for a New that failed half-way.
func (a *App) closeAll() {
	if a.httpLn != nil {
		a.httpLn.Close()
	}
	if a.grpcLn != nil {
		a.grpcLn.Close()
	}
	if a.ingester != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.ingester.Close(ctx)
	}
	_ = a.closeClients()
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
	promCfg := a.scrapeConfigOrEmpty(next)
	if a.scraper != nil {
		if err := a.scraper.ApplyConfig(promCfg); err != nil {
			return err
		}
	}
	a.promCfg.Store(promCfg)
	return nil
}

// staticIngesters is the fixed ingester list of the Foundation; the ring
// replaces it.
type staticIngesters []*ingesterclient.Client

func (s staticIngesters) Clients() []ingesterpb.IngesterClient {
	out := make([]ingesterpb.IngesterClient, len(s))
	for i, c := range s {
		out[i] = c
	}
	return out
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
