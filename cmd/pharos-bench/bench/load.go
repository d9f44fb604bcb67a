package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
)

// Config is one run's load.
type Config struct {
	Series           int           `yaml:"series"`
	Churn            float64       `yaml:"churn"`
	SamplesPerSeries int           `yaml:"samples_per_series"`
	Interval         time.Duration `yaml:"interval"`
	BatchSeries      int           `yaml:"batch_series"`
	Concurrency      int           `yaml:"concurrency"`
	Duration         time.Duration `yaml:"duration"`
	Lookback         time.Duration `yaml:"lookback"`
	Protocol         string        `yaml:"protocol"`
	MaxRounds        int           `yaml:"max_rounds"`

	QueryDuration    time.Duration `yaml:"query_duration"`
	QueryConcurrency int           `yaml:"query_concurrency"`
	QueryRange       time.Duration `yaml:"query_range"`
	QueryStep        time.Duration `yaml:"query_step"`
	// QuerySettle is the least wait before each timed query phase, which
	// then also waits for a quiet process (see Settle); 0 times at once.
	QuerySettle time.Duration `yaml:"query_settle"`
	// QueryBlocks also times the range queries on the same data compacted
	// into blocks (RunBlocks, and the local tsdb's own blocks).
	QueryBlocks bool `yaml:"query_blocks"`

	// LocalWALCompression is the WAL compression of the harness's own
	// tsdb (compression.None, Snappy or Zstd): the same as the target's
	// ingesters, so that both sides write the same WAL; "" is none.
	LocalWALCompression string `yaml:"local_wal_compression"`

	// ProfileDir receives CPU and heap profiles of the target's processes
	// in the write and the query phase; "" takes none.
	ProfileDir string `yaml:"profile_dir"`
}

// RegisterFlags sets the defaults: small enough for a shared 2-core machine.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Series, "load.series", 10000, "Active series.")
	fs.Float64Var(&c.Churn, "load.churn", 0.001, "Fraction of the active series replaced by new series each interval.")
	fs.IntVar(&c.SamplesPerSeries, "load.samples-per-series", 1, "Samples per series per interval.")
	fs.DurationVar(&c.Interval, "load.interval", 15*time.Second, "Data time between two rounds of samples, as a scrape interval.")
	fs.IntVar(&c.BatchSeries, "load.batch-series", 2000, "Series per remote-write request.")
	fs.IntVar(&c.Concurrency, "load.concurrency", 4, "Concurrent writers (each owns a share of the series, as remote-write shards do).")
	fs.DurationVar(&c.Duration, "load.duration", 20*time.Second, "Wall time of the write phase (shorter if the data clock reaches now).")
	fs.DurationVar(&c.Lookback, "load.lookback", 150*time.Minute, "The first samples are this far in the past; data time runs faster than wall time. Keep under 3h so no head compaction runs.")
	fs.IntVar(&c.MaxRounds, "load.max-rounds", 0, "Stop after this many rounds (0: no limit).")
	fs.StringVar(&c.Protocol, "load.protocol", "v1", "Remote-write protocol: v1 or v2.")
	fs.DurationVar(&c.QueryDuration, "query.duration", 10*time.Second, "Wall time of the query phase, per query.")
	fs.IntVar(&c.QueryConcurrency, "query.concurrency", 1, "Concurrent queries.")
	fs.DurationVar(&c.QueryRange, "query.range", time.Hour, "Range of the range queries.")
	fs.DurationVar(&c.QueryStep, "query.step", 15*time.Second, "Step of the range queries.")
	fs.DurationVar(&c.QuerySettle, "query.settle", 0, "Before each timed query phase (both sides, and every restart), wait at least this long and until the process uses under 0.1 cores, so that queries are not timed while the head writes a write burst's chunks to disk (once a minute: 65s covers it); 0 times them at once.")
	fs.BoolVar(&c.QueryBlocks, "query.blocks", true, "After the other phases, time the range queries again on the written data compacted into blocks, the head empty, on both sides (with -pharos: restarted on the blocks alone), as a dashboard reads yesterday's data.")
	fs.StringVar(&c.LocalWALCompression, "local.wal-compression", compression.Snappy, "WAL compression of the harness's own tsdb, the direct appends: none, snappy or zstd. The default is Pharos's (and Prometheus's) -storage.wal-compression, so that both sides compress the same WAL; match it when -pharos.args sets another.")
	fs.StringVar(&c.ProfileDir, "profile.dir", "", "Save a 10s CPU profile, a heap profile and a 2s execution trace of each Pharos process, in the write phase (from when every series exists) and the query phase, into this directory.")
}

