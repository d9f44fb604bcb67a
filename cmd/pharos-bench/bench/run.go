package bench

import (
	"context"
	"fmt"
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
	// QueryNote says how the target's query frontend was set during
	// Queries ("" for the local tsdb).
	QueryNote string
	// ServerCPU is the target's CPU during the write phase (for the local
	// tsdb: this process, the generator's per-round work included; on
	// both sides the series are labelled before the clock starts).
	ServerCPU float64
	// ClientCPU is this process's CPU during the write phase (samples,
	// encoding, compression, HTTP); 0 for the local tsdb, where it is in
	// ServerCPU.
	ClientCPU float64
	// Memory before and after the writes, read the same way on both
	// sides: RSS and heap in use as they are (no GC, nothing returned to
	// the OS first), and the live heap right after a forced GC. The local
	// tsdb's "before" follows a debug.FreeOSMemory, so that it starts as
	// clean as a fresh Pharos process.
	RSSBefore, RSSAfter             float64
	HeapInuseBefore, HeapInuseAfter float64
	LiveHeapBefore, LiveHeapAfter   float64
	// RSSAfterFreed is the local tsdb's RSS after debug.FreeOSMemory (what
	// earlier versions reported as its RSS); 0 for a target, which cannot
	// be made to return its free memory.
	RSSAfterFreed float64
	// T0 is the data time of the first round, ms.
	T0 int64
	// Disk is measured once the side has stopped; nil when it was not
	// (a remote target).
	Disk *DiskUsage
	// Shards and Cache are the query frontend's runs (RunFrontend).
	Shards []ShardRun
	Cache  *CacheRun
	// Blocks is the range queries on the written data compacted into
	// blocks (RunBlocks; for the local tsdb, in RunLocal); nil if not run.
	Blocks *BlockRun
	// ByLabels is, for the local tsdb, the same rounds appended again to a
	// fresh tsdb.DB by label set rather than by cached reference
	// (TSDBSink.ByLabels): write numbers only.
	ByLabels *Result
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
func (r *Result) RSSPerSeries() float64 { return r.perSeries(r.RSSBefore, r.RSSAfter) }

// perSeries is a growth from before to after per head series per replica.
func (r *Result) perSeries(before, after float64) float64 {
	if r.Write.SeriesCreated == 0 {
		return 0
	}
	return (after - before) / float64(r.Write.SeriesCreated*max(1, r.Replicas))
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
	// Whatever the harness did before (a target's write phase) is garbage:
	// start from what a fresh process holds. Twice, as sync.Pools keep
	// what they hold through one GC (the tsdb's pools from measuring the
	// target's disk were 25 MiB at 20k series). Memory is counted from
	// before the series are labelled, since the head keeps those label
	// sets, CPU and time from after, as for a target.
	debug.FreeOSMemory()
	debug.FreeOSMemory()
	before := selfUsage()
	load := NewLoad(cfg, t0, 0)
	cpu0 := selfUsage().CPUSeconds
	db, err := tsdb.Open(dir, nil, nil, cfg.tsdbOptions(), nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = db.Close()
		}
	}()
	res := &Result{
		Name: "local tsdb", Replicas: 1, T0: t0,
		RSSBefore: before.RSSBytes, HeapInuseBefore: before.HeapInuseBytes, LiveHeapBefore: before.HeapAllocBytes,
	}
	res.Write = load.Run(ctx, TSDBSink{DB: db})
	after := selfUsage()
	res.ServerCPU = after.CPUSeconds - cpu0
	res.RSSAfter, res.HeapInuseAfter = after.RSSBytes, after.HeapInuseBytes
	res.LiveHeapAfter = selfLiveHeap()
	debug.FreeOSMemory()
	res.RSSAfterFreed = selfUsage().RSSBytes
	if res.Write.EndMs >= 0 {
		if err := settleSelf(ctx, cfg.QuerySettle); err != nil {
			return nil, err
		}
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
	if cfg.QueryBlocks && res.Write.EndMs >= 0 {
		if res.Blocks, err = localBlocks(ctx, cfg, d.BlockDirs[0], res.Write.EndMs); err != nil {
			return nil, fmt.Errorf("queries on blocks: %w", err)
		}
	}
	// Exactly the rounds the first pass wrote, however long they take.
	bc := cfg
	bc.MaxRounds, bc.Duration = max(1, res.Write.Rounds), 10*max(cfg.Duration, time.Second)
	if res.ByLabels, err = runByLabels(ctx, bc, dir+"-by-labels", t0); err != nil {
		return nil, err
	}
	return res, nil
}

// runByLabels appends the same rounds to a fresh tsdb.DB in dir by label
// set, and removes it.
func runByLabels(ctx context.Context, cfg Config, dir string, t0 int64) (*Result, error) {
	defer os.RemoveAll(dir)
	debug.FreeOSMemory()
	load := NewLoad(cfg, t0, 0)
	// CPU from after the labelling and with the open, as RunLocal counts.
	cpu0 := selfUsage().CPUSeconds
	db, err := tsdb.Open(dir, nil, nil, cfg.tsdbOptions(), nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb: %w", err)
	}
	res := &Result{Name: "local tsdb by labels", Replicas: 1, T0: t0}
	res.Write = load.Run(ctx, TSDBSink{DB: db, ByLabels: true})
	res.ServerCPU = selfUsage().CPUSeconds - cpu0
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("close tsdb: %w", err)
	}
	return res, nil
}

