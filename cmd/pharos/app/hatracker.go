package app

import (
	"context"
	"fmt"
	"net/http"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/ingest/distributor"
)

// buildHATracker gives the distributor its HA tracker when
// distributor.ha_tracker.enable_ha_tracker is on, and serves its elections
// at Mimir's /distributor/ha_tracker. The elections live in their own
// namespace of the ring's KV: gossiped between the distributors of a
// cluster, in memory for a lone all-in-one process.
func (a *App) buildHATracker(mux *http.ServeMux) error {
	cfg := a.cfg.Distributor.HATracker
	if !cfg.Enable || a.distributor == nil {
		return nil
	}
	kv := cluster.Namespace(a.kv, distributor.HATrackerRingName)
	t, err := distributor.NewHATracker(cfg, kv, a.logger.With("component", "ha-tracker"), a.reg)
	if err != nil {
		return fmt.Errorf("ha tracker: %w", err)
	}
	a.distributor.SetHATracker(t, a.haLimits())
	a.haTracker = t
	mux.Handle("/distributor/ha_tracker", t)
	return nil
}

// haLimits are the per-tenant HA settings: the limits and their runtime
// overrides (accept_ha_samples, ha_cluster_label, ha_replica_label,
// ha_max_clusters), read on every push so that a reload applies at once.
func (a *App) haLimits() distributor.HALimits {
	if a.overrides != nil {
		return a.overrides
	}
	return distributor.DefaultHALimits()
}

// startHATracker keeps the tracker's cache in step with the KV until ctx
// ends; the bgDone group waits for it.
func (a *App) startHATracker(ctx context.Context) {
	if t := a.haTracker; t != nil {
		a.bgDone.Go(func() { t.Run(ctx) })
	}
}
