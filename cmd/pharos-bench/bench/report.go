package bench

import (
	"fmt"
	"io"
	"time"
)

// Report prints every target's numbers beside the local tsdb's on the same
// samples, with their ratios.
func Report(w io.Writer, cfg Config, pairs []Pair) {
	fmt.Fprintf(w, "# pharos-bench: %d active series, churn %g/interval, %d sample(s)/series/interval, %d writers × %d series/request, remote write %s\n",
		cfg.Series, cfg.Churn, cfg.SamplesPerSeries, cfg.Concurrency, cfg.BatchSeries, cfg.Protocol)
	sides := func(p Pair) []*Result {
		var out []*Result
		for _, r := range []*Result{p.Local, p.Target} {
			if r != nil {
				out = append(out, r)
			}
		}
		return out
	}
	// ratio is r's value against its local tsdb's, "1" for the local one.
	ratio := func(p Pair, r *Result, f func(*Result) float64) string {
		if r != p.Target || p.Local == nil {
			return "1"
		}
		return fmtRatio(f(r), f(p.Local))
	}

	fmt.Fprintf(w, "\n## ingest (warm: from when the last writer finished its first round, so every series exists, to the end; RSS as read, no GC or FreeOSMemory on either side)\n"+
		"| side | samples | head series | samples/s | vs tsdb | warm samples/s | vs tsdb | write p50 | write p99 | errors/requests | server CPU-s/M samples | client CPU-s/M | samples per server CPU-s | RSS after | RSS growth/series/replica | vs tsdb |\n"+
		"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range pairs {
		for _, r := range sides(p) {
			perCPU, clientPerM := 0.0, 0.0
			if r.ServerCPU > 0 {
				perCPU = float64(r.Write.Samples) / r.ServerCPU
			}
			if r.Write.Samples > 0 {
				clientPerM = r.ClientCPU / (float64(r.Write.Samples) / 1e6)
			}
			fmt.Fprintf(w, "| %s | %d | %d | %.0f | %s | %.0f | %s | %s | %s | %d/%d | %.2f | %.2f | %.0f | %.0f MiB | %.0f B | %s |\n",
				r.Name, r.Write.Samples, r.Write.SeriesCreated,
				r.Write.SamplesPerSec(), ratio(p, r, func(r *Result) float64 { return r.Write.SamplesPerSec() }),
				r.Write.WarmSamplesPerSec(), ratio(p, r, func(r *Result) float64 { return r.Write.WarmSamplesPerSec() }),
				fmtDur(Quantile(r.Write.Latencies, 0.5)), fmtDur(Quantile(r.Write.Latencies, 0.99)),
				r.Write.Errors, r.Write.Requests, r.CPUPerMSamples(), clientPerM, perCPU, r.RSSAfter/(1<<20), r.RSSPerSeries(),
				ratio(p, r, (*Result).RSSPerSeries))
		}
	}
	reportByLabels(w, pairs)
	for _, p := range pairs {
		for _, r := range sides(p) {
			if r.Write.FirstErr != nil {
				fmt.Fprintf(w, "\n%s: first write error: %v\n", r.Name, r.Write.FirstErr)
			}
		}
	}

	fmt.Fprintf(w, "\n## memory (growth over the write phase per head series per replica, read the same way on both sides: RSS and Go heap in use as they are; live heap right after a forced GC; the local tsdb's side is the harness process, which starts after a FreeOSMemory)\n"+
		"| side | head series | RSS growth | vs tsdb | heap-in-use growth | vs tsdb | live-heap growth | vs tsdb | RSS after | heap in use after | live heap after | RSS growth after FreeOSMemory (local only) |\n"+
		"|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range pairs {
		for _, r := range sides(p) {
			heap := func(r *Result) float64 { return r.perSeries(r.HeapInuseBefore, r.HeapInuseAfter) }
			live := func(r *Result) float64 { return r.perSeries(r.LiveHeapBefore, r.LiveHeapAfter) }
			freed := "-"
			if r.RSSAfterFreed > 0 {
				freed = fmt.Sprintf("%.0f B", r.perSeries(r.RSSBefore, r.RSSAfterFreed))
			}
			fmt.Fprintf(w, "| %s | %d | %.0f B | %s | %.0f B | %s | %.0f B | %s | %.0f MiB | %.0f MiB | %.0f MiB | %s |\n",
				r.Name, r.Write.SeriesCreated, r.RSSPerSeries(), ratio(p, r, (*Result).RSSPerSeries),
				heap(r), ratio(p, r, heap), live(r), ratio(p, r, live),
				r.RSSAfter/(1<<20), r.HeapInuseAfter/(1<<20), r.LiveHeapAfter/(1<<20), freed)
		}
	}

	fmt.Fprintf(w, "\n## disk (closed tsdb: WAL and head chunks as ingested; blocks after compacting the head)\n| side | WAL | head chunks | blocks | samples in blocks | bytes/sample | vs tsdb |\n|---|---|---|---|---|---|---|\n")
	for _, p := range pairs {
		for _, r := range sides(p) {
			if r.Disk == nil {
				continue
			}
			ratio := "1"
			if r == p.Target && p.Local != nil && p.Local.Disk != nil {
				ratio = fmtRatio(r.Disk.BytesPerSample(), p.Local.Disk.BytesPerSample())
			}
			fmt.Fprintf(w, "| %s | %.1f MiB | %.1f MiB | %.1f MiB | %d | %.2f | %s |\n", r.Name,
				float64(r.Disk.WALBytes)/(1<<20), float64(r.Disk.HeadChunkBytes)/(1<<20), float64(r.Disk.BlockBytes)/(1<<20),
				r.Disk.BlockSamples, r.Disk.BytesPerSample(), ratio)
		}
	}

	note := ""
	for _, p := range pairs {
		if p.Target != nil && p.Target.QueryNote != "" {
			note = "; Pharos's query frontend: " + p.Target.QueryNote
			break
		}
	}
	note += settleNote(cfg)
	fmt.Fprintf(w, "\n## queries (range queries over %s at %s step%s; time until the last byte of the answer, decoding excluded; series = series in the answer; same = the answer equals the local tsdb's)\n| side | query | p50 | p99 | runs | series | same | p50 vs tsdb |\n|---|---|---|---|---|---|---|---|\n", cfg.QueryRange, cfg.QueryStep, note)
	for qi := range Queries {
		for _, p := range pairs {
			for _, r := range sides(p) {
				if qi >= len(r.Queries) {
					continue
				}
				q := r.Queries[qi]
				ratio, same := "1", ""
				if r == p.Target && p.Local != nil {
					if lq := p.Local.query(q.Query.Name); lq != nil {
						ratio = fmtRatio(Quantile(q.Latencies, 0.5).Seconds(), Quantile(lq.Latencies, 0.5).Seconds())
						same = sameAs(p, q, lq)
					}
				}
				queryRow(w, r.Name, q, same, ratio)
			}
		}
	}

	reportShards(w, cfg, pairs)
	reportBlocks(w, cfg, pairs)
	reportCache(w, pairs)
}

