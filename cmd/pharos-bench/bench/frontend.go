package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// ShardRun is the range queries on a target whose query frontend ran them
// as Shards shards (0: unsharded), with the results cache off.
type ShardRun struct {
	Shards int
	// Restart is the time from starting the target again on the same data
	// to its first acknowledged write: WAL replay, mostly.
	Restart time.Duration
	Queries []QueryResult
}

// CacheRun is the results cache on one dashboard query: step-aligned, run
// cold, warm, and again after one more round of samples lands inside the
// range it cached.
type CacheRun struct {
	Query Query
	// StartMs and EndMs are the query's range (data time).
	StartMs, EndMs int64
	Restart        time.Duration
	// Reference is the query evaluated past the cache (Query.Uncached)
	// before the new round, AfterReference after it.
	Reference, Cold, After, AfterReference OneQuery
	// Warm are the second and later runs before the new round (sorted);
	// WarmSame says every one answered what Cold did.
	Warm                 []time.Duration
	WarmHits, WarmMisses float64
	WarmSame             bool
	WarmError            error
	// Round is the write of the extra round, whose samples are at RoundMs.
	Round   WriteResult
	RoundMs int64
	// CachedBefore is the data time up to which the frontend may cache
	// (now − max_cache_freshness at the cold run; 1m by default).
	CachedBefore int64

	// Live is the case a dashboard is in: the same query over a range
	// ending now, run cached (LiveBefore), then two more rounds written at
	// wall-clock time (LiveRound, the last at LiveRoundMs), then cached
	// (LiveAfter) and uncached (LiveAfterReference). New samples land in
	// the part newer than max_cache_freshness, which is never cached.
	LiveStartMs, LiveEndMs                    int64
	LiveBefore, LiveAfter, LiveAfterReference OneQuery
	LiveRound                                 WriteResult
	LiveRoundMs                               int64
}

// LiveVerdict says whether the cached query over a range ending now
// answered the rounds written at now, as the uncached one does.
func (c *CacheRun) LiveVerdict() string {
	switch {
	case c.LiveRound.Samples == 0:
		return "n/a: the live rounds were not written"
	case c.LiveAfterReference.Digest == c.LiveBefore.Digest:
		return "n/a: the live rounds did not change the uncached answer"
	case c.LiveAfter.Digest == c.LiveAfterReference.Digest:
		return "fresh"
	case c.LiveAfter.Digest == c.LiveBefore.Digest:
		return "stale"
	}
	return "wrong: neither the answer before the rounds nor after them"
}

// OneQuery is one run of a query: its time, its answer and the steps the
// frontend answered from its cache (hits) and evaluated (misses).
type OneQuery struct {
	Took         time.Duration
	Series       int
	Digest       uint64
	Hits, Misses float64
}

// Verdict says whether the cached query answered the new round: "fresh"
// (as the uncached query does), "stale" (as before the round, though the
// uncached answer changed), or why neither can be said.
func (c *CacheRun) Verdict() string {
	switch {
	case c.Round.Samples == 0:
		return "n/a: the extra round was not written"
	case c.AfterReference.Digest == c.Reference.Digest:
		return "n/a: the new round did not change the uncached answer"
	case c.After.Digest == c.AfterReference.Digest:
		return "fresh"
	case c.After.Digest == c.Cold.Digest:
		return "stale"
	}
	return "wrong: neither the answer before the round nor after it"
}

