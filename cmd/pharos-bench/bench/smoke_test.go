package bench

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cmd/pharos/app"
)

// startPharos runs an all-in-one App (write and read roles) in this process.
func startPharos(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := app.Load([]string{
		"-target=distributor,ingester,querier",
		"-server.http-listen=127.0.0.1:0",
		"-server.grpc-listen=127.0.0.1:0",
		"-memberlist.bind=127.0.0.1:0",
		"-storage.path=" + filepath.Join(dir, "data"),
	})
	require.NoError(t, err)
	a, err := app.New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	base := "http://" + a.HTTPAddr()
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	return base
}

// TestHarnessSmoke runs the whole harness for about two seconds against
// the local tsdb and an in-process Pharos, over both protocols.
func TestHarnessSmoke(t *testing.T) {
	base := startPharos(t)
	cfg := Config{
		Series: 600, Churn: 0.01, SamplesPerSeries: 2, Interval: 15 * time.Second,
		BatchSeries: 100, Concurrency: 3, Duration: 700 * time.Millisecond, Lookback: 30 * time.Minute,
		Protocol: "v1", QueryDuration: 10 * time.Millisecond, QueryConcurrency: 1,
		QueryRange: 10 * time.Minute, QueryStep: time.Minute,
	}
	require.NoError(t, cfg.Validate())
	ctx := t.Context()
	local, err := RunLocal(ctx, cfg, t.TempDir(), 0)
	require.NoError(t, err)
	require.NoError(t, local.Write.FirstErr)
	require.Positive(t, local.Write.Samples)
	require.Greater(t, local.Write.SeriesCreated, cfg.Series, "churn adds series")

	client := &http.Client{Timeout: 30 * time.Second}
	var pairs []Pair
	for i, proto := range []string{"v1", "v2"} {
		cfg.Protocol = proto
		// The same series again: v2's samples must come after v1's.
		cfg.Lookback = time.Duration(30-10*i) * time.Minute
		cfg.MaxRounds = 10
		target := &Target{Name: "allinone-" + proto, Base: base, Metrics: []string{base + "/metrics"}, Replicas: 1}
		r, err := RunTarget(ctx, cfg, target, client)
		require.NoError(t, err)
		require.NoError(t, r.Write.FirstErr, proto)
		require.Positive(t, r.Write.Samples, proto)
		require.Positive(t, r.ServerCPU, proto)
		require.Positive(t, r.RSSAfter, proto)
		require.Len(t, r.Queries, len(Queries))
		for _, q := range r.Queries {
			require.NoError(t, q.FirstErr, q.Query.Name)
			require.NotEmpty(t, q.Latencies, q.Query.Name)
		}
		// Dashboards' per-job rate sees the node-exporter job.
		require.Equal(t, 1, r.Queries[0].Series)
		if i == 0 {
			// Same data time, same rounds: Pharos answers as the local tsdb.
			lc := cfg
			lc.MaxRounds = r.Write.Rounds
			l, err := RunLocal(ctx, lc, t.TempDir(), r.T0)
			require.NoError(t, err)
			require.Equal(t, r.Write.EndMs, l.Write.EndMs)
			for qi, q := range r.Queries {
				require.Equal(t, l.Queries[qi].Series, q.Series, q.Query.Name)
				require.Equal(t, l.Queries[qi].Digest, q.Digest, q.Query.Name)
			}
		}
		pairs = append(pairs, Pair{Target: r, Local: local})
	}
	var out bytes.Buffer
	Report(&out, cfg, pairs)
	require.Contains(t, out.String(), "| allinone-v2 |")
	require.Contains(t, out.String(), "sum_by_job_rate_1h")
}
