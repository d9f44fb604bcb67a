package ingester

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A failed commit means the WAL write failed (disk full, I/O error) and may
// have left a torn record. Samples appended after it would sit behind that
// record, and a later crash's WAL repair truncates at the tear: acknowledged
// samples would be lost. So the ingester stops taking writes at the first
// failed commit, reports not ready, and once the data directory takes
// writes again reopens the tsdb, whose WAL replay repairs the tear (only the
// failed, unacknowledged write is in it); then it takes writes again.

// recoveryProbeInterval is how often a failed ingester checks whether its
// data directory takes writes again.
const recoveryProbeInterval = 2 * time.Second

// probeBytes is written and synced to decide the disk has room again: a
// little more than a WAL segment page and a head chunk.
const probeBytes = 1 << 20

// StorageErr is the storage failure that stopped writes, nil while healthy.
func (i *Ingester) StorageErr() error {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.failed
}

// storageFailed records err as the failure that stops writes and starts
// the recovery loop, once.
func (i *Ingester) storageFailed(err error) {
	i.mu.Lock()
	if i.failed != nil || i.closing {
		i.mu.Unlock()
		return
	}
	i.failed = err
	i.mu.Unlock()
	i.metrics.storageFailures.Inc()
	i.logger.Error("storage write failed: refusing writes until the data directory takes writes again and the WAL is replayed", "err", err)
	go i.recover()
}

// refuseIfFailed is the answer to a push while storage has failed.
func (i *Ingester) refuseIfFailed() error {
	if err := i.StorageErr(); err != nil {
		return status.Errorf(codes.Unavailable, "ingester storage failed (%v); writes are refused until it recovers", err)
	}
	return nil
}

// recover waits until the data directory takes writes, then reopens the
// tsdb. Requests in flight finish first; new ones wait.
func (i *Ingester) recover() {
	tick := time.NewTicker(recoveryProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-i.closed:
			return
		case <-tick.C:
		}
		if err := probeWritable(i.cfg.TSDBDir()); err != nil {
			i.logger.Debug("data directory still refuses writes", "err", err)
			continue
		}
		if err := i.reopen(); err != nil {
			i.logger.Error("reopening the tsdb failed; retrying", "err", err)
			continue
		}
		i.logger.Info("storage recovered: WAL replayed, taking writes again", "head_series", i.db.Head().NumSeries())
		return
	}
}

func probeWritable(dir string) (err error) {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.Remove(f.Name())) }()
	defer f.Close()
	if _, err := f.Write(make([]byte, probeBytes)); err != nil {
		return err
	}
	return f.Sync()
}

// reopen closes and reopens the tsdb with no request in flight.
func (i *Ingester) reopen() error {
	i.mu.Lock()
	if i.closing {
		i.mu.Unlock()
		return nil
	}
	i.reopening = true
	i.mu.Unlock()
	i.inflight.Wait()

	i.mu.Lock()
	defer i.mu.Unlock()
	i.reopening = false
	if err := i.db.Close(); err != nil {
		i.logger.Warn("closing the failed tsdb", "err", err)
	}
	rec := i.tsdbMets.next()
	opts := i.cfg.tsdbOptions()
	opts.SeriesLifecycleCallback = lifecycle{seriesTracker: i.series, refs: i.refs}
	i.series.reset() // the replay counts every series again
	if i.refs != nil {
		i.refs.reset() // refs of the closed tsdb
	}
	db, err := tsdb.Open(i.cfg.TSDBDir(), i.logger.With("component", "tsdb"), rec, opts, nil)
	i.series.opened()
	if err != nil {
		// Keep refusing; the next probe tries again. Reads fail until then.
		return fmt.Errorf("reopen tsdb: %w", err)
	}
	i.db = db
	i.tsdbMets.use(rec)
	i.failed = nil
	i.metrics.storageRecoveries.Inc()
	return nil
}