// RunFrontend measures the query frontend of a spawned cluster on the data
// r's write phase left, restarting it on the same data directories with
// other flags: for each of 0 and shards, the range queries with query
// sharding at that many shards and the results cache off (ending where r's
// did, so that answers compare with the local tsdb's); then, if cache, the
// results cache (CacheCheck) without sharding. The results go into r.
func RunFrontend(ctx context.Context, cfg Config, c *Cluster, client *http.Client, r *Result, shards []int, cache bool) error {
	if r.Write.EndMs < 0 {
		return nil
	}
	// The probe write of a restart goes at the newest data time: older than
	// an hour before it, the head would refuse it.
	probe := r.T0 + int64(max(r.Write.RoundsMax-1, 0))*cfg.Interval.Milliseconds()
	qr := &HTTPQuerier{Base: c.Target.Base, Client: client}
	for _, n := range append([]int{0}, shards...) {
		d, err := c.Restart(ctx, client, FrontendArgs(n, false), probe)
		if err != nil {
			return fmt.Errorf("restart with %d shards: %w", n, err)
		}
		if err := c.Target.Settle(ctx, client, cfg.QuerySettle); err != nil {
			return err
		}
		r.Shards = append(r.Shards, ShardRun{Shards: n, Restart: d, Queries: runQueries(ctx, cfg, qr, r.Write.EndMs, RangeQueries())})
	}
	if !cache {
		return nil
	}
	d, err := c.Restart(ctx, client, FrontendArgs(0, true), probe)
	if err != nil {
		return fmt.Errorf("restart with the results cache: %w", err)
	}
	if err := c.Target.Settle(ctx, client, cfg.QuerySettle); err != nil {
		return err
	}
	cr, err := CacheCheck(ctx, cfg, &c.Target, client, r)
	if err != nil {
		return err
	}
	cr.Restart = d
	r.Cache = cr
	return nil
}

// MaxCacheFreshness is the query frontend's default
// -query-frontend.max-cache-freshness: points newer than now minus it are
// never cached.
const MaxCacheFreshness = time.Minute

// CacheCheck runs the dashboard query (Queries[0]) on a target with the
// results cache on, over a step-aligned range (so the frontend caches it)
// that ends at the first step at or after the data time of the round after
// r's last one: once uncached as a reference, cold, then warm for
// cfg.QueryDuration (at least three times); then writes that round (every
// series, one more sample each, at a data time well before now −
// max_cache_freshness, so inside the range the frontend cached) and runs
// the query cached and uncached again.
func CacheCheck(ctx context.Context, cfg Config, t *Target, client *http.Client, r *Result) (*CacheRun, error) {
	step := cfg.QueryStep.Milliseconds()
	round := r.Write.RoundsMax
	c := &CacheRun{
		Query:   Query{Name: Queries[0].Name, Expr: Queries[0].Expr, Range: true},
		RoundMs: r.T0 + int64(round)*cfg.Interval.Milliseconds(),
	}
	last := c.RoundMs + int64(cfg.SamplesPerSeries-1)*(cfg.Interval.Milliseconds()/int64(cfg.SamplesPerSeries))
	c.EndMs = (last + step - 1) / step * step
	qcfg := cfg
	qcfg.QueryRange = time.Duration(cfg.QueryRange.Milliseconds()/step*step) * time.Millisecond
	c.StartMs = c.EndMs - qcfg.QueryRange.Milliseconds()
	qr := &HTTPQuerier{Base: t.Base, Client: client}
	uncached := c.Query
	uncached.Uncached = true
	run := func(q Query, end int64, qcfg Config) (OneQuery, error) {
		h0, m0, err := cacheSteps(ctx, t, client)
		if err != nil {
			return OneQuery{}, err
		}
		ans, took, err := qr.Run(ctx, q, end, qcfg)
		if err != nil {
			return OneQuery{}, fmt.Errorf("%s: %w", q.Name, err)
		}
		h1, m1, err := cacheSteps(ctx, t, client)
		return OneQuery{Took: took, Series: len(ans), Digest: ans.digest(), Hits: h1 - h0, Misses: m1 - m0}, err
	}
	var err error
	if c.Reference, err = run(uncached, c.EndMs, qcfg); err != nil {
		return nil, err
	}
	c.CachedBefore = time.Now().Add(-MaxCacheFreshness).UnixMilli()
	if c.Cold, err = run(c.Query, c.EndMs, qcfg); err != nil {
		return nil, err
	}
	c.WarmSame = true
	deadline := time.Now().Add(cfg.QueryDuration)
	for n := 0; ctx.Err() == nil && (n < 3 || time.Now().Before(deadline)); n++ {
		w, err := run(c.Query, c.EndMs, qcfg)
		if err != nil {
			c.WarmError = err
			break
		}
		c.Warm = append(c.Warm, w.Took)
		c.WarmHits += w.Hits
		c.WarmMisses += w.Misses
		c.WarmSame = c.WarmSame && w.Digest == c.Cold.Digest
	}
	slices.Sort(c.Warm)
	if len(c.Warm) > 0 {
		c.WarmHits /= float64(len(c.Warm))
		c.WarmMisses /= float64(len(c.Warm))
	}
	wcfg := cfg
	wcfg.MaxRounds, wcfg.Duration = round+1, time.Hour
	sink := NewHTTPSink(t.Base+"/api/v1/write", cfg.Protocol == "v2", cfg.Concurrency, client)
	c.Round = RunWrites(ctx, wcfg, sink, r.T0, round)
	if c.Round.FirstErr != nil {
		return nil, fmt.Errorf("write the extra round: %w", c.Round.FirstErr)
	}
	if c.After, err = run(c.Query, c.EndMs, qcfg); err != nil {
		return nil, err
	}
	if c.AfterReference, err = run(uncached, c.EndMs, qcfg); err != nil {
		return nil, err
	}
	return c, c.liveCheck(ctx, cfg, qcfg, sink, round+1, run, uncached)
}

