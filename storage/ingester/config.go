package ingester

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
)

// Config is the `storage:` section of the Pharos configuration file. The
// names and units follow Prometheus's --storage.tsdb.* flags so that a
// Prometheus user finds what they expect.
type Config struct {
	// Path is the data directory; the tsdb lives in <path>/tsdb.
	Path string `yaml:"path"`
	// Retention is how long samples are kept (0 = keep forever, as long as
	// RetentionSize allows).
	Retention model.Duration `yaml:"retention"`
	// RetentionSize is the maximum number of bytes of blocks (0 = unlimited).
	RetentionSize units.Base2Bytes `yaml:"retention_size"`
	// OutOfOrderWindow accepts samples this much older than the newest sample
	// of the head; 0 disables out-of-order ingestion, like Prometheus.
	OutOfOrderWindow model.Duration `yaml:"out_of_order_window"`
	// WALCompression is "none", "snappy" or "zstd".
	WALCompression string `yaml:"wal_compression"`
	// MinBlockDuration and MaxBlockDuration bound block ranges. Tests shrink
	// them; MaxBlockDuration 0 means min(retention/10, 31d), as Prometheus.
	MinBlockDuration model.Duration `yaml:"min_block_duration"`
	MaxBlockDuration model.Duration `yaml:"max_block_duration"`
	// MaxExemplars is the size of the in-memory exemplar ring (0 disables
	// exemplar storage).
	MaxExemplars int64 `yaml:"max_exemplars"`
	// HeadChunksWriteQueueSize is the queue of head chunks waiting to be
	// memory-mapped (0 writes synchronously).
	HeadChunksWriteQueueSize int `yaml:"head_chunks_write_queue_size"`
	// StartTimestampZeroIngestion writes a zero sample at a series' start
	// (created) timestamp, like Prometheus's created-timestamp-zero-ingestion.
	StartTimestampZeroIngestion bool `yaml:"start_timestamp_zero_ingestion"`
	// MetadataMaxFamilies bounds the in-memory metric metadata map.
	MetadataMaxFamilies int `yaml:"metadata_max_families"`
	// HeadStripeSize is the number of lock stripes of the head's series
	// map (a power of two). Large values favour many concurrent appends of
	// millions of series; small ones make opening a tsdb cheap.
	HeadStripeSize int `yaml:"head_stripe_size"`
	// SeriesRefCache keeps each head series' reference under a hash of its
	// labels (about 40 bytes per series), so that pushes of known series
	// skip building their labels and the head's lookup (refcache.go).
	SeriesRefCache bool `yaml:"series_ref_cache"`
}

