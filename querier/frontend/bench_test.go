package frontend_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/querier/frontend"
)

// BenchmarkDashboardQuery runs a dashboard's 2-day range query
// (`sum by (job) (rate(m[5m]))` over 2000 series, 60s step) directly
// against the upstream API ("upstream"), and through the frontend with a
// warm cache ("cached"): the refresh case the results cache is for.
func BenchmarkDashboardQuery(b *testing.B) {
	f := newFixture(b, frontend.Config{SplitInterval: 24 * time.Hour, MaxParallelism: 2, CacheResults: true, CacheMaxBytes: 256 << 20, MaxCacheFreshness: time.Minute})
	now := t0.Add(48 * time.Hour)
	f.front.SetClock(func() time.Time { return now.Add(time.Hour) })
	app := f.db.AppenderV2(context.Background())
	for ts := t0; ts.Before(now); ts = ts.Add(time.Minute) {
		for i := range 2000 {
			ls := labels.FromStrings("__name__", "m", "job", fmt.Sprintf("job-%d", i%20), "instance", fmt.Sprint(i))
			_, err := app.Append(0, ls, 0, ts.UnixMilli(), float64(ts.Sub(t0).Minutes())*float64(i), nil, nil, storage.AOptions{})
			require.NoError(b, err)
		}
	}
	require.NoError(b, app.Commit())
	v := rangeParams(`sum by (job) (rate(m[5m]))`, t0, now, "60")
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"upstream", f.upstream}, {"cached", f.front}} {
		get(b, tc.h, "/api/v1/query_range", v) // warm the cache
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				code, body := get(b, tc.h, "/api/v1/query_range", v)
				if code != http.StatusOK {
					b.Fatal(body)
				}
			}
		})
	}
}