// Validate names the field at fault.
func (c *Config) Validate() error {
	switch {
	case c.Series <= 0:
		return errors.New("series: must be positive")
	case c.Churn < 0 || c.Churn > 1:
		return errors.New("churn: must be within [0, 1]")
	case c.SamplesPerSeries <= 0:
		return errors.New("samples_per_series: must be positive")
	case c.Interval < time.Duration(c.SamplesPerSeries)*time.Millisecond:
		return errors.New("interval: too short for samples_per_series")
	case c.BatchSeries <= 0:
		return errors.New("batch_series: must be positive")
	case c.Concurrency <= 0:
		return errors.New("concurrency: must be positive")
	case c.Protocol != "v1" && c.Protocol != "v2":
		return fmt.Errorf("protocol: %q is neither v1 nor v2", c.Protocol)
	case c.QueryConcurrency <= 0:
		return errors.New("query_concurrency: must be positive")
	case c.QueryStep <= 0:
		return errors.New("query_step: must be positive")
	case c.LocalWALCompression != "" && c.LocalWALCompression != compression.None && c.LocalWALCompression != compression.Snappy && c.LocalWALCompression != compression.Zstd:
		return fmt.Errorf("local_wal_compression: %q is not none, snappy or zstd", c.LocalWALCompression)
	}
	return nil
}

func (c *Config) gen() GenConfig {
	return GenConfig{ActiveSeries: c.Series, Churn: c.Churn, SamplesPerSeries: c.SamplesPerSeries, IntervalMs: c.Interval.Milliseconds()}
}

// Sink takes one batch; sender is the index of the calling writer, so a
// sink can keep per-writer state without locks. Refs in the batch may be
// updated by the sink (the local tsdb caches series references there).
type Sink interface {
	Write(ctx context.Context, sender int, b *Batch) error
}

// WriteResult is what the write phase measured.
type WriteResult struct {
	Samples, Requests, Errors int
	FirstErr                  error
	Wall                      time.Duration
	Latencies                 []time.Duration // sorted
	// WarmSamples and WarmWall are the samples and wall time of the
	// phase's warm part: from the moment the last writer finished its
	// first round (every series exists; only churn creates more) to the
	// end. Only requests started in that part count, so a writer that ran
	// ahead into its second round early does not inflate the rate. Both
	// are 0 when some writer never finished its first round.
	WarmSamples int
	WarmWall    time.Duration
	// SeriesCreated counts every label set written, churned ones included:
	// the head holds them all.
	SeriesCreated int
	// EndMs is a data time every writer reached: queries end there.
	EndMs int64
	// Rounds is how many rounds every writer completed, and RoundsMax how
	// many the furthest writer did (writers may run up to maxLead apart).
	Rounds, RoundsMax int
}

// SamplesPerSec is the acknowledged-sample rate.
func (w WriteResult) SamplesPerSec() float64 {
	if w.Wall <= 0 {
		return 0
	}
	return float64(w.Samples) / w.Wall.Seconds()
}

// WarmSamplesPerSec is the acknowledged-sample rate once every series
// exists: the steady state, without the first round's series creation.
func (w WriteResult) WarmSamplesPerSec() float64 {
	if w.WarmWall <= 0 {
		return 0
	}
	return float64(w.WarmSamples) / w.WarmWall.Seconds()
}

// warmRequest is a request of a writer's later rounds: when it started and
// the samples it had acknowledged.
type warmRequest struct {
	start   time.Time
	samples int
}

// warmPart returns the samples and wall time of the warm part of a phase
// that ended at end, given when each writer finished its first round (zero
// if it never did) and its later requests.
func warmPart(firstDone []time.Time, reqs []warmRequest, end time.Time) (int, time.Duration) {
	var from time.Time
	for _, t := range firstDone {
		if t.IsZero() {
			return 0, 0
		}
		if t.After(from) {
			from = t
		}
	}
	if len(firstDone) == 0 || !end.After(from) {
		return 0, 0
	}
	n := 0
	for _, r := range reqs {
		if !r.start.Before(from) {
			n += r.samples
		}
	}
	return n, end.Sub(from)
}

// batchState is one writer's request: the series it carries across rounds.
type batchState struct {
	lo    int
	gens  []uint64
	batch Batch
}

// Preparer is a Sink with work to do for each batch before the clock
// starts: next holds the samples the batch will carry in the round after
// its current one.
type Preparer interface {
	Prepare(sender int, b *Batch, next []prompb.Sample) error
}

