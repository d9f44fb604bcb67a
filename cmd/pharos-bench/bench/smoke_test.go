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

// startPharos runs an all-in-one App (write and read roles) in this
// process, with extra flags.
func startPharos(t *testing.T, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := app.Load(append([]string{
		"-target=distributor,ingester,querier",
		"-server.http-listen=127.0.0.1:0",
		"-server.grpc-listen=127.0.0.1:0",
		"-memberlist.bind=127.0.0.1:0",
		"-storage.path=" + filepath.Join(dir, "data"),
	}, extra...))
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
// the local tsdb and an in-process Pharos, over both protocols; then the
// range queries through a second Pharos that shards them, fed the same
// rounds, and the results-cache check on it.
func TestHarnessSmoke(t *testing.T) {
	base := startPharos(t, FrontendArgs(0, false)...)
	cfg := Config{
		Series: 600, Churn: 0.01, SamplesPerSeries: 2, Interval: 15 * time.Second,
		BatchSeries: 100, Concurrency: 3, Duration: 700 * time.Millisecond, Lookback: 30 * time.Minute,
		Protocol: "v1", QueryDuration: 10 * time.Millisecond, QueryConcurrency: 1,
		QueryRange: 10 * time.Minute, QueryStep: time.Minute, QueryBlocks: true,
	}
	require.NoError(t, cfg.Validate())
	ctx := t.Context()
	local, err := RunLocal(ctx, cfg, t.TempDir(), 0)
	require.NoError(t, err)
	require.NoError(t, local.Write.FirstErr)
	require.Positive(t, local.Write.Samples)
	require.Greater(t, local.Write.SeriesCreated, cfg.Series, "churn adds series")
	// The by-labels append is fed the rounds every writer of the first
	// pass completed, all of them (some writers may have done more).
	require.NotNil(t, local.ByLabels)
	bl := local.ByLabels.Write
	require.NoError(t, bl.FirstErr)
	require.Equal(t, local.Write.Rounds, bl.Rounds)
	require.Equal(t, bl.Rounds, bl.RoundsMax)
	require.Equal(t, bl.Rounds*cfg.Series*cfg.SamplesPerSeries, bl.Samples)
	require.LessOrEqual(t, bl.Samples, local.Write.Samples)
	require.Positive(t, local.ByLabels.ServerCPU)
	// The same head compacted into a block, opened alone, answers as the
	// head did.
	require.NotNil(t, local.Blocks)
	require.Positive(t, local.Blocks.Open)
	require.Len(t, local.Blocks.Queries, len(RangeQueries()))
	for _, bq := range local.Blocks.Queries {
		require.NoError(t, bq.FirstErr, bq.Query.Name)
		require.NotEmpty(t, bq.Latencies, bq.Query.Name)
		hq := local.query(bq.Query.Name)
		require.NotNil(t, hq, bq.Query.Name)
		require.Positive(t, bq.Series, bq.Query.Name)
		require.Equal(t, hq.Series, bq.Series, bq.Query.Name)
		require.Equal(t, hq.Digest, bq.Digest, "%s on the block answers as on the head", bq.Query.Name)
	}

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
		require.Positive(t, r.HeapInuseAfter, proto)
		require.Positive(t, r.LiveHeapAfter, proto)
		// Once every writer is past its first round, the later requests
		// of the last one to get there are warm.
		if r.Write.Rounds > 1 {
			require.Positive(t, r.Write.WarmSamples, proto)
		}
		require.Less(t, r.Write.WarmSamples, r.Write.Samples, proto)
		require.GreaterOrEqual(t, r.Write.RoundsMax, r.Write.Rounds, proto)
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
			lc.MaxRounds, lc.Duration = r.Write.Rounds, time.Minute
			l, err := RunLocal(ctx, lc, t.TempDir(), r.T0)
			require.NoError(t, err)
			require.Equal(t, r.Write.EndMs, l.Write.EndMs)
			for qi, q := range r.Queries {
				require.Equal(t, l.Queries[qi].Series, q.Series, q.Query.Name)
				require.Equal(t, l.Queries[qi].Digest, q.Digest, q.Query.Name)
			}
			shardedAndCached(t, cfg, r, l, client)
		}
		pairs = append(pairs, Pair{Target: r, Local: local})
	}
	var out bytes.Buffer
	Report(&out, cfg, pairs)
	require.Contains(t, out.String(), "| allinone-v2 |")
	require.Contains(t, out.String(), "sum_by_job_rate_1h")
	require.Contains(t, out.String(), "warm samples/s")
	require.Contains(t, out.String(), "## memory")
	require.Contains(t, out.String(), "| local tsdb by labels for allinone-v1 |")
	require.Contains(t, out.String(), "## query sharding")
	require.NotContains(t, out.String(), "## queries on blocks", "only a spawned target is restarted on blocks")

	// A spawned target's blocks run reported without the local tsdb
	// (-local.skip): no comparison, no panic.
	var skipped bytes.Buffer
	Report(&skipped, cfg, []Pair{{Target: &Result{Name: "spawned", Queries: local.Queries, Blocks: local.Blocks}}})
	require.Contains(t, skipped.String(), "## queries on blocks")
	require.Contains(t, skipped.String(), "| spawned |")
	require.Contains(t, out.String(), "## results cache, allinone-v1")
}

