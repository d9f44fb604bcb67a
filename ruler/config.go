package ruler

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/pharos-tsdb/pharos/internal/dnsaddr"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/internal/tlsconfig"
)

// Config is the `ruler:` YAML section.
type Config struct {
	// RaftBind is the raft transport's listen address.
	RaftBind string `yaml:"raft_bind"`
	// RaftAdvertise is the address peers dial; empty derives it from RaftBind.
	RaftAdvertise string `yaml:"raft_advertise"`
	// RaftDir holds raft.db (log and stable store) and snapshots; empty
	// means <storage.path>/raft.
	RaftDir string `yaml:"raft_dir"`
	// Peers are the raft addresses of all rulers, this one included. A
	// "dns+name:port" entry is resolved to every address of name (a
	// StatefulSet's headless Service).
	Peers stringList `yaml:"peers"`
	// HTTPAdvertise is the base URL followers forward API requests to when
	// this replica leads; empty derives it from the HTTP listener.
	HTTPAdvertise string `yaml:"http_advertise"`

	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	ResendDelay        time.Duration `yaml:"resend_delay"`
	QueryOffset        time.Duration `yaml:"query_offset"`
	ExternalURL        string        `yaml:"external_url"`
	// AlertmanagerURL lists notifiers: http(s) URLs, or dns+ / dnssrv+
	// names resolved continuously. Empty in all-in-one mode means the
	// embedded notifier.
	AlertmanagerURL     stringList    `yaml:"alertmanager_url"`
	NotificationTimeout time.Duration `yaml:"notification_timeout"`
	NotificationQueue   int           `yaml:"notification_queue_capacity"`
	// RuleFilesTenant owns the groups of the rule files (rules.files):
	// they evaluate over its data and its alerts carry its X-Scope-OrgID.
	RuleFilesTenant string `yaml:"rule_files_tenant"`

	// IsolatedFallback lets a replica that has seen no leader for
	// IsolatedFallbackAfter evaluate and send on its own.
	IsolatedFallback      bool          `yaml:"isolated_fallback"`
	IsolatedFallbackAfter time.Duration `yaml:"isolated_fallback_after"`

	// Raft timing. The lease must be shorter than the heartbeat timeout:
	// a leader that loses its quorum then steps down before any follower
	// may start an election.
	HeartbeatTimeout   time.Duration `yaml:"raft_heartbeat_timeout"`
	ElectionTimeout    time.Duration `yaml:"raft_election_timeout"`
	LeaderLeaseTimeout time.Duration `yaml:"raft_leader_lease_timeout"`
	SnapshotInterval   time.Duration `yaml:"raft_snapshot_interval"`
	SnapshotThreshold  uint64        `yaml:"raft_snapshot_threshold"`

	// RaftTLS is mutual TLS between the rulers' raft transports (tls.go).
	RaftTLS tlsconfig.PeerConfig `yaml:"raft_tls"`
}

// RegisterFlags registers the ruler.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.RaftBind, "ruler.raft-bind", ":9096", "Listen address of the ruler's raft transport.")
	fs.StringVar(&c.RaftAdvertise, "ruler.raft-advertise", "", "Raft address peers reach this ruler at; empty derives it from ruler.raft-bind.")
	fs.StringVar(&c.RaftDir, "ruler.raft-dir", "", "Directory of the raft log, stable store and snapshots. Empty: <storage.path>/raft.")
	fs.Var(&c.Peers, "ruler.peers", "Comma-separated raft addresses of every ruler (this one included); dns+name:port resolves a headless Service. Empty: a single ruler.")
	fs.StringVar(&c.HTTPAdvertise, "ruler.http-advertise", "", "Base URL of this process's HTTP server for followers to forward API requests to; empty derives it.")
	fs.DurationVar(&c.EvaluationInterval, "ruler.evaluation-interval", time.Minute, "Default interval of rule groups that set none (Prometheus's global evaluation_interval).")
	fs.DurationVar(&c.ResendDelay, "ruler.resend-delay", time.Minute, "Minimum time before a firing alert is sent to the notifiers again.")
	fs.DurationVar(&c.QueryOffset, "ruler.query-offset", 0, "Default offset of rule evaluation timestamps, for late data.")
	fs.StringVar(&c.ExternalURL, "ruler.external-url", "", "URL the generator links of alerts point at (default: http://<hostname>:<http port>, as Prometheus's --web.external-url).")
	fs.Var(&c.AlertmanagerURL, "ruler.alertmanager-url", "Comma-separated notifier URLs (http://host:9093, dns+http://name:9093, dnssrv+http://_web._tcp.name). Empty in all-in-one mode: the embedded notifier.")
	fs.DurationVar(&c.NotificationTimeout, "ruler.notification-timeout", 10*time.Second, "Timeout of one send to a notifier.")
	fs.IntVar(&c.NotificationQueue, "ruler.notification-queue-capacity", 10000, "Alerts queued for the notifiers before the oldest are dropped.")
	fs.StringVar(&c.RuleFilesTenant, "ruler.rule-files-tenant", tenant.DefaultTenant, "Tenant that owns the rule groups of rules.files.")
	fs.BoolVar(&c.IsolatedFallback, "ruler.isolated-fallback", false, "Evaluate and send alerts on this replica when it has seen no raft leader for ruler.isolated-fallback-after (AP instead of CP; see docs/ruler.md).")
	fs.DurationVar(&c.IsolatedFallbackAfter, "ruler.isolated-fallback-after", time.Minute, "How long without a leader before isolated fallback evaluation starts.")
	fs.DurationVar(&c.HeartbeatTimeout, "ruler.raft-heartbeat-timeout", time.Second, "Raft follower heartbeat timeout.")
	fs.DurationVar(&c.ElectionTimeout, "ruler.raft-election-timeout", time.Second, "Raft candidate election timeout.")
	fs.DurationVar(&c.LeaderLeaseTimeout, "ruler.raft-leader-lease-timeout", 500*time.Millisecond, "How long a leader keeps leading without reaching a quorum; must be below ruler.raft-heartbeat-timeout.")
	fs.DurationVar(&c.SnapshotInterval, "ruler.raft-snapshot-interval", 2*time.Minute, "How often raft checks whether to snapshot the FSM.")
	fs.Uint64Var(&c.SnapshotThreshold, "ruler.raft-snapshot-threshold", 1024, "Log entries since the last snapshot that trigger a new one.")
	c.RaftTLS.RegisterFlags("ruler.raft-tls.", fs)
}

