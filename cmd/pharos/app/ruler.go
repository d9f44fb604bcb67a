package app

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/prometheus/prometheus/discovery"

	"github.com/pharos-tsdb/pharos/ingest/distributor"
	"github.com/pharos-tsdb/pharos/ruler"
)

// buildRuler builds the ruler role over the process's queryable and engine.
// Its output (recording rules, ALERTS) goes through the distributor, built
// here without the remote-write endpoint when this process runs none. With
// no ruler.alertmanager_url it sends to the notifier of this process.
func (a *App) buildRuler(mux *http.ServeMux, dings distributor.Ingesters) error {
	cfg := a.cfg
	if a.distributor == nil {
		d, err := distributor.New(cfg.Distributor, dings, a.logger.With("component", "distributor"), a.reg)
		if err != nil {
			return fmt.Errorf("ruler distributor: %w", err)
		}
		a.distributor = d
	}
	var defaultAMs []string
	switch {
	case a.notifierLn != nil:
		defaultAMs = []string{a.sec.scheme + "://" + loopbackAddr(a.notifierLn.Addr())}
	case a.notifier != nil:
		defaultAMs = []string{a.sec.scheme + "://" + loopbackAddr(a.httpLn.Addr()) + notifierPrefix}
	}
	// A registry holds the per-mechanism SD metrics once: share the
	// scraper's, or register them here for the notify discovery.
	var sdMetrics *discovery.SDMetrics
	if a.scraper != nil {
		sdMetrics = a.scraper.SDMetrics()
	} else {
		var err error
		if sdMetrics, err = discovery.CreateAndRegisterSDMetrics(a.reg); err != nil {
			return fmt.Errorf("ruler: service discovery metrics: %w", err)
		}
	}
	httpURL := cfg.Ruler.HTTPAdvertise
	if httpURL == "" {
		httpURL = a.sec.scheme + "://" + advertiseAddr(a.httpLn.Addr(), len(cfg.Ruler.Peers) == 0)
	}
	rcfg := cfg.Ruler
	if rcfg.ExternalURL == "" {
		// As Prometheus: an alert's generatorURL is absolute, so that a
		// receiver (a Slack message) can follow it to this host's UI.
		rcfg.ExternalURL = hostExternalURL(a.sec.scheme, a.httpLn.Addr(), "")
	}
	r, err := ruler.New(ruler.Options{
		Config:                  rcfg,
		Rules:                   cfg.Rules,
		RaftDir:                 filepath.Join(cfg.Storage.Path, "raft"),
		Queryable:               a.queryable,
		Engine:                  a.engine,
		Appendable:              a.distributor.AppendableV2(),
		DefaultAlertmanagerURLs: defaultAMs,
		HTTPURL:                 httpURL,
		ExternalLabels:          a.promCfg.Load().GlobalConfig.ExternalLabels,
		Logger:                  a.logger.With("component", "ruler"),
		Registerer:              a.reg,
		SDMetrics:               sdMetrics,
		Limits:                  a.overrides,
		Tenants:                 a.tenants(),
		HTTPClient:              a.rulerHTTPClient(),
		HTTPTransport:           a.sec.transport,
	})
	if err != nil {
		return err
	}
	a.ruler = r
	h := r.Handler()
	mux.Handle("/api/v1/rules/", h)
	mux.Handle(ruler.MimirRulesPrefix, h)
	mux.Handle(ruler.MimirRulesPrefix+"/", h)
	mux.Handle("/api/v1/status/ruler", h)
	return nil
}

// startRuler runs the ruler in the background; errc receives a failure.
func (a *App) startRuler(errc chan<- error) {
	if a.ruler == nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	a.rulerStop, a.rulerDone = stop, make(chan error, 1)
	go func() {
		err := a.ruler.Run(ctx)
		a.rulerDone <- err
		if err != nil {
			errc <- fmt.Errorf("ruler: %w", err)
		}
	}()
}

// stopRuler stops evaluation and sending, and shuts raft down (also when
// the ruler never ran).
func (a *App) stopRuler() error {
	if a.ruler == nil || a.rulerClosed {
		return nil
	}
	// The API handlers keep their reference to the ruler; it answers as
	// a follower once stopped.
	a.rulerClosed = true
	if a.rulerStop == nil {
		return a.ruler.Close()
	}
	a.rulerStop()
	a.rulerStop = nil
	if err := <-a.rulerDone; err != nil {
		return fmt.Errorf("ruler: %w", err)
	}
	return nil
}
