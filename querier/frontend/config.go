package frontend

import (
	"errors"
	"flag"
	"time"
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
}

// RegisterFlags registers the query-frontend.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.SplitInterval, "query-frontend.split-queries-by-interval", 24*time.Hour, "Split range queries at multiples of this interval and evaluate the parts in parallel; 0 disables.")
	fs.IntVar(&c.MaxParallelism, "query-frontend.max-query-parallelism", 4, "Parts of one range query evaluated at once.")
	fs.BoolVar(&c.CacheResults, "query-frontend.cache-results", true, "Cache the results of step-aligned range queries.")
	fs.Int64Var(&c.CacheMaxBytes, "query-frontend.results-cache-max-bytes", 256<<20, "Size of the in-memory results cache.")
	fs.DurationVar(&c.MaxCacheFreshness, "query-frontend.max-cache-freshness", time.Minute, "Results newer than this are not cached, so late samples are seen.")
	fs.DurationVar(&c.CacheTTL, "query-frontend.results-cache-ttl", 7*24*time.Hour, "How long a cached result is served before it is evaluated again, so that backfilled or out-of-order samples are seen; 0 keeps results until evicted.")
	fs.IntVar(&c.QueryShards, "query-frontend.query-sharding-total-shards", 0, "Run sum, count, min, max and group over per-series expressions as this many queries over disjoint series, in parallel; 0 disables. Sums may differ from an unsharded run in the last bits.")
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.SplitInterval < 0:
		return errors.New("split_queries_by_interval: must not be negative")
	case c.MaxParallelism < 1:
		return errors.New("max_query_parallelism: must be at least 1")
	case c.CacheResults && c.CacheMaxBytes <= 0:
		return errors.New("results_cache_max_bytes: must be positive when cache_results is on")
	case c.MaxCacheFreshness < 0:
		return errors.New("max_cache_freshness: must not be negative")
	case c.CacheTTL < 0:
		return errors.New("results_cache_ttl: must not be negative")
	case c.QueryShards < 0 || c.QueryShards > 128:
		return errors.New("query_sharding_total_shards: must be between 0 and 128")
	}
	return nil
}
