package cluster

import (
	"errors"
	"flag"
	"os"
	"time"
)

// Config is the `ring:` section: how series are replicated, and how this
// process's instance (when it is an ingester) appears in the ring.
type Config struct {
	ReplicationFactor int           `yaml:"replication_factor"`
	Tokens            int           `yaml:"tokens"`
	Heartbeat         time.Duration `yaml:"heartbeat"`
	HeartbeatTimeout  time.Duration `yaml:"heartbeat_timeout"`
	Zone              string        `yaml:"zone"`
	InstanceID        string        `yaml:"instance_id"`
	// InstanceAddr is the gRPC address other roles reach this ingester at.
	InstanceAddr         string `yaml:"instance_addr"`
	UnregisterOnShutdown bool   `yaml:"unregister_on_shutdown"`
	// AutoForgetAfter removes instances whose heartbeat is older than this;
	// zero means 10 × HeartbeatTimeout.
	AutoForgetAfter time.Duration `yaml:"auto_forget_after"`

	// Name tells rings sharing one registry apart: a named ring's metrics
	// are pharos_<name>_ring_*, the unnamed (ingester) ring's pharos_ring_*.
	// It is set in code, not configured.
	Name string `yaml:"-"`
}

// metricPrefix is the start of this ring's metric names.
func (c *Config) metricPrefix() string {
	if c.Name == "" {
		return "pharos_ring_"
	}
	return "pharos_" + c.Name + "_ring_"
}

// RegisterFlags registers the ring.* flags, which also define the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.IntVar(&c.ReplicationFactor, "ring.replication-factor", 3, "Number of ingesters each series is written to.")
	fs.IntVar(&c.Tokens, "ring.tokens", 128, "Number of tokens this ingester owns in the ring.")
	fs.DurationVar(&c.Heartbeat, "ring.heartbeat", 5*time.Second, "How often this ingester refreshes its ring entry.")
	fs.DurationVar(&c.HeartbeatTimeout, "ring.heartbeat-timeout", time.Minute, "An instance that has not heartbeated for this long is unhealthy.")
	fs.StringVar(&c.Zone, "ring.zone", "", "Availability zone of this ingester; replicas of a series go to distinct zones.")
	fs.StringVar(&c.InstanceID, "ring.instance-id", host, "ID of this ingester in the ring; must be stable across restarts.")
	fs.StringVar(&c.InstanceAddr, "ring.instance-addr", "", "gRPC host:port other roles reach this ingester at.")
	fs.BoolVar(&c.UnregisterOnShutdown, "ring.unregister-on-shutdown", true, "Remove this ingester from the ring on shutdown; false keeps its entry and tokens for a restart.")
	fs.DurationVar(&c.AutoForgetAfter, "ring.auto-forget-after", 0, "Forget instances unhealthy for this long. 0 means 10 × ring.heartbeat-timeout.")
}

// Validate reports configuration errors in the replication settings.
func (c *Config) Validate() error {
	var errs []error
	if c.ReplicationFactor < 1 {
		errs = append(errs, errors.New("ring.replication-factor must be at least 1"))
	}
	if c.Tokens < 1 {
		errs = append(errs, errors.New("ring.tokens must be at least 1"))
	}
	if c.Heartbeat <= 0 {
		errs = append(errs, errors.New("ring.heartbeat must be positive"))
	}
	if c.HeartbeatTimeout <= c.Heartbeat {
		errs = append(errs, errors.New("ring.heartbeat-timeout must exceed ring.heartbeat"))
	}
	if c.AutoForgetAfter < 0 {
		errs = append(errs, errors.New("ring.auto-forget-after must not be negative"))
	} else if c.AutoForgetAfter > 0 && c.AutoForgetAfter <= c.HeartbeatTimeout {
		errs = append(errs, errors.New("ring.auto-forget-after must exceed ring.heartbeat-timeout"))
	}
	return errors.Join(errs...)
}

// validateInstance checks the settings only a Lifecycler needs.
func (c *Config) validateInstance() error {
	var errs []error
	if c.InstanceID == "" {
		errs = append(errs, errors.New("ring.instance-id must be set"))
	}
	if c.InstanceAddr == "" {
		errs = append(errs, errors.New("ring.instance-addr must be set"))
	}
	return errors.Join(c.Validate(), errors.Join(errs...))
}

func (c *Config) autoForgetAfter() time.Duration {
	if c.AutoForgetAfter > 0 {
		return c.AutoForgetAfter
	}
	return 10 * c.HeartbeatTimeout
}
