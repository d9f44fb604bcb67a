package querier_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

const (
	benchSeries   = 10_000
	benchInterval = 15 * time.Second
	benchSpan     = time.Hour
	benchQuery    = `sum by (job)(rate(m[5m]))`
)

// BenchmarkQuery runs the same range query over the same data through
// QueryStream + Queryable ("pharos") and on a local tsdb ("local"). The
// ratio of the two is the cost of the network path; allocs/sample is
// allocations per sample stored in the range.
func BenchmarkQuery(b *testing.B) {
	n := startNode(b, ingesterConfig(b, b.TempDir()))
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0
	local, err := tsdb.Open(b.TempDir(), nil, nil, opts, nil)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, local.Close()) })

	start := time.Unix(1_700_000_000, 0)
	perSeries := int(benchSpan / benchInterval)
	loadBench(b, n.client, local, start, perSeries)

	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples:    50_000_000,
		Timeout:       time.Minute,
		LookbackDelta: 5 * time.Minute,
	})
	b.Cleanup(func() { require.NoError(b, engine.Close()) })
	end := start.Add(benchSpan - benchInterval)

	for _, tc := range []struct {
		name string
		q    storage.Queryable
	}{
		{"local", local},
		{"pharos", querier.NewQueryable(querier.StaticIngesters{n.client}, nil, nil)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			for b.Loop() {
				qry, err := engine.NewRangeQuery(context.Background(), tc.q, nil, benchQuery, start.Add(5*time.Minute), end, time.Minute)
				require.NoError(b, err)
				res := qry.Exec(context.Background())
				require.NoError(b, res.Err)
				require.Len(b, res.Value.(promql.Matrix), 10)
				qry.Close()
			}
			runtime.ReadMemStats(&after)
			samples := float64(benchSeries*perSeries) * float64(b.N)
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/samples, "allocs/sample")
		})
	}
}

func loadBench(b *testing.B, c ingesterpb.IngesterClient, db *tsdb.DB, start time.Time, perSeries int) {
	b.Helper()
	ctx := context.Background()
	const batch = 500
	for lo := 0; lo < benchSeries; lo += batch {
		req := &ingesterpb.PushRequest{}
		app := db.AppenderV2(ctx)
		for i := lo; i < lo+batch; i++ {
			ls := labels.FromStrings("__name__", "m", "instance", fmt.Sprintf("host-%05d", i), "job", fmt.Sprintf("job-%d", i%10))
			ts := &ingesterpb.TimeSeries{}
			ls.Range(func(l labels.Label) {
				ts.Labels = append(ts.Labels, &ingesterpb.LabelPair{Name: []byte(l.Name), Value: []byte(l.Value)})
			})
			var ref storage.SeriesRef
			for k := range perSeries {
				t := start.Add(time.Duration(k) * benchInterval).UnixMilli()
				v := float64(k * (i%7 + 1))
				ts.Samples = append(ts.Samples, &ingesterpb.Sample{TimestampMs: t, Value: v})
				var err error
				ref, err = app.Append(ref, ls, 0, t, v, nil, nil, storage.AOptions{})
				require.NoError(b, err)
			}
			req.Series = append(req.Series, ts)
		}
		require.NoError(b, app.Commit())
		resp, err := c.Push(ctx, req)
		require.NoError(b, err)
		require.Empty(b, resp.Errors)
	}
}