// liveCheck is CacheRun.Live: two rounds, from round first on, written
// at now − 2 intervals and now − 1 interval (later than every sample
// so far, so the head takes them in order), and a query range that ends
// at the first step after now. rate() needs both rounds inside its
// window to give a value there. The query runs at twice the step of the
// runs before it, so that it is cached on its own: the extents of those
// runs are stale after the extra round by design, and the live ranges
// overlap them when the harness's data clock runs close to now.
func (c *CacheRun) liveCheck(ctx context.Context, cfg, qcfg Config, sink Sink, first int,
	runAt func(Query, int64, Config) (OneQuery, error), uncached Query,
) error {
	qcfg.QueryStep *= 2
	step, interval := qcfg.QueryStep.Milliseconds(), cfg.Interval.Milliseconds()
	qcfg.QueryRange = time.Duration(qcfg.QueryRange.Milliseconds()/step*step) * time.Millisecond
	run := func(q Query, end int64) (OneQuery, error) { return runAt(q, end, qcfg) }
	now := time.Now().UnixMilli()
	c.LiveEndMs = (now/step + 1) * step
	c.LiveStartMs = c.LiveEndMs - qcfg.QueryRange.Milliseconds()
	var err error
	if c.LiveBefore, err = run(c.Query, c.LiveEndMs); err != nil {
		return err
	}
	// Round k is written at t0' + k*interval: shift t0 so that round first
	// lands two intervals before now.
	shifted := now - 2*interval - int64(first)*interval
	wcfg := cfg
	wcfg.MaxRounds, wcfg.Duration = first+2, time.Hour
	c.LiveRound = RunWrites(ctx, wcfg, sink, shifted, first)
	if c.LiveRound.FirstErr != nil {
		return fmt.Errorf("write the live rounds: %w", c.LiveRound.FirstErr)
	}
	c.LiveRoundMs = shifted + int64(first+1)*interval
	if c.LiveAfter, err = run(c.Query, c.LiveEndMs); err != nil {
		return err
	}
	c.LiveAfterReference, err = run(uncached, c.LiveEndMs)
	return err
}

// cacheSteps sums the frontend's pharos_frontend_results_cache_steps_total
// over the target's processes.
func cacheSteps(ctx context.Context, t *Target, client *http.Client) (hits, misses float64, err error) {
	for _, m := range t.Metrics {
		vals, err := scrapeProcess(ctx, client, m)
		if err != nil {
			return 0, 0, err
		}
		hits += vals[`pharos_frontend_results_cache_steps_total{result="hit"}`]
		misses += vals[`pharos_frontend_results_cache_steps_total{result="miss"}`]
	}
	return hits, misses, nil
}