// RunTarget writes to and queries a running Pharos.
func RunTarget(ctx context.Context, cfg Config, t *Target, client *http.Client) (*Result, error) {
	res := &Result{Name: t.Name, Replicas: max(1, t.Replicas), T0: StartMs(cfg)}
	// The series and the first requests are made before the clock starts:
	// the harness shares the cores with the target, and that work is not
	// the target's.
	sink := NewHTTPSink(t.Base+"/api/v1/write", cfg.Protocol == "v2", cfg.Concurrency, client)
	load := NewLoad(cfg, res.T0, 0)
	if err := load.Prepare(sink); err != nil {
		return nil, err
	}
	live0, err := t.LiveHeap(ctx, client)
	if err != nil {
		return nil, err
	}
	before, err := t.Sample(ctx, client)
	if err != nil {
		return nil, err
	}
	self0 := selfUsage()
	res.RSSBefore, res.HeapInuseBefore, res.LiveHeapBefore = before.RSSBytes, before.HeapInuseBytes, live0
	// The write profile starts when every series exists: series creation
	// is the first round's cost, which the warm columns leave out too.
	profiled := t.Profile(ctx, client, cfg.ProfileDir, "write", load.Warm())
	stopSelf, err := profileSelf(cfg.ProfileDir, t.Name, "write")
	if err != nil {
		return nil, err
	}
	res.Write = load.Run(ctx, sink)
	self1 := selfUsage()
	if err := stopSelf(); err != nil {
		return nil, fmt.Errorf("profile the harness: %w", err)
	}
	after, err := t.Sample(ctx, client)
	if err != nil {
		return nil, err
	}
	res.ServerCPU = after.CPUSeconds - before.CPUSeconds
	res.ClientCPU = self1.CPUSeconds - self0.CPUSeconds
	res.RSSAfter, res.HeapInuseAfter = after.RSSBytes, after.HeapInuseBytes
	if res.LiveHeapAfter, err = t.LiveHeap(ctx, client); err != nil {
		return nil, err
	}
	// A profile outlasting the write phase must not overlap the queries.
	if err := profiled(); err != nil {
		return nil, err
	}
	if res.Write.EndMs >= 0 {
		if err := t.Settle(ctx, client, cfg.QuerySettle); err != nil {
			return nil, err
		}
		now := make(chan struct{})
		close(now)
		profiled = t.Profile(ctx, client, cfg.ProfileDir, "query", now)
		res.Queries = RunQueries(ctx, cfg, &HTTPQuerier{Base: t.Base, Client: client}, res.Write.EndMs)
		if err := profiled(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// Pair is a target's result and the local tsdb's on the same samples.
type Pair struct {
	Target, Local *Result
}
