package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// seriesFunc is the SelectHints.Func the API sets when it wants label sets
// only; such selects use the Series RPC, which sends no chunks.
const seriesFunc = "series"

// Queryable reads series from ingesters. It is safe for concurrent use.
type Queryable struct {
	ings     Ingesters
	limits   TenantLimits // nil: none
	logger   *slog.Logger
	duration *prometheus.HistogramVec
	limited  *prometheus.CounterVec
}

var _ storage.SampleAndChunkQueryable = (*Queryable)(nil)

// NewQueryable returns a queryable over ings. Its metrics are registered on
// reg, which may be nil.
func NewQueryable(ings Ingesters, logger *slog.Logger, reg prometheus.Registerer) storage.SampleAndChunkQueryable {
	return newQueryable(ings, nil, logger, reg)
}

// NewLimitedQueryable is NewQueryable with per-query limits, looked up for
// the tenant of each query's context.
func NewLimitedQueryable(ings Ingesters, limits TenantLimits, logger *slog.Logger, reg prometheus.Registerer) storage.SampleAndChunkQueryable {
	return newQueryable(ings, limits, logger, reg)
}

func newQueryable(ings Ingesters, limits TenantLimits, logger *slog.Logger, reg prometheus.Registerer) *Queryable {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Queryable{
		ings:   ings,
		limits: limits,
		logger: logger,
		limited: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_querier_queries_limited_total",
			Help: "Queries stopped for fetching more than a per-query limit allows, by limit.",
		}, []string{"limit"}),
		duration: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "pharos_querier_ingester_request_duration_seconds",
			Help:                        "Time spent on requests from the querier to one ingester, until the last message is received.",
			Buckets:                     prometheus.DefBuckets,
			NativeHistogramBucketFactor: 1.1,
		}, []string{"method", "status_code"}),
	}
}

// Querier implements storage.Queryable. The read set is taken once, here:
// every selector of a query reads from the same ingesters.
func (q *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	s := &sampleQuerier{}
	if err := q.initBase(&s.baseQuerier, mint, maxt); err != nil {
		return nil, err
	}
	return s, nil
}

// ChunkQuerier implements storage.ChunkQueryable.
func (q *Queryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	c := &chunkQuerier{}
	if err := q.initBase(&c.baseQuerier, mint, maxt); err != nil {
		return nil, err
	}
	return c, nil
}

func (q *Queryable) initBase(b *baseQuerier, mint, maxt int64) error {
	set, err := q.ings.ReadSet()
	if err != nil {
		return err
	}
	b.q, b.mint, b.maxt, b.set = q, mint, maxt, set
	b.sem = make(chan struct{}, maxConcurrencyPerQuery)
	return nil
}

func (q *Queryable) observe(method string, start time.Time, err error) {
	q.duration.WithLabelValues(method, status.Code(err).String()).Observe(time.Since(start).Seconds())
}

// baseQuerier holds what sample and chunk queriers share: the time range,
// label queries, and the cancel functions of streams still running, which
// Close stops.
type baseQuerier struct {
	q          *Queryable
	mint, maxt int64
	set        ReadSet
	// sem bounds the query's requests in flight (maxConcurrencyPerQuery).
	sem chan struct{}
	// use counts what the query fetched against its tenant's limits; set
	// by the first select, which is the first call that knows the tenant.
	useOnce sync.Once
	use     *usage

	mu      sync.Mutex
	cancels []context.CancelFunc
	closed  bool
}

func (b *baseQuerier) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, c := range b.cancels {
		c()
	}
	b.cancels = nil
	return nil
}

