package ingesterpb

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

// labelFields is the wire form of ls's TimeSeries.labels fields.
func labelFields(t testing.TB, ls []*LabelPair) []byte {
	var b []byte
	for _, l := range ls {
		lp, err := l.MarshalVT()
		require.NoError(t, err)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, lp)
	}
	return b
}

func spanTestRequest() *PushRequest {
	return &PushRequest{
		Series: []*TimeSeries{
			{
				Labels:  []*LabelPair{{Name: []byte("__name__"), Value: []byte("up")}, {Name: []byte("job"), Value: []byte("node")}},
				Samples: []*Sample{{TimestampMs: 1_700_000_000_000, Value: 1}, {TimestampMs: 1_700_000_015_000}},
			},
			{
				Labels:           []*LabelPair{{Name: []byte("__name__"), Value: []byte("h")}},
				Histograms:       []*Histogram{{Count: &Histogram_CountInt{CountInt: 3}, Sum: 1.5, TimestampMs: 7, PositiveSpans: []*BucketSpan{{Offset: 1, Length: 2}}, PositiveDeltas: []int64{1, 1}}},
				Exemplars:        []*Exemplar{{Labels: []*LabelPair{{Name: []byte("trace_id"), Value: []byte("abc")}}, Value: 1, TimestampMs: 9}},
				StartTimestampMs: 5,
			},
			{Labels: []*LabelPair{{Name: []byte("__name__"), Value: []byte("no_span")}}, Samples: []*Sample{{TimestampMs: 3, Value: 4}}},
		},
		Metadata: []*MetricMetadata{{Type: MetricMetadata_COUNTER, MetricFamilyName: "up", Help: "h"}},
	}
}

// With spans that are what the labels encode to, the bytes are
// PushRequest.MarshalVT's exactly.
func TestLabelSpanPushMarshalsAsPushRequest(t *testing.T) {
	req := spanTestRequest()
	want, err := req.MarshalVT()
	require.NoError(t, err)
	p := LabelSpanPush{Req: req, Spans: [][]byte{labelFields(t, req.Series[0].Labels), labelFields(t, req.Series[1].Labels), nil}}
	got := make([]byte, p.SizeVT())
	n, err := p.MarshalToSizedBufferVT(got)
	require.NoError(t, err)
	require.Equal(t, len(got), n)
	require.Equal(t, want, got)
}

// A span in another valid form (a sender's own encoding) is sent as it
// is, and decodes to the same request.
func TestLabelSpanPushSendsSpansAsTheyAre(t *testing.T) {
	req := spanTestRequest()
	// The value field first, then the name: valid, and not what MarshalVT writes.
	var span []byte
	for _, l := range req.Series[0].Labels {
		var lp []byte
		lp = protowire.AppendTag(lp, 2, protowire.BytesType)
		lp = protowire.AppendBytes(lp, l.Value)
		lp = protowire.AppendTag(lp, 1, protowire.BytesType)
		lp = protowire.AppendBytes(lp, l.Name)
		span = protowire.AppendTag(span, 1, protowire.BytesType)
		span = protowire.AppendBytes(span, lp)
	}
	p := LabelSpanPush{Req: req, Spans: [][]byte{span, nil, nil}}
	got := make([]byte, p.SizeVT())
	n, err := p.MarshalToSizedBufferVT(got)
	require.NoError(t, err)
	require.Equal(t, len(got), n)
	plain, err := req.MarshalVT()
	require.NoError(t, err)
	require.NotEqual(t, plain, got)

	back := &PushRequest{}
	require.NoError(t, back.UnmarshalVT(got))
	require.True(t, req.EqualVT(back), "decoded %v", back)
}

// BenchmarkLabelSpanPush marshals a 2000-series push, one sample and 11
// labels a series, with its labels from spans, against PushRequest's own
// marshalling.
func BenchmarkLabelSpanPush(b *testing.B) {
	req := &PushRequest{}
	var spans [][]byte
	for k := range 2000 {
		ts := &TimeSeries{Samples: []*Sample{{TimestampMs: 1_700_000_000_000 + int64(k), Value: float64(k)}}}
		for l := range 11 {
			ts.Labels = append(ts.Labels, &LabelPair{Name: fmt.Appendf(nil, "label_%02d", l), Value: fmt.Appendf(nil, "value-%d-%d", l, k%97)})
		}
		req.Series = append(req.Series, ts)
		spans = append(spans, labelFields(b, ts.Labels))
	}
	buf := make([]byte, req.SizeVT())
	b.Run("spans", func(b *testing.B) {
		p := LabelSpanPush{Req: req, Spans: spans}
		for b.Loop() {
			if _, err := p.MarshalToSizedBufferVT(buf[:p.SizeVT()]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("messages", func(b *testing.B) {
		for b.Loop() {
			if _, err := req.MarshalToSizedBufferVT(buf[:req.SizeVT()]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
