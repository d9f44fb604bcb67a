package frontend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pharos-tsdb/pharos/internal/dnsaddr"
)

// memcachedStore keeps extents in memcached, where every frontend naming
// the same servers finds them. Memcached is a cache: a call that fails or
// times out is a miss, counted and logged at debug level, and the query is
// evaluated as if nothing were cached.
type memcachedStore struct {
	client  *memcache.Client
	maxItem int
	ttl     time.Duration
	logger  *slog.Logger
	// requests counts calls by op (get, set) and outcome.
	requests *prometheus.CounterVec
}

// memcachedFormat is the first byte of every value, so that a frontend of
// another version reads a value it does not know as a miss.
const memcachedFormat = 1

// maxRelativeExpiry is memcached's limit: a larger expiry counts as a Unix
// time, which would lie in 1970.
const maxRelativeExpiry = 30 * 24 * time.Hour

func newMemcachedStore(cfg MemcachedConfig, ttl time.Duration, logger *slog.Logger, reg prometheus.Registerer) *memcachedStore {
	servers := &resolvingServers{addrs: splitAddresses(cfg.Addresses), every: cfg.DNSRefreshInterval, timeout: cfg.Timeout, logger: logger}
	client := memcache.NewFromSelector(servers)
	client.Timeout = cfg.Timeout
	client.MaxIdleConns = cfg.MaxIdleConnections
	return &memcachedStore{
		client:  client,
		maxItem: cfg.MaxItemSize,
		ttl:     ttl,
		logger:  logger,
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_frontend_results_cache_memcached_requests_total",
			Help: "Calls of the results cache to memcached, by op (get, set) and outcome (get: hit, miss, unusable, error; set: stored, too_large, error).",
		}, []string{"op", "outcome"}),
	}
}

// storedExtent is an extent as memcached holds it. Key is the whole cache
// key, of which memcached sees only a hash: a value whose Key differs is a
// hash collision and a miss.
type storedExtent struct {
	Key      string   `json:"key"`
	Start    int64    `json:"start"`
	End      int64    `json:"end"`
	CachedAt int64    `json:"cached_at_ms"`
	Streams  []stream `json:"streams"`
}

// memcachedKey is key as memcached accepts it: at most 250 bytes without
// spaces or control characters, which a query's text may hold.
func memcachedKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "pharos-rc:" + hex.EncodeToString(sum[:])
}

func (m *memcachedStore) get(key string) *extent {
	item, err := m.client.Get(memcachedKey(key))
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		m.requests.WithLabelValues("get", "miss").Inc()
		return nil
	case err != nil:
		m.requests.WithLabelValues("get", "error").Inc()
		m.logger.Debug("results cache: memcached get failed", "err", err)
		return nil
	}
	ext, err := decodeExtent(item.Value, key)
	if err != nil {
		m.requests.WithLabelValues("get", "unusable").Inc()
		m.logger.Debug("results cache: memcached value not used", "err", err)
		return nil
	}
	m.requests.WithLabelValues("get", "hit").Inc()
	return ext
}

func (m *memcachedStore) put(key string, ext *extent) {
	value, err := encodeExtent(key, ext)
	if err != nil {
		m.requests.WithLabelValues("set", "error").Inc()
		m.logger.Debug("results cache: extent not encoded", "err", err)
		return
	}
	if len(value) > m.maxItem {
		m.requests.WithLabelValues("set", "too_large").Inc()
		return
	}
	var expiry int32
	if m.ttl > 0 {
		expiry = int32(min(m.ttl, maxRelativeExpiry) / time.Second)
	}
	if err := m.client.Set(&memcache.Item{Key: memcachedKey(key), Value: value, Expiration: expiry}); err != nil {
		m.requests.WithLabelValues("set", "error").Inc()
		m.logger.Debug("results cache: memcached set failed", "err", err)
		return
	}
	m.requests.WithLabelValues("set", "stored").Inc()
}

func encodeExtent(key string, ext *extent) ([]byte, error) {
	data, err := json.Marshal(storedExtent{Key: key, Start: ext.start, End: ext.end, CachedAt: ext.cachedAt.UnixMilli(), Streams: ext.streams})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+s2.MaxEncodedLen(len(data)))
	out[0] = memcachedFormat
	return out[:1+len(s2.Encode(out[1:], data))], nil
}

// decodeExtent reads a value of encodeExtent, which must be of key.
func decodeExtent(value []byte, key string) (*extent, error) {
	if len(value) == 0 || value[0] != memcachedFormat {
		return nil, errors.New("unknown format")
	}
	data, err := s2.Decode(nil, value[1:])
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	var se storedExtent
	if err := json.Unmarshal(data, &se); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if se.Key != key {
		return nil, errors.New("another key with the same hash")
	}
	for i := range se.Streams {
		if err := se.Streams[i].index(); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
	}
	return &extent{start: se.Start, end: se.End, streams: se.Streams, cachedAt: time.UnixMilli(se.CachedAt)}, nil
}

// resolvingServers is a memcache.ServerSelector over addresses that are
// resolved again every so often, so that a memcached pod that moved to
// another IP is found again. The resolved addresses are sorted: a key goes
// to the server at its hash modulo their number, which must be the same
// in every frontend.
type resolvingServers struct {
	addrs   []string
	every   time.Duration
	timeout time.Duration
	logger  *slog.Logger

	list memcache.ServerList
	// ready says servers were set once. mu is held by the caller
	// resolving; once ready, the others go on with the servers set before
	// rather than wait.
	ready    atomic.Bool
	mu       sync.Mutex
	resolved time.Time
	last     []string
}

var _ memcache.ServerSelector = (*resolvingServers)(nil)

func (r *resolvingServers) PickServer(key string) (net.Addr, error) {
	r.refresh()
	return r.list.PickServer(key)
}

func (r *resolvingServers) Each(f func(net.Addr) error) error {
	r.refresh()
	return r.list.Each(f)
}

func (r *resolvingServers) refresh() {
	if !r.ready.Load() {
		r.mu.Lock()
	} else if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	if !r.resolved.IsZero() && time.Since(r.resolved) < r.every {
		return
	}
	r.resolved = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), max(r.timeout, time.Second))
	defer cancel()
	out, err := dnsaddr.Resolve(ctx, dnsaddr.Net{}, r.addrs)
	if err != nil && len(out) == 0 {
		// Keep what resolved before: a DNS hiccup is no reason to lose
		// every server.
		r.logger.Warn("results cache: memcached addresses not resolved", "err", err)
		return
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if slices.Equal(out, r.last) {
		return
	}
	if err := r.list.SetServers(out...); err != nil {
		r.logger.Warn("results cache: memcached servers not set", "servers", out, "err", err)
		return
	}
	r.last = out
	r.ready.Store(true)
	r.logger.Info("results cache: memcached servers", "servers", out)
}
