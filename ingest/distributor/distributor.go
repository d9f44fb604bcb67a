package distributor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// Sentinel errors of Push. Errors from ingesters are returned wrapped, with
// their gRPC status intact.
var (
	// ErrNoIngesters: there is no ingester to write to (HTTP 503).
	ErrNoIngesters = errors.New("no ingesters available")
	// ErrTooManyInflight: MaxInflightPushRequests pushes are already running
	// (HTTP 429).
	ErrTooManyInflight = errors.New("too many push requests in flight")
	// ErrWriteQuorum: a series could not be written to a quorum of its
	// replicas, either because too few are healthy in the ring or because
	// too many failed (HTTP 503).
	ErrWriteQuorum = errors.New("write quorum not reached")
)

// PushResult is what happened to a push that reached the ingesters (or had
// nothing to send).
type PushResult struct {
	SamplesWritten, HistogramsWritten, ExemplarsWritten uint64
	// Rejected lists the series (or parts of series) not written, in the
	// order of PushRequest.series. The rest of the request was written.
	Rejected []Rejection
	// Deduplicated: the request came from an HA replica that is not the
	// elected one of its cluster, and nothing of it was written (HTTP 202).
	Deduplicated bool

	tenant string // whose discards reject counts
}

// Distributor validates series and sends them to ingesters. It is safe for
// concurrent use.
type Distributor struct {
	cfg        Config
	ings       Ingesters
	logger     *slog.Logger
	inflight   chan struct{} // nil: no limit
	now        func() time.Time
	batchPool  sync.Pool        // of *ingesterpb.PushRequest; never the vtproto pool, see subRequest
	routePool  sync.Pool        // of *routing
	static     StaticIngesters  // non-nil: every series goes to every one
	uniform    uniformIngesters // non-nil: ings may say every series goes to the same ones
	staticInst []ring.Instance
	ha         *HATracker // nil: no HA deduplication; see SetHATracker
	haLimits   HALimits
	limits     Limits // see SetLimits
	rate       rateLimiters

	receivedSamples    prometheus.Counter
	receivedHistograms prometheus.Counter
	receivedExemplars  prometheus.Counter
	discarded          *prometheus.CounterVec
	requests           *prometheus.CounterVec
	ingesterPushes     *prometheus.CounterVec
	ingesterLatency    prometheus.Histogram
}

// New returns a Distributor. cfg must be valid.
func New(cfg Config, ings Ingesters, logger *slog.Logger, reg prometheus.Registerer) (*Distributor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("distributor config: %w", err)
	}
	if ings == nil {
		return nil, errors.New("distributor: no ingesters")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Distributor{
		cfg:    cfg,
		ings:   ings,
		logger: logger,
		now:    time.Now,
		limits: newConfigLimits(&cfg),
	}
	d.uniform, _ = ings.(uniformIngesters)
	if s, ok := ings.(StaticIngesters); ok {
		d.static = s
		d.staticInst = make([]ring.Instance, len(s))
		for i := range s {
			d.staticInst[i] = ring.Instance{ID: fmt.Sprintf("%d of %d", i+1, len(s)), Addr: staticAddr(i), State: ring.StateActive}
		}
	}
	if cfg.MaxInflightPushRequests > 0 {
		d.inflight = make(chan struct{}, cfg.MaxInflightPushRequests)
	}
	f := promauto.With(reg)
	d.receivedSamples = f.NewCounter(prometheus.CounterOpts{
		Name: "pharos_distributor_received_samples_total",
		Help: "Float samples received by the distributor, before validation.",
	})
	d.receivedHistograms = f.NewCounter(prometheus.CounterOpts{
		Name: "pharos_distributor_received_histograms_total",
		Help: "Native histogram samples received by the distributor, before validation.",
	})
	d.receivedExemplars = f.NewCounter(prometheus.CounterOpts{
		Name: "pharos_distributor_received_exemplars_total",
		Help: "Exemplars received by the distributor, before validation.",
	})
	d.discarded = f.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_discarded_samples_total",
		Help: "Samples (float and histogram) discarded by the distributor or rejected by ingesters, by reason and tenant.",
	}, []string{"reason", "tenant"})
	d.requests = f.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_distributor_requests_total",
		Help: "Remote-write requests handled, by HTTP status code.",
	}, []string{"code"})
	d.ingesterPushes = f.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_distributor_ingester_pushes_total",
		Help: "Push calls to ingesters, by gRPC status code.",
	}, []string{"code"})
	d.ingesterLatency = f.NewHistogram(prometheus.HistogramOpts{
		Name:                        "pharos_distributor_ingester_push_duration_seconds",
		Help:                        "Latency of Push calls to ingesters.",
		Buckets:                     prometheus.DefBuckets,
		NativeHistogramBucketFactor: 1.1,
	})
	return d, nil
}

