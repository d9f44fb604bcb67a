package app

import (
	"context"
	"flag"
	"net/http"

	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// MultitenancyConfig is the top-level `multitenancy:` section.
type MultitenancyConfig struct {
	// Enabled makes every API request name its tenant in X-Scope-OrgID
	// (401 without). Off, every request belongs to tenant.DefaultTenant.
	Enabled bool `yaml:"enabled"`
}

// RegisterFlags registers the multitenancy.* flags.
func (c *MultitenancyConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "multitenancy.enabled", false, "Require the tenant of every API request in the "+tenant.HeaderName+" header; off, all data belongs to the tenant \""+tenant.DefaultTenant+"\".")
}

// tenants resolves the tenant of HTTP requests as the configuration says.
func (a *App) tenants() tenant.Resolver {
	return tenant.Resolver{Enabled: a.cfg.Multitenancy.Enabled}
}

// scraperTenant owns what this process scrapes: scraper.tenant, or with
// multi-tenancy off the one tenant there is.
func (a *App) scraperTenant() string {
	if !a.cfg.Multitenancy.Enabled {
		return tenant.DefaultTenant
	}
	return a.cfg.Scraper.Tenant
}

// handleWrite serves remote write at Prometheus's path and at the one Mimir
// and Cortex use, so their clients work unchanged.
func (a *App) handleWrite(mux *http.ServeMux, h http.Handler) {
	h = a.tenants().Middleware(h)
	mux.Handle("/api/v1/write", h)
	mux.Handle("/api/v1/push", h)
}

// tenantAppendable appends as one fixed tenant, for the scraper, whose
// scrape loops have contexts of their own that name none.
type tenantAppendable struct {
	storage.AppendableV2
	id string
}

func (t tenantAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return t.AppendableV2.AppenderV2(tenant.With(ctx, t.id))
}
