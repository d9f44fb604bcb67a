package ingester

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// staticSeriesLimits gives each tenant the same limits.
type staticSeriesLimits struct{ perUser, perMetric int }

func (s staticSeriesLimits) MaxGlobalSeriesPerUser(string) int   { return s.perUser }
func (s staticSeriesLimits) MaxGlobalSeriesPerMetric(string) int { return s.perMetric }

func TestLocalLimit(t *testing.T) {
	for _, tc := range []struct{ global, rf, ings, want int }{
		{100, 3, 6, 50},
		{100, 3, 3, 100},
		{100, 3, 1, 100}, // fewer ingesters than RF: each holds everything
		{100, 1, 3, 34},
		{0, 3, 6, 0},
		{100, 0, 0, 100}, // no ring yet
	} {
		require.Equal(t, tc.want, localLimit(tc.global, tc.rf, tc.ings), "%+v", tc)
	}
}

func pushAs(t *testing.T, h *harness, id string, series ...*ingesterpb.TimeSeries) *ingesterpb.PushResponse {
	t.Helper()
	resp, err := h.client.Push(tenant.With(context.Background(), id), &ingesterpb.PushRequest{Series: series})
	require.NoError(t, err)
	return resp
}

func seriesN(metric string, from, to int, ts int64) []*ingesterpb.TimeSeries {
	var out []*ingesterpb.TimeSeries
	for k := from; k < to; k++ {
		out = append(out, &ingesterpb.TimeSeries{Labels: lbls("__name__", metric, "i", fmt.Sprint(k)), Samples: floats(float64(ts), 1)})
	}
	return out
}

func TestSeriesLimitsPerTenantAndMetric(t *testing.T) {
	dir := t.TempDir()
	h := startIngester(t, testConfig(t, dir))
	// RF 3 over 6 ingesters: this one holds half of each tenant's series.
	h.ing.SetSeriesLimits(staticSeriesLimits{perUser: 10, perMetric: 6}, func() (int, int) { return 3, 6 })

	resp := pushAs(t, h, "a", seriesN("m1", 0, 3, 1000)...)
	require.Empty(t, resp.Errors)
	resp = pushAs(t, h, "a", append(seriesN("m1", 3, 4, 1000), seriesN("m1", 0, 1, 2000)...)...)
	require.Len(t, resp.Errors, 1, "the 4th new series of m1 is over the share of 3; old series still take samples")
	e := resp.Errors[0]
	require.Equal(t, ingesterpb.SeriesError_PER_METRIC_SERIES_LIMIT, e.Reason)
	require.Contains(t, e.Message, `per-metric series limit of 6 exceeded for tenant "a" and metric "m1" (this ingester's share: 3 series; limits.max_global_series_per_metric)`)
	require.Equal(t, uint32(1), e.RejectedSamples)
	require.Equal(t, uint64(1), resp.SamplesWritten)

	resp = pushAs(t, h, "a", append(seriesN("m2", 0, 3, 1000), seriesN("m3", 0, 1, 1000)...)...)
	require.Len(t, resp.Errors, 2, "3 of m1 and 2 of m2 fill the share of 5")
	for _, e := range resp.Errors {
		require.Equal(t, ingesterpb.SeriesError_PER_USER_SERIES_LIMIT, e.Reason)
		require.Contains(t, e.Message, `per-tenant series limit of 10 exceeded for tenant "a" (this ingester's share: 5 series; limits.max_global_series_per_user)`)
	}

	resp = pushAs(t, h, "b", seriesN("m1", 0, 3, 1000)...)
	require.Empty(t, resp.Errors, "b has series of its own")
	require.NoError(t, testutil.GatherAndCompare(h.reg, strings.NewReader(`
# HELP pharos_ingester_active_series Series in the ingester's head (in memory), by tenant.
# TYPE pharos_ingester_active_series gauge
pharos_ingester_active_series{tenant="a"} 5
pharos_ingester_active_series{tenant="b"} 3
`), "pharos_ingester_active_series"))
	require.Equal(t, 2.0, testutil.ToFloat64(h.ing.metrics.rejected[ingesterpb.SeriesError_PER_USER_SERIES_LIMIT]))
	require.Equal(t, 1.0, testutil.ToFloat64(h.ing.metrics.rejected[ingesterpb.SeriesError_PER_METRIC_SERIES_LIMIT]))
}

func TestSeriesCountsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	h := startIngester(t, cfg)
	pushAs(t, h, "a", seriesN("m", 0, 5, 1000)...)
	pushAs(t, h, tenant.DefaultTenant, seriesN("m", 0, 2, 1000)...)
	require.NoError(t, h.ing.Close(context.Background()))

	// The WAL replays every series, over the new, lower limit: none is
	// lost, and only new ones are refused.
	h = startIngester(t, cfg)
	require.Equal(t, 5, h.ing.series.active("a"))
	require.Equal(t, 2, h.ing.series.active(tenant.DefaultTenant))
	h.ing.SetSeriesLimits(staticSeriesLimits{perUser: 3}, nil)
	resp := pushAs(t, h, "a", seriesN("m", 0, 6, 2000)...)
	require.Len(t, resp.Errors, 1)
	require.Equal(t, uint32(5), resp.Errors[0].Index)
	require.Equal(t, uint64(5), resp.SamplesWritten)
}
