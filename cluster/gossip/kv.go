package gossip

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/internal/dnsaddr"
)

// maxPacketMsg is the largest update sent by UDP gossip. memberlist's UDP
// buffer is 1400 bytes and piggy-backed messages share it with headers;
// bigger updates (instances with several hundred tokens) go over TCP.
const maxPacketMsg = 1200

// KV is the gossiped ring descriptor of this process. Get and Watch may be
// called from any goroutine. Memberlist calls its delegate methods from its
// own goroutines.
type KV struct {
	cfg    Config
	logger *slog.Logger
	ml     atomic.Pointer[memberlist.Memberlist]
	queue  memberlist.TransmitLimitedQueue
	m      metrics

	mu       sync.Mutex // serialises merges with watcher notification
	desc     atomic.Pointer[ring.Desc]
	watchers map[chan *ring.Desc]struct{}

	joined     chan struct{}
	joinedOnce sync.Once
	sends      sync.WaitGroup // reliable (TCP) sends in flight
	closing    atomic.Bool    // set by Close: no new sends
	closeOnce  sync.Once
	closeErr   error
}

type metrics struct {
	received, receivedBytes *prometheus.CounterVec
	sent, sentBytes         *prometheus.CounterVec
	updates                 prometheus.Counter
	decodeErrors            prometheus.Counter
	tombstonesRemoved       prometheus.Counter
}

// New binds the gossip ports and starts memberlist. It does not join any
// peer yet: Run does, so that a process starts even while its seeds are
// unreachable. Metrics go to reg, which may be nil.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*KV, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	k := &KV{
		cfg:      cfg,
		logger:   logger,
		watchers: map[chan *ring.Desc]struct{}{},
		joined:   make(chan struct{}),
	}
	k.desc.Store(ring.NewDesc())
	k.queue = memberlist.TransmitLimitedQueue{NumNodes: k.numMembers, RetransmitMult: cfg.RetransmitFactor}

	f := promauto.With(reg)
	k.m = metrics{
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_memberlist_messages_received_total", Help: "Ring messages received, by kind (broadcast, push_pull).",
		}, []string{"kind"}),
		receivedBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_memberlist_received_bytes_total", Help: "Bytes of ring messages received, by kind.",
		}, []string{"kind"}),
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_memberlist_messages_sent_total", Help: "Ring messages queued or sent, by kind (broadcast, reliable, push_pull).",
		}, []string{"kind"}),
		sentBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_memberlist_sent_bytes_total", Help: "Bytes of ring messages queued or sent, by kind.",
		}, []string{"kind"}),
		updates: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_memberlist_instance_updates_total", Help: "Instance entries that changed the local ring descriptor.",
		}),
		decodeErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_memberlist_decode_errors_total", Help: "Ring messages dropped because they could not be decoded.",
		}),
		tombstonesRemoved: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_memberlist_tombstones_removed_total", Help: "Entries of departed instances garbage-collected after the retention.",
		}),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pharos_memberlist_members", Help: "Live members of the gossip cluster, as seen by this node.",
	}, func() float64 { return float64(k.numMembers()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pharos_memberlist_broadcast_queue_length", Help: "Updates waiting to be gossiped.",
	}, func() float64 { return float64(k.queue.NumQueued()) })

	mlc, err := k.memberlistConfig()
	if err != nil {
		return nil, err
	}
	ml, err := memberlist.Create(mlc)
	if err != nil {
		return nil, fmt.Errorf("start memberlist: %w", err)
	}
	k.ml.Store(ml)
	if len(cfg.Join) == 0 {
		k.markJoined()
	}
	return k, nil
}