// Load is a write phase made ready: every writer's series labelled and
// its first round's samples filled in, so that the clock measures writing
// rather than the generator's setup (about 5µs a series, seconds at a
// million).
type Load struct {
	cfg     Config
	g       GenConfig
	t0      int64
	first   int
	writers [][]*batchState
	created []int
	// warm is closed once every writer of Run has finished its first
	// round (or stopped before): from then on every series exists.
	warm chan struct{}
}

// Warm is closed once every writer has written its first round, or
// stopped before it: the start of the warm part of the phase, which the
// write profile covers.
func (l *Load) Warm() <-chan struct{} { return l.warm }

// NewLoad makes the writers of a phase that writes rounds from round first
// (the rounds before it are taken as written: a later phase adds rounds to
// a loaded target) with data time t0 (ms) at round 0.
func NewLoad(cfg Config, t0 int64, first int) *Load {
	l := &Load{cfg: cfg, g: cfg.gen(), t0: t0, first: first, warm: make(chan struct{})}
	nb := (cfg.Series + cfg.BatchSeries - 1) / cfg.BatchSeries
	n := min(cfg.Concurrency, nb)
	l.writers, l.created = make([][]*batchState, n), make([]int, n)
	per := cfg.SamplesPerSeries
	var wg sync.WaitGroup
	for s := range n {
		wg.Go(func() {
			sb := labels.NewScratchBuilder(12)
			for b := s; b < nb; b += cfg.Concurrency {
				lo, hi := b*cfg.BatchSeries, min((b+1)*cfg.BatchSeries, cfg.Series)
				st := &batchState{lo: lo, gens: make([]uint64, hi-lo)}
				st.batch.Labels = make([]labels.Labels, hi-lo)
				st.batch.Counter = make([]bool, hi-lo)
				st.batch.Refs = make([]storage.SeriesRef, hi-lo)
				st.batch.Samples = make([]prompb.Sample, (hi-lo)*per)
				for k := range st.gens {
					st.gens[k] = l.g.Generation(lo+k, first)
					st.batch.Labels[k] = SeriesLabels(&sb, lo+k, st.gens[k])
					st.batch.Counter[k] = Counter(lo + k)
				}
				l.fillSamples(st, first, st.batch.Samples)
				l.created[s] += hi - lo
				l.writers[s] = append(l.writers[s], st)
			}
		})
	}
	wg.Wait()
	return l
}

// fillSamples writes round r's samples of st's series, in their current
// generations, into dst.
func (l *Load) fillSamples(st *batchState, r int, dst []prompb.Sample) {
	per := l.cfg.SamplesPerSeries
	stepMs := l.g.IntervalMs / int64(per)
	ts0 := l.t0 + int64(r)*l.g.IntervalMs
	for k, gen := range st.gens {
		i, c := st.lo+k, st.batch.Counter[k]
		for j := range per {
			dst[k*per+j] = prompb.Sample{Timestamp: ts0 + int64(j)*stepMs, Value: value(c, i, gen, r, j, per)}
		}
	}
}

