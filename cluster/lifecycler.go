package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

// ErrNotRunning is returned by SetState before Run registered the instance
// or after it left.
var ErrNotRunning = errors.New("lifecycler not running")

// Lifecycler is one ingester's presence in the ring: it picks its tokens
// (from the tokens file, from its previous ring entry, or fresh), registers
// JOINING then ACTIVE, heartbeats, forgets long-dead peers, and leaves on
// shutdown.
type Lifecycler struct {
	cfg        Config
	kv         KV
	tokensPath string
	logger     *slog.Logger

	heartbeats prometheus.Counter
	forgotten  prometheus.Counter

	mu         sync.Mutex
	running    bool
	state      ring.State
	tokens     []uint32
	registered int64
	active     chan struct{} // closed on the first ACTIVE
	activeOnce sync.Once
}

// NewLifecycler returns a lifecycler for the instance described by cfg.
// tokensPath is where tokens persist across restarts (conventionally
// <data>/tokens); empty disables persistence. Run it once the KV has joined
// its peers (gossip.KV.Joined), so it finds its previous entry and avoids
// the tokens already taken.
func NewLifecycler(cfg Config, kv KV, tokensPath string, logger *slog.Logger, reg prometheus.Registerer) (*Lifecycler, error) {
	if err := cfg.validateInstance(); err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	return &Lifecycler{
		cfg:        cfg,
		kv:         kv,
		tokensPath: tokensPath,
		logger:     logger.With("instance", cfg.InstanceID),
		state:      ring.StatePending,
		active:     make(chan struct{}),
		heartbeats: f.NewCounter(prometheus.CounterOpts{
			Name: cfg.metricPrefix() + "heartbeats_total", Help: "Heartbeats this instance wrote to the ring.",
		}),
		forgotten: f.NewCounter(prometheus.CounterOpts{
			Name: cfg.metricPrefix() + "auto_forgotten_total", Help: "Unhealthy instances this instance removed from the ring.",
		}),
	}, nil
}

// Active is closed once the instance is ACTIVE in the ring.
func (l *Lifecycler) Active() <-chan struct{} { return l.active }

// State returns the state this instance last wrote.
func (l *Lifecycler) State() ring.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Tokens returns this instance's tokens (nil before Run registers).
func (l *Lifecycler) Tokens() []uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.tokens)
}

// SetState moves the running instance to state and writes it at once, for
// example READONLY to drain an ingester before scaling down, or back to
// ACTIVE. LEFT is reserved to leaving via shutdown.
func (l *Lifecycler) SetState(state ring.State) error {
	if state == ring.StateLeft || state == ring.StatePending {
		return fmt.Errorf("cannot set state %s", state)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		return ErrNotRunning
	}
	l.state = state
	l.writeLocked(time.Now())
	return nil
}

// Run registers the instance and heartbeats until ctx ends; it then marks
// the instance LEAVING and, with unregister_on_shutdown, replaces its entry
// by a tombstone. It returns once the last update is handed to the KV, so
// close the KV only after Run returned.
func (l *Lifecycler) Run(ctx context.Context) error {
	if err := l.register(); err != nil {
		return err
	}
	t := time.NewTicker(l.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.leave()
			return nil
		case now := <-t.C:
			l.heartbeat(now)
		}
	}
}

