package ingesterpb

import (
	"fmt"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
)

// Conversions between the wire types and Prometheus's own, shared by every
// client and server of the service so that both ends agree.

var (
	metricTypeToModel = map[MetricMetadata_MetricType]model.MetricType{
		MetricMetadata_UNKNOWN:        model.MetricTypeUnknown,
		MetricMetadata_COUNTER:        model.MetricTypeCounter,
		MetricMetadata_GAUGE:          model.MetricTypeGauge,
		MetricMetadata_HISTOGRAM:      model.MetricTypeHistogram,
		MetricMetadata_GAUGEHISTOGRAM: model.MetricTypeGaugeHistogram,
		MetricMetadata_SUMMARY:        model.MetricTypeSummary,
		MetricMetadata_INFO:           model.MetricTypeInfo,
		MetricMetadata_STATESET:       model.MetricTypeStateset,
	}
	metricTypeFromModel = func() map[model.MetricType]MetricMetadata_MetricType {
		m := make(map[model.MetricType]MetricMetadata_MetricType, len(metricTypeToModel))
		for k, v := range metricTypeToModel {
			m[v] = k
		}
		return m
	}()
)

// ModelMetricType is t as a Prometheus metric type; unknown values are "unknown".
func (t MetricMetadata_MetricType) ModelMetricType() model.MetricType {
	if m, ok := metricTypeToModel[t]; ok {
		return m
	}
	return model.MetricTypeUnknown
}

// MetricTypeFromModel is the wire value of a Prometheus metric type.
func MetricTypeFromModel(t model.MetricType) MetricMetadata_MetricType {
	return metricTypeFromModel[t] // UNKNOWN (0) for anything else
}

// FromLabelMatchers converts Prometheus matchers to the wire form.
func FromLabelMatchers(ms []*labels.Matcher) ([]*LabelMatcher, error) {
	out := make([]*LabelMatcher, len(ms))
	for i, m := range ms {
		var t LabelMatcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = LabelMatcher_EQ
		case labels.MatchNotEqual:
			t = LabelMatcher_NEQ
		case labels.MatchRegexp:
			t = LabelMatcher_RE
		case labels.MatchNotRegexp:
			t = LabelMatcher_NRE
		default:
			return nil, fmt.Errorf("unknown matcher type %v", m.Type)
		}
		out[i] = &LabelMatcher{Type: t, Name: m.Name, Value: m.Value}
	}
	return out, nil
}

// ToLabelMatchers converts wire matchers to Prometheus matchers; a bad
// regular expression or type is an error.
func ToLabelMatchers(in []*LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(in))
	for _, m := range in {
		var t labels.MatchType
		switch m.Type {
		case LabelMatcher_EQ:
			t = labels.MatchEqual
		case LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case LabelMatcher_RE:
			t = labels.MatchRegexp
		case LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("unknown matcher type %d", m.Type)
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, lm)
	}
	return out, nil
}

// FromHistogram is the wire form of an integer histogram sample at t. The
// bucket slices are shared with h, not copied.
func FromHistogram(t int64, h *histogram.Histogram) *Histogram {
	return &Histogram{
		Count:          &Histogram_CountInt{CountInt: h.Count},
		Sum:            h.Sum,
		Schema:         h.Schema,
		ZeroThreshold:  h.ZeroThreshold,
		ZeroCount:      &Histogram_ZeroCountInt{ZeroCountInt: h.ZeroCount},
		NegativeSpans:  fromSpans(h.NegativeSpans),
		NegativeDeltas: h.NegativeBuckets,
		PositiveSpans:  fromSpans(h.PositiveSpans),
		PositiveDeltas: h.PositiveBuckets,
		ResetHint:      Histogram_ResetHint(h.CounterResetHint), // same numbering as remote write
		TimestampMs:    t,
		CustomValues:   h.CustomValues,
	}
}

// FromFloatHistogram is the wire form of a float histogram sample at t. The
// bucket slices are shared with fh, not copied.
func FromFloatHistogram(t int64, fh *histogram.FloatHistogram) *Histogram {
	return &Histogram{
		Count:          &Histogram_CountFloat{CountFloat: fh.Count},
		Sum:            fh.Sum,
		Schema:         fh.Schema,
		ZeroThreshold:  fh.ZeroThreshold,
		ZeroCount:      &Histogram_ZeroCountFloat{ZeroCountFloat: fh.ZeroCount},
		NegativeSpans:  fromSpans(fh.NegativeSpans),
		NegativeCounts: fh.NegativeBuckets,
		PositiveSpans:  fromSpans(fh.PositiveSpans),
		PositiveCounts: fh.PositiveBuckets,
		ResetHint:      Histogram_ResetHint(fh.CounterResetHint),
		TimestampMs:    t,
		CustomValues:   fh.CustomValues,
	}
}

// IsFloat reports whether p holds a float histogram.
func (p *Histogram) IsFloat() bool {
	_, ok := p.Count.(*Histogram_CountFloat)
	return ok
}

// ToHistograms returns exactly one of an integer or a float histogram, with
// everything copied, so the result outlives p's buffers.
func (p *Histogram) ToHistograms() (*histogram.Histogram, *histogram.FloatHistogram) {
	if p.IsFloat() {
		return nil, &histogram.FloatHistogram{
			CounterResetHint: histogram.CounterResetHint(p.ResetHint),
			Schema:           p.Schema,
			ZeroThreshold:    p.ZeroThreshold,
			ZeroCount:        p.GetZeroCountFloat(),
			Count:            p.GetCountFloat(),
			Sum:              p.Sum,
			PositiveSpans:    toSpans(p.PositiveSpans),
			NegativeSpans:    toSpans(p.NegativeSpans),
			PositiveBuckets:  slices.Clone(p.PositiveCounts),
			NegativeBuckets:  slices.Clone(p.NegativeCounts),
			CustomValues:     slices.Clone(p.CustomValues),
		}
	}
	return &histogram.Histogram{
		CounterResetHint: histogram.CounterResetHint(p.ResetHint),
		Schema:           p.Schema,
		ZeroThreshold:    p.ZeroThreshold,
		ZeroCount:        p.GetZeroCountInt(),
		Count:            p.GetCountInt(),
		Sum:              p.Sum,
		PositiveSpans:    toSpans(p.PositiveSpans),
		NegativeSpans:    toSpans(p.NegativeSpans),
		PositiveBuckets:  slices.Clone(p.PositiveDeltas),
		NegativeBuckets:  slices.Clone(p.NegativeDeltas),
		CustomValues:     slices.Clone(p.CustomValues),
	}, nil
}

func fromSpans(s []histogram.Span) []*BucketSpan {
	if len(s) == 0 {
		return nil
	}
	out := make([]*BucketSpan, len(s))
	for i, x := range s {
		out[i] = &BucketSpan{Offset: x.Offset, Length: x.Length}
	}
	return out
}

func toSpans(in []*BucketSpan) []histogram.Span {
	if len(in) == 0 {
		return nil
	}
	out := make([]histogram.Span, len(in))
	for k, s := range in {
		out[k] = histogram.Span{Offset: s.Offset, Length: s.Length}
	}
	return out
}
