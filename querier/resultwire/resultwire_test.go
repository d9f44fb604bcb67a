package resultwire_test

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/stats"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/querier/resultwire"
)

func response(result parser.Value) *v1.Response {
	return &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: result.Type(), Result: result},
		Warnings: []string{"w1", "w2"}, Infos: []string{"i"}}
}

// sameFloat is equality that holds for NaN and tells -0 from 0.
func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

func TestRoundTrip(t *testing.T) {
	c := resultwire.Codec{}
	require.Equal(t, resultwire.ContentType, c.ContentType().String())

	m := promql.Matrix{
		{Metric: labels.FromStrings("__name__", "m", "job", "a"), Floats: []promql.FPoint{
			{T: -5000, F: 1}, {T: 0, F: math.NaN()}, {T: 1733112345123, F: math.Inf(1)},
			{T: 1733112360123, F: math.Copysign(0, -1)}, {T: 1733112375123, F: 1e-300},
		}},
		{Metric: labels.EmptyLabels(), Floats: nil},
		{Metric: labels.FromStrings("job", "ü\x00"), Floats: []promql.FPoint{{T: math.MaxInt64, F: -math.MaxFloat64}}},
	}
	resp := response(m)
	require.True(t, c.CanEncode(resp))
	b, err := c.Encode(resp)
	require.NoError(t, err)
	got, err := resultwire.Decode(b)
	require.NoError(t, err)
	require.Equal(t, resultwire.Matrix, got.Type)
	require.Equal(t, resp.Warnings, got.Warnings)
	require.Equal(t, resp.Infos, got.Infos)
	require.Len(t, got.Series, len(m))
	for i, s := range m {
		require.True(t, labels.Equal(s.Metric, got.Series[i].Labels), "%s vs %s", s.Metric, got.Series[i].Labels)
		require.Len(t, got.Series[i].Points, len(s.Floats))
		for k, p := range s.Floats {
			require.Equal(t, p.T, got.Series[i].Points[k].T)
			require.True(t, sameFloat(p.F, got.Series[i].Points[k].V), "%v vs %v", p.F, got.Series[i].Points[k].V)
		}
	}

	v := promql.Vector{
		{Metric: labels.FromStrings("job", "a"), T: 1000, F: 2.5},
		{Metric: labels.FromStrings("job", "b"), T: 1000, F: math.Inf(-1)},
	}
	resp = response(v)
	require.True(t, c.CanEncode(resp))
	b, err = c.Encode(resp)
	require.NoError(t, err)
	got, err = resultwire.Decode(b)
	require.NoError(t, err)
	require.Equal(t, resultwire.Vector, got.Type)
	require.Len(t, got.Series, 2)
	require.Equal(t, []resultwire.Point{{T: 1000, V: 2.5}}, got.Series[0].Points)
	require.Equal(t, []resultwire.Point{{T: 1000, V: math.Inf(-1)}}, got.Series[1].Points)
	require.Equal(t, "b", got.Series[1].Labels.Get("job"))
}

// TestCanEncode: only answers that hold floats alone; the API then answers
// JSON.
func TestCanEncode(t *testing.T) {
	c := resultwire.Codec{}
	h := &histogram.FloatHistogram{Count: 1, Sum: 1}
	for name, resp := range map[string]*v1.Response{
		"histogram in a vector": response(promql.Vector{{T: 1, H: h}}),
		"histogram in a matrix": response(promql.Matrix{{Histograms: []promql.HPoint{{T: 1, H: h}}}}),
		"scalar":                response(promql.Scalar{T: 1, V: 1}),
		"string":                response(promql.String{T: 1, V: "x"}),
		"stats": {Status: "success", Data: &v1.QueryData{ResultType: "vector", Result: promql.Vector{},
			Stats: &stats.BuiltinStats{}}},
		"error":    {Status: "error", Error: "bad"},
		"not data": {Status: "success", Data: []string{"a"}},
	} {
		require.False(t, c.CanEncode(resp), name)
	}
}

// TestDecodeRejectsCorruptInput: every truncation of a valid answer, and
// a few forged ones, fail with an error, never a panic or a huge
// allocation.
func TestDecodeRejectsCorruptInput(t *testing.T) {
	b, err := resultwire.Codec{}.Encode(response(promql.Matrix{
		{Metric: labels.FromStrings("job", "a"), Floats: []promql.FPoint{{T: 1, F: 1}, {T: 2, F: 2}}},
	}))
	require.NoError(t, err)
	for n := range len(b) {
		_, err := resultwire.Decode(b[:n])
		require.Error(t, err, "prefix of %d bytes", n)
	}
	_, err = resultwire.Decode(append(b, 0))
	require.ErrorContains(t, err, "after the answer")
	_, err = resultwire.Decode([]byte{9})
	require.ErrorContains(t, err, "unknown result type")
	// A series count of 2^62 in a few bytes.
	_, err = resultwire.Decode([]byte{2, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40})
	require.Error(t, err)
}

func FuzzDecode(f *testing.F) {
	for _, r := range []parser.Value{
		promql.Matrix{{Metric: labels.FromStrings("job", "a"), Floats: []promql.FPoint{{T: 1, F: 1}, {T: 2, F: 2}}}},
		promql.Vector{{Metric: labels.FromStrings("job", "a"), T: 5, F: 1}},
	} {
		b, err := resultwire.Codec{}.Encode(response(r))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := resultwire.Decode(b)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes.
		var val parser.Value
		if res.Type == resultwire.Vector {
			vec := promql.Vector{}
			for _, s := range res.Series {
				if len(s.Points) != 1 {
					return // a vector's series has one point; Decode does not check
				}
				vec = append(vec, promql.Sample{Metric: s.Labels, T: s.Points[0].T, F: s.Points[0].V})
			}
			val = vec
		} else {
			mat := promql.Matrix{}
			for _, s := range res.Series {
				fp := make([]promql.FPoint, len(s.Points))
				for k, p := range s.Points {
					fp[k] = promql.FPoint{T: p.T, F: p.V}
				}
				mat = append(mat, promql.Series{Metric: s.Labels, Floats: fp})
			}
			val = mat
		}
		again, err := resultwire.Codec{}.Encode(&v1.Response{Status: "success", Data: &v1.QueryData{Result: val},
			Warnings: res.Warnings, Infos: res.Infos})
		require.NoError(t, err)
		require.Equal(t, b, again)
	})
}
