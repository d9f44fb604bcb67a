package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/prometheus/prometheus/tsdb"
)

// Result is one side's measurements.
type Result struct {
	Name     string
	Replicas int
	Write    WriteResult
	Queries  []QueryResult
	// ServerCPU is the target's CPU during the write phase (for the local
	// tsdb: this process, generator included).
	ServerCPU float64
	// ClientCPU is this process's CPU during the write phase (generator,
	// encoding, HTTP); 0 for the local tsdb, where it is in ServerCPU.
	ClientCPU float64
	// RSSBefore/RSSAfter are resident bytes before and after the writes.
	RSSBefore, RSSAfter float64
	// T0 is the data time of the first round, ms.
	T0 int64
	// Disk is measured once the side has stopped; nil when it was not
	// (a remote target).
	Disk *DiskUsage
}

// CPUPerMSamples is server CPU-seconds per million samples.
func (r *Result) CPUPerMSamples() float64 {
	if r.Write.Samples == 0 {
		return 0
	}
	return r.ServerCPU / (float64(r.Write.Samples) / 1e6)
}

// RSSPerSeries is the growth of resident memory per head series per
// replica, in bytes.
func (r *Result) RSSPerSeries() float64 {
	if r.Write.SeriesCreated == 0 {
		return 0
	}
	return (r.RSSAfter - r.RSSBefore) / float64(r.Write.SeriesCreated*max(1, r.Replicas))
}

// StartMs is the data time of the first round of a load started now.
func StartMs(cfg Config) int64 {
	return time.Now().Add(-cfg.Lookback).UnixMilli()
}

// RunLocal writes and queries a prometheus tsdb.DB in dir, in this process:
// the limit Pharos is measured against. Its first round is at t0 (ms), or
// Lookback ago when t0 is 0: a target's T0 makes the two answers comparable.
func RunLocal(ctx context.Context, cfg Config, dir string, t0 int64) (*Result, error) {
	if t0 == 0 {
		t0 = StartMs(cfg)
	}
	debug.FreeOSMemory()
	before := selfUsage()
	db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = db.Close()
		}
	}()
	res := &Result{Name: "local tsdb", Replicas: 1, RSSBefore: before.RSSBytes, T0: t0}
	res.Write = RunWrites(ctx, cfg, TSDBSink{DB: db}, t0)
	after := selfUsage()
	res.ServerCPU = after.CPUSeconds - before.CPUSeconds
	// Drop the generator's garbage so RSS shows what the head holds.
	debug.FreeOSMemory()
	res.RSSAfter = selfUsage().RSSBytes
	if res.Write.EndMs >= 0 {
		res.Queries = RunQueries(ctx, cfg, NewLocalQuerier(db), res.Write.EndMs)
	}
	closed = true
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("close tsdb: %w", err)
	}
	scratch, err := os.MkdirTemp(filepath.Dir(dir), "disk-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	d, err := MeasureDisk(scratch, dir)
	if err != nil {
		return nil, fmt.Errorf("measure disk: %w", err)
	}
	res.Disk = &d
	return res, nil
}

// RunTarget writes to and queries a running Pharos.
func RunTarget(ctx context.Context, cfg Config, t *Target, client *http.Client) (*Result, error) {
	before, err := t.Sample(ctx, client)
	if err != nil {
		return nil, err
	}
	self0 := selfUsage()
	res := &Result{Name: t.Name, Replicas: max(1, t.Replicas), RSSBefore: before.RSSBytes, T0: StartMs(cfg)}
	sink := NewHTTPSink(t.Base+"/api/v1/write", cfg.Protocol == "v2", cfg.Concurrency, client)
	res.Write = RunWrites(ctx, cfg, sink, res.T0)
	self1 := selfUsage()
	after, err := t.Sample(ctx, client)
	if err != nil {
		return nil, err
	}
	res.ServerCPU = after.CPUSeconds - before.CPUSeconds
	res.ClientCPU = self1.CPUSeconds - self0.CPUSeconds
	res.RSSAfter = after.RSSBytes
	if res.Write.EndMs >= 0 {
		res.Queries = RunQueries(ctx, cfg, &HTTPQuerier{Base: t.Base, Client: client}, res.Write.EndMs)
	}
	return res, nil
}

// Pair is a target's result and the local tsdb's on the same samples.
type Pair struct {
	Target, Local *Result
}