// reportBlocks sets the range queries on blocks beside the local tsdb's on
// its own blocks.
func reportBlocks(w io.Writer, cfg Config, pairs []Pair) {
	if !anyTarget(pairs, func(r *Result) bool { return r.Blocks != nil }) {
		return
	}
	fmt.Fprintf(w, "\n## queries on blocks (range queries over %s at %s step, same data and end as above, compacted into one block per replica, the head empty; Pharos restarted on the blocks alone, no sharding, results cache off%s; open = start, or the local tsdb's open, to ready; same = the answer equals the local tsdb's on its head)\n"+
		"| side | open | query | p50 | p99 | runs | series | same | p50 vs tsdb on blocks | p50 vs its own head |\n|---|---|---|---|---|---|---|---|---|---|\n", cfg.QueryRange, cfg.QueryStep, settleNote(cfg))
	for _, q := range RangeQueries() {
		for _, p := range pairs {
			if p.Target == nil || p.Target.Blocks == nil {
				continue
			}
			var lb *QueryResult
			if p.Local != nil && p.Local.Blocks != nil {
				lb = findQuery(p.Local.Blocks.Queries, q.Name)
			}
			for _, r := range []*Result{p.Local, p.Target} {
				if r == nil || r.Blocks == nil {
					continue
				}
				bq := findQuery(r.Blocks.Queries, q.Name)
				if bq == nil {
					continue
				}
				p50 := Quantile(bq.Latencies, 0.5)
				vsLocal, vsHead, same := "1", "-", ""
				if hq := r.query(q.Name); hq != nil {
					vsHead = fmtRatio(p50.Seconds(), Quantile(hq.Latencies, 0.5).Seconds())
				}
				if r == p.Target {
					vsLocal = "-"
					if lb != nil {
						vsLocal = fmtRatio(p50.Seconds(), Quantile(lb.Latencies, 0.5).Seconds())
					}
				}
				if p.Local != nil {
					if lq := p.Local.query(q.Name); lq != nil {
						same = sameAs(p, *bq, lq)
					}
				}
				fmt.Fprintf(w, "| %s | %s | `%s` | %s | %s | %d | %d | %s | %s | %s |\n", r.Name, fmtDur(r.Blocks.Open), q.Name,
					fmtDur(p50), fmtDur(Quantile(bq.Latencies, 0.99)), len(bq.Latencies), bq.Series, same, vsLocal, vsHead)
				if bq.FirstErr != nil {
					fmt.Fprintf(w, "|  | %d errors: %v |||||\n", bq.Errors, bq.FirstErr)
				}
			}
		}
	}
}