// Validate reports the first invalid field by its YAML name.
func (c *Config) Validate() error {
	if c.RaftBind == "" {
		return errors.New("raft_bind: must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.RaftBind); err != nil {
		return fmt.Errorf("raft_bind: %w", err)
	}
	for _, p := range c.Peers {
		if err := dnsaddr.Validate(p); err != nil {
			return fmt.Errorf("peers: %w", err)
		}
		if strings.HasPrefix(p, "dnssrv+") {
			// SRV records name hosts, and raft knows a peer by the
			// address it advertises (an IP in a StatefulSet).
			return fmt.Errorf("peers: %q: dnssrv+ is not supported, use dns+name:port", p)
		}
	}
	for _, u := range c.AlertmanagerURL {
		if _, err := parseAlertmanagerURL(u); err != nil {
			return fmt.Errorf("alertmanager_url: %w", err)
		}
	}
	if err := tenant.Validate(c.RuleFilesTenant); err != nil {
		return fmt.Errorf("rule_files_tenant: %w", err)
	}
	if err := c.RaftTLS.Validate(); err != nil {
		return fmt.Errorf("raft_tls: %w", err)
	}
	if c.ExternalURL != "" {
		if _, err := url.Parse(c.ExternalURL); err != nil {
			return fmt.Errorf("external_url: %w", err)
		}
	}
	switch {
	case c.EvaluationInterval <= 0:
		return errors.New("evaluation_interval: must be positive")
	case c.ResendDelay <= 0:
		return errors.New("resend_delay: must be positive")
	case c.QueryOffset < 0:
		return errors.New("query_offset: must not be negative")
	case c.NotificationTimeout <= 0:
		return errors.New("notification_timeout: must be positive")
	case c.NotificationQueue <= 0:
		return errors.New("notification_queue_capacity: must be positive")
	case c.IsolatedFallback && c.IsolatedFallbackAfter <= 0:
		return errors.New("isolated_fallback_after: must be positive")
	case c.HeartbeatTimeout <= 0 || c.ElectionTimeout <= 0:
		return errors.New("raft_heartbeat_timeout, raft_election_timeout: must be positive")
	case c.LeaderLeaseTimeout <= 0 || c.LeaderLeaseTimeout >= c.HeartbeatTimeout:
		return errors.New("raft_leader_lease_timeout: must be positive and below raft_heartbeat_timeout, or two leaders could evaluate at once")
	}
	return nil
}

// RulesConfig is the top-level `rules:` section: rule files in the
// Prometheus format, as rule_files in prometheus.yml.
type RulesConfig struct {
	Files stringList `yaml:"files"`
}

// RegisterFlags registers the rules.* flags.
func (c *RulesConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(&c.Files, "rules.files", "Comma-separated rule file globs in the Prometheus rule-file format.")
}

// stringList is a comma-separated flag that is also a YAML list.
type stringList []string

func (s *stringList) String() string {
	if s == nil {
		return ""
	}
	return strings.Join(*s, ",")
}

// Set replaces the list: flags are applied more than once when a config
// file is laid between defaults and explicit flags.
func (s *stringList) Set(v string) error {
	*s = nil
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}
