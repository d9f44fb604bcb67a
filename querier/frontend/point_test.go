package frontend

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPointDecodesWhatTheAPIWrites(t *testing.T) {
	for _, v := range []float64{0, 1.5, -2, 1e-7, 3e21, math.Inf(1), math.Inf(-1), math.NaN()} {
		var p point
		require.NoError(t, json.Unmarshal(appendPoint(nil, 1700000000.123, v), &p), "%v", v)
		require.Equal(t, 1700000000.123, p.t)
		if math.IsNaN(v) {
			require.True(t, math.IsNaN(p.v))
			continue
		}
		require.Equal(t, v, p.v)
	}
	var p point
	require.NoError(t, json.Unmarshal([]byte(` [ 12 , "3.5" ] `), &p))
	require.Equal(t, point{t: 12, v: 3.5}, p)
	for _, bad := range []string{`[12]`, `[12,3.5]`, `{"t":1}`, `["x","1"]`, `[1,"x"]`, `"1"`} {
		require.Error(t, json.Unmarshal([]byte(bad), &p), bad)
	}
}

func TestCombinePointsMergesByTime(t *testing.T) {
	sum := func(a, b float64) float64 { return a + b }
	a := []point{{1, 1}, {2, 2}, {4, 4}}
	b := []point{{0, 10}, {2, 20}, {3, 30}, {5, 50}}
	require.Equal(t, []point{{0, 10}, {1, 1}, {2, 22}, {3, 30}, {4, 4}, {5, 50}}, combinePoints(a, b, sum))
	require.Equal(t, b, combinePoints(nil, b, sum))
}
