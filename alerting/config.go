package alerting

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/pharos-tsdb/pharos/internal/tlsconfig"
)

// Config is the `notifier:` YAML section. Field meanings and defaults
// follow the upstream alertmanager flags of the same name.
type Config struct {
	ConfigFile  string `yaml:"config_file"`  // alertmanager.yml, used verbatim
	DataDir     string `yaml:"data_dir"`     // silences and nflog snapshots
	ExternalURL string `yaml:"external_url"` // links in notifications
	// APITimeout and APIConcurrency bound API v2 GET requests (upstream
	// --web.timeout and --web.get-concurrency); 0 means upstream default.
	APITimeout     time.Duration `yaml:"api_timeout"`
	APIConcurrency int           `yaml:"api_concurrency"`

	Retention           time.Duration `yaml:"retention"`
	MaintenanceInterval time.Duration `yaml:"maintenance_interval"`
	AlertGCInterval     time.Duration `yaml:"alert_gc_interval"`
	PerAlertNameLimit   int           `yaml:"per_alertname_limit"`
	MaxSilences         int           `yaml:"max_silences"`
	MaxSilenceSizeBytes int           `yaml:"max_silence_size_bytes"`
	DispatchStartDelay  time.Duration `yaml:"dispatch_start_delay"`

	ClusterBind          string        `yaml:"cluster_bind"` // "" disables clustering
	ClusterAdvertise     string        `yaml:"cluster_advertise"`
	ClusterPeerName      string        `yaml:"cluster_peer_name"`
	ClusterLabel         string        `yaml:"cluster_label"`
	Peers                []string      `yaml:"peers"`
	PeerTimeout          time.Duration `yaml:"peer_timeout"`
	GossipInterval       time.Duration `yaml:"gossip_interval"`
	PushPullInterval     time.Duration `yaml:"pushpull_interval"`
	SettleTimeout        time.Duration `yaml:"settle_timeout"`
	TCPTimeout           time.Duration `yaml:"tcp_timeout"`
	ProbeTimeout         time.Duration `yaml:"probe_timeout"`
	ProbeInterval        time.Duration `yaml:"probe_interval"`
	ReconnectInterval    time.Duration `yaml:"reconnect_interval"`
	ReconnectTimeout     time.Duration `yaml:"reconnect_timeout"`
	PeersResolveTimeout  time.Duration `yaml:"peers_resolve_timeout"`
	ClusterTLSConfigFile string        `yaml:"cluster_tls_config"`

	// ClusterTLS is mutual TLS for the cluster from certificate files, as
	// Pharos's other links take it; an alternative to ClusterTLSConfigFile
	// (tls.go).
	ClusterTLS tlsconfig.PeerConfig `yaml:"cluster_tls"`

	// MultiTenant runs one Alertmanager per tenant (X-Scope-OrgID). It
	// is not a key of this section: the caller sets it from the
	// top-level multitenancy.enabled.
	MultiTenant bool `yaml:"-"`
	// MaxTenants bounds the tenants whose Alertmanager runs here, and so
	// the per-tenant (`user`) metric series; 0 means no limit.
	MaxTenants int `yaml:"max_tenants"`
}

type stringsFlag struct{ s *[]string }

func (f stringsFlag) String() string {
	if f.s == nil {
		return ""
	}
	return strings.Join(*f.s, ",")
}

func (f stringsFlag) Set(v string) error {
	*f.s = append(*f.s, v)
	return nil
}