// selectSets starts one stream per ingester and returns their sets, not yet
// received: the engine calls Select for every selector before it reads any,
// so the ingesters work on all selectors at once.
func (b *baseQuerier) selectSets(ctx context.Context, samples, sortSeries bool, hints *storage.SelectHints, matchers []*labels.Matcher) ([]*streamSet, int, error) {
	mint, maxt := b.mint, b.maxt
	limit := 0
	if hints != nil {
		mint, maxt = hints.Start, hints.End
		limit = hints.Limit
	}
	if err := checkQueryLength(ctx, b.q.limits, mint, maxt); err != nil {
		return nil, 0, err
	}
	b.useOnce.Do(func() {
		if b.q.limits != nil {
			b.use = newUsage(ctx, b.q.limits, b.q.limited)
		}
	})
	matchers, shardIndex, shardCount, err := CutShardMatcher(matchers)
	if err != nil {
		return nil, 0, err
	}
	pms, err := ingesterpb.FromLabelMatchers(matchers)
	if err != nil {
		return nil, 0, err
	}
	if len(b.set.Ingesters) == 0 {
		return nil, limit, nil
	}

	ctx, cancel := context.WithCancel(ctx)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cancel()
		return nil, 0, errors.New("querier is closed")
	}
	b.cancels = append(b.cancels, cancel)
	b.mu.Unlock()

	f := &fanout{ctx: ctx, cancel: cancel, budget: budget{set: &b.set}, sem: b.sem, use: b.use}
	sets := make([]*streamSet, len(b.set.Ingesters))
	if hints != nil && hints.Func == seriesFunc {
		req := &ingesterpb.SeriesRequest{StartMs: mint, EndMs: maxt, Matchers: pms, Limit: int64(limit)}
		for i := range b.set.Ingesters {
			s := newStreamSet(f, &b.set.Ingesters[i], samples, mint, maxt)
			sets[i] = s
			go s.runSeries(ctx, b.q, req)
		}
		return sets, limit, nil
	}
	req := &ingesterpb.QueryRequest{StartMs: mint, EndMs: maxt, Matchers: pms}
	// One ingester's series go to the caller as they come (mergeSets), so
	// they need the order only if the caller asked for it; several sets are
	// merged, which needs every set sorted, and so do a limit and a
	// standby taking over where a failed stream stopped.
	req.UnsortedSeries = !sortSeries && len(b.set.Ingesters) == 1 && len(b.set.Standby) == 0 && limit <= 0
	if hints != nil || shardCount > 0 {
		if hints == nil {
			hints = &storage.SelectHints{}
		}
		req.Hints = &ingesterpb.SelectHints{
			StepMs: hints.Step,
			Func:   hints.Func,
			// A copy: the engine sorts its slice in place while the
			// stream goroutines marshal the request.
			Grouping:   slices.Clone(hints.Grouping),
			By:         hints.By,
			RangeMs:    hints.Range,
			Limit:      int64(hints.Limit),
			ShardIndex: shardIndex,
			ShardCount: shardCount,
		}
	}
	for i := range b.set.Ingesters {
		s := newStreamSet(f, &b.set.Ingesters[i], samples, mint, maxt)
		sets[i] = s
		go s.runQueryStream(ctx, b.q, req)
	}
	return sets, limit, nil
}

