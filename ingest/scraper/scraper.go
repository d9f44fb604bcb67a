package scraper

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
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

// TargetFilter decides which discovered targets this scraper keeps. It is
// called from the goroutine that forwards discovery updates; the returned map
// is handed to the scrape manager and must not be modified afterwards.
type TargetFilter interface {
	Filter(map[string][]*targetgroup.Group) map[string][]*targetgroup.Group
}

// keepAll is the unsharded filter.
type keepAll struct{}

func (keepAll) Filter(m map[string][]*targetgroup.Group) map[string][]*targetgroup.Group { return m }

// Scraper owns a discovery manager and a scrape manager.
type Scraper struct {
	logger    *slog.Logger
	discovery *discovery.Manager
	scrape    *scrape.Manager
	filter    TargetFilter

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mtx    sync.Mutex // serialises ApplyConfig
}

// Options configure New. Appendable is required.
type Options struct {
	Appendable storage.AppendableV2
	// Filter keeps the targets this scraper owns; nil keeps all.
	Filter     TargetFilter
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// New creates a Scraper. It scrapes nothing until ApplyConfig and Run.
func New(opts Options) (*Scraper, error) {
	if opts.Appendable == nil {
		return nil, fmt.Errorf("scraper: an appendable is required")
	}
	if opts.Filter == nil {
		opts.Filter = keepAll{}
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
	dm := discovery.NewManager(ctx, opts.Logger.With("component", "discovery manager scrape"), reg, sdMetrics, discovery.Name("scrape"))
	if dm == nil {
		cancel()
		return nil, fmt.Errorf("create discovery manager")
	}
	sm, err := scrape.NewManager(&scrape.Options{
		// Targets appear at once on start-up rather than after the first
		// 5s throttle interval: `make run` should show `up` quickly.
		DiscoveryReloadOnStartup: true,
		AppendMetadata:           true,
	}, opts.Logger.With("component", "scrape manager"), nil, nil, opts.Appendable, reg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("create scrape manager: %w", err)
	}
	return &Scraper{logger: opts.Logger, discovery: dm, scrape: sm, filter: opts.Filter, ctx: ctx, cancel: cancel}, nil
}

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
	for _, c := range scfgs {
		sd[c.JobName] = c.ServiceDiscoveryConfigs
	}
	if err := s.discovery.ApplyConfig(sd); err != nil {
		return fmt.Errorf("apply discovery config: %w", err)
	}
	return nil
}

// Run starts discovery and scraping in the background. Stop ends them.
func (s *Scraper) Run() {
	filtered := make(chan map[string][]*targetgroup.Group)
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		if err := s.discovery.Run(); err != nil {
			s.logger.Error("discovery manager stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		// The discovery manager never closes SyncCh; the context ends this loop.
		for {
			select {
			case <-s.ctx.Done():
				return
			case tsets := <-s.discovery.SyncCh():
				select {
				case filtered <- s.filter.Filter(tsets):
				case <-s.ctx.Done():
					return
				}
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

// Manager exposes the scrape manager for the targets API.
func (s *Scraper) Manager() *scrape.Manager { return s.scrape }

// Stop stops scraping and discovery and waits for their goroutines. Samples
// of scrapes in flight are still appended before it returns.
func (s *Scraper) Stop() {
	s.scrape.Stop()
	s.cancel()
	s.wg.Wait()
}
