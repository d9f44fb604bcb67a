package distributor

import (
	"context"
	"fmt"
	"strings"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// AppendableV2 returns the distributor as a storage.AppendableV2, for the
// upstream scrape manager and rules manager. Appenders buffer what they are
// given and Push it on Commit.
//
// Commit returns an error only when the push failed as a whole (ingesters
// unreachable); rejected series are counted in
// pharos_discarded_samples_total and logged at debug level, as a tsdb's
// Commit does not fail for out-of-order samples either.
func (d *Distributor) AppendableV2() storage.AppendableV2 { return appendable{d} }

type appendable struct{ d *Distributor }

func (a appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &appender{d: a.d, ctx: ctx}
}

// appender is not safe for concurrent use, as storage.AppenderV2 requires.
type appender struct {
	d    *Distributor
	ctx  context.Context
	req  ingesterpb.PushRequest
	last storage.SeriesRef
	meta map[string]struct{}
}

var (
	_ storage.AppenderV2         = (*appender)(nil)
	_ storage.ExemplarAppenderV2 = (*appender)(nil)
)

// refOf returns a non-zero reference for ls. References are label hashes:
// they are stable across appenders, which the scrape cache relies on.
func refOf(ls labels.Labels) storage.SeriesRef {
	h := ls.Hash()
	if h == 0 {
		h = 1
	}
	return storage.SeriesRef(h)
}

// bytesOf views s without copying. The bytes are only read (marshalled).
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// series returns the series for ls, reusing the previous one when the caller
// appends to the same series again.
func (a *appender) series(_ storage.SeriesRef, ls labels.Labels) (*ingesterpb.TimeSeries, storage.SeriesRef) {
	r := refOf(ls)
	if n := len(a.req.Series); n > 0 && r == a.last {
		return a.req.Series[n-1], r
	}
	ts := &ingesterpb.TimeSeries{}
	pairs := make([]ingesterpb.LabelPair, ls.Len())
	ts.Labels = make([]*ingesterpb.LabelPair, 0, ls.Len())
	i := 0
	ls.Range(func(l labels.Label) {
		pairs[i].Name, pairs[i].Value = bytesOf(l.Name), bytesOf(l.Value)
		ts.Labels = append(ts.Labels, &pairs[i])
		i++
	})
	a.req.Series = append(a.req.Series, ts)
	a.last = r
	return ts, r
}

func (a *appender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	ts, ref := a.series(ref, ls)
	if st != 0 && ts.StartTimestampMs == 0 {
		ts.StartTimestampMs = st
	}
	switch {
	case h != nil:
		ts.Histograms = append(ts.Histograms, ingesterpb.FromHistogram(t, h))
	case fh != nil:
		ts.Histograms = append(ts.Histograms, ingesterpb.FromFloatHistogram(t, fh))
	default:
		ts.Samples = append(ts.Samples, &ingesterpb.Sample{TimestampMs: t, Value: v})
	}
	for _, e := range opts.Exemplars {
		ts.Exemplars = append(ts.Exemplars, fromExemplar(e))
	}
	if !opts.Metadata.IsEmpty() {
		a.addMetadata(opts.MetricFamilyName, ls, opts.Metadata.Type, opts.Metadata.Help, opts.Metadata.Unit)
	}
	return ref, nil
}

func (a *appender) AppendExemplars(ref storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	ts, ref := a.series(ref, ls)
	for _, e := range es {
		ts.Exemplars = append(ts.Exemplars, fromExemplar(e))
	}
	return ref, nil
}

func (a *appender) addMetadata(family string, ls labels.Labels, typ model.MetricType, help, unit string) {
	// Prometheus's scrape loop names the family of its report series (up,
	// scrape_duration_seconds, ...) with the "\xff" suffix it keys its
	// series cache with (scrape_append_v2.go, addReportSample). No metric
	// name holds that byte: it is not UTF-8.
	family = strings.TrimSuffix(family, "\xff")
	if family == "" {
		family = ls.Get(model.MetricNameLabel)
	}
	if _, ok := a.meta[family]; ok || family == "" {
		return
	}
	if a.meta == nil {
		a.meta = map[string]struct{}{}
	}
	// The scrape loop's strings point into its read buffer, which goes
	// back to a shared pool before Commit: keep copies.
	family = strings.Clone(family)
	a.meta[family] = struct{}{}
	a.req.Metadata = append(a.req.Metadata, &ingesterpb.MetricMetadata{
		Type: ingesterpb.MetricTypeFromModel(typ), MetricFamilyName: family, Help: strings.Clone(help), Unit: strings.Clone(unit),
	})
}

func (a *appender) Commit() error {
	defer a.Rollback() //nolint:errcheck // Rollback only clears the buffer.
	if len(a.req.Series) == 0 && len(a.req.Metadata) == 0 {
		return nil
	}
	res, err := a.d.Push(a.ctx, &a.req)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	for _, r := range res.Rejected {
		a.d.logger.Debug("series rejected", "reason", r.Reason, "err", r.Error())
	}
	return nil
}

func (a *appender) Rollback() error {
	a.req.Series, a.req.Metadata, a.last, a.meta = nil, nil, 0, nil
	return nil
}

func fromExemplar(e exemplar.Exemplar) *ingesterpb.Exemplar {
	pe := &ingesterpb.Exemplar{Value: e.Value, TimestampMs: e.Ts}
	e.Labels.Range(func(l labels.Label) {
		pe.Labels = append(pe.Labels, &ingesterpb.LabelPair{Name: bytesOf(l.Name), Value: bytesOf(l.Value)})
	})
	return pe
}