// Push validates req and writes it to the ingesters. It normalises req in
// place (drops empty label values, sorts labels, drops samples outside the
// accepted time range) and does not keep it after returning.
//
// Rejected series are reported in the result and the rest is written. An
// error means the write failed as a whole and may be retried; the result is
// then nil.
func (d *Distributor) Push(ctx context.Context, req *ingesterpb.PushRequest) (*PushResult, error) {
	return d.push(ctx, req, nil)
}

// push is Push for a request that may come with the span of the body each
// series' labels were decoded from (remotewrite.Request.LabelSpans, nil
// for none), which an ingester of the same process finds known series by
// (see labelSpanPusher), and which are sent to remote ingesters in place of
// the labels' encoding (ingesterpb.LabelSpanPush). A span is dropped with
// any change to its series' labels.
func (d *Distributor) push(ctx context.Context, req *ingesterpb.PushRequest, spans [][]byte) (*PushResult, error) {
	if d.inflight != nil {
		select {
		case d.inflight <- struct{}{}:
			defer func() { <-d.inflight }()
		default:
			return nil, ErrTooManyInflight
		}
	}
	id := tenantOf(ctx)
	res := &PushResult{tenant: id}
	if d.ha != nil {
		done, relabelled := d.dedupeHA(ctx, req, res)
		if done {
			return res, nil
		}
		if relabelled {
			spans = nil
		}
	}
	if len(spans) != len(req.Series) {
		spans = nil
	}
	now := d.now()
	v := newValidator(&d.cfg, d.limits, id, now)

	// keep is nil while every series is valid, so that the common case
	// sends req as it is.
	var keep []int
	var samples, histograms, exemplars int
	ownSpans := false
	for i, ts := range req.Series {
		samples += len(ts.Samples)
		histograms += len(ts.Histograms)
		exemplars += len(ts.Exemplars)
		ok, normalised := d.validate(&v, i, ts, res)
		if normalised && spans != nil && spans[i] != nil {
			// The span no longer is the series' labels as sent on. The
			// caller's slice is left as it is.
			if !ownSpans {
				spans, ownSpans = slices.Clone(spans), true
			}
			spans[i] = nil
		}
		if !ok && keep == nil {
			keep = make([]int, i, len(req.Series))
			for j := range keep {
				keep[j] = j
			}
		} else if ok && keep != nil {
			keep = append(keep, i)
		}
	}
	d.receivedSamples.Add(float64(samples))
	d.receivedHistograms.Add(float64(histograms))
	d.receivedExemplars.Add(float64(exemplars))

	send := req
	if keep != nil {
		if len(keep) == 0 {
			return res, nil
		}
		send = d.subRequest(req, keep)
		defer d.putSubRequest(send)
		if spans != nil {
			kept := make([][]byte, len(keep))
			for j, i := range keep {
				kept[j] = spans[i]
			}
			spans = kept
		}
	}
	if len(send.Series) == 0 {
		return res, nil
	}
	if err := d.rateLimit(id, send, now); err != nil {
		return nil, err
	}
	if err := d.send(ctx, send, spans, keep, res); err != nil {
		return nil, err
	}
	return res, nil
}