// anyTarget says whether some pair's target has what has looks for: a
// table of a phase only some runs have is printed only then.
func anyTarget(pairs []Pair, has func(*Result) bool) bool {
	for _, p := range pairs {
		if p.Target != nil && has(p.Target) {
			return true
		}
	}
	return false
}

func queryRow(w io.Writer, side string, q QueryResult, same, ratio string) {
	fmt.Fprintf(w, "| %s | `%s` | %s | %s | %d | %d | %s | %s |\n", side, q.Query.Name,
		fmtDur(Quantile(q.Latencies, 0.5)), fmtDur(Quantile(q.Latencies, 0.99)), len(q.Latencies), q.Series, same, ratio)
	if q.FirstErr != nil {
		fmt.Fprintf(w, "|  | %d errors: %v |||||\n", q.Errors, q.FirstErr)
	}
}

// sameAs compares a target's answer with the local tsdb's.
func sameAs(p Pair, q QueryResult, lq *QueryResult) string {
	switch {
	case p.Local.T0 != p.Target.T0 || p.Local.Write.EndMs != p.Target.Write.EndMs:
		return "n/a"
	case q.Series >= 0 && q.First.Same(lq.First):
		return "yes"
	}
	return "**no**"
}

// query is r's result for the query named name, nil if it has none.
func (r *Result) query(name string) *QueryResult { return findQuery(r.Queries, name) }

// findQuery is the result in qs of the query named name, nil if none.
func findQuery(qs []QueryResult, name string) *QueryResult {
	for i := range qs {
		if qs[i].Query.Name == name {
			return &qs[i]
		}
	}
	return nil
}