// Report prints every target's numbers beside the local tsdb's on the same
// samples, with their ratios.
func Report(w io.Writer, cfg Config, pairs []Pair) {
	fmt.Fprintf(w, "# pharos-bench: %d active series, churn %g/interval, %d sample(s)/series/interval, %d writers × %d series/request, remote write %s\n",
		cfg.Series, cfg.Churn, cfg.SamplesPerSeries, cfg.Concurrency, cfg.BatchSeries, cfg.Protocol)
	fmt.Fprintf(w, "\n## ingest\n| side | samples | head series | samples/s | vs tsdb | write p50 | write p99 | errors/requests | server CPU-s/M samples | client CPU-s/M | samples per server CPU-s | RSS after | RSS growth/series/replica | vs tsdb |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range pairs {
		for _, r := range []*Result{p.Local, p.Target} {
			if r == nil {
				continue
			}
			ratio, memRatio := "1", "1"
			if r == p.Target && p.Local != nil {
				ratio = fmtRatio(r.Write.SamplesPerSec(), p.Local.Write.SamplesPerSec())
				memRatio = fmtRatio(r.RSSPerSeries(), p.Local.RSSPerSeries())
			}
			perCPU, clientPerM := 0.0, 0.0
			if r.ServerCPU > 0 {
				perCPU = float64(r.Write.Samples) / r.ServerCPU
			}
			if r.Write.Samples > 0 {
				clientPerM = r.ClientCPU / (float64(r.Write.Samples) / 1e6)
			}
			fmt.Fprintf(w, "| %s | %d | %d | %.0f | %s | %s | %s | %d/%d | %.2f | %.2f | %.0f | %.0f MiB | %.0f B | %s |\n",
				r.Name, r.Write.Samples, r.Write.SeriesCreated, r.Write.SamplesPerSec(), ratio,
				fmtDur(Quantile(r.Write.Latencies, 0.5)), fmtDur(Quantile(r.Write.Latencies, 0.99)),
				r.Write.Errors, r.Write.Requests, r.CPUPerMSamples(), clientPerM, perCPU, r.RSSAfter/(1<<20), r.RSSPerSeries(), memRatio)
		}
	}
	for _, p := range pairs {
		for _, r := range []*Result{p.Local, p.Target} {
			if r != nil && r.Write.FirstErr != nil {
				fmt.Fprintf(w, "\n%s: first write error: %v\n", r.Name, r.Write.FirstErr)
			}
		}
	}
	fmt.Fprintf(w, "\n## disk (closed tsdb: WAL and head chunks as ingested; blocks after compacting the head)\n| side | WAL | head chunks | blocks | samples in blocks | bytes/sample | vs tsdb |\n|---|---|---|---|---|---|---|\n")
	for _, p := range pairs {
		for _, r := range []*Result{p.Local, p.Target} {
			if r == nil || r.Disk == nil {
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
	fmt.Fprintf(w, "\n## queries (range queries over %s at %s step; series = series in the answer; same = the answer equals the local tsdb's)\n| side | query | p50 | p99 | runs | series | same | p50 vs tsdb |\n|---|---|---|---|---|---|---|---|\n", cfg.QueryRange, cfg.QueryStep)
	for qi := range Queries {
		for _, p := range pairs {
			for _, r := range []*Result{p.Local, p.Target} {
				if r == nil || qi >= len(r.Queries) {
					continue
				}
				q := r.Queries[qi]
				ratio, same := "1", ""
				if r == p.Target && p.Local != nil && qi < len(p.Local.Queries) {
					lq := p.Local.Queries[qi]
					ratio = fmtRatio(Quantile(q.Latencies, 0.5).Seconds(), Quantile(lq.Latencies, 0.5).Seconds())
					switch {
					case p.Local.T0 != r.T0 || p.Local.Write.EndMs != r.Write.EndMs:
						same = "n/a"
					case q.Digest == lq.Digest && q.Series >= 0:
						same = "yes"
					default:
						same = "**no**"
					}
				}
				fmt.Fprintf(w, "| %s | `%s` | %s | %s | %d | %d | %s | %s |\n", r.Name, q.Query.Name,
					fmtDur(Quantile(q.Latencies, 0.5)), fmtDur(Quantile(q.Latencies, 0.99)), len(q.Latencies), q.Series, same, ratio)
				if q.FirstErr != nil {
					fmt.Fprintf(w, "|  | %d errors: %v |||||\n", q.Errors, q.FirstErr)
				}
			}
		}
	}
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
