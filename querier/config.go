package querier

import (
	"errors"
	"flag"
	"time"

	"github.com/prometheus/common/model"
)

// Config is the `querier:` YAML section.
type Config struct {
	// Timeout bounds one query's evaluation, as Prometheus's
	// -query.timeout does.
	Timeout model.Duration `yaml:"timeout"`
	// MaxSamples bounds the samples one query may hold in memory at once.
	MaxSamples int `yaml:"max_samples"`
	// MaxConcurrent bounds the queries evaluated at once; the rest wait.
	MaxConcurrent int `yaml:"max_concurrent"`
	// LookbackDelta is how far back an instant vector selector looks for
	// the last sample of a series.
	LookbackDelta model.Duration `yaml:"lookback_delta"`
	// Limits bound what one query may fetch from the ingesters. Deprecated:
	// they moved to the per-tenant `limits:` section (same names); set here
	// (non-zero), they still apply, as the default of every tenant.
	Limits Limits `yaml:",inline"`
	// RemoteRead bounds /api/v1/read.
	RemoteRead RemoteReadConfig `yaml:"remote_read"`
	// MinimizeIngesterRequests asks only as many ingesters as a complete
	// answer needs, as Mimir's -querier.minimize-ingester-requests does:
	// with RF 3 on three ingesters, two, and the third only if one of them
	// fails. See RingReadConfig.MinimizeRequests.
	MinimizeIngesterRequests bool `yaml:"minimize_ingester_requests"`
}

// RemoteReadConfig bounds the remote-read endpoint as Prometheus's
// -storage.remote.read-* flags do, with their defaults.
type RemoteReadConfig struct {
	// SampleLimit bounds the samples of one sampled (not streamed) read;
	// 0 means no limit.
	SampleLimit int `yaml:"sample_limit"`
	// ConcurrentLimit bounds the reads served at once; the rest wait. 0
	// means no limit.
	ConcurrentLimit int `yaml:"concurrent_limit"`
	// MaxBytesInFrame is the size a frame of a streamed read grows to
	// before it is sent.
	MaxBytesInFrame int `yaml:"max_bytes_in_frame"`
}

// DefaultRemoteReadMaxBytesInFrame is Prometheus's frame size, 1 MiB as
// protobuf recommends.
const DefaultRemoteReadMaxBytesInFrame = 1 << 20

// Limits bound what one query fetches from the ingesters; 0 means no
// limit. A query over a limit fails at once with an error naming it (HTTP
// 422), and its ingester streams are cancelled.
type Limits struct {
	// MaxFetchedSeries counts distinct series, after replicas are merged.
	MaxFetchedSeries int64 `yaml:"max_fetched_series_per_query"`
	// MaxFetchedChunks and MaxFetchedChunkBytes count what the ingesters
	// send, replicas included.
	MaxFetchedChunks     int64 `yaml:"max_fetched_chunks_per_query"`
	MaxFetchedChunkBytes int64 `yaml:"max_fetched_chunk_bytes_per_query"`
}

// RegisterFlags registers the querier flags. The defaults are Prometheus's.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Timeout = model.Duration(2 * time.Minute)
	fs.Var(&c.Timeout, "querier.timeout", "Maximum time a query may take before it is aborted.")
	fs.IntVar(&c.MaxSamples, "querier.max-samples", 50_000_000, "Maximum number of samples a single query can load into memory.")
	fs.IntVar(&c.MaxConcurrent, "querier.max-concurrent", 20, "Maximum number of queries evaluated concurrently; further queries wait.")
	c.LookbackDelta = model.Duration(5 * time.Minute)
	fs.Var(&c.LookbackDelta, "querier.lookback-delta", "How far back an instant selector looks for the most recent sample.")
	fs.Int64Var(&c.Limits.MaxFetchedSeries, "querier.max-fetched-series-per-query", 0, "Deprecated: use -limits.max-fetched-series-per-query. Non-zero overrides it.")
	fs.Int64Var(&c.Limits.MaxFetchedChunks, "querier.max-fetched-chunks-per-query", 0, "Deprecated: use -limits.max-fetched-chunks-per-query. Non-zero overrides it.")
	fs.Int64Var(&c.Limits.MaxFetchedChunkBytes, "querier.max-fetched-chunk-bytes-per-query", 0, "Deprecated: use -limits.max-fetched-chunk-bytes-per-query. Non-zero overrides it.")
	fs.IntVar(&c.RemoteRead.SampleLimit, "querier.remote-read.sample-limit", 50_000_000, "Maximum number of samples one remote read returns; 0 means no limit. Streamed reads ignore it.")
	fs.IntVar(&c.RemoteRead.ConcurrentLimit, "querier.remote-read.concurrent-limit", 10, "Maximum number of remote reads served at once; 0 means no limit.")
	fs.BoolVar(&c.MinimizeIngesterRequests, "querier.minimize-ingester-requests", true, "Ask only as many ingesters as a complete answer needs (all but the failures the replication factor tolerates), and the others only in place of those that fail.")
	fs.IntVar(&c.RemoteRead.MaxBytesInFrame, "querier.remote-read.max-bytes-in-frame", DefaultRemoteReadMaxBytesInFrame, "Bytes a frame of a streamed remote read holds before it is sent.")
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if c.Timeout <= 0 {
		return errors.New("querier.timeout must be positive")
	}
	if c.MaxSamples <= 0 {
		return errors.New("querier.max_samples must be positive")
	}
	if c.MaxConcurrent <= 0 {
		return errors.New("querier.max_concurrent must be positive")
	}
	if c.LookbackDelta <= 0 {
		return errors.New("querier.lookback_delta must be positive")
	}
	if c.Limits.MaxFetchedSeries < 0 || c.Limits.MaxFetchedChunks < 0 || c.Limits.MaxFetchedChunkBytes < 0 {
		return errors.New("querier.max_fetched_*_per_query must not be negative")
	}
	if c.RemoteRead.SampleLimit < 0 || c.RemoteRead.ConcurrentLimit < 0 {
		return errors.New("querier.remote_read.sample_limit and concurrent_limit must not be negative")
	}
	if c.RemoteRead.MaxBytesInFrame <= 0 {
		return errors.New("querier.remote_read.max_bytes_in_frame must be positive")
	}
	return nil
}
