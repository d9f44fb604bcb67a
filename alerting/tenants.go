package alerting

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/route"
	"go.yaml.in/yaml/v2"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// startTenantConfigs opens the replicated store of tenant configurations,
// registers it with the peer as gossip state "cfg", starts the goroutine
// that applies gossiped configurations, and returns the tenants to start
// at once: those with a stored configuration and those with state on disk.
func (n *Notifier) startTenantConfigs(cleanups *stack) ([]string, error) {
	store, err := openTenantConfigs(filepath.Join(n.cfg.DataDir, tenantConfigsFile), n.cfg.Retention, n.logger.With("component", "tenant-configs"))
	if err != nil {
		return nil, err
	}
	if n.peer != nil {
		ch := n.peer.AddState("cfg", store, n.reg)
		store.broadcast = ch.Broadcast
	}
	n.configs = store
	n.tenantsGauge = promauto.With(n.reg).NewGauge(prometheus.GaugeOpts{
		Name: "pharos_notifier_tenants",
		Help: "Number of tenants whose Alertmanager runs in this notifier.",
	})

	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-store.changed:
				n.syncTenants()
			case <-stop:
				return
			}
		}
	}()
	cleanups.push(func() error {
		close(stop)
		<-done
		return nil
	})

	seen := map[string]bool{}
	var ids []string
	for _, id := range store.tenants() {
		seen[id] = true
		ids = append(ids, id)
	}
	dirs, err := os.ReadDir(filepath.Join(n.cfg.DataDir, tenantsDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	for _, d := range dirs {
		if id := d.Name(); d.IsDir() && tenant.Validate(id) == nil && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// configDir is where tenant id's own alertmanager.yml and templates are
// written for upstream to load.
func (n *Notifier) configDir(id string) string {
	return filepath.Join(n.cfg.DataDir, tenantsDir, id, "config")
}

// writeTenantConfig writes e to tenant id's configuration directory and
// loads it.
func (n *Notifier) writeTenantConfig(id string, e tenantConfig) (*config.Config, error) {
	return writeConfigDir(n.configDir(id), e)
}

// syncTenants brings every tenant's Alertmanager in line with the store
// after a gossiped change.
func (n *Notifier) syncTenants() {
	for _, id := range n.configs.tenants() {
		if err := n.applyTenant(id); err != nil && !errors.Is(err, ErrNotRunning) {
			n.logger.Error("apply tenant configuration", "user", id, "err", err)
		}
	}
}

// applyTenant puts tenant id's stored configuration in force, or the
// fallback for a marker or after a deletion, starting the tenant's
// Alertmanager if it does not run yet (other replicas accepted the tenant,
// so the tenant limit does not apply). The instance of a tenant whose
// configuration is deleted keeps running with the fallback: its silences,
// alerts and notification log stay.
func (n *Notifier) applyTenant(id string) error {
	n.mu.Lock()
	if !n.running {
		n.mu.Unlock()
		return ErrNotRunning
	}
	if _, starting := n.starting[id]; starting {
		// The start applies what is stored once it is over.
		n.mu.Unlock()
		return nil
	}
	inst, running := n.instances[id]
	if !running {
		n.mu.Unlock()
		if _, ok := n.configs.entry(id); !ok {
			return nil
		}
		// Starts with the stored configuration, if any.
		_, err := n.instance(id, true)
		return err
	}
	defer n.mu.Unlock()
	return n.applyTenantLocked(id, inst)
}

// applyTenantLocked brings inst, tenant id's running Alertmanager, in line
// with the store and the fallback; n.mu is held.
func (n *Notifier) applyTenantLocked(id string, inst *instance) error {
	e, own := n.configs.get(id)
	if !own {
		if inst.own().IsZero() && inst.config() == n.fallback {
			return nil
		}
		_ = os.RemoveAll(n.configDir(id))
		return inst.apply(n.fallback, time.Time{})
	}
	if inst.own().Equal(e.UpdatedAt) {
		return nil
	}
	conf, err := n.writeTenantConfig(id, e)
	if err != nil {
		return err
	}
	return inst.apply(conf, e.UpdatedAt)
}

// tenantHandler routes each request of a multi-tenant notifier: the
// lifecycle endpoints belong to the process; the config API and everything
// else (API v2, UI paths) to the request's tenant, whose Alertmanager
// starts on first use. A request without a tenant gets 401.
func (n *Notifier) tenantHandler() http.Handler {
	lifecycle := route.New()
	if n.routePrefix != "/" {
		lifecycle = lifecycle.WithPrefix(n.routePrefix)
	}
	n.registerLifecycle(lifecycle)
	res := tenant.Resolver{Enabled: true}
	configAPI := res.Middleware(http.HandlerFunc(n.serveTenantConfig))
	perTenant := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := tenant.FromContext(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		inst, err := n.instance(id, false)
		if err != nil {
			httpError(w, err)
			return
		}
		inst.handler.ServeHTTP(w, r)
	}))
	prefix := strings.TrimSuffix(n.routePrefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, prefix) {
		case "/-/reload", "/-/healthy", "/-/ready":
			lifecycle.ServeHTTP(w, r)
		case "/api/v1/alerts":
			configAPI.ServeHTTP(w, r)
		default:
			perTenant.ServeHTTP(w, r)
		}
	})
}

