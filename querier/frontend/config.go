package frontend

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/pharos-tsdb/pharos/internal/dnsaddr"
)

// Config is the `query_frontend:` YAML section.
type Config struct {
	// SplitInterval splits range queries at multiples of it (UTC); 0
	// disables splitting.
	SplitInterval time.Duration `yaml:"split_queries_by_interval"`
	// MaxParallelism bounds the parts of one query evaluated at once.
	MaxParallelism int `yaml:"max_query_parallelism"`
	// CacheResults enables the results cache for step-aligned range queries.
	CacheResults bool `yaml:"cache_results"`
	// CacheMaxBytes bounds the results cache (least recently used first out).
	CacheMaxBytes int64 `yaml:"results_cache_max_bytes"`
	// MaxCacheFreshness: points newer than now minus this are never cached,
	// since samples for them may still arrive.
	MaxCacheFreshness time.Duration `yaml:"max_cache_freshness"`
	// CacheTTL bounds how long a cached extent is served: samples written
	// later than max_cache_freshness (a backfill, out-of-order samples)
	// are seen once it has passed. 0 keeps extents until they are evicted.
	CacheTTL time.Duration `yaml:"results_cache_ttl"`
	// QueryShards runs shardable aggregations as this many queries over
	// disjoint series; 0 or 1 disables query sharding.
	QueryShards int `yaml:"query_sharding_total_shards"`
	// CacheBackend is where cached results live: inmemory (this process's
	// LRU of results_cache_max_bytes) or memcached, shared by every
	// frontend that names the same servers, so that a dashboard's repeat
	// lands on a warm cache whichever replica answers it, and survives a
	// restart.
	CacheBackend string `yaml:"results_cache_backend"`
	// Memcached is the memcached backend's servers and client.
	Memcached MemcachedConfig `yaml:"results_cache_memcached"`
}

// Results cache backends.
const (
	BackendInMemory  = "inmemory"
	BackendMemcached = "memcached"
)

// MemcachedConfig is the `results_cache_memcached:` section, named as
// Mimir's -query-frontend.results-cache.memcached.* flags.
type MemcachedConfig struct {
	// Addresses is a comma-separated list of servers: host:port, or
	// dns+host:port for every address the name resolves to (a headless
	// Kubernetes Service), or dnssrv+name for its SRV records. Names are
	// resolved again every DNSRefreshInterval; keys are spread over the
	// sorted addresses.
	Addresses string `yaml:"addresses"`
	// Timeout bounds each call, dialling included; a slow or absent server
	// is a cache miss, never a failed query.
	Timeout time.Duration `yaml:"timeout"`
	// MaxItemSize is the largest value sent, memcached's -I (1 MiB by
	// default): larger extents are not cached rather than refused.
	MaxItemSize int `yaml:"max_item_size"`
	// MaxIdleConnections are kept open per server.
	MaxIdleConnections int `yaml:"max_idle_connections"`
	// DNSRefreshInterval is how often names are resolved again.
	DNSRefreshInterval time.Duration `yaml:"dns_refresh_interval"`
}

// RegisterFlags registers the query-frontend.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.SplitInterval, "query-frontend.split-queries-by-interval", 24*time.Hour, "Split range queries at multiples of this interval and evaluate the parts in parallel; 0 disables.")
	fs.IntVar(&c.MaxParallelism, "query-frontend.max-query-parallelism", 4, "Parts of one range query evaluated at once.")
	fs.BoolVar(&c.CacheResults, "query-frontend.cache-results", true, "Cache the results of step-aligned range queries.")
	fs.Int64Var(&c.CacheMaxBytes, "query-frontend.results-cache-max-bytes", 256<<20, "Size of the in-memory results cache.")
	fs.DurationVar(&c.MaxCacheFreshness, "query-frontend.max-cache-freshness", time.Minute, "Results newer than this are not cached, so late samples are seen.")
	fs.DurationVar(&c.CacheTTL, "query-frontend.results-cache-ttl", 7*24*time.Hour, "How long a cached result is served before it is evaluated again, so that backfilled or out-of-order samples are seen; 0 keeps results until evicted.")
	fs.StringVar(&c.CacheBackend, "query-frontend.results-cache.backend", BackendInMemory, "Where cached results live: inmemory (this process), or memcached (shared by every frontend naming the same servers).")
	fs.StringVar(&c.Memcached.Addresses, "query-frontend.results-cache.memcached.addresses", "", "Comma-separated memcached servers of the results cache: host:port, dns+host:port for every address of a name, or dnssrv+name for its SRV records.")
	fs.DurationVar(&c.Memcached.Timeout, "query-frontend.results-cache.memcached.timeout", 200*time.Millisecond, "Timeout of each memcached call; a timed-out call is a cache miss.")
	fs.IntVar(&c.Memcached.MaxItemSize, "query-frontend.results-cache.memcached.max-item-size", 1<<20, "Largest cached value sent to memcached, its -I setting; larger results are not cached.")
	fs.IntVar(&c.Memcached.MaxIdleConnections, "query-frontend.results-cache.memcached.max-idle-connections", 16, "Idle connections kept open per memcached server.")
	fs.DurationVar(&c.Memcached.DNSRefreshInterval, "query-frontend.results-cache.memcached.dns-refresh-interval", 30*time.Second, "How often the memcached server names are resolved again.")
	fs.IntVar(&c.QueryShards, "query-frontend.query-sharding-total-shards", 0, "Run sum, count, min, max and group over per-series expressions as this many queries over disjoint series, in parallel; 0 disables. Sums may differ from an unsharded run in the last bits.")
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch c.CacheBackend {
	case BackendInMemory, "", BackendMemcached:
	default:
		return fmt.Errorf("results_cache_backend: %q is not inmemory or memcached", c.CacheBackend)
	}
	switch {
	case c.SplitInterval < 0:
		return errors.New("split_queries_by_interval: must not be negative")
	case c.MaxParallelism < 1:
		return errors.New("max_query_parallelism: must be at least 1")
	case c.CacheResults && c.CacheBackend != BackendMemcached && c.CacheMaxBytes <= 0:
		return errors.New("results_cache_max_bytes: must be positive when cache_results is on")
	case c.MaxCacheFreshness < 0:
		return errors.New("max_cache_freshness: must not be negative")
	case c.CacheTTL < 0:
		return errors.New("results_cache_ttl: must not be negative")
	case c.QueryShards < 0 || c.QueryShards > 128:
		return errors.New("query_sharding_total_shards: must be between 0 and 128")
	}
	if c.CacheResults && c.CacheBackend == BackendMemcached {
		return c.Memcached.validate()
	}
	return nil
}

func (c *MemcachedConfig) validate() error {
	addrs := splitAddresses(c.Addresses)
	if len(addrs) == 0 {
		return errors.New("results_cache_memcached.addresses: needed by results_cache_backend memcached")
	}
	for _, a := range addrs {
		if err := dnsaddr.Validate(a); err != nil {
			return fmt.Errorf("results_cache_memcached.addresses: %w", err)
		}
	}
	switch {
	case c.Timeout <= 0:
		return errors.New("results_cache_memcached.timeout: must be positive")
	case c.MaxItemSize <= 0:
		return errors.New("results_cache_memcached.max_item_size: must be positive")
	case c.MaxIdleConnections < 0:
		return errors.New("results_cache_memcached.max_idle_connections: must not be negative")
	case c.DNSRefreshInterval <= 0:
		return errors.New("results_cache_memcached.dns_refresh_interval: must be positive")
	}
	return nil
}

// splitAddresses returns the non-empty entries of a comma-separated list.
func splitAddresses(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