func (b *baseQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	pms, err := ingesterpb.FromLabelMatchers(matchers)
	if err != nil {
		return nil, nil, err
	}
	req := &ingesterpb.LabelValuesRequest{Name: name, StartMs: b.mint, EndMs: b.maxt, Matchers: pms, Limit: hintLimit(hints)}
	return b.fanOutStrings(ctx, "LabelValues", req.Limit, func(ctx context.Context, c ingesterpb.IngesterClient) ([]string, []string, error) {
		resp, err := c.LabelValues(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		return resp.Values, resp.Warnings, nil
	})
}

func (b *baseQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	pms, err := ingesterpb.FromLabelMatchers(matchers)
	if err != nil {
		return nil, nil, err
	}
	req := &ingesterpb.LabelNamesRequest{StartMs: b.mint, EndMs: b.maxt, Matchers: pms, Limit: hintLimit(hints)}
	return b.fanOutStrings(ctx, "LabelNames", req.Limit, func(ctx context.Context, c ingesterpb.IngesterClient) ([]string, []string, error) {
		resp, err := c.LabelNames(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		return resp.Names, resp.Warnings, nil
	})
}

// fanOutStrings asks every ingester of the read set and merges the sorted
// answers into one sorted list without duplicates, cut to limit if positive.
func (b *baseQuerier) fanOutStrings(ctx context.Context, method string, limit int64, call func(context.Context, ingesterpb.IngesterClient) ([]string, []string, error)) ([]string, annotations.Annotations, error) {
	type answer struct{ vals, warns []string }
	answers, annos, err := fanOutUnary(ctx, b.q, &b.set, method, b.sem, func(ctx context.Context, c ingesterpb.IngesterClient) (answer, error) {
		vals, warns, err := call(ctx, c)
		return answer{vals, warns}, err
	})
	if err != nil {
		return nil, nil, err
	}
	results := make([][]string, len(answers))
	for i, a := range answers {
		results[i] = a.vals
		for _, w := range a.warns {
			annos.Add(errors.New(w))
		}
	}
	merged := mergeSortedUnique(results)
	if limit > 0 && int64(len(merged)) > limit {
		merged = merged[:limit]
	}
	return merged, annos, nil
}

// mergeSortedUnique merges lists into one sorted list without duplicates. It
// returns an empty, non-nil slice when there is nothing, as tsdb does.
func mergeSortedUnique(lists [][]string) []string {
	switch len(lists) {
	case 0:
		return []string{}
	case 1:
		if lists[0] == nil {
			return []string{}
		}
		if slices.IsSorted(lists[0]) {
			return slices.Compact(lists[0])
		}
	}
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]string, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func hintLimit(h *storage.LabelHints) int64 {
	if h == nil || h.Limit <= 0 {
		return 0
	}
	return int64(h.Limit)
}

// sampleQuerier is a storage.Querier.
type sampleQuerier struct{ baseQuerier }

// Select fans out and merges. Replicas' duplicate chunks are dropped by
// mergeReplicas, and what still overlaps by the chained merge, which keeps
// one sample per timestamp.
func (q *sampleQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	sets, limit, err := q.selectSets(ctx, true, sortSeries, hints, matchers)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	set := q.mergeSets(sets, limit)
	if q.use.seriesLimited() {
		return &countingSet{SeriesSet: set, u: q.use}
	}
	return set
}

func (q *sampleQuerier) mergeSets(sets []*streamSet, limit int) storage.SeriesSet {
	switch len(sets) {
	case 0:
		return storage.EmptySeriesSet()
	case 1:
		if limit > 0 {
			return storage.NewMergeSeriesSet([]storage.SeriesSet{sets[0]}, limit, storage.ChainedSeriesMerge)
		}
		return sets[0]
	}
	ss := make([]storage.SeriesSet, len(sets))
	for i, s := range sets {
		ss[i] = s
	}
	return storage.NewMergeSeriesSet(ss, limit, mergeReplicas)
}

// chunkQuerier is a storage.ChunkQuerier, used by remote read.
type chunkQuerier struct{ baseQuerier }

// Select fans out and merges; overlapping chunks of replicas are decoded and
// re-encoded into one chunk sequence without duplicate samples.
func (q *chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.ChunkSeriesSet {
	sets, limit, err := q.selectSets(ctx, false, sortSeries, hints, matchers)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	set := q.mergeSets(sets, limit)
	if q.use.seriesLimited() {
		return &countingChunkSet{ChunkSeriesSet: set, u: q.use}
	}
	return set
}

func (q *chunkQuerier) mergeSets(sets []*streamSet, limit int) storage.ChunkSeriesSet {
	if len(sets) == 0 {
		return storage.EmptyChunkSeriesSet()
	}
	if len(sets) == 1 && limit <= 0 {
		return chunkSet{sets[0]}
	}
	ss := make([]storage.ChunkSeriesSet, len(sets))
	for i, s := range sets {
		ss[i] = chunkSet{s}
	}
	return storage.NewMergeChunkSeriesSet(ss, limit, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge))
}

// fanout is what the streams of one Select share: the failure budget, whose
// first fatal error cancels the other streams and is what every set then
// reports, and the query's concurrency slots.
type fanout struct {
	ctx    context.Context
	cancel context.CancelFunc
	budget budget
	sem    chan struct{}
	use    *usage
}

// fail turns a stream's err into the error its set reports: nil while the
// failures fit the budget (budget.replace then says what the answer warns).
func (f *fanout) fail(ing *Ingester, method string, err error) error {
	f.budget.mu.Lock()
	fatal := f.budget.fatal
	f.budget.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	if le := (*LimitError)(nil); errors.As(err, &le) {
		f.budget.setFatal(err)
		f.cancel()
		return err
	}
	if ctxErr := contextError(f.ctx); ctxErr != nil {
		// The query was cancelled or timed out, or the querier closed.
		return ctxErr
	}
	if fatal := f.budget.fail(ing, method, err); fatal != nil {
		f.cancel()
		return fatal
	}
	return nil
}

// clientName names an ingester in errors: its address when the client knows
// it, else its position.
func clientName(c ingesterpb.IngesterClient, i int) string {
	if a, ok := c.(interface{ Addr() string }); ok {
		return a.Addr()
	}
	return fmt.Sprintf("#%d", i)
}

// recvAll is the loop shared by the streaming RPCs: it receives until EOF.
func recvAll[T any](recv func() (T, error), each func(T) bool) error {
	for {
		m, err := recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !each(m) {
			return nil
		}
	}
}