func httpError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotRunning):
		code = http.StatusServiceUnavailable
	case errors.Is(err, errLimit):
		code = http.StatusTooManyRequests
	}
	http.Error(w, err.Error(), code)
}

// userConfig is the body of the config API, as Mimir's
// /api/v1/alerts takes and returns it.
type userConfig struct {
	TemplateFiles      map[string]string `yaml:"template_files"`
	AlertmanagerConfig string            `yaml:"alertmanager_config"`
}

// maxConfigBytes bounds a config API body: the whole configuration is
// kept in memory, gossiped and written to disk on every replica.
const maxConfigBytes = 4 << 20

// serveTenantConfig is the Mimir-compatible per-tenant configuration API:
// GET returns the tenant's configuration (404 if it has none and runs the
// fallback), POST validates and stores one (400 naming the field at
// fault), DELETE returns the tenant to the fallback.
func (n *Notifier) serveTenantConfig(w http.ResponseWriter, r *http.Request) {
	id, err := tenant.FromContext(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	switch r.Method {
	case http.MethodGet:
		e, ok := n.configs.get(id)
		if !ok {
			http.Error(w, "alertmanager config not found", http.StatusNotFound)
			return
		}
		b, err := yaml.Marshal(userConfig{TemplateFiles: e.TemplateFiles, AlertmanagerConfig: e.AlertmanagerConfig})
		if err != nil {
			httpError(w, fmt.Errorf("encode configuration: %w", err))
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(b)
	case http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxConfigBytes))
		if err != nil {
			http.Error(w, fmt.Sprintf("read configuration: %v", err), http.StatusBadRequest)
			return
		}
		var uc userConfig
		if err := yaml.UnmarshalStrict(body, &uc); err != nil {
			http.Error(w, fmt.Sprintf("error unmarshalling YAML Alertmanager config: %v", err), http.StatusBadRequest)
			return
		}
		e := tenantConfig{AlertmanagerConfig: uc.AlertmanagerConfig, TemplateFiles: uc.TemplateFiles, UpdatedAt: time.Now()}
		if err := validateTenantConfig(e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// The limit counts running tenants; one that runs already may
		// always store a configuration.
		if _, err := n.instance(id, false); err != nil {
			httpError(w, err)
			return
		}
		if _, err := n.configs.put(id, e); err != nil {
			httpError(w, err)
			return
		}
		if err := n.applyTenant(id); err != nil {
			httpError(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		if _, ok := n.configs.get(id); ok {
			if _, err := n.configs.put(id, tenantConfig{Deleted: true, UpdatedAt: time.Now()}); err != nil {
				httpError(w, err)
				return
			}
			if err := n.applyTenant(id); err != nil {
				httpError(w, err)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
