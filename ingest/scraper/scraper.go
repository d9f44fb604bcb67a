package scraper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"

	// The service discoveries Pharos supports in scrape_configs, besides
	// static_configs: the ones a Kubernetes platform team uses. Each import
	// registers the SD's config type with the discovery package.
	_ "github.com/prometheus/prometheus/discovery/dns"
	_ "github.com/prometheus/prometheus/discovery/file"
	_ "github.com/prometheus/prometheus/discovery/http"
	_ "github.com/prometheus/prometheus/discovery/kubernetes"
)

// Scraper owns a discovery manager and a scrape manager, and between them
// keeps the targets its Sharding assigns to it.
type Scraper struct {
	logger     *slog.Logger
	instanceID string
	discovery  *discovery.Manager
	scrape     *scrape.Manager
	sharding   Sharding // nil: every target is ours
	sdMetrics  *discovery.SDMetrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mtx    sync.Mutex // serialises ApplyConfig

	cfgMtx sync.Mutex
	cfgs   map[string]*promconfig.ScrapeConfig // by job, as last applied
	// reprepare asks the sync loop to place the last discovered targets
	// again: the relabelling that places them changed.
	reprepare chan struct{}

	// Owned by the sync loop.
	last      *preparedSet
	prevOwned map[uint64]struct{}

	owned    prometheus.Gauge
	handoffs prometheus.Counter
	syncs    prometheus.Counter
}

// Options configure New. Appendable is required.
type Options struct {
	Appendable storage.AppendableV2
	// Sharding picks the targets this scraper owns; nil keeps all, as a
	// single Prometheus does.
	Sharding Sharding
	// InstanceID names this scraper in the targets API (scrapeInstance).
	InstanceID string
	// ReloadInterval throttles discovery updates and target syncs; zero
	// means Prometheus's 5s.
	ReloadInterval time.Duration
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

// New creates a Scraper. It scrapes nothing until ApplyConfig and Run.
func New(opts Options) (*Scraper, error) {
	if opts.Appendable == nil {
		return nil, errors.New("scraper: an appendable is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = 5 * time.Second
	}
	reg := opts.Registerer
	if err := discovery.RegisterK8sClientMetricsWithPrometheus(reg); err != nil {
		return nil, fmt.Errorf("register kubernetes client metrics: %w", err)
	}
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register service discovery metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dm := discovery.NewManager(ctx, opts.Logger.With("component", "discovery manager scrape"), reg, sdMetrics,
		discovery.Name("scrape"), discovery.Updatert(opts.ReloadInterval))
	if dm == nil {
		cancel()
		return nil, errors.New("create discovery manager")
	}
	sm, err := scrape.NewManager(&scrape.Options{
		// Targets appear at once on start-up rather than after the first
		// throttle interval: `make run` should show `up` quickly.
		DiscoveryReloadOnStartup: true,
		DiscoveryReloadInterval:  model.Duration(opts.ReloadInterval),
		AppendMetadata:           true,
	}, opts.Logger.With("component", "scrape manager"), nil, nil, opts.Appendable, reg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("create scrape manager: %w", err)
	}
	f := promauto.With(reg)
	return &Scraper{
		logger:     opts.Logger,
		instanceID: opts.InstanceID,
		discovery:  dm,
		scrape:     sm,
		sharding:   opts.Sharding,
		sdMetrics:  sdMetrics,
		ctx:        ctx,
		cancel:     cancel,
		reprepare:  make(chan struct{}, 1),
		owned: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_scraper_owned_targets", Help: "Discovered targets (active or dropped) this scraper owns in the scraper ring.",
		}),
		handoffs: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_scraper_handoffs_total", Help: "Targets this scraper gave up to another scraper while they were still discovered; they get no staleness markers.",
		}),
		syncs: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_scraper_target_syncs_total", Help: "Target sets handed to the scrape manager after sharding.",
		}),
	}, nil
}

// SDMetrics are the per-mechanism service discovery metrics this scraper
// registered. A registry holds them once per process, so other discovery
// managers of the process (the ruler's notify discovery) share them.
func (s *Scraper) SDMetrics() *discovery.SDMetrics { return s.sdMetrics }

// InstanceID is the name this scraper has in the scraper ring.
func (s *Scraper) InstanceID() string { return s.instanceID }