func (k *KV) memberlistConfig() (*memberlist.Config, error) {
	c := memberlist.DefaultLANConfig()
	host, port, err := splitHostPort(k.cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("memberlist.bind: %w", err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	c.BindAddr, c.BindPort = host, port
	if k.cfg.Advertise != "" {
		ahost, aport, err := splitHostPort(k.cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("memberlist.advertise: %w", err)
		}
		c.AdvertiseAddr, c.AdvertisePort = ahost, aport
	}
	c.Name = k.cfg.NodeName
	if c.Name == "" {
		c.Name, err = randomNodeName()
		if err != nil {
			return nil, err
		}
	}
	c.Label = k.cfg.ClusterLabel
	c.GossipInterval = k.cfg.GossipInterval
	c.GossipNodes = k.cfg.GossipNodes
	c.PushPullInterval = k.cfg.PushPullInterval
	c.ProbeInterval = k.cfg.ProbeInterval
	c.ProbeTimeout = k.cfg.ProbeTimeout
	c.RetransmitMult = k.cfg.RetransmitFactor
	c.DeadNodeReclaimTime = k.cfg.DeadNodeReclaimTime
	if err := setEncryption(c, k.cfg.EncryptionKeyFile); err != nil {
		return nil, err
	}
	c.Delegate = delegate{k}
	c.Logger = newStdLogger(k.logger.With("component", "memberlist"))
	c.LogOutput = nil
	return c, nil
}

func randomNodeName() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	var b [4]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	return host + "-" + hex.EncodeToString(b[:]), nil
}

func (k *KV) numMembers() int {
	if ml := k.ml.Load(); ml != nil {
		return ml.NumMembers()
	}
	return 1
}

// LocalAddr returns the host:port peers reach this node at.
func (k *KV) LocalAddr() string {
	n := k.ml.Load().LocalNode()
	return n.Address()
}

// NumMembers returns the number of live gossip members, this node included.
func (k *KV) NumMembers() int { return k.numMembers() }

// Joined is closed once the node has joined at least one seed (at once when
// no seeds are configured).
func (k *KV) Joined() <-chan struct{} { return k.joined }

func (k *KV) markJoined() { k.joinedOnce.Do(func() { close(k.joined) }) }

// Run joins the seeds, retrying until one answers or ctx ends, then
// garbage-collects tombstones and, if configured, re-joins periodically,
// until ctx ends. It returns nil on cancellation. Call Close afterwards.
func (k *KV) Run(ctx context.Context) error {
	// Only cancellation ends the join loop early, and that is no error.
	if len(k.cfg.Join) > 0 && k.join(ctx) != nil {
		return nil
	}
	gc := time.NewTicker(max(k.cfg.TombstoneRetention/4, 10*time.Millisecond))
	defer gc.Stop()
	var rejoin <-chan time.Time
	if k.cfg.RejoinInterval > 0 && len(k.cfg.Join) > 0 {
		t := time.NewTicker(k.cfg.RejoinInterval)
		defer t.Stop()
		rejoin = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-gc.C:
			k.removeTombstones(now)
		case <-rejoin:
			if _, err := k.joinOnce(ctx); err != nil {
				k.logger.Warn("rejoin failed", "err", err)
			}
		}
	}
}

func (k *KV) join(ctx context.Context) error {
	for {
		n, err := k.joinOnce(ctx)
		if n > 0 {
			k.logger.Info("joined gossip cluster", "contacted", n, "members", k.numMembers())
			k.markJoined()
			return nil
		}
		k.logger.Warn("join failed, retrying", "err", err, "in", k.cfg.JoinRetryInterval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(k.cfg.JoinRetryInterval):
		}
	}
}

func (k *KV) joinOnce(ctx context.Context) (int, error) {
	addrs, rerr := dnsaddr.Resolve(ctx, dnsaddr.Net{}, k.cfg.Join)
	if len(addrs) == 0 {
		return 0, errors.Join(errors.New("no seed address resolved"), rerr)
	}
	n, err := k.ml.Load().Join(addrs)
	if err != nil {
		err = fmt.Errorf("join %v: %w", addrs, err)
	}
	return n, errors.Join(err, rerr)
}

func (k *KV) removeTombstones(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cur := k.desc.Load()
	next := cur.Clone()
	if n := next.RemoveTombstones(now, k.cfg.TombstoneRetention); n > 0 {
		k.m.tombstonesRemoved.Add(float64(n))
		k.desc.Store(next)
		k.notifyLocked(next)
	}
}

// Close announces that this node leaves, after giving queued updates up to
// half of LeaveTimeout to go out, and stops memberlist. Stop everything that
// calls Merge first, so its final updates (LEAVING, tombstones) are sent.
func (k *KV) Close() error {
	k.closeOnce.Do(func() {
		k.closing.Store(true)
		ml := k.ml.Load()
		deadline := time.Now().Add(k.cfg.LeaveTimeout / 2)
		for k.queue.NumQueued() > 0 && ml.NumMembers() > 1 && time.Now().Before(deadline) {
			time.Sleep(k.cfg.GossipInterval)
		}
		var errs []error
		if err := ml.Leave(k.cfg.LeaveTimeout / 2); err != nil {
			// Not fatal: peers then detect the node as failed instead of
			// departed, a few probe intervals later.
			k.logger.Warn("leave announcement not confirmed", "err", err)
		}
		if err := ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("stop memberlist: %w", err))
		}
		k.sends.Wait()
		k.mu.Lock()
		for ch := range k.watchers {
			delete(k.watchers, ch)
			close(ch)
		}
		k.mu.Unlock()
		k.closeErr = errors.Join(errs...)
	})
	return k.closeErr
}

// Get returns the current descriptor. It is shared: do not modify it.
func (k *KV) Get() *ring.Desc { return k.desc.Load() }

