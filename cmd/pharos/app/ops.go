package app

import (
	"fmt"
	"html/template"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// registerOperational adds the endpoints every Pharos process serves,
// whatever its roles, with Prometheus's paths and answers.
func (a *App) registerOperational(mux *http.ServeMux) {
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(a.reg, promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg})))
	// Go's profiles, as Prometheus serves them, so `go tool pprof
	// http://host:9090/debug/pprof/profile` works on any role.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "Pharos is Healthy.")
	})
	ready := func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "Service Unavailable: Pharos is not ready.", http.StatusServiceUnavailable)
			return
		}
		// An ingester whose storage failed (disk full) refuses writes
		// until it recovers: not ready, so it is taken out of rotation.
		if ing := a.ingester; ing != nil {
			if err := ing.StorageErr(); err != nil {
				http.Error(w, "Service Unavailable: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "Pharos is Ready.")
	}
	mux.HandleFunc("/-/ready", ready)
	mux.HandleFunc("/ready", ready)
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "This endpoint requires a POST or PUT request.", http.StatusMethodNotAllowed)
			return
		}
		if err := a.Reload(); err != nil {
			http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	if a.has(RoleQuerier) {
		return // "/" is the UI's (see ui.go)
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = indexPage.Execute(w, a.roles)
	})
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html><head><title>Pharos</title></head><body>
<h1>Pharos</h1>
<p>Roles: {{range .}}{{.}} {{end}}</p>
<ul>
<li><a href="api/v1/query?query=up">api/v1/query?query=up</a></li>
<li><a href="api/v1/status/buildinfo">api/v1/status/buildinfo</a></li>
<li><a href="metrics">metrics</a></li>
<li><a href="-/ready">-/ready</a></li>
</ul>
</body></html>
`))

// readyHandler wraps API handlers so they answer 503 until the node is ready,
// as Prometheus does during WAL replay.
func (a *App) readyHandler(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
			return
		}
		f(w, r)
	}
}

func (a *App) flagsMap() map[string]string { return a.cfg.flags }