// ApplyConfig (re)loads the scrape configuration. On error the previous
// configuration keeps running.
func (s *Scraper) ApplyConfig(cfg *promconfig.Config) error {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("scrape configs: %w", err)
	}
	if err := s.scrape.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("apply scrape config: %w", err)
	}
	sd := make(map[string]discovery.Configs, len(scfgs))
	cfgs := make(map[string]*promconfig.ScrapeConfig, len(scfgs))
	for _, c := range scfgs {
		sd[c.JobName] = c.ServiceDiscoveryConfigs
		cfgs[c.JobName] = c
	}
	s.cfgMtx.Lock()
	s.cfgs = cfgs
	s.cfgMtx.Unlock()
	select {
	case s.reprepare <- struct{}{}:
	default:
	}
	if err := s.discovery.ApplyConfig(sd); err != nil {
		return fmt.Errorf("apply discovery config: %w", err)
	}
	return nil
}

func (s *Scraper) configs() map[string]*promconfig.ScrapeConfig {
	s.cfgMtx.Lock()
	defer s.cfgMtx.Unlock()
	return s.cfgs
}

// Run starts discovery and scraping in the background. Stop ends them.
func (s *Scraper) Run() {
	filtered := make(chan map[string][]*targetgroup.Group)
	var changes <-chan struct{}
	if s.sharding != nil {
		changes = s.sharding.Changes(s.ctx)
	}
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		// Run returns the context's error when Stop cancels it.
		if err := s.discovery.Run(); err != nil && !errors.Is(err, context.Canceled) {
			s.logger.Error("discovery manager stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		// The discovery manager never closes SyncCh; the context ends this loop.
		for {
			var (
				out map[string][]*targetgroup.Group
				ok  bool
			)
			select {
			case <-s.ctx.Done():
				return
			case tsets := <-s.discovery.SyncCh():
				s.last = prepare(tsets, s.configs())
				out, ok = s.sync(true)
			case <-s.reprepare:
				if s.last != nil {
					s.last = prepare(s.last.tsets, s.configs())
					out, ok = s.sync(true)
				}
			case <-changes:
				if s.last != nil {
					out, ok = s.sync(false)
				}
			}
			if !ok {
				continue
			}
			select {
			case filtered <- out:
				s.syncs.Inc()
			case <-s.ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.scrape.Run(filtered); err != nil {
			s.logger.Error("scrape manager stopped", "err", err)
		}
	}()
}

// sync shards the last discovered targets. Without force it reports
// false when this scraper's share did not change. Targets it gives up
// while discovery still lists them are hand-offs: their scrape loops stop
// without writing staleness markers, since the new owner goes on writing
// the same series. Targets that left discovery get their markers as in
// Prometheus.
func (s *Scraper) sync(force bool) (map[string][]*targetgroup.Group, bool) {
	if s.sharding == nil {
		return s.last.tsets, true
	}
	out, owned, seen := s.last.shard(s.sharding.Owns())
	if !force && maps.Equal(owned, s.prevOwned) {
		return nil, false
	}
	var handoff map[uint64]struct{}
	for id := range s.prevOwned {
		if _, still := owned[id]; still {
			continue
		}
		if _, discovered := seen[id]; discovered {
			if handoff == nil {
				handoff = map[uint64]struct{}{}
			}
			handoff[id] = struct{}{}
		}
	}
	if len(handoff) > 0 {
		s.disableStaleness(handoff)
	}
	s.prevOwned = owned
	s.owned.Set(float64(len(owned)))
	return out, true
}

// disableStaleness turns off the end-of-run staleness markers of the
// running targets whose ids are in ids. The scrape loops stop at the next
// reload; their markers would be written two intervals later, and are
// checked against this flag then.
func (s *Scraper) disableStaleness(ids map[uint64]struct{}) {
	lb := labels.NewBuilder(labels.EmptyLabels())
	var d xxhash.Digest
	n := 0
	for job, targets := range s.scrape.TargetsActive() {
		var moved []*scrape.Target
		for _, t := range targets {
			if _, ok := ids[activeID(&d, job, t.Labels(lb))]; ok {
				moved = append(moved, t)
			}
		}
		s.scrape.DisableEndOfRunStalenessMarkers(job, moved)
		n += len(moved)
	}
	s.handoffs.Add(float64(n))
	s.logger.Debug("handing off targets", "targets", n)
}

// Manager exposes the scrape manager for the targets API.
func (s *Scraper) Manager() *scrape.Manager { return s.scrape }

// Stop stops scraping and discovery and waits for their goroutines. Samples
// of scrapes in flight are still appended before it returns. Stopping
// writes no staleness markers: the targets are handed to other scrapers,
// or resumed by this one after a restart.
func (s *Scraper) Stop() {
	s.scrape.Stop()
	s.cancel()
	s.wg.Wait()
}