// Merge applies a local change (for example this instance's heartbeat) and
// gossips the entries that changed. After Close it only updates the local
// copy.
func (k *KV) Merge(delta *ring.Desc) {
	if changed := k.merge(delta); changed != nil {
		k.broadcast(changed)
	}
}

// merge folds delta into the descriptor, copy-on-write, and returns the
// entries that changed.
func (k *KV) merge(delta *ring.Desc) *ring.Desc {
	k.mu.Lock()
	defer k.mu.Unlock()
	cur := k.desc.Load()
	changed := cur.Updates(delta)
	if changed == nil {
		return nil
	}
	next := cur.Clone()
	next.Merge(changed)
	k.desc.Store(next)
	k.m.updates.Add(float64(changed.Len()))
	k.notifyLocked(next)
	return changed
}

// Watch returns a channel that receives the current descriptor at once and
// then every new version. Slow readers skip intermediate versions but always
// get the latest. The channel is closed when ctx ends or the KV closes.
func (k *KV) Watch(ctx context.Context) <-chan *ring.Desc {
	ch := make(chan *ring.Desc, 1)
	k.mu.Lock()
	ch <- k.desc.Load()
	k.watchers[ch] = struct{}{}
	k.mu.Unlock()
	context.AfterFunc(ctx, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if _, ok := k.watchers[ch]; ok {
			delete(k.watchers, ch)
			close(ch)
		}
	})
	return ch
}

func (k *KV) notifyLocked(d *ring.Desc) {
	for ch := range k.watchers {
		select {
		case <-ch: // drop the stale version
		default:
		}
		ch <- d
	}
}

// broadcast gossips each changed instance as its own message, so a newer
// update of an instance replaces an older one still in the queue.
func (k *KV) broadcast(changed *ring.Desc) {
	if k.closing.Load() {
		return
	}
	for id, in := range changed.Instances {
		msg := (&ring.Desc{Instances: map[string]ring.Instance{id: in}}).Marshal()
		if len(msg) > maxPacketMsg {
			k.sendReliable(msg)
			continue
		}
		k.m.sent.WithLabelValues("broadcast").Inc()
		k.m.sentBytes.WithLabelValues("broadcast").Add(float64(len(msg)))
		k.queue.QueueBroadcast(&broadcast{name: id, msg: msg})
	}
}

// sendReliable pushes an update too big for a packet over TCP to a few
// random peers; push/pull anti-entropy covers the rest.
func (k *KV) sendReliable(msg []byte) {
	ml := k.ml.Load()
	peers := slices.DeleteFunc(slices.Clone(ml.Members()), func(n *memberlist.Node) bool { return n.Name == ml.LocalNode().Name })
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	peers = peers[:min(len(peers), k.cfg.GossipNodes)]
	for _, p := range peers {
		k.sends.Add(1)
		go func() {
			defer k.sends.Done()
			if err := ml.SendReliable(p, msg); err != nil {
				k.logger.Debug("reliable send failed", "peer", p.Name, "err", err)
				return
			}
			k.m.sent.WithLabelValues("reliable").Inc()
			k.m.sentBytes.WithLabelValues("reliable").Add(float64(len(msg)))
		}()
	}
}

type broadcast struct {
	name string
	msg  []byte
}

func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*broadcast)
	return ok && o.name == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// delegate keeps memberlist's callbacks off KV's exported API.
type delegate struct{ k *KV }

func (d delegate) NodeMeta(int) []byte { return nil }

func (d delegate) NotifyMsg(b []byte) {
	d.k.m.received.WithLabelValues("broadcast").Inc()
	d.k.m.receivedBytes.WithLabelValues("broadcast").Add(float64(len(b)))
	in, err := ring.Unmarshal(b)
	if err != nil {
		d.k.m.decodeErrors.Inc()
		d.k.logger.Warn("dropping ring message", "err", err)
		return
	}
	// Forward only what was news here: the epidemic dies out once every
	// member has the update.
	if changed := d.k.merge(in); changed != nil {
		d.k.broadcast(changed)
	}
}

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.k.queue.GetBroadcasts(overhead, limit)
}

func (d delegate) LocalState(bool) []byte {
	b := d.k.desc.Load().Marshal()
	d.k.m.sent.WithLabelValues("push_pull").Inc()
	d.k.m.sentBytes.WithLabelValues("push_pull").Add(float64(len(b)))
	return b
}

func (d delegate) MergeRemoteState(b []byte, _ bool) {
	d.k.m.received.WithLabelValues("push_pull").Inc()
	d.k.m.receivedBytes.WithLabelValues("push_pull").Add(float64(len(b)))
	if len(b) == 0 {
		return
	}
	in, err := ring.Unmarshal(b)
	if err != nil {
		d.k.m.decodeErrors.Inc()
		d.k.logger.Warn("dropping remote ring state", "err", err)
		return
	}
	d.k.merge(in)
}
