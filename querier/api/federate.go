package api

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/protobuf/proto"
)

// federation serves /federate as Prometheus does: the latest sample, within
// the lookback delta, of every series a match[] selector selects, in the
// exposition format the client negotiates, with the external labels (and
// an empty instance) attached where a series lacks them. Another
// Prometheus scrapes it with honor_labels.
type federation struct {
	api      *API
	parser   parser.Parser
	errs     prometheus.Counter
	warnings prometheus.Counter
}

// Federate serves /federate; mount it there.
func (a *API) Federate() http.Handler { return a.federate }

func newFederation(a *API, reg prometheus.Registerer) http.Handler {
	f := &federation{
		api:    a,
		parser: parser.NewParser(parser.Options{}),
		// Prometheus's names, so its dashboards and alerts apply.
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prometheus_web_federation_errors_total",
			Help: "Total number of errors that occurred while sending federation responses.",
		}),
		warnings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prometheus_web_federation_warnings_total",
			Help: "Total number of warnings that occurred while sending federation responses.",
		}),
	}
	if reg != nil {
		reg.MustRegister(f.errs, f.warnings)
	}
	return a.opts.Ready(f.serve)
}

func (f *federation) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, fmt.Sprintf("error parsing form values: %v", err), http.StatusBadRequest)
		return
	}
	sets, err := f.parser.ParseMetricSelectors(r.Form["match[]"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	maxt := now.UnixMilli()
	mint := now.Add(-f.api.opts.LookbackDelta).UnixMilli()
	samples, err := f.latest(r, sets, mint, maxt)
	if err != nil {
		f.errs.Inc()
		code := http.StatusInternalServerError
		if errors.Is(err, tsdb.ErrNotReady) {
			code = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), code)
		return
	}

	format := expfmt.NegotiateAccept(r.Header, expfmt.NewFormat(expfmt.TypeProtoDelim), expfmt.NewFormat(expfmt.TypeProtoText),
		expfmt.NewFormat(expfmt.TypeProtoCompact), expfmt.NewFormat(expfmt.TypeTextPlain))
	protobuf := format.FormatType() != expfmt.TypeTextPlain
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, fam := range f.families(samples, protobuf) {
		if err := enc.Encode(fam); err != nil {
			// The answer has begun: nothing to tell the client but a short body.
			f.errs.Inc()
			f.api.opts.Logger.Error("federation failed", "err", err)
			return
		}
	}
}

// latest reads every selected series' latest sample in [mint, maxt],
// stale markers left out: the exposition formats cannot carry them.
func (f *federation) latest(r *http.Request, sets [][]*labels.Matcher, mint, maxt int64) ([]promql.Sample, error) {
	q, err := f.api.opts.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	hints := &storage.SelectHints{Start: mint, End: maxt}
	var ss []storage.SeriesSet
	for _, ms := range sets {
		ss = append(ss, q.Select(r.Context(), true, hints, ms...))
	}
	set := storage.NewMergeSeriesSet(ss, 0, storage.ChainedSeriesMerge)
	var (
		out []promql.Sample
		it  chunkenc.Iterator
	)
	for set.Next() {
		s := promql.Sample{Metric: set.At().Labels(), T: -1}
		it = set.At().Iterator(it)
		// The last sample at or before maxt; chunks may hold later ones.
		for vt := it.Next(); vt != chunkenc.ValNone && it.AtT() <= maxt; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				s.T, s.F = it.At()
				s.H = nil
			case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
				s.T, s.H = it.AtFloatHistogram(nil)
			}
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
		if s.T < mint {
			continue
		}
		if (s.H == nil && value.IsStaleNaN(s.F)) || (s.H != nil && value.IsStaleNaN(s.H.Sum)) {
			continue
		}
		out = append(out, s)
	}
	if ws := set.Warnings(); len(ws) > 0 {
		f.warnings.Add(float64(len(ws)))
		f.api.opts.Logger.Debug("federation select returned warnings", "warnings", ws)
	}
	return out, set.Err()
}

