package bench

import (
	"context"
	"flag"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/util/compression"
	"github.com/stretchr/testify/require"
)

// countSink acknowledges every batch and counts its samples per round.
type countSink struct {
	mu       sync.Mutex
	perRound map[int64]int
}

func (c *countSink) Write(_ context.Context, _ int, b *Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.perRound[b.Samples[0].Timestamp] += len(b.Samples)
	return nil
}

func TestWarmPart(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	reqs := []warmRequest{
		{start: at(1), samples: 100}, // writer 0 ran ahead before writer 1 finished round 0
		{start: at(3), samples: 10},
		{start: at(4), samples: 20},
	}
	n, wall := warmPart([]time.Time{at(0.5), at(2)}, reqs, at(6))
	require.Equal(t, 30, n)
	require.Equal(t, 4*time.Second, wall)
	// A writer that never finished its first round: no warm part.
	n, wall = warmPart([]time.Time{at(0.5), {}}, reqs, at(6))
	require.Zero(t, n)
	require.Zero(t, wall)
	n, wall = warmPart(nil, reqs, at(6))
	require.Zero(t, n)
	require.Zero(t, wall)
}

// TestRunWritesWarm: with one writer, the warm part is every round but the
// first; with several, no more than that, and the rounds add up.
func TestRunWritesWarm(t *testing.T) {
	cfg := Config{Series: 500, SamplesPerSeries: 2, Interval: 15 * time.Second, BatchSeries: 100,
		Concurrency: 1, Duration: time.Minute, MaxRounds: 3, Protocol: "v1", QueryConcurrency: 1, QueryStep: time.Minute}
	require.NoError(t, cfg.Validate())
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	sink := &countSink{perRound: map[int64]int{}}
	w := RunWrites(t.Context(), cfg, sink, t0, 0)
	require.NoError(t, w.FirstErr)
	require.Equal(t, 3*500*2, w.Samples)
	require.Equal(t, 2*500*2, w.WarmSamples)
	require.Positive(t, w.WarmWall)
	require.LessOrEqual(t, w.WarmWall, w.Wall)
	require.Equal(t, 3, w.Rounds)
	require.Equal(t, 3, w.RoundsMax)

	cfg.Concurrency = 3
	w = RunWrites(t.Context(), cfg, &countSink{perRound: map[int64]int{}}, t0, 0)
	require.Equal(t, 3*500*2, w.Samples)
	require.LessOrEqual(t, w.WarmSamples, 2*500*2)

	// Starting at a later round writes only from it on, at its data time.
	cfg.MaxRounds = 5
	sink = &countSink{perRound: map[int64]int{}}
	w = RunWrites(t.Context(), cfg, sink, t0, 4)
	require.Equal(t, 500*2, w.Samples)
	require.Equal(t, map[int64]int{t0 + 4*15000: 500 * 2}, sink.perRound)
	require.Equal(t, t0+4*15000+7500, w.EndMs)
	require.Equal(t, 5, w.Rounds)
}

// warmSink records whether the load's Warm channel was closed while a
// batch of the first round (data time t0) was being written.
type warmSink struct {
	load       *Load
	t0         int64
	mu         sync.Mutex
	warmInCold bool
	cold       int
}

func (w *warmSink) Write(_ context.Context, _ int, b *Batch) error {
	if b.Samples[0].Timestamp != w.t0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cold++
	select {
	case <-w.load.Warm():
		w.warmInCold = true
	default:
	}
	return nil
}

// TestLoadWarm: Warm (where the write profile starts) closes only once
// every writer has finished its first round, and also when writers stop
// before finishing one, so that nothing waits on it forever.
func TestLoadWarm(t *testing.T) {
	cfg := Config{Series: 600, SamplesPerSeries: 1, Interval: 15 * time.Second, BatchSeries: 100,
		Concurrency: 3, Duration: time.Minute, MaxRounds: 3, Protocol: "v1", QueryConcurrency: 1, QueryStep: time.Minute}
	require.NoError(t, cfg.Validate())
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	l := NewLoad(cfg, t0, 0)
	sink := &warmSink{load: l, t0: t0}
	require.NoError(t, l.Prepare(sink))
	select {
	case <-l.Warm():
		t.Fatal("warm before the load ran")
	default:
	}
	w := l.Run(t.Context(), sink)
	require.Equal(t, 3*600, w.Samples)
	require.Equal(t, 6, sink.cold, "first-round batches seen")
	require.False(t, sink.warmInCold, "warm while a first round was still being written")
	select {
	case <-l.Warm():
	default:
		t.Fatal("not warm after every writer finished")
	}

	// Data time in the future: every writer stops before its first round.
	l = NewLoad(cfg, time.Now().Add(time.Hour).UnixMilli(), 0)
	require.NoError(t, l.Prepare(sink))
	w = l.Run(t.Context(), sink)
	require.Zero(t, w.Samples)
	select {
	case <-l.Warm():
	default:
		t.Fatal("not warm after every writer stopped")
	}
}

// The harness's tsdb compresses its WAL as Pharos's ingesters do by
// default, unless told otherwise; an unknown compression is refused.
func TestLocalWALCompression(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	require.NoError(t, cfg.Validate())
	require.Equal(t, compression.Snappy, cfg.tsdbOptions().WALCompression)

	cfg.LocalWALCompression = ""
	require.Equal(t, compression.None, cfg.tsdbOptions().WALCompression)
	cfg.LocalWALCompression = "lz4"
	require.ErrorContains(t, cfg.Validate(), `local_wal_compression: "lz4"`)
}