// validate checks one series and records what it rejects. ok is false
// when nothing of the series is left to send; normalised says its labels
// may have been changed (see validator.labels).
func (d *Distributor) validate(v *validator, i int, ts *ingesterpb.TimeSeries, res *PushResult) (ok, normalised bool) {
	reason, msg, plain := v.labels(ts)
	if reason != "" {
		d.reject(res, Rejection{Index: i, Reason: reason, Series: FormatSeries(ts.Labels), Message: msg,
			Samples: len(ts.Samples), Histograms: len(ts.Histograms)})
		return false, true
	}
	normalised = !plain
	if reason, msg, s, h := v.samples(ts); reason != "" {
		d.reject(res, Rejection{Index: i, Reason: reason, Series: FormatSeries(ts.Labels), Message: msg, Samples: s, Histograms: h})
	}
	return len(ts.Samples) > 0 || len(ts.Histograms) > 0 || len(ts.Exemplars) > 0, normalised
}

func (d *Distributor) reject(res *PushResult, r Rejection) {
	res.Rejected = append(res.Rejected, r)
	d.discard(res.tenant, r.Reason, r.Samples+r.Histograms)
}

func (d *Distributor) discard(tenant, reason string, n int) {
	if n > 0 {
		d.discarded.WithLabelValues(reason, tenant).Add(float64(n))
	}
}

// subRequest returns a request of the series of req at keep. The series are
// shared with req, so it goes back to the distributor's own pool, never to
// ingesterpb's vtproto pool (whose users overwrite the messages).
func (d *Distributor) subRequest(req *ingesterpb.PushRequest, keep []int) *ingesterpb.PushRequest {
	sub, _ := d.batchPool.Get().(*ingesterpb.PushRequest)
	if sub == nil {
		sub = &ingesterpb.PushRequest{}
	}
	for _, i := range keep {
		sub.Series = append(sub.Series, req.Series[i])
	}
	sub.Metadata = req.Metadata
	return sub
}

func (d *Distributor) putSubRequest(sub *ingesterpb.PushRequest) {
	clear(sub.Series)
	sub.Series = sub.Series[:0]
	sub.Metadata = nil
	d.batchPool.Put(sub)
}

// at maps position j through index (nil: the identity).
func at(index []int, j int) int {
	if index == nil {
		return j
	}
	return index[j]
}

func grpcCode(err error) string { return status.Code(err).String() }

func ingesterReason(r ingesterpb.SeriesError_Reason) string {
	switch r {
	case ingesterpb.SeriesError_OUT_OF_ORDER:
		return ReasonOutOfOrder
	case ingesterpb.SeriesError_TOO_OLD:
		return ReasonTooOld
	case ingesterpb.SeriesError_DUPLICATE_TIMESTAMP:
		return ReasonDuplicateSample
	case ingesterpb.SeriesError_TOO_FAR_IN_FUTURE:
		return ReasonTooFarInFuture
	case ingesterpb.SeriesError_INVALID:
		return ReasonInvalid
	case ingesterpb.SeriesError_PER_USER_SERIES_LIMIT:
		return ReasonPerUserSeriesLimit
	case ingesterpb.SeriesError_PER_METRIC_SERIES_LIMIT:
		return ReasonPerMetricSeriesLimit
	}
	return ReasonIngesterRejected
}

// retryable tells whether err (from Push) is worth retrying, and whether it
// is overload rather than failure.
func retryable(err error) (retry, overload bool) {
	switch {
	case errors.Is(err, ErrTooManyInflight), errors.As(err, new(*RateLimitError)):
		return true, true
	case errors.Is(err, ErrNoIngesters), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true, false
	}
	switch status.Code(err) {
	case codes.ResourceExhausted:
		return true, true
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return true, false
	}
	// After the ingesters' own codes, so that an overloaded replica still
	// asks the sender to back off (429).
	if errors.Is(err, ErrWriteQuorum) || errors.Is(err, ring.ErrTooFewHealthy) || errors.Is(err, ring.ErrEmptyRing) {
		return true, false
	}
	return false, false
}

func sortRejections(rs []Rejection) {
	slices.SortStableFunc(rs, func(a, b Rejection) int { return a.Index - b.Index })
}