// families groups samples by metric name (and, within a name, by float,
// counter histogram or gauge histogram, as Prometheus's federation splits
// them) into untyped and histogram families. Native histograms go out only
// in the protobuf formats; the text format cannot carry them, though a
// histogram with custom buckets (NHCB) goes out as a classic one.
func (f *federation) families(samples []promql.Sample, protobuf bool) []*dto.MetricFamily {
	slices.SortStableFunc(samples, func(a, b promql.Sample) int {
		return strings.Compare(a.Metric.Get(model.MetricNameLabel), b.Metric.Get(model.MetricNameLabel))
	})
	ext := f.api.opts.PromConfig().GlobalConfig.ExternalLabels.Map()
	if _, ok := ext[model.InstanceLabel]; !ok {
		ext[model.InstanceLabel] = ""
	}
	var (
		out  []*dto.MetricFamily
		last *dto.MetricFamily
	)
	for _, s := range samples {
		name := s.Metric.Get(model.MetricNameLabel)
		if name == "" {
			continue
		}
		if s.H != nil && !s.H.UsesCustomBuckets() && !protobuf {
			continue
		}
		typ := dto.MetricType_UNTYPED
		switch {
		case s.H != nil && s.H.CounterResetHint == histogram.GaugeType:
			typ = dto.MetricType_GAUGE_HISTOGRAM
		case s.H != nil:
			typ = dto.MetricType_HISTOGRAM
		}
		if last == nil || last.GetName() != name || last.GetType() != typ {
			last = &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum()}
			out = append(out, last)
		}
		m := &dto.Metric{TimestampMs: proto.Int64(s.T)}
		s.Metric.Range(func(l labels.Label) {
			// An empty value is an unset label.
			if l.Name != model.MetricNameLabel && l.Value != "" {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
			}
		})
		for n, v := range ext {
			if !s.Metric.Has(n) {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(n), Value: proto.String(v)})
			}
		}
		slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return cmp.Compare(a.GetName(), b.GetName()) })
		switch {
		case s.H == nil:
			m.Untyped = &dto.Untyped{Value: proto.Float64(s.F)}
		case s.H.UsesCustomBuckets():
			m.Histogram = classicHistogram(s.H)
		default:
			m.Histogram = nativeHistogram(s.H)
		}
		last.Metric = append(last.Metric, m)
	}
	return out
}

func nativeHistogram(h *histogram.FloatHistogram) *dto.Histogram {
	spans := func(in []histogram.Span) []*dto.BucketSpan {
		out := make([]*dto.BucketSpan, len(in))
		for i, sp := range in {
			out[i] = &dto.BucketSpan{Offset: proto.Int32(sp.Offset), Length: proto.Uint32(sp.Length)}
		}
		return out
	}
	return &dto.Histogram{
		SampleCountFloat: proto.Float64(h.Count),
		SampleSum:        proto.Float64(h.Sum),
		Schema:           proto.Int32(h.Schema),
		ZeroThreshold:    proto.Float64(h.ZeroThreshold),
		ZeroCountFloat:   proto.Float64(h.ZeroCount),
		PositiveSpan:     spans(h.PositiveSpans),
		NegativeSpan:     spans(h.NegativeSpans),
		// A float histogram's buckets are absolute counts.
		PositiveCount: h.PositiveBuckets,
		NegativeCount: h.NegativeBuckets,
	}
}

// classicHistogram turns a histogram with custom buckets into cumulative
// buckets; the encoders add +Inf where the format wants it.
func classicHistogram(h *histogram.FloatHistogram) *dto.Histogram {
	out := &dto.Histogram{SampleCountFloat: proto.Float64(h.Count), SampleSum: proto.Float64(h.Sum),
		Bucket: make([]*dto.Bucket, len(h.CustomValues))}
	counts := make([]float64, len(h.CustomValues)+1)
	for it := h.PositiveBucketIterator(); it.Next(); {
		if b := it.At(); int(b.Index) < len(counts) {
			counts[b.Index] += b.Count
		}
	}
	var cum float64
	for i, le := range h.CustomValues {
		cum += counts[i]
		out.Bucket[i] = &dto.Bucket{UpperBound: proto.Float64(le), CumulativeCountFloat: proto.Float64(cum)}
	}
	return out
}