// Prepare lets sink, if it is a Preparer, do its work for the first
// rounds' batches now, before the clock starts.
func (l *Load) Prepare(sink Sink) error {
	p, ok := sink.(Preparer)
	if !ok {
		return nil
	}
	errs := make([]error, len(l.writers))
	var wg sync.WaitGroup
	for s, states := range l.writers {
		wg.Go(func() {
			var next []prompb.Sample
			for _, st := range states {
				next = slices.Grow(next[:0], len(st.batch.Samples))[:len(st.batch.Samples)]
				l.fillSamples(st, l.first+1, next)
				if err := p.Prepare(s, &st.batch, next); err != nil {
					errs[s] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

// RunWrites writes rounds of samples to sink from t0 (ms) from round first
// on, as NewLoad, Prepare and Run do, with the setup on the clock.
func RunWrites(ctx context.Context, cfg Config, sink Sink, t0 int64, first int) WriteResult {
	l := NewLoad(cfg, t0, first)
	if err := l.Prepare(sink); err != nil {
		return WriteResult{EndMs: -1, FirstErr: err}
	}
	return l.Run(ctx, sink)
}

// Run writes rounds of samples to sink until the duration ends, ctx is
// done, the data clock reaches now or MaxRounds (counted from round 0) are
// written. A Load runs once.
func (l *Load) Run(ctx context.Context, sink Sink) WriteResult {
	cfg, g, t0, first := l.cfg, l.g, l.t0, l.first
	deadline := time.Now().Add(cfg.Duration)
	per := cfg.SamplesPerSeries
	stepMs := g.IntervalMs / int64(per)

	var (
		mu        sync.Mutex
		res       = WriteResult{EndMs: -1}
		wg        sync.WaitGroup
		warmReqs  []warmRequest
		writers   = len(l.writers)
		firstDone = make([]time.Time, writers)
	)
	gate := newGate(writers)
	// Writers still in their first round; the last one out closes warm,
	// before Run returns.
	var cold atomic.Int32
	cold.Store(int32(writers))
	if writers == 0 {
		close(l.warm)
	}
	leaveCold := func() {
		if cold.Add(-1) == 0 {
			close(l.warm)
		}
	}
	start := time.Now()
	for s, states := range l.writers {
		wg.Go(func() {
			var (
				sb      = labels.NewScratchBuilder(12)
				lat     []time.Duration
				warm    []warmRequest
				samples int
				reqs    int
				errs    int
				firstE  error
				created       = l.created[s]
				lastTs  int64 = -1
				done0   time.Time
				warmed  = sync.OnceFunc(leaveCold) // at the first round's end, or on leaving before
			)
			defer warmed()
		rounds:
			for r := first; ; r++ {
				ts0 := t0 + int64(r)*g.IntervalMs
				if ctx.Err() != nil || time.Now().After(deadline) || ts0 > time.Now().UnixMilli() ||
					(cfg.MaxRounds > 0 && r >= cfg.MaxRounds) {
					break
				}
				gate.enter(s, r-first)
				for _, st := range states {
					for k := range st.gens {
						if gen := g.Generation(st.lo+k, r); gen != st.gens[k] {
							st.gens[k] = gen
							st.batch.Labels[k] = SeriesLabels(&sb, st.lo+k, gen)
							st.batch.Refs[k] = 0
							created++
						}
					}
					l.fillSamples(st, r, st.batch.Samples)
					t := time.Now()
					err := sink.Write(ctx, s, &st.batch)
					lat = append(lat, time.Since(t))
					reqs++
					if err != nil {
						if ctx.Err() != nil {
							break rounds
						}
						errs++
						if firstE == nil {
							firstE = err
						}
						continue
					}
					samples += len(st.batch.Samples)
					if r > first {
						warm = append(warm, warmRequest{start: t, samples: len(st.batch.Samples)})
					}
				}
				lastTs = ts0 + int64(per-1)*stepMs
				if r == first {
					done0 = time.Now()
					warmed()
				}
			}
			rounds := gate.done(s) + first
			mu.Lock()
			defer mu.Unlock()
			firstDone[s] = done0
			warmReqs = append(warmReqs, warm...)
			res.Latencies = append(res.Latencies, lat...)
			res.Samples += samples
			res.Requests += reqs
			res.Errors += errs
			res.SeriesCreated += created
			if res.FirstErr == nil {
				res.FirstErr = firstE
			}
			if res.EndMs < 0 || lastTs < res.EndMs {
				res.EndMs, res.Rounds = lastTs, rounds
			}
			res.RoundsMax = max(res.RoundsMax, rounds)
		})
	}
	wg.Wait()
	end := time.Now()
	res.Wall = end.Sub(start)
	res.WarmSamples, res.WarmWall = warmPart(firstDone, warmReqs, end)
	slices.Sort(res.Latencies)
	return res
}

// Quantile of sorted durations; 0 when empty.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// maxLead is how many rounds a writer may run ahead of the slowest one:
// the head refuses samples older than half a block behind its newest, so
// writers that drift apart by an hour of data time would lose samples.
const maxLead = 8

// gate keeps writers within maxLead rounds of each other.
type gate struct {
	mu      sync.Mutex
	cond    *sync.Cond
	rounds  []int // per writer; -1 when finished
	entered []bool
}

func newGate(n int) *gate {
	g := &gate{rounds: make([]int, n), entered: make([]bool, n)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// enter blocks writer s before round r until no running writer is more
// than maxLead rounds behind.
func (g *gate) enter(s, r int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rounds[s] = r
	g.entered[s] = true
	g.cond.Broadcast()
	for r-g.slowest() > maxLead {
		g.cond.Wait()
	}
}

// done marks writer s finished and returns the rounds it entered.
func (g *gate) done(s int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := 0
	if g.entered[s] {
		r = g.rounds[s] + 1
	}
	g.rounds[s] = -1
	g.cond.Broadcast()
	return r
}

func (g *gate) slowest() int {
	m := -1
	for _, r := range g.rounds {
		if r >= 0 && (m < 0 || r < m) {
			m = r
		}
	}
	if m < 0 {
		return 1 << 30
	}
	return m
}

// tsdbOptions are the options of the harness's own tsdb.
func (c *Config) tsdbOptions() *tsdb.Options {
	o := tsdb.DefaultOptions()
	o.WALCompression = c.LocalWALCompression
	if o.WALCompression == "" {
		o.WALCompression = compression.None
	}
	return o
}