func reportShards(w io.Writer, cfg Config, pairs []Pair) {
	if !anyTarget(pairs, func(r *Result) bool { return len(r.Shards) > 0 }) {
		return
	}
	fmt.Fprintf(w, "\n## query sharding (range queries over %s at %s step, same data and end as above; Pharos restarted on the same data directories with -query-frontend.query-sharding-total-shards=N and the results cache off%s; restart = start to first acknowledged write, WAL replay mostly; same = the answer equals the local tsdb's)\n"+
		"| side | shards | restart | query | p50 | p99 | runs | series | same | p50 speedup vs 0 shards | p50 vs tsdb |\n|---|---|---|---|---|---|---|---|---|---|---|\n", cfg.QueryRange, cfg.QueryStep, settleNote(cfg))
	for _, q := range RangeQueries() {
		for _, p := range pairs {
			if p.Target == nil || len(p.Target.Shards) == 0 {
				continue
			}
			var lq *QueryResult
			if p.Local != nil {
				if lq = p.Local.query(q.Name); lq != nil {
					fmt.Fprintf(w, "| %s | - | - | `%s` | %s | %s | %d | %d |  | - | 1 |\n", p.Local.Name, q.Name,
						fmtDur(Quantile(lq.Latencies, 0.5)), fmtDur(Quantile(lq.Latencies, 0.99)), len(lq.Latencies), lq.Series)
				}
			}
			var base time.Duration
			for _, sr := range p.Target.Shards {
				sq := findQuery(sr.Queries, q.Name)
				if sq == nil {
					continue
				}
				p50 := Quantile(sq.Latencies, 0.5)
				if sr.Shards == 0 {
					base = p50
				}
				speedup, vsLocal, same := "-", "-", ""
				if base > 0 && p50 > 0 {
					speedup = fmt.Sprintf("%.2f×", base.Seconds()/p50.Seconds())
				}
				if lq != nil {
					vsLocal = fmtRatio(p50.Seconds(), Quantile(lq.Latencies, 0.5).Seconds())
					same = sameAs(p, *sq, lq)
				}
				fmt.Fprintf(w, "| %s | %d | %s | `%s` | %s | %s | %d | %d | %s | %s | %s |\n", p.Target.Name, sr.Shards, fmtDur(sr.Restart), q.Name,
					fmtDur(p50), fmtDur(Quantile(sq.Latencies, 0.99)), len(sq.Latencies), sq.Series, same, speedup, vsLocal)
				if sq.FirstErr != nil {
					fmt.Fprintf(w, "|  | %d errors: %v |||||\n", sq.Errors, sq.FirstErr)
				}
			}
		}
	}
}