// RegisterFlags registers the storage.* flags and their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Path, "storage.path", "./data", "Data directory; the tsdb is kept in <path>/tsdb.")
	c.Retention = model.Duration(15 * 24 * time.Hour)
	fs.Var(&c.Retention, "storage.retention", "How long to keep samples (e.g. 15d, 0 = forever).")
	fs.Var(base2BytesFlag{&c.RetentionSize}, "storage.retention-size", "Maximum bytes of persisted blocks, e.g. 512MB (0 = unlimited).")
	fs.Var(&c.OutOfOrderWindow, "storage.out-of-order-window", "How far behind the newest sample out-of-order samples are accepted (0 = disabled).")
	fs.StringVar(&c.WALCompression, "storage.wal-compression", compression.Snappy, "WAL compression: none, snappy or zstd.")
	c.MinBlockDuration = model.Duration(2 * time.Hour)
	fs.Var(&c.MinBlockDuration, "storage.min-block-duration", "Duration of the head block before it is persisted.")
	fs.Var(&c.MaxBlockDuration, "storage.max-block-duration", "Maximum duration of compacted blocks (0 = min(retention/10, 31d)).")
	fs.Int64Var(&c.MaxExemplars, "storage.max-exemplars", 100000, "Exemplars kept in memory (0 disables exemplar storage).")
	fs.IntVar(&c.HeadChunksWriteQueueSize, "storage.head-chunks-write-queue-size", 0, "Head chunks queued for memory-mapping (0 = synchronous).")
	fs.BoolVar(&c.StartTimestampZeroIngestion, "storage.start-timestamp-zero-ingestion", false, "Write a zero sample at each series' start timestamp when pushes carry one.")
	fs.IntVar(&c.MetadataMaxFamilies, "storage.metadata-max-families", 100000, "Metric families whose metadata is kept in memory.")
	fs.IntVar(&c.HeadStripeSize, "storage.head-stripe-size", tsdb.DefaultStripeSize, "Lock stripes of the head's series map; a power of two.")
	fs.BoolVar(&c.SeriesRefCache, "storage.series-ref-cache", true, "Cache each head series' reference by its pushed labels (about 40 bytes per series) so that pushes of known series skip the head's label lookup.")
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("path must not be empty")
	case c.Retention < 0:
		return errors.New("retention must not be negative")
	case c.RetentionSize < 0:
		return errors.New("retention_size must not be negative")
	case c.OutOfOrderWindow < 0:
		return errors.New("out_of_order_window must not be negative")
	case c.MinBlockDuration <= 0:
		return errors.New("min_block_duration must be positive")
	case c.MaxBlockDuration != 0 && c.MaxBlockDuration < c.MinBlockDuration:
		return errors.New("max_block_duration must not be below min_block_duration")
	case c.MaxExemplars < 0:
		return errors.New("max_exemplars must not be negative")
	case c.HeadChunksWriteQueueSize < 0:
		return errors.New("head_chunks_write_queue_size must not be negative")
	case c.MetadataMaxFamilies < 0:
		return errors.New("metadata_max_families must not be negative")
	case c.HeadStripeSize <= 0 || c.HeadStripeSize&(c.HeadStripeSize-1) != 0:
		return fmt.Errorf("head_stripe_size: %d is not a positive power of two", c.HeadStripeSize)
	}
	switch c.WALCompression {
	case "", compression.None, compression.Snappy, compression.Zstd:
	default:
		return fmt.Errorf("wal_compression: unknown compression %q (want none, snappy or zstd)", c.WALCompression)
	}
	return nil
}

// TSDBDir is where the tsdb lives.
func (c *Config) TSDBDir() string { return filepath.Join(c.Path, "tsdb") }

func (c *Config) tsdbOptions() *tsdb.Options {
	o := tsdb.DefaultOptions()
	o.RetentionDuration = int64(time.Duration(c.Retention) / time.Millisecond)
	o.MaxBytes = int64(c.RetentionSize)
	o.OutOfOrderTimeWindow = int64(time.Duration(c.OutOfOrderWindow) / time.Millisecond)
	o.WALCompression = c.WALCompression
	if o.WALCompression == "" {
		o.WALCompression = compression.None
	}
	o.MinBlockDuration = int64(time.Duration(c.MinBlockDuration) / time.Millisecond)
	o.MaxBlockDuration = int64(time.Duration(c.MaxBlockDuration) / time.Millisecond)
	if o.MaxBlockDuration == 0 {
		// Prometheus's rule: a tenth of the retention, at most 31 days, so
		// that retention deletes data in reasonably small steps.
		maxBlock := int64(31 * 24 * time.Hour / time.Millisecond)
		if o.RetentionDuration != 0 && o.RetentionDuration/10 < maxBlock {
			maxBlock = o.RetentionDuration / 10
		}
		o.MaxBlockDuration = max(maxBlock, o.MinBlockDuration)
	}
	o.EnableExemplarStorage = c.MaxExemplars > 0
	o.MaxExemplars = c.MaxExemplars
	o.HeadChunksWriteQueueSize = c.HeadChunksWriteQueueSize
	o.EnableSTAsZeroSample = c.StartTimestampZeroIngestion
	o.StripeSize = c.HeadStripeSize
	// Query sharding selects series by their label hash; the head keeps
	// the hash per series (8 bytes) so a shard is cut without labels.
	o.EnableSharding = true
	return o
}

// base2BytesFlag lets flag parse the same "512MB" syntax that YAML accepts.
type base2BytesFlag struct{ b *units.Base2Bytes }

func (f base2BytesFlag) String() string {
	if f.b == nil {
		return "0B"
	}
	return f.b.String()
}

func (f base2BytesFlag) Set(s string) error {
	if s == "0" {
		*f.b = 0
		return nil
	}
	v, err := units.ParseBase2Bytes(s)
	if err != nil {
		return err
	}
	*f.b = v
	return nil
}
