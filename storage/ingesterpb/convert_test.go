package ingesterpb

import (
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
)

func TestMetricTypeRoundTrip(t *testing.T) {
	for _, mt := range []model.MetricType{
		model.MetricTypeUnknown, model.MetricTypeCounter, model.MetricTypeGauge, model.MetricTypeHistogram,
		model.MetricTypeGaugeHistogram, model.MetricTypeSummary, model.MetricTypeInfo, model.MetricTypeStateset,
	} {
		require.Equal(t, mt, MetricTypeFromModel(mt).ModelMetricType())
	}
	require.Equal(t, MetricMetadata_UNKNOWN, MetricTypeFromModel("bogus"))
	require.Equal(t, model.MetricTypeUnknown, MetricMetadata_MetricType(99).ModelMetricType())
}

func TestMatchersRoundTrip(t *testing.T) {
	in := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"),
		labels.MustNewMatcher(labels.MatchNotEqual, "job", ""),
		labels.MustNewMatcher(labels.MatchRegexp, "instance", "a.*"),
		labels.MustNewMatcher(labels.MatchNotRegexp, "zone", "b|c"),
	}
	pb, err := FromLabelMatchers(in)
	require.NoError(t, err)
	out, err := ToLabelMatchers(pb)
	require.NoError(t, err)
	require.Len(t, out, len(in))
	for i := range in {
		require.Equal(t, in[i].String(), out[i].String())
	}
	_, err = ToLabelMatchers([]*LabelMatcher{{Type: LabelMatcher_RE, Name: "a", Value: "("}})
	require.Error(t, err)
	_, err = ToLabelMatchers([]*LabelMatcher{{Type: 7, Name: "a"}})
	require.ErrorContains(t, err, "unknown matcher type")
}

func TestHistogramRoundTrip(t *testing.T) {
	h := tsdbutil.GenerateTestHistogram(3)
	h.CounterResetHint = histogram.NotCounterReset
	gotH, gotFH := FromHistogram(1000, h).ToHistograms()
	require.Nil(t, gotFH)
	require.Equal(t, h, gotH)

	fh := tsdbutil.GenerateTestFloatHistogram(4)
	fh.CounterResetHint = histogram.GaugeType
	p := FromFloatHistogram(2000, fh)
	require.True(t, p.IsFloat())
	require.Equal(t, int64(2000), p.TimestampMs)
	gotH, gotFH = p.ToHistograms()
	require.Nil(t, gotH)
	require.Equal(t, fh, gotFH)

	nhcb := tsdbutil.GenerateTestCustomBucketsHistogram(1)
	gotH, _ = FromHistogram(0, nhcb).ToHistograms()
	require.Equal(t, nhcb, gotH)
}
