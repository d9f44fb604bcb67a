package querier_test

import (
	"flag"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v2"

	"github.com/pharos-tsdb/pharos/querier"
)

func TestConfig(t *testing.T) {
	defaults := func() querier.Config {
		var c querier.Config
		fs := flag.NewFlagSet("q", flag.ContinueOnError)
		c.RegisterFlags(fs)
		require.NoError(t, fs.Parse(nil))
		return c
	}
	d := defaults()
	require.Equal(t, querier.Config{
		Timeout:       model.Duration(2 * time.Minute),
		MaxSamples:    50_000_000,
		MaxConcurrent: 20,
		LookbackDelta: model.Duration(5 * time.Minute),
		Limits:        querier.Limits{},
		RemoteRead:    querier.RemoteReadConfig{SampleLimit: 50_000_000, ConcurrentLimit: 10, MaxBytesInFrame: 1 << 20},

		MinimizeIngesterRequests: true,
	}, d)

	for _, tc := range []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"defaults", "", ""},
		{"overrides", "timeout: 30s\nmax_samples: 10\nmax_concurrent: 2\nlookback_delta: 1d\n", ""},
		{"zero timeout", "timeout: 0s\n", "timeout"},
		{"negative samples", "max_samples: -1\n", "max_samples"},
		{"zero concurrency", "max_concurrent: 0\n", "max_concurrent"},
		{"zero lookback", "lookback_delta: 0s\n", "lookback_delta"},
		{"remote read unlimited", "remote_read: {sample_limit: 0, concurrent_limit: 0}\n", ""},
		{"negative remote read limit", "remote_read: {concurrent_limit: -1}\n", "remote_read"},
		{"zero frame", "remote_read: {max_bytes_in_frame: 0}\n", "max_bytes_in_frame"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			require.NoError(t, yaml.UnmarshalStrict([]byte(tc.yaml), &c))
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
