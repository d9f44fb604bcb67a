package app

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// globalSeries is a SeriesLimits of one global per-tenant limit.
type globalSeries int

func (g globalSeries) MaxGlobalSeriesPerUser(string) int   { return int(g) }
func (g globalSeries) MaxGlobalSeriesPerMetric(string) int { return 0 }

// TestSeriesLimitSharedByTheRing: three ingesters, RF 1, a global limit of
// 30 series: each ingester's share, read from the real ring, is 10, and
// the cluster as a whole stores no more than the global limit.
func TestSeriesLimitSharedByTheRing(t *testing.T) {
	c := newTestCluster(t, 1, []string{"", "", ""})
	for _, n := range c.ings {
		s := &ingesterShare{ring: n.app.ring}
		require.Eventually(t, func() bool { s.at = time.Time{}; _, ings := s.get(); return ings == 3 }, 10*time.Second, 20*time.Millisecond)
		n.app.ingester.SetSeriesLimits(globalSeries(30), s.get)
	}
	base := "http://" + c.front.app.HTTPAddr()
	now := time.Now().UnixMilli()
	r := limitsWrite(t, base, tenant.DefaultTenant, genSeries(0, 90, now))
	require.Equal(t, http.StatusBadRequest, r.code, r.body)
	require.Contains(t, r.body, `per-tenant series limit of 30 exceeded for tenant "anonymous" (this ingester's share: 10 series; limits.max_global_series_per_user)`)
	total := 0
	for _, n := range c.ings {
		got := metricValue(t, "http://"+n.app.HTTPAddr(), "pharos_ingester_active_series", `tenant="anonymous"`)
		require.LessOrEqual(t, got, 10.0, n.id)
		total += int(got)
	}
	require.LessOrEqual(t, total, 30)
	require.Positive(t, metricValue(t, base, "pharos_discarded_samples_total", `reason="per_user_series_limit",tenant="anonymous"`))
	t.Logf("stored %d of 90 series under a global limit of 30", total)
}
