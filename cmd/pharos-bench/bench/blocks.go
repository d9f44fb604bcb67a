package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/prometheus/tsdb"
)

// BlockRun is the range queries on the written data once it is in blocks
// and the head is empty: what a dashboard over yesterday reads, where the
// other query phases read the head.
type BlockRun struct {
	// Open is the time from opening (the local tsdb) or starting (a
	// spawned target) on the blocks alone to being ready: loading the
	// blocks' indexes instead of replaying a WAL.
	Open    time.Duration
	Queries []QueryResult
}

// localBlocks opens the blocks MeasureDisk compacted the local tsdb's head
// into as a tsdb of their own, and times the range queries on them.
func localBlocks(ctx context.Context, cfg Config, dir string, endMs int64) (_ *BlockRun, err error) {
	t := time.Now()
	db, err := tsdb.Open(dir, nil, nil, cfg.tsdbOptions(), nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb on the blocks: %w", err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	run := &BlockRun{Open: time.Since(t)}
	if err := settleSelf(ctx, cfg.QuerySettle); err != nil {
		return nil, err
	}
	run.Queries = runQueries(ctx, cfg, NewLocalQuerier(db), endMs, RangeQueries())
	return run, nil
}

// RunBlocks replaces the spawned cluster's tsdb directories with the
// blocks MeasureDisk compacted their heads into (r.Disk), so every ingester
// holds the write phase's data in blocks and nothing in its head or WAL,
// restarts it without sharding or results cache, and times the range
// queries ending where r's did. Whatever later phases wrote (the results
// cache check's rounds) is gone with the heads, so the answers compare with
// the local tsdb's again. It must be the cluster's last phase.
func RunBlocks(ctx context.Context, cfg Config, c *Cluster, client *http.Client, r *Result) error {
	if r.Write.EndMs < 0 {
		return nil
	}
	if r.Disk == nil || len(r.Disk.BlockDirs) != len(c.TSDBDirs) {
		return errors.New("no compacted blocks for every tsdb directory: measure the disk first")
	}
	if err := c.Stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	for i, dir := range c.TSDBDirs {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.Rename(r.Disk.BlockDirs[i], dir); err != nil {
			return fmt.Errorf("move the blocks into place: %w", err)
		}
	}
	// A head that starts empty next to blocks accepts samples from the
	// blocks' end on: the probe goes one interval after the last round.
	probe := r.T0 + int64(r.Write.RoundsMax)*cfg.Interval.Milliseconds()
	d, err := c.Restart(ctx, client, FrontendArgs(0, false), probe)
	if err != nil {
		return fmt.Errorf("restart on the blocks: %w", err)
	}
	if err := c.Target.Settle(ctx, client, cfg.QuerySettle); err != nil {
		return err
	}
	qr := &HTTPQuerier{Base: c.Target.Base, Client: client}
	r.Blocks = &BlockRun{Open: d, Queries: runQueries(ctx, cfg, qr, r.Write.EndMs, RangeQueries())}
	return nil
}
