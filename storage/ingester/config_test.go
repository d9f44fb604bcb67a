package ingester

import (
	"flag"
	"testing"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v2"
)

func TestConfigFlagsAndYAML(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	require.NoError(t, cfg.Validate())
	require.Equal(t, "./data", cfg.Path)
	require.Equal(t, model.Duration(15*24*time.Hour), cfg.Retention)
	require.Equal(t, "snappy", cfg.WALCompression)

	opts := cfg.tsdbOptions()
	require.Equal(t, int64(15*24*time.Hour/time.Millisecond), opts.RetentionDuration)
	require.Equal(t, int64(36*time.Hour/time.Millisecond), opts.MaxBlockDuration, "a tenth of the retention")
	require.True(t, opts.EnableExemplarStorage)

	require.NoError(t, fs.Parse([]string{"-storage.retention=30d", "-storage.retention-size=512MB", "-storage.out-of-order-window=10m"}))
	require.Equal(t, model.Duration(30*24*time.Hour), cfg.Retention)
	require.Equal(t, 512*units.MiB, cfg.RetentionSize)
	require.Equal(t, int64(10*time.Minute/time.Millisecond), cfg.tsdbOptions().OutOfOrderTimeWindow)

	require.NoError(t, yaml.UnmarshalStrict([]byte("path: /var/lib/pharos\nretention: 90d\nretention_size: 1GB\nwal_compression: zstd\n"), &cfg))
	require.NoError(t, cfg.Validate())
	require.Equal(t, "/var/lib/pharos/tsdb", cfg.TSDBDir())
	require.Equal(t, units.GiB, cfg.RetentionSize)
	require.Equal(t, int64(units.GiB), cfg.tsdbOptions().MaxBytes)
	require.Equal(t, "zstd", cfg.tsdbOptions().WALCompression)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		errMsg string
	}{
		{name: "defaults"},
		{name: "empty path", mutate: func(c *Config) { c.Path = "" }, errMsg: "path"},
		{name: "negative retention", mutate: func(c *Config) { c.Retention = -1 }, errMsg: "retention"},
		{name: "bad wal compression", mutate: func(c *Config) { c.WALCompression = "lz4" }, errMsg: "wal_compression"},
		{name: "max block below min", mutate: func(c *Config) { c.MaxBlockDuration = model.Duration(time.Minute) }, errMsg: "max_block_duration"},
		{name: "negative ooo window", mutate: func(c *Config) { c.OutOfOrderWindow = -1 }, errMsg: "out_of_order_window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			err := cfg.Validate()
			if tc.errMsg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.errMsg)
		})
	}
}
