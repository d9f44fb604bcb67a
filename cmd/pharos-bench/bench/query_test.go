package bench

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAnswerSameToleratesSummationOrder(t *testing.T) {
	// 0.1+0.2+0.3 and 0.3+0.2+0.1 differ in the last bit; two values a
	// hair either side of a rounding boundary of the digest's 10 digits
	// differ in its eyes.
	a := Answer{
		{Metric: `{job="a"}`, T: []int64{1, 2}, V: []float64{0.1 + 0.2 + 0.3, math.NaN()}},
		{Metric: `{job="b"}`, T: []int64{1}, V: []float64{1.23456789050001}},
	}
	b := Answer{
		{Metric: `{job="b"}`, T: []int64{1}, V: []float64{1.23456789049999}},
		{Metric: `{job="a"}`, T: []int64{1, 2}, V: []float64{0.3 + 0.2 + 0.1, math.NaN()}},
	}
	require.NotEqual(t, a.digest(), b.digest(), "the rounded digest is boundary-sensitive")
	require.True(t, a.Same(b))

	for name, c := range map[string]Answer{
		"value":     {{Metric: `{job="a"}`, T: []int64{1, 2}, V: []float64{0.6, 1}}, b[0]},
		"timestamp": {{Metric: `{job="a"}`, T: []int64{1, 3}, V: []float64{0.6, math.NaN()}}, b[0]},
		"series":    {b[0]},
		"metric":    {{Metric: `{job="c"}`, T: []int64{1, 2}, V: []float64{0.6, math.NaN()}}, b[0]},
	} {
		require.False(t, a.Same(c), name)
	}
}
