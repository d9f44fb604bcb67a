package scraper

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// RingName is the scraper ring's namespace in the gossiped descriptor
// (cluster.Namespace) and the infix of its metric names.
const RingName = "scraper"

// Config is the `scraper:` section: how scrapers share the targets of the
// `scrape:` section. The scrapers form a ring of their own, separate from
// the ingesters', with shorter heartbeats: a dead scraper's targets go
// unscraped until its heartbeat times out.
type Config struct {
	// InstanceAddr is the HTTP host:port queriers reach this scraper's
	// targets at; empty derives it from server.http_listen.
	InstanceAddr     string        `yaml:"instance_addr"`
	Tokens           int           `yaml:"tokens"`
	Heartbeat        time.Duration `yaml:"heartbeat"`
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`
	// ReloadInterval throttles discovery updates and target re-syncs, as
	// Prometheus's fixed 5s does; ring changes wait for it too.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// Tenant owns the scraped samples when multi-tenancy is on.
	Tenant string `yaml:"tenant"`
}

// RegisterFlags registers the scraper.* flags, which also define the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.InstanceAddr, "scraper.instance-addr", "", "HTTP host:port queriers reach this scraper at for the targets API (empty: derived from server.http-listen).")
	fs.IntVar(&c.Tokens, "scraper.tokens", 128, "Number of tokens this scraper owns in the scraper ring.")
	fs.DurationVar(&c.Heartbeat, "scraper.heartbeat", 2*time.Second, "How often this scraper refreshes its scraper ring entry.")
	fs.DurationVar(&c.HeartbeatTimeout, "scraper.heartbeat-timeout", 10*time.Second, "A scraper that has not heartbeated for this long loses its targets to the others.")
	fs.DurationVar(&c.ReloadInterval, "scraper.reload-interval", 5*time.Second, "Minimum interval between target set updates applied to the scrape loops.")
	fs.StringVar(&c.Tenant, "scraper.tenant", tenant.DefaultTenant, "Tenant the scraped samples belong to when multi-tenancy is enabled.")
}

// Validate names the first invalid field by its YAML key.
func (c *Config) Validate() error {
	var errs []error
	if c.Tokens < 1 {
		errs = append(errs, errors.New("tokens: must be at least 1"))
	}
	if c.Heartbeat <= 0 {
		errs = append(errs, errors.New("heartbeat: must be positive"))
	}
	if c.HeartbeatTimeout <= c.Heartbeat {
		errs = append(errs, errors.New("heartbeat_timeout: must exceed heartbeat"))
	}
	if c.ReloadInterval <= 0 {
		errs = append(errs, errors.New("reload_interval: must be positive"))
	}
	if err := tenant.Validate(c.Tenant); err != nil {
		errs = append(errs, fmt.Errorf("tenant: %w", err))
	}
	return errors.Join(errs...)
}

// RingConfig is the cluster configuration of the scraper ring for the
// instance id at addr: one owner per target, and a scraper that stops
// leaves the ring at once so its targets move without waiting for a
// timeout.
func (c *Config) RingConfig(id, addr string) cluster.Config {
	return cluster.Config{
		ReplicationFactor:    1,
		Tokens:               c.Tokens,
		Heartbeat:            c.Heartbeat,
		HeartbeatTimeout:     c.HeartbeatTimeout,
		InstanceID:           id,
		InstanceAddr:         addr,
		UnregisterOnShutdown: true,
		Name:                 RingName,
	}
}
