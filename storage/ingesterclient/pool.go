package ingesterclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
)

// poolConnectParams caps reconnect backoff well below gRPC's two minutes:
// ingesters are peers on a LAN, and a restarted one should take writes again
// within seconds.
var poolConnectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// ErrPoolClosed is returned by Get after Close.
var ErrPoolClosed = errors.New("ingester client pool closed")

// Pool holds one Client per ingester address, dialled on first use. Clients
// that fail a health check, and clients of addresses that left the ring
// (Retain), are closed and removed; the next Get dials afresh. Safe for
// concurrent use.
//
// A Client returned by Get may be closed by the pool while a caller still
// uses it; calls then fail with codes.Canceled, which callers treat as that
// ingester failing, like any other error.
type Pool struct {
	cfg    Config
	opts   []grpc.DialOption
	logger *slog.Logger

	mu      sync.RWMutex
	clients map[string]*Client
	closed  bool

	dials, removals prometheus.Counter
}

// NewPool returns an empty pool dialling with cfg and opts (see Dial). Metrics
// go to reg, which may be nil.
func NewPool(cfg Config, logger *slog.Logger, reg prometheus.Registerer, opts ...grpc.DialOption) *Pool {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pool{cfg: cfg, opts: opts, logger: logger, clients: map[string]*Client{}}
	f := promauto.With(reg)
	p.dials = f.NewCounter(prometheus.CounterOpts{
		Name: "pharos_ingester_client_dials_total", Help: "Connections to ingesters opened by the client pool.",
	})
	p.removals = f.NewCounter(prometheus.CounterOpts{
		Name: "pharos_ingester_client_removals_total", Help: "Connections to ingesters closed by the client pool (unhealthy or left the ring).",
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pharos_ingester_clients", Help: "Open connections to ingesters in the client pool.",
	}, func() float64 {
		p.mu.RLock()
		defer p.mu.RUnlock()
		return float64(len(p.clients))
	})
	return p
}

// Get returns the client for addr, dialling it if the pool has none.
// Dialling does not wait for the connection: a dead address yields a client
// whose calls fail.
func (p *Pool) Get(addr string) (*Client, error) {
	p.mu.RLock()
	c, ok := p.clients[addr]
	closed := p.closed
	p.mu.RUnlock()
	if ok {
		return c, nil
	}
	if closed {
		return nil, ErrPoolClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPoolClosed
	}
	if c, ok := p.clients[addr]; ok {
		return c, nil
	}
	c, err := Dial(addr, p.cfg, append([]grpc.DialOption{grpc.WithConnectParams(poolConnectParams)}, p.opts...)...)
	if err != nil {
		return nil, err
	}
	p.clients[addr] = c
	p.dials.Inc()
	return c, nil
}

// Addrs returns the addresses the pool holds clients for, in no order.
func (p *Pool) Addrs() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]string, 0, len(p.clients))
	for a := range p.clients {
		out = append(out, a)
	}
	return out
}

// Retain closes and removes the clients whose address keep rejects, e.g.
// those no longer in the ring.
func (p *Pool) Retain(keep func(addr string) bool) {
	p.mu.Lock()
	var drop []*Client
	for a, c := range p.clients {
		if !keep(a) {
			delete(p.clients, a)
			drop = append(drop, c)
		}
	}
	p.mu.Unlock()
	for _, c := range drop {
		p.removals.Inc()
		p.logger.Debug("closing ingester client", "addr", c.Addr(), "reason", "not retained")
		_ = c.Close()
	}
}

// CheckHealth removes the clients whose connection is failing.
func (p *Pool) CheckHealth(ctx context.Context) {
	p.mu.RLock()
	all := make([]*Client, 0, len(p.clients))
	for _, c := range p.clients {
		all = append(all, c)
	}
	p.mu.RUnlock()
	for _, c := range all {
		if err := c.healthy(); err != nil && ctx.Err() == nil {
			p.remove(c, err)
		}
	}
}

func (p *Pool) remove(c *Client, reason error) {
	p.mu.Lock()
	cur, ok := p.clients[c.Addr()]
	if ok && cur == c {
		delete(p.clients, c.Addr())
	}
	p.mu.Unlock()
	if ok && cur == c {
		p.removals.Inc()
		p.logger.Debug("closing ingester client", "addr", c.Addr(), "reason", reason)
		_ = c.Close()
	}
}

// Run checks health every interval, and (when members is not nil) closes
// clients of addresses that members no longer lists, until ctx ends.
func (p *Pool) Run(ctx context.Context, interval time.Duration, members func() []string) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if members != nil {
			keep := map[string]struct{}{}
			for _, a := range members() {
				keep[a] = struct{}{}
			}
			p.Retain(func(a string) bool { _, ok := keep[a]; return ok })
		}
		p.CheckHealth(ctx)
	}
}

// Close closes every client; Get fails afterwards.
func (p *Pool) Close() error {
	p.mu.Lock()
	all := p.clients
	p.clients = map[string]*Client{}
	p.closed = true
	p.mu.Unlock()
	var errs []error
	for _, c := range all {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// healthy reports a connection gRPC has given up on for now. The ingester
// server forces the vtproto codec on every service, so the standard health
// service cannot be called through it; the connection state is the check.
// Dropping a failed client also resets gRPC's reconnect backoff, so a
// restarted ingester is reached at once instead of after the backoff.
func (c *Client) healthy() error {
	st := c.conn.GetState()
	if st == connectivity.Idle {
		c.conn.Connect()
	}
	if st != connectivity.TransientFailure && st != connectivity.Shutdown {
		return nil
	}
	return fmt.Errorf("connection to %s: %s", c.addr, st)
}