// shardedAndCached feeds a Pharos whose frontend shards queries (2 shards)
// and caches results the rounds r's target got, checks that its sharded
// range queries answer as the local tsdb l does, then runs the
// results-cache check on it.
func shardedAndCached(t *testing.T, cfg Config, r, l *Result, client *http.Client) {
	ctx := t.Context()
	base := startPharos(t, FrontendArgs(2, true)...)
	target := &Target{Name: "sharded", Base: base, Metrics: []string{base + "/metrics"}, Replicas: 1}
	wc := cfg
	// The same rounds, however long they take on a loaded machine.
	wc.MaxRounds, wc.Duration = r.Write.Rounds, time.Minute
	w := RunWrites(ctx, wc, NewHTTPSink(base+"/api/v1/write", false, cfg.Concurrency, client), r.T0, 0)
	require.NoError(t, w.FirstErr)
	require.Equal(t, r.Write.EndMs, w.EndMs)
	vals, err := scrapeProcess(ctx, client, base+"/metrics")
	require.NoError(t, err)
	sharded0 := vals["pharos_frontend_sharded_queries_total"]
	qs := runQueries(ctx, cfg, &HTTPQuerier{Base: base, Client: client}, w.EndMs, RangeQueries())
	require.Len(t, qs, 2)
	for _, q := range qs {
		require.NoError(t, q.FirstErr, q.Query.Name)
		lq := l.query(q.Query.Name)
		require.NotNil(t, lq)
		require.Equal(t, lq.Series, q.Series, q.Query.Name)
		require.Equal(t, lq.Digest, q.Digest, "sharded %s answers as the local tsdb", q.Query.Name)
	}
	vals, err = scrapeProcess(ctx, client, base+"/metrics")
	require.NoError(t, err)
	require.Greater(t, vals["pharos_frontend_sharded_queries_total"], sharded0, "the frontend sharded the range queries")
	r.Shards = []ShardRun{{Shards: 2, Queries: qs}}

	sr := &Result{Name: "sharded", T0: r.T0, Write: w}
	c, err := CacheCheck(ctx, cfg, target, client, sr)
	require.NoError(t, err)
	require.Zero(t, c.StartMs%cfg.QueryStep.Milliseconds(), "step-aligned, so cacheable")
	require.GreaterOrEqual(t, c.EndMs, c.RoundMs, "the range covers the new round")
	require.Less(t, c.RoundMs, c.CachedBefore, "the new round is inside what the frontend caches")
	require.Zero(t, c.Reference.Hits, "the reference is evaluated")
	require.Zero(t, c.Cold.Hits, "the cold run finds an empty cache")
	require.Equal(t, c.Reference.Digest, c.Cold.Digest)
	require.Positive(t, c.WarmHits, "warm runs are answered from the cache")
	require.True(t, c.WarmSame)
	require.GreaterOrEqual(t, len(c.Warm), 3)
	require.Positive(t, c.Round.Samples)
	require.Equal(t, cfg.Series, c.Round.Samples/cfg.SamplesPerSeries, "one more sample per active series")
	require.Contains(t, []string{"fresh", "stale"}, c.Verdict(), "the check is conclusive")
	t.Logf("results cache after one more round: %s", c.Verdict())
	// New samples at wall-clock time are what a dashboard waits for: the
	// cached query over a range ending now must show them.
	require.Positive(t, c.LiveRound.Samples)
	require.Equal(t, "fresh", c.LiveVerdict(), "the cached query over a range ending now sees samples written now")
	require.Positive(t, c.LiveAfter.Hits, "the live query's older steps still come from the cache")
	r.Cache = c
}
