package app

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/limits"
)

// buildLimits loads the per-tenant limits: the `limits:` section is every
// tenant's default, the runtime_config file overrides it per tenant. The
// deprecated distributor.max_label_* and querier.max_fetched_* keys, when
// set (non-zero), still win over the limits section's defaults, with a
// warning, so that configurations written before tenants keep working.
func (a *App) buildLimits(mux *http.ServeMux) error {
	cfg := a.cfg
	defaults := cfg.Limits
	deprecated := []struct {
		old, new string
		set      int64
		to       *int
	}{
		{"distributor.max_label_names_per_series", "limits.max_label_names_per_series", int64(cfg.Distributor.MaxLabelNamesPerSeries), &defaults.MaxLabelNamesPerSeries},
		{"distributor.max_label_name_length", "limits.max_label_name_length", int64(cfg.Distributor.MaxLabelNameLength), &defaults.MaxLabelNameLength},
		{"distributor.max_label_value_length", "limits.max_label_value_length", int64(cfg.Distributor.MaxLabelValueLength), &defaults.MaxLabelValueLength},
		{"querier.max_fetched_series_per_query", "limits.max_fetched_series_per_query", cfg.Querier.Limits.MaxFetchedSeries, &defaults.MaxFetchedSeriesPerQuery},
		{"querier.max_fetched_chunks_per_query", "limits.max_fetched_chunks_per_query", cfg.Querier.Limits.MaxFetchedChunks, &defaults.MaxFetchedChunksPerQuery},
		{"querier.max_fetched_chunk_bytes_per_query", "limits.max_fetched_chunk_bytes_per_query", cfg.Querier.Limits.MaxFetchedChunkBytes, &defaults.MaxFetchedChunkBytesPerQuery},
	}
	for _, d := range deprecated {
		if d.set != 0 {
			*d.to = int(d.set)
			a.logger.Warn("deprecated configuration key; it still applies, as the default of every tenant", "key", d.old, "use", d.new, "value", d.set)
		}
	}
	o, err := limits.NewOverrides(defaults, cfg.RuntimeConfig, a.logger.With("component", "runtime-config"), a.reg)
	if err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	a.overrides = o
	mux.HandleFunc("/runtime_config", a.serveRuntimeConfig)
	return nil
}

// startLimits re-reads the runtime configuration file until ctx ends; the
// bgDone group waits for it.
func (a *App) startLimits(ctx context.Context) {
	if o := a.overrides; o != nil {
		a.bgDone.Go(func() { o.Run(ctx) })
	}
}

// serveRuntimeConfig shows the overrides in force, as Mimir's
// /runtime_config does: every tenant with an entry in the file, each with
// all its limits.
func (a *App) serveRuntimeConfig(w http.ResponseWriter, _ *http.Request) {
	out, err := yaml.Marshal(map[string]any{"overrides": a.overrides.Tenants()})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(out)
}

// ingesterShare tells an ingester how global series limits are shared:
// the replication factor and the healthy ingesters of the ring. Counting
// the ring costs a walk of its members, so the answer is kept for a second.
type ingesterShare struct {
	ring interface {
		ReplicationFactor() int
		AllHealthy(ring.Operation) (ring.ReplicationSet, error)
	}
	mu      sync.Mutex
	at      time.Time
	rf, ing int
}

func (s *ingesterShare) get() (rf, ingesters int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.at) > time.Second {
		s.at = now
		s.rf = s.ring.ReplicationFactor()
		s.ing = 0
		if set, err := s.ring.AllHealthy(ring.Write); err == nil {
			s.ing = len(set.Instances)
		}
	}
	return s.rf, s.ing
}

// applyLimits hands the per-tenant limits to the roles built so far.
func (a *App) applyLimits() {
	if a.ingester != nil {
		if len(a.cfg.IngesterClient.Addresses) > 0 || a.ring == nil {
			a.ingester.SetSeriesLimits(a.overrides, nil)
		} else {
			s := &ingesterShare{ring: a.ring}
			a.ingester.SetSeriesLimits(a.overrides, s.get)
		}
	}
	if a.distributor != nil {
		a.distributor.SetLimits(a.overrides)
	}
}
