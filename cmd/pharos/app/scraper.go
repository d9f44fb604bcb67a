package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/ingest/scraper"
	"github.com/pharos-tsdb/pharos/ingest/scraper/scrapeapi"
	"github.com/pharos-tsdb/pharos/querier/api"
)

// scrapeRole is the scraper ring as this process sees it, and its own
// place in it when it scrapes. A lone all-in-one process has no scraper
// ring: its scraper keeps every target and serves the targets API itself.
type scrapeRole struct {
	ring *cluster.Ring // nil without gossip
	kv   cluster.KV
	// lc registers this process's scraper; nil for a querier that only
	// reads the ring.
	lc       *cluster.Lifecycler
	lcCancel context.CancelFunc
	lcDone   chan error
	// local is this process's targets API base URL, for the all-in-one
	// case.
	local string
}

// buildScraper creates the scraper ring (when gossip runs) and, with the
// scraper role, the scraper and its lifecycler. It mounts the scraper's
// targets endpoints and the ring page at /scraper/ring.
func (a *App) buildScraper(mux *http.ServeMux) error {
	cfg := a.cfg
	sc := &scrapeRole{}
	a.scrape = sc
	addr := cfg.Scraper.InstanceAddr
	if addr == "" {
		addr = advertiseAddr(a.httpLn.Addr(), a.gossip == nil)
	}
	sc.local = a.sec.scheme + "://" + addr
	if a.gossip != nil && (a.has(RoleScraper) || a.has(RoleQuerier)) {
		sc.kv = cluster.Namespace(a.kv, scraper.RingName)
		var err error
		if sc.ring, err = cluster.NewRing(cfg.Scraper.RingConfig(cfg.Ring.InstanceID, addr), sc.kv, a.reg); err != nil {
			return fmt.Errorf("scraper ring: %w", err)
		}
		mux.Handle("/scraper/ring", sc.ring)
	}
	if !a.has(RoleScraper) {
		return nil
	}
	if a.distributor == nil {
		return errors.New("the scraper role needs the distributor role in the same process")
	}
	opts := scraper.Options{
		Appendable:     tenantAppendable{a.distributor.AppendableV2(), a.scraperTenant()},
		InstanceID:     cfg.Ring.InstanceID,
		ReloadInterval: cfg.Scraper.ReloadInterval,
		Logger:         a.logger.With("component", "scraper"),
		Registerer:     a.reg,
	}
	if sc.ring != nil {
		var err error
		sc.lc, err = cluster.NewLifecycler(cfg.Scraper.RingConfig(cfg.Ring.InstanceID, addr), sc.kv, "",
			a.logger.With("component", "scraper ring"), a.reg)
		if err != nil {
			return fmt.Errorf("scraper ring: %w", err)
		}
		opts.Sharding = scraper.NewRingSharding(sc.ring, sc.kv, cfg.Ring.InstanceID, cfg.Scraper.Heartbeat)
	}
	s, err := scraper.New(opts)
	if err != nil {
		return fmt.Errorf("scraper: %w", err)
	}
	a.scraper = s
	h := s.Handler(addr)
	for _, p := range []string{scrapeapi.TargetsPath, scrapeapi.TargetMetadataPath, scrapeapi.ScrapePoolsPath} {
		mux.Handle(p, h)
	}
	return nil
}

// startScraper applies the scrape configuration, joins the scraper ring
// and starts scraping. Until the instance is ACTIVE it owns no target, so
// the process turns ready only once it scrapes its share.
func (a *App) startScraper(ctx context.Context) error {
	if a.scraper == nil {
		return nil
	}
	if err := a.scraper.ApplyConfig(a.promCfg.Load()); err != nil {
		return fmt.Errorf("scrape config: %w", err)
	}
	a.scraper.Run()
	sc := a.scrape
	if sc.lc == nil {
		return nil
	}
	select {
	case <-a.gossip.Joined():
	case <-ctx.Done():
		return nil
	}
	lcCtx, cancel := context.WithCancel(context.Background())
	sc.lcCancel, sc.lcDone = cancel, make(chan error, 1)
	go func() { sc.lcDone <- sc.lc.Run(lcCtx) }()
	select {
	case <-sc.lc.Active():
		return nil
	case <-ctx.Done():
		return nil
	case err := <-sc.lcDone:
		sc.lcDone = nil
		if err == nil {
			err = errors.New("stopped before joining")
		}
		return fmt.Errorf("scraper ring lifecycler: %w", err)
	}
}

// stopScraper leaves the scraper ring first, so the other scrapers take
// this one's targets over while it stops, then stops scraping. Neither
// writes staleness markers: the series go on at the new owners.
func (a *App) stopScraper() error {
	var err error
	if sc := a.scrape; sc != nil && sc.lcCancel != nil {
		sc.lcCancel()
		if sc.lcDone != nil {
			if e := <-sc.lcDone; e != nil {
				err = fmt.Errorf("scraper ring lifecycler: %w", e)
			}
		}
		sc.lcCancel, sc.lcDone = nil, nil
	}
	if a.scraper != nil {
		a.scraper.Stop()
		a.scraper = nil
	}
	return err
}

// scraperEndpoints lists the scrapers the querier merges targets from: the
// healthy members of the scraper ring, or this process's own scraper.
func (a *App) scraperEndpoints(context.Context) []api.ScraperEndpoint {
	sc := a.scrape
	if sc.ring == nil {
		if !a.has(RoleScraper) {
			return nil
		}
		return []api.ScraperEndpoint{{ID: a.cfg.Ring.InstanceID, URL: sc.local}}
	}
	now := time.Now()
	var out []api.ScraperEndpoint
	for _, in := range sc.ring.Instances() {
		if in.State == ring.StateLeft || now.Sub(in.HeartbeatTime()) > a.cfg.Scraper.HeartbeatTimeout {
			continue
		}
		out = append(out, api.ScraperEndpoint{ID: in.ID, URL: a.sec.scheme + "://" + in.Addr})
	}
	return out
}
