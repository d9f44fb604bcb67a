package ingesterpb

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// TestQueryStreamEncoderMatchesMarshalVT: the encoder's bytes must be what
// the generated code makes of the same message, so that every client,
// old or new, decodes them; zero values, which proto3 leaves out, included.
func TestQueryStreamEncoderMatchesMarshalVT(t *testing.T) {
	big := make([]byte, 300) // a length that takes a two-byte varint
	for i := range big {
		big[i] = byte(i)
	}
	type series struct {
		ls   labels.Labels
		chks []WireChunk
	}
	for _, tc := range []struct {
		name     string
		series   []series
		warnings []string
	}{
		{name: "empty"},
		{name: "warnings only", warnings: []string{"w1", ""}},
		{name: "series", series: []series{
			{ls: labels.FromStrings("__name__", "m", "__tenant__", "t", "job", "a"), chks: []WireChunk{
				{MinTimeMs: 1, MaxTimeMs: 2, Encoding: 1, Data: []byte{1, 2, 3}},
				{MinTimeMs: -5, MaxTimeMs: math.MaxInt64, Encoding: 300, Data: big},
			}},
			{ls: labels.FromStrings("__name__", "m", "empty", "")},
			{ls: labels.EmptyLabels(), chks: []WireChunk{{}}},
			{ls: labels.FromStrings("a", "b"), chks: []WireChunk{{MinTimeMs: math.MinInt64, Data: big[:1]}}},
		}, warnings: []string{"last"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e QueryStreamEncoder
			e.Reset(make([]byte, 0, 4))
			want := &QueryStreamResponse{Warnings: tc.warnings}
			for _, s := range tc.series {
				e.AddSeries(s.ls, "__tenant__", s.chks)
				cs := &ChunkSeries{}
				s.ls.Range(func(l labels.Label) {
					if l.Name != "__tenant__" {
						cs.Labels = append(cs.Labels, &LabelPair{Name: []byte(l.Name), Value: []byte(l.Value)})
					}
				})
				for _, c := range s.chks {
					cs.Chunks = append(cs.Chunks, &Chunk{MinTimeMs: c.MinTimeMs, MaxTimeMs: c.MaxTimeMs, Encoding: c.Encoding, Data: c.Data})
				}
				want.Series = append(want.Series, cs)
			}
			e.AddWarnings(tc.warnings)
			wantBytes, err := want.MarshalVT()
			require.NoError(t, err)
			require.Equal(t, wantBytes, e.Bytes())
			require.Equal(t, len(tc.series), e.Series())

			got := &QueryStreamResponse{}
			require.NoError(t, got.UnmarshalVT(e.Bytes()))
			require.True(t, want.EqualVT(got))
		})
	}
}