func (l *Lifecycler) register() error {
	now := time.Now()
	desc := l.kv.Get()
	prev, hadEntry := desc.Get(l.cfg.InstanceID)

	tokens, err := l.chooseTokens(desc, prev)
	if err != nil {
		return err
	}
	if l.tokensPath != "" {
		if err := saveTokens(l.tokensPath, tokens); err != nil {
			return err
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = tokens
	l.registered = now.UnixMilli()
	if hadEntry && prev.State != ring.StateLeft && prev.Registered != 0 {
		l.registered = prev.Registered
	}
	l.running = true
	// JOINING is written first so peers learn the tokens before the
	// instance takes writes: a future hand-over of data would happen here.
	l.state = ring.StateJoining
	l.writeLocked(now)
	l.state = ring.StateActive
	l.writeLocked(now)
	l.activeOnce.Do(func() { close(l.active) })
	l.logger.Info("registered in ring", "tokens", len(tokens), "zone", l.cfg.Zone, "rejoined", hadEntry && prev.State != ring.StateLeft)
	return nil
}

// chooseTokens prefers the tokens file, then the instance's surviving ring
// entry (a restart without a data volume), then fresh random tokens, and
// tops up to the configured count. Fewer tokens than configured are
// completed; more are kept, since dropping tokens would move series.
func (l *Lifecycler) chooseTokens(desc *ring.Desc, prev ring.Instance) ([]uint32, error) {
	var tokens []uint32
	if l.tokensPath != "" {
		t, err := loadTokens(l.tokensPath)
		if err != nil {
			return nil, err
		}
		tokens = t
	}
	if len(tokens) == 0 && prev.State != ring.StateLeft {
		tokens = slices.Clone(prev.Tokens)
	}
	if missing := l.cfg.Tokens - len(tokens); missing > 0 {
		taken := desc.TakenTokens(l.cfg.InstanceID)
		for _, t := range tokens {
			taken[t] = struct{}{}
		}
		tokens = append(tokens, ring.GenerateTokens(missing, taken, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))...)
		slices.Sort(tokens)
	}
	return tokens, nil
}

// writeLocked merges this instance's current entry into the KV with a
// timestamp that beats whatever the KV holds for it (including a tombstone
// written by a peer that wrongly thought it dead).
func (l *Lifecycler) writeLocked(now time.Time) {
	prev, _ := l.kv.Get().Get(l.cfg.InstanceID)
	in := ring.Instance{
		ID:         l.cfg.InstanceID,
		Addr:       l.cfg.InstanceAddr,
		Zone:       l.cfg.Zone,
		State:      l.state,
		Tokens:     l.tokens,
		Timestamp:  ring.NextTimestamp(prev.Timestamp, now),
		Registered: l.registered,
	}
	l.kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{in.ID: in}})
}

func (l *Lifecycler) heartbeat(now time.Time) {
	l.mu.Lock()
	l.resolveConflictsLocked()
	l.writeLocked(now)
	l.mu.Unlock()
	l.heartbeats.Inc()
	l.forgetDead(now)
}

// resolveConflictsLocked replaces tokens this instance shares with another
// one. Two instances joining at once can draw the same token; the one with
// the greater ID gives it up, so exactly one side moves and the ring
// settles. Until then the view orders the duplicates deterministically, so
// every process still agrees on placement.
func (l *Lifecycler) resolveConflictsLocked() {
	desc := l.kv.Get()
	var others map[uint32]string
	for id, in := range desc.Instances {
		if id == l.cfg.InstanceID || in.State == ring.StateLeft {
			continue
		}
		for _, t := range in.Tokens {
			if others == nil {
				others = map[uint32]string{}
			}
			if cur, ok := others[t]; !ok || id < cur {
				others[t] = id
			}
		}
	}
	kept := l.tokens[:0:0]
	for _, t := range l.tokens {
		if owner, ok := others[t]; ok && owner < l.cfg.InstanceID {
			continue
		}
		kept = append(kept, t)
	}
	lost := len(l.tokens) - len(kept)
	if lost == 0 {
		return
	}
	taken := desc.TakenTokens(l.cfg.InstanceID)
	for _, t := range kept {
		taken[t] = struct{}{}
	}
	kept = append(kept, ring.GenerateTokens(lost, taken, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))...)
	slices.Sort(kept)
	l.tokens = kept
	l.logger.Warn("replaced tokens shared with another instance", "replaced", lost)
	if l.tokensPath != "" {
		if err := saveTokens(l.tokensPath, kept); err != nil {
			l.logger.Error("saving replaced tokens failed", "err", err)
		}
	}
}

// forgetDead tombstones instances unhealthy for longer than
// auto_forget_after, so a crashed ingester that will never return stops
// counting against quorums. Every lifecycler does it; concurrent tombstones
// merge harmlessly.
func (l *Lifecycler) forgetDead(now time.Time) {
	desc := l.kv.Get()
	cutoff := now.Add(-l.cfg.autoForgetAfter()).UnixMilli()
	var delta *ring.Desc
	for id, in := range desc.Instances {
		if id == l.cfg.InstanceID || in.State == ring.StateLeft || in.Timestamp >= cutoff {
			continue
		}
		if delta == nil {
			delta = ring.NewDesc()
		}
		delta.Instances[id] = desc.Tombstone(id, now)
		l.logger.Warn("forgetting unhealthy instance", "forgotten", id, "last_heartbeat", in.HeartbeatTime())
		l.forgotten.Inc()
	}
	if delta != nil {
		l.kv.Merge(delta)
	}
}

func (l *Lifecycler) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.state = ring.StateLeaving
	l.writeLocked(now)
	if l.cfg.UnregisterOnShutdown {
		l.state = ring.StateLeft
		l.kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{
			l.cfg.InstanceID: l.kv.Get().Tombstone(l.cfg.InstanceID, now),
		}})
		l.logger.Info("unregistered from ring")
	} else {
		l.logger.Info("left ring, keeping entry and tokens for a restart")
	}
	l.running = false
}
