package gossip

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pharos-tsdb/pharos/internal/dnsaddr"
)

// Config configures the memberlist transport. The YAML section is
// `memberlist:`.
type Config struct {
	// Bind is the host:port for gossip over UDP and TCP.
	Bind string `yaml:"bind"`
	// Advertise is the host:port peers reach this node at; empty derives it
	// from Bind (or the first private address when Bind has no host).
	Advertise string `yaml:"advertise"`
	// Join lists seed peers: host:port, dns+name:port (every A/AAAA
	// record), dnssrv+name (every SRV record).
	Join []string `yaml:"join"`
	// NodeName names this node in memberlist; empty picks hostname plus a
	// random suffix, so a restarted pod never clashes with its old self.
	NodeName string `yaml:"node_name"`
	// ClusterLabel keeps clusters sharing a network apart: nodes only accept
	// gossip carrying the same label.
	ClusterLabel string `yaml:"cluster_label"`

	GossipInterval   time.Duration `yaml:"gossip_interval"`
	GossipNodes      int           `yaml:"gossip_nodes"`
	PushPullInterval time.Duration `yaml:"push_pull_interval"`
	ProbeInterval    time.Duration `yaml:"probe_interval"`
	ProbeTimeout     time.Duration `yaml:"probe_timeout"`
	RetransmitFactor int           `yaml:"retransmit_factor"`
	// DeadNodeReclaimTime lets a node rejoin under a dead node's name at a
	// new address after this long.
	DeadNodeReclaimTime time.Duration `yaml:"dead_node_reclaim_time"`

	// JoinRetryInterval is the pause between join attempts until one
	// succeeds.
	JoinRetryInterval time.Duration `yaml:"join_retry_interval"`
	// RejoinInterval, when set, re-joins the seeds periodically so a
	// healed network partition merges back. Zero disables.
	RejoinInterval time.Duration `yaml:"rejoin_interval"`
	// LeaveTimeout bounds how long Close waits for queued updates to go out
	// and for the leave message to spread.
	LeaveTimeout time.Duration `yaml:"leave_timeout"`
	// TombstoneRetention is how long entries of instances that left are
	// kept, so the leave reaches every member before it is forgotten.
	TombstoneRetention time.Duration `yaml:"tombstone_retention"`
	// EncryptionKeyFile holds the AES key (16, 24 or 32 bytes, raw or
	// base64) that encrypts and authenticates all gossip (encryption.go).
	EncryptionKeyFile string `yaml:"encryption_key_file"`
}

// RegisterFlags registers the memberlist.* flags, which also define the
// defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Bind, "memberlist.bind", ":7946", "Address to listen on for gossip (UDP and TCP).")
	fs.StringVar(&c.Advertise, "memberlist.advertise", "", "Address peers reach this node at. Empty derives it from memberlist.bind.")
	fs.Var((*stringList)(&c.Join), "memberlist.join", "Peer to join: host:port, dns+name:port or dnssrv+name. Repeat or separate with commas.")
	fs.StringVar(&c.NodeName, "memberlist.node-name", "", "Name of this node in the gossip cluster. Empty picks hostname plus a random suffix.")
	fs.StringVar(&c.ClusterLabel, "memberlist.cluster-label", "", "Label that peers must share to gossip with this node.")
	fs.DurationVar(&c.GossipInterval, "memberlist.gossip-interval", 200*time.Millisecond, "How often to gossip queued updates.")
	fs.IntVar(&c.GossipNodes, "memberlist.gossip-nodes", 3, "Peers to gossip to per interval.")
	fs.DurationVar(&c.PushPullInterval, "memberlist.push-pull-interval", 30*time.Second, "How often to exchange full state with a random peer.")
	fs.DurationVar(&c.ProbeInterval, "memberlist.probe-interval", time.Second, "How often to probe a random peer for failure detection.")
	fs.DurationVar(&c.ProbeTimeout, "memberlist.probe-timeout", 500*time.Millisecond, "How long to wait for a probe acknowledgement.")
	fs.IntVar(&c.RetransmitFactor, "memberlist.retransmit-factor", 4, "Each update is retransmitted retransmit-factor × log(members+1) times.")
	fs.DurationVar(&c.DeadNodeReclaimTime, "memberlist.dead-node-reclaim-time", 10*time.Second, "After this long, a dead node's name may rejoin from another address.")
	fs.DurationVar(&c.JoinRetryInterval, "memberlist.join-retry-interval", 2*time.Second, "Pause between join attempts.")
	fs.DurationVar(&c.RejoinInterval, "memberlist.rejoin-interval", 0, "Re-join the seed peers this often to heal partitions. 0 disables.")
	fs.DurationVar(&c.LeaveTimeout, "memberlist.leave-timeout", 5*time.Second, "Time allowed to flush updates and announce leaving on shutdown.")
	fs.DurationVar(&c.TombstoneRetention, "memberlist.tombstone-retention", 5*time.Minute, "How long to remember instances that left the ring.")
	fs.StringVar(&c.EncryptionKeyFile, "memberlist.encryption-key-file", "", "File with the AES-128/192/256 key (raw or base64) that encrypts gossip; members without it are refused. Empty: plaintext gossip.")
}

// Validate reports configuration errors.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := splitHostPort(c.Bind); err != nil {
		errs = append(errs, fmt.Errorf("memberlist.bind: %w", err))
	}
	if c.Advertise != "" {
		if _, _, err := splitHostPort(c.Advertise); err != nil {
			errs = append(errs, fmt.Errorf("memberlist.advertise: %w", err))
		}
	}
	for _, j := range c.Join {
		if err := dnsaddr.Validate(j); err != nil {
			errs = append(errs, fmt.Errorf("memberlist.join: %w", err))
		}
	}
	for name, d := range map[string]time.Duration{
		"gossip-interval": c.GossipInterval, "push-pull-interval": c.PushPullInterval,
		"probe-interval": c.ProbeInterval, "probe-timeout": c.ProbeTimeout,
		"join-retry-interval": c.JoinRetryInterval, "tombstone-retention": c.TombstoneRetention,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("memberlist.%s must be positive", name))
		}
	}
	if c.RejoinInterval < 0 || c.LeaveTimeout < 0 || c.DeadNodeReclaimTime < 0 {
		errs = append(errs, errors.New("memberlist: durations must not be negative"))
	}
	if c.EncryptionKeyFile != "" {
		if _, err := readEncryptionKey(c.EncryptionKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("memberlist.encryption_key_file: %w", err))
		}
	}
	if c.GossipNodes < 1 || c.RetransmitFactor < 1 {
		errs = append(errs, errors.New("memberlist.gossip-nodes and memberlist.retransmit-factor must be at least 1"))
	}
	return errors.Join(errs...)
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	return host, port, nil
}

// stringList is a repeatable flag that also splits on commas.
type stringList []string

func (s *stringList) String() string {
	if s == nil {
		return ""
	}
	return strings.Join(*s, ",")
}

func (s *stringList) Set(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}
