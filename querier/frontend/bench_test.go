package frontend_test

import (
	"context"
	"fmt"
	"log/slog"
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

// BenchmarkShardedQuery runs `sum by (job) (rate(m[5m]))` over 20k series
// for 1h at a 15s step, unsharded and with 2 and 4 shards; results are the
// same within float rounding (TestShardedAggregationsMatchUpstream).
func BenchmarkShardedQuery(b *testing.B) {
	base := newFixture(b, frontend.Config{MaxParallelism: 1})
	end := t0.Add(2 * time.Hour)
	app := base.db.AppenderV2(context.Background())
	for ts := t0; ts.Before(end); ts = ts.Add(15 * time.Second) {
		for i := range 20_000 {
			ls := labels.FromStrings("__name__", "m", "job", fmt.Sprintf("job-%d", i%50), "instance", fmt.Sprint(i), "group", fmt.Sprint(i%1000), "node", fmt.Sprint(i%2500))
			_, err := app.Append(0, ls, 0, ts.UnixMilli(), float64(ts.Sub(t0).Seconds())*float64(i%7+1), nil, nil, storage.AOptions{})
			require.NoError(b, err)
		}
	}
	require.NoError(b, app.Commit())
	// 50 groups out, 1000 and 2500 (8 series each, as a sum by instance
	// of node-exporter's per-device series): every shard answers every
	// group, so the last two measure combining the shards' answers.
	for _, by := range []string{"job", "group", "node"} {
		v := rangeParams(`sum by (`+by+`) (rate(m[5m]))`, end.Add(-time.Hour), end, "15")
		for _, shards := range []int{0, 2, 4} {
			front := frontend.New(frontend.Config{MaxParallelism: 1, QueryShards: shards}, base.upstream, slog.New(slog.DiscardHandler), nil)
			b.Run(fmt.Sprintf("by=%s/shards=%d", by, shards), func(b *testing.B) {
				for b.Loop() {
					code, body := get(b, front, "/api/v1/query_range", v)
					if code != http.StatusOK {
						b.Fatal(body)
					}
				}
			})
		}
	}
}