// RegisterFlags registers the notifier.* flags; defaults mirror the
// upstream alertmanager binary.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ConfigFile, "notifier.config-file", "", "Alertmanager configuration file (alertmanager.yml, verbatim). Empty: an embedded config that routes everything to a receiver without integrations.")
	fs.StringVar(&c.DataDir, "notifier.data-dir", "", "Directory for silence and notification log snapshots. Empty: <storage.path>/notifier.")
	fs.StringVar(&c.ExternalURL, "notifier.external-url", "", "URL under which the notifier is externally reachable.")
	fs.DurationVar(&c.APITimeout, "notifier.api-timeout", 0, "Timeout for API v2 GET requests; 0 means none.")
	fs.IntVar(&c.APIConcurrency, "notifier.api-concurrency", 0, "Maximum concurrent API v2 GET requests; 0 means max(GOMAXPROCS, 8).")

	fs.DurationVar(&c.Retention, "notifier.retention", 120*time.Hour, "How long to keep silences and notification log entries.")
	fs.DurationVar(&c.MaintenanceInterval, "notifier.maintenance-interval", 15*time.Minute, "Interval between garbage collection and snapshots of silences and the notification log.")
	fs.DurationVar(&c.AlertGCInterval, "notifier.alert-gc-interval", 30*time.Minute, "Interval between alert garbage collection.")
	fs.IntVar(&c.PerAlertNameLimit, "notifier.per-alertname-limit", 0, "Maximum alerts per alertname; 0 means no limit.")
	fs.IntVar(&c.MaxSilences, "notifier.max-silences", 0, "Maximum number of silences including expired; 0 means no limit.")
	fs.IntVar(&c.MaxSilenceSizeBytes, "notifier.max-silence-size-bytes", 0, "Maximum silence size in bytes; 0 means no limit.")
	fs.DurationVar(&c.DispatchStartDelay, "notifier.dispatch-start-delay", 0, "Minimum time to wait before dispatching alerts after start.")

	fs.StringVar(&c.ClusterBind, "notifier.cluster-bind", ":9094", "Gossip listen address; empty disables HA.")
	fs.StringVar(&c.ClusterAdvertise, "notifier.cluster-advertise", "", "Explicit gossip address to advertise.")
	fs.StringVar(&c.ClusterPeerName, "notifier.cluster-peer-name", "", "Explicit peer name; random when empty.")
	fs.StringVar(&c.ClusterLabel, "notifier.cluster-label", "", "Label on every gossip packet to keep clusters apart.")
	fs.Var(stringsFlag{&c.Peers}, "notifier.peer", "Initial gossip peer (repeatable).")
	fs.DurationVar(&c.PeerTimeout, "notifier.peer-timeout", 15*time.Second, "Time to wait between peers before sending notifications.")
	fs.DurationVar(&c.GossipInterval, "notifier.gossip-interval", 200*time.Millisecond, "Interval between gossip messages.")
	fs.DurationVar(&c.PushPullInterval, "notifier.pushpull-interval", time.Minute, "Interval for full gossip state syncs.")
	fs.DurationVar(&c.SettleTimeout, "notifier.settle-timeout", time.Minute, "Maximum time to wait for the cluster to settle before notifying.")
	fs.DurationVar(&c.TCPTimeout, "notifier.tcp-timeout", 10*time.Second, "Timeout for gossip stream connections.")
	fs.DurationVar(&c.ProbeTimeout, "notifier.probe-timeout", 500*time.Millisecond, "Timeout for a probe ack before a peer is suspected.")
	fs.DurationVar(&c.ProbeInterval, "notifier.probe-interval", time.Second, "Interval between random peer probes.")
	fs.DurationVar(&c.ReconnectInterval, "notifier.reconnect-interval", 10*time.Second, "Interval between reconnect attempts to lost peers.")
	fs.DurationVar(&c.ReconnectTimeout, "notifier.reconnect-timeout", 6*time.Hour, "How long to keep trying to reconnect to a lost peer.")
	fs.DurationVar(&c.PeersResolveTimeout, "notifier.peers-resolve-timeout", 15*time.Second, "Time to resolve peer addresses.")
	fs.IntVar(&c.MaxTenants, "notifier.max-tenants", 1000, "With multi-tenancy, the most tenants whose Alertmanager runs in one notifier; a new tenant beyond it gets 429. 0 means no limit.")
	fs.StringVar(&c.ClusterTLSConfigFile, "notifier.cluster-tls-config", "", "Gossip mutual TLS configuration file (experimental upstream).")
	c.ClusterTLS.RegisterFlags("notifier.cluster-tls.", fs)
}

// Validate checks the settings that would otherwise fail deep inside
// the upstream subsystems (zero tickers panic).
func (c *Config) Validate() error {
	if c.ConfigFile == "" {
		return errors.New("notifier.config-file is required")
	}
	if c.DataDir == "" {
		return errors.New("notifier.data-dir is required")
	}
	if err := c.validateClusterTLS(); err != nil {
		return err
	}
	type dur struct {
		name string
		v    time.Duration
	}
	ds := []dur{
		{"retention", c.Retention},
		{"maintenance-interval", c.MaintenanceInterval},
		{"alert-gc-interval", c.AlertGCInterval},
	}
	if c.ClusterBind != "" {
		ds = append(ds,
			dur{"peer-timeout", c.PeerTimeout},
			dur{"gossip-interval", c.GossipInterval},
			dur{"pushpull-interval", c.PushPullInterval},
			dur{"tcp-timeout", c.TCPTimeout},
			dur{"probe-timeout", c.ProbeTimeout},
			dur{"probe-interval", c.ProbeInterval},
			dur{"reconnect-interval", c.ReconnectInterval},
			dur{"reconnect-timeout", c.ReconnectTimeout},
			dur{"peers-resolve-timeout", c.PeersResolveTimeout},
		)
	}
	for _, d := range ds {
		if d.v <= 0 {
			return fmt.Errorf("notifier.%s must be positive", d.name)
		}
	}
	if c.MaxTenants < 0 {
		return errors.New("notifier.max_tenants must not be negative")
	}
	if c.DispatchStartDelay < 0 {
		return errors.New("notifier.dispatch-start-delay must not be negative")
	}
	return nil
}