func reportCache(w io.Writer, pairs []Pair) {
	for _, p := range pairs {
		c := p.Target.cacheRun()
		if c == nil {
			continue
		}
		fmt.Fprintf(w, "\n## results cache, %s (`%s` = `%s`, step-aligned range %s to %s data time, cache on, no sharding; restart %s; hits/misses = steps the frontend answered from its cache / evaluated, per run)\n",
			p.Target.Name, c.Query.Name, c.Query.Expr, fmtMs(c.StartMs), fmtMs(c.EndMs), fmtDur(c.Restart))
		fmt.Fprintf(w, "| run | p50 | p99 | runs | hits | misses | series | answer | p50 speedup vs cold |\n|---|---|---|---|---|---|---|---|---|\n")
		one := func(name string, q OneQuery, answer, speedup string) {
			fmt.Fprintf(w, "| %s | %s | %s | 1 | %.0f | %.0f | %d | %s | %s |\n", name, fmtDur(q.Took), fmtDur(q.Took), q.Hits, q.Misses, q.Series, answer, speedup)
		}
		one("uncached (reference)", c.Reference, "", "-")
		one("cold: first run, empty cache", c.Cold, yesNo(c.Cold.Digest == c.Reference.Digest, "= uncached", "**differs from uncached**"), "1")
		warm := Quantile(c.Warm, 0.5)
		fmt.Fprintf(w, "| warm: second and later runs | %s | %s | %d | %.0f | %.0f | %d | %s | %s |\n", fmtDur(warm), fmtDur(Quantile(c.Warm, 0.99)), len(c.Warm),
			c.WarmHits, c.WarmMisses, c.Cold.Series, yesNo(c.WarmSame, "= cold", "**differs from cold**"), fmtSpeedup(c.Cold.Took, warm))
		if c.WarmError != nil {
			fmt.Fprintf(w, "|  | error: %v |||||||\n", c.WarmError)
		}
		one("after one more round, cached", c.After, yesNo(c.After.Digest == c.AfterReference.Digest, "= uncached after the round", "**differs from uncached after the round**"),
			fmtSpeedup(c.Cold.Took, c.After.Took))
		one("after one more round, uncached (reference)", c.AfterReference, yesNo(c.AfterReference.Digest != c.Reference.Digest, "changed by the round", "unchanged by the round"), "-")
		verdict := c.Verdict()
		one(fmt.Sprintf("live: range ending now (%s to %s, twice the step), cached, before two rounds at now", fmtMs(c.LiveStartMs), fmtMs(c.LiveEndMs)), c.LiveBefore, "", "-")
		one("live: cached, after them", c.LiveAfter, yesNo(c.LiveAfter.Digest == c.LiveAfterReference.Digest, "= uncached after them", "**differs from uncached after them**"), "-")
		one("live: uncached after them (reference)", c.LiveAfterReference, yesNo(c.LiveAfterReference.Digest != c.LiveBefore.Digest, "changed by them", "unchanged by them"), "-")
		if verdict == "stale" {
			verdict = "stale, as designed: like Mimir's, the cache takes points older than max_cache_freshness as final, so late samples (a backfill, here the harness's compressed data clock) are not seen in a range it already cached"
		}
		fmt.Fprintf(w, "\nOne more round: %d samples at data time %s (cacheable up to %s at the cold run), written in %s. After it the cached query is %s.\n",
			c.Round.Samples, fmtMs(c.RoundMs), fmtMs(c.CachedBefore), fmtDur(c.Round.Wall), verdict)
		fmt.Fprintf(w, "Live: %d samples in two rounds at wall-clock time, the last at %s; the cached query over a range ending now is then %s.\n",
			c.LiveRound.Samples, fmtMs(c.LiveRoundMs), c.LiveVerdict())
	}
}

func (r *Result) cacheRun() *CacheRun {
	if r == nil {
		return nil
	}
	return r.Cache
}

func yesNo(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func fmtSpeedup(cold, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f×", cold.Seconds()/d.Seconds())
}

func fmtMs(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("15:04:05")
}

func fmtRatio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

// reportByLabels sets each target beside the local tsdb appended by label
// set, as a remote-write receiver is handed its samples, and by cached
// reference, as a scrape loop appends.
func reportByLabels(w io.Writer, pairs []Pair) {
	header := false
	for _, p := range pairs {
		if p.Local == nil || p.Local.ByLabels == nil {
			continue
		}
		if !header {
			header = true
			fmt.Fprintf(w, "\n## ingest against both direct appends (warm samples/s; by reference: series references cached across rounds, as the scrape loop does; by labels: every sample appended by its label set, as Prometheus's remote-write receiver does)\n"+
				"| side | warm samples/s | vs by reference | vs by labels | server CPU-s/M samples |\n|---|---|---|---|---|\n")
		}
		ref, bl := p.Local.Write.WarmSamplesPerSec(), p.Local.ByLabels.Write.WarmSamplesPerSec()
		for _, r := range []*Result{p.Local, p.Local.ByLabels, p.Target} {
			name := r.Name
			if r == p.Local.ByLabels {
				name = "local tsdb by labels for " + p.Target.Name
			}
			v := r.Write.WarmSamplesPerSec()
			fmt.Fprintf(w, "| %s | %.0f | %s | %s | %.2f |\n", name, v, fmtRatio(v, ref), fmtRatio(v, bl), r.CPUPerMSamples())
		}
	}
}

// settleNote says how restarted phases were timed, for a table's heading.
func settleNote(cfg Config) string {
	if cfg.QuerySettle <= 0 {
		return ""
	}
	return fmt.Sprintf("; timed after at least %s and a quiet process (-query.settle)", cfg.QuerySettle)
}
