package app

import (
	"fmt"
	"net/http"

	"github.com/pharos-tsdb/pharos/web"
)

// registerUI mounts the browser UI on the main HTTP server of a process
// that serves the Prometheus API or the notifier under /alertmanager: the
// pages only call those APIs and /ring, so elsewhere they would show
// nothing but errors.
func (a *App) registerUI(mux *http.ServeMux) error {
	if !a.has(RoleQuerier) {
		return nil
	}
	ui, err := web.New()
	if err != nil {
		return fmt.Errorf("web ui: %w", err)
	}
	ui.Register(mux)
	return nil
}
