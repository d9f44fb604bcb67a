package frontend_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/querier/api"
	"github.com/pharos-tsdb/pharos/querier/frontend"
)

// fixture is the upstream API over a local tsdb, and the frontend over it.
type fixture struct {
	db       *tsdb.DB
	upstream http.Handler
	front    *frontend.Frontend
	reg      *prometheus.Registry
}

var t0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func newFixture(t testing.TB, cfg frontend.Config) *fixture {
	opts := tsdb.DefaultOptions()
	opts.EnableSharding = true
	db, err := tsdb.Open(t.TempDir(), promslog.NewNopLogger(), nil, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	var qcfg querier.Config
	qcfg.RegisterFlags(flag.NewFlagSet("querier", flag.ContinueOnError))
	engine := querier.NewEngine(qcfg, nil, nil)
	a, err := api.New(api.Options{
		Queryable: shardingQueryable{db},
		Engine:    engine,
		Exemplars: db,
		Metadata: func(context.Context, string, int, int) (map[string][]metadata.Metadata, error) {
			return nil, nil
		},
		Version:       &v1.PrometheusVersion{Version: "3.16.0"},
		LookbackDelta: 5 * time.Minute,
		QueryTimeout:  2 * time.Minute,
		ExternalURL:   &url.URL{Scheme: "http", Host: "localhost:9090"},
	})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	return &fixture{db: db, upstream: a.Handler(), front: frontend.New(cfg, a.Handler(), slog.New(slog.DiscardHandler), reg), reg: reg}
}

// load writes 3 days of a counter, a gauge and a native histogram, for
// 20 series, every 60s.
func (f *fixture) load(t testing.TB, from, to time.Time) {
	app := f.db.AppenderV2(context.Background())
	for ts := from; ts.Before(to); ts = ts.Add(time.Minute) {
		k := ts.Sub(t0).Minutes()
		for i := range 10 {
			job := fmt.Sprintf("job-%d", i%3)
			_, err := app.Append(0, labels.FromStrings("__name__", "requests_total", "job", job, "instance", fmt.Sprint(i)), 0, ts.UnixMilli(), k*float64(i+1), nil, nil, storage.AOptions{})
			require.NoError(t, err)
			_, err = app.Append(0, labels.FromStrings("__name__", "temperature", "job", job, "instance", fmt.Sprint(i)), 0, ts.UnixMilli(), 20+5*math.Sin(k/97+float64(i)), nil, nil, storage.AOptions{})
			require.NoError(t, err)
		}
		h := &histogram.Histogram{Count: uint64(k) + 1, Sum: k, ZeroCount: 1, Schema: 0, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(k)}}
		_, err := app.Append(0, labels.FromStrings("__name__", "latency_seconds"), 0, ts.UnixMilli(), 0, h, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

func get(t testing.TB, h http.Handler, path string, v url.Values) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path+"?"+v.Encode(), nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return rec.Code, string(body)
}

func rangeParams(q string, start, end time.Time, step string) url.Values {
	return url.Values{"query": {q}, "start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {step}}
}

func TestSplitQueriesAnswerExactlyAsUpstream(t *testing.T) {
	forEachBackend(t, func(t *testing.T, with func(frontend.Config) frontend.Config) {
		f := newFixture(t, with(frontend.Config{SplitInterval: 24 * time.Hour, MaxParallelism: 3, CacheResults: true, CacheMaxBytes: 64 << 20, MaxCacheFreshness: time.Minute}))
		f.load(t, t0, t0.Add(72*time.Hour))
		for _, tc := range []struct {
			q, step    string
			start, end time.Time
		}{
			{`sum by (job) (rate(requests_total[5m]))`, "3600", t0.Add(time.Hour), t0.Add(70 * time.Hour)},
			{`temperature`, "617", t0.Add(13 * time.Minute), t0.Add(50 * time.Hour)}, // unaligned step and start
			{`histogram_quantile(0.9, rate(latency_seconds[10m]))`, "15m", t0, t0.Add(72 * time.Hour)},
			{`latency_seconds`, "2h", t0.Add(23 * time.Hour), t0.Add(49 * time.Hour)},
			{`max_over_time(temperature[1h:5m])`, "1800", t0, t0.Add(48 * time.Hour)},
			{`temperature > 24`, "300", t0.Add(20 * time.Hour), t0.Add(28 * time.Hour)}, // series come and go across the split
			{`vector(1)`, "60", t0.Add(23*time.Hour + 59*time.Minute), t0.Add(24*time.Hour + time.Minute)},
		} {
			t.Run(tc.q, func(t *testing.T) {
				v := rangeParams(tc.q, tc.start, tc.end, tc.step)
				wantCode, want := get(t, f.upstream, "/api/v1/query_range", v)
				require.Equal(t, http.StatusOK, wantCode, want)
				for range 2 { // the second run comes from the cache where it can
					code, got := get(t, f.front, "/api/v1/query_range", v)
					require.Equal(t, http.StatusOK, code)
					require.JSONEq(t, want, got)
					require.Equal(t, strings.TrimSpace(want), strings.TrimSpace(got), "byte for byte")
				}
			})
		}
		require.Positive(t, metric(t, f.reg, "pharos_frontend_results_cache_steps_total", "hit"))
	})
}

func TestCacheAnswersRepeatsAndSeesNewSamples(t *testing.T) {
	forEachBackend(t, func(t *testing.T, with func(frontend.Config) frontend.Config) {
		now := t0.Add(48*time.Hour + 30*time.Minute)
		f := newFixture(t, with(frontend.Config{SplitInterval: 24 * time.Hour, MaxParallelism: 2, CacheResults: true, CacheMaxBytes: 64 << 20, MaxCacheFreshness: 10 * time.Minute}))
		f.front.SetClock(func() time.Time { return now })
		f.load(t, t0, now.Add(-5*time.Minute))
		v := rangeParams(`sum by (job) (temperature)`, now.Add(-30*time.Hour), now, "60")

		_, first := get(t, f.front, "/api/v1/query_range", v)
		evaluated := metric(t, f.reg, "pharos_frontend_query_parts_evaluated_total", "")
		_, second := get(t, f.front, "/api/v1/query_range", v)
		require.Equal(t, first, second)
		// Only the part within max_cache_freshness of now is evaluated again.
		require.Equal(t, evaluated+1, metric(t, f.reg, "pharos_frontend_query_parts_evaluated_total", ""))

		// Late samples within the freshness window are seen.
		f.load(t, now.Add(-5*time.Minute), now.Add(time.Minute))
		_, third := get(t, f.front, "/api/v1/query_range", v)
		_, want := get(t, f.upstream, "/api/v1/query_range", v)
		require.Equal(t, strings.TrimSpace(want), strings.TrimSpace(third))
		require.NotEqual(t, second, third)

		// A dashboard refresh a minute later reuses the extent.
		now = now.Add(time.Minute)
		v = rangeParams(`sum by (job) (temperature)`, now.Add(-30*time.Hour), now, "60")
		before := metric(t, f.reg, "pharos_frontend_results_cache_steps_total", "miss")
		_, got := get(t, f.front, "/api/v1/query_range", v)
		_, want = get(t, f.upstream, "/api/v1/query_range", v)
		require.Equal(t, strings.TrimSpace(want), strings.TrimSpace(got))
		require.LessOrEqual(t, metric(t, f.reg, "pharos_frontend_results_cache_steps_total", "miss")-before, 12.0, "only the fresh steps are evaluated")
	})
}

func TestErrorsAndRangeBoundsPassThrough(t *testing.T) {
	f := newFixture(t, frontend.Config{SplitInterval: 24 * time.Hour, MaxParallelism: 2, CacheResults: true, CacheMaxBytes: 1 << 20})
	f.load(t, t0, t0.Add(50*time.Hour))
	for _, v := range []url.Values{
		rangeParams(`sum(`, t0, t0.Add(48*time.Hour), "60"),
		rangeParams(`temperature`, t0, t0.Add(48*time.Hour), "0"),
		rangeParams(`temperature`, t0.Add(48*time.Hour), t0, "60"),
		rangeParams(`temperature @ end()`, t0, t0.Add(48*time.Hour), "3600"),
		rangeParams(`rate(requests_total[5m] @ start())`, t0, t0.Add(48*time.Hour), "3600"),
		{"query": {"temperature"}, "start": {"yesterday"}, "end": {"1"}, "step": {"1"}},
	} {
		wantCode, want := get(t, f.upstream, "/api/v1/query_range", v)
		code, got := get(t, f.front, "/api/v1/query_range", v)
		require.Equal(t, wantCode, code, v.Encode())
		require.Equal(t, want, got, v.Encode())
	}
	// A POST form works like a GET.
	v := rangeParams(`temperature`, t0, t0.Add(48*time.Hour), "3600")
	req := httptest.NewRequest(http.MethodPost, "/api/v1/query_range", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	f.front.ServeHTTP(rec, req)
	_, want := get(t, f.upstream, "/api/v1/query_range", v)
	require.Equal(t, strings.TrimSpace(want), strings.TrimSpace(rec.Body.String()))
}

// metric reads a counter from reg; label is the value of its only label,
// "" for none.
func metric(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// shardingQueryable reads __query_shard__ matchers as the ingesters do.
type shardingQueryable struct{ *tsdb.DB }

func (q shardingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	qr, err := q.DB.Querier(mint, maxt)
	return shardingQuerier{qr}, err
}

type shardingQuerier struct{ storage.Querier }

func (q shardingQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	ms, idx, n, err := querier.CutShardMatcher(ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if n > 0 {
		h := storage.SelectHints{}
		if hints != nil {
			h = *hints
		}
		h.ShardIndex, h.ShardCount = idx, n
		hints = &h
	}
	return q.Querier.Select(ctx, sorted, hints, ms...)
}

// The result cache is per tenant: a tenant never gets another's cached
// answer to the same query.
func TestCacheIsPerTenant(t *testing.T) {
	forEachBackend(t, func(t *testing.T, with func(frontend.Config) frontend.Config) {
		cfg := with(frontend.Config{SplitInterval: 24 * time.Hour, MaxParallelism: 3, CacheResults: true, CacheMaxBytes: 64 << 20, MaxCacheFreshness: time.Minute})
		a, b := newFixture(t, cfg), newFixture(t, cfg)
		a.load(t, t0, t0.Add(72*time.Hour))
		b.load(t, t0.Add(24*time.Hour), t0.Add(48*time.Hour))
		// The upstream of each tenant is its own API, as the ingesters confine
		// every read to the request's tenant.
		byTenant := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch id, _ := tenant.FromContext(r.Context()); id {
			case "a":
				a.upstream.ServeHTTP(w, r)
			case "b":
				b.upstream.ServeHTTP(w, r)
			default:
				http.Error(w, "no tenant", http.StatusUnauthorized)
			}
		})
		front := tenant.Resolver{Enabled: true}.Middleware(frontend.New(cfg, byTenant, slog.New(slog.DiscardHandler), prometheus.NewRegistry()))
		as := func(id string, v url.Values) (int, string) {
			t.Helper()
			req := httptest.NewRequest(http.MethodGet, "/api/v1/query_range?"+v.Encode(), nil)
			req.Header.Set(tenant.HeaderName, id)
			rec := httptest.NewRecorder()
			front.ServeHTTP(rec, req)
			return rec.Code, rec.Body.String()
		}
		v := rangeParams(`sum(rate(requests_total[5m]))`, t0.Add(time.Hour), t0.Add(70*time.Hour), "3600")
		_, wantA := get(t, a.upstream, "/api/v1/query_range", v)
		_, wantB := get(t, b.upstream, "/api/v1/query_range", v)
		require.NotEqual(t, wantA, wantB)
		for range 2 { // the second round could come from the cache
			for id, want := range map[string]string{"a": wantA, "b": wantB} {
				code, got := as(id, v)
				require.Equal(t, http.StatusOK, code, got)
				require.JSONEq(t, want, got, id)
			}
		}
	})
}

// A backfill older than max_cache_freshness is not seen in a cached range
// until results_cache_ttl has passed since its points were evaluated; an
// extent grown by refreshes keeps the age of its oldest points.
func TestCacheTTLBoundsStaleness(t *testing.T) {
	forEachBackend(t, func(t *testing.T, with func(frontend.Config) frontend.Config) {
		now := t0.Add(48*time.Hour + 30*time.Minute)
		f := newFixture(t, with(frontend.Config{SplitInterval: 24 * time.Hour, MaxParallelism: 2, CacheResults: true, CacheMaxBytes: 64 << 20,
			MaxCacheFreshness: time.Minute, CacheTTL: 10 * time.Minute}))
		f.front.SetClock(func() time.Time { return now })
		f.load(t, t0, now)
		query := func() (got, want string) {
			v := rangeParams(`sum by (job) (temperature)`, now.Add(-30*time.Hour), now, "60")
			_, got = get(t, f.front, "/api/v1/query_range", v)
			_, want = get(t, f.upstream, "/api/v1/query_range", v)
			return strings.TrimSpace(got), strings.TrimSpace(want)
		}
		got, want := query()
		require.Equal(t, want, got)

		// A backfill an hour back: the cache does not see it...
		app := f.db.AppenderV2(context.Background())
		_, err := app.Append(0, labels.FromStrings("__name__", "temperature", "job", "backfill"), 0, now.Add(-time.Hour).UnixMilli(), 1, nil, nil, storage.AOptions{})
		require.NoError(t, err)
		require.NoError(t, app.Commit())
		// ...through refreshes within the TTL, which grow the extent,
		for range 3 {
			now = now.Add(3 * time.Minute)
			got, want = query()
			require.NotEqual(t, want, got, "the cached range hides the backfill until the TTL")
		}
		// ...until its oldest points are older than the TTL.
		expired := metric(t, f.reg, "pharos_frontend_results_cache_expired_total", "")
		now = now.Add(2 * time.Minute)
		got, want = query()
		require.Equal(t, want, got)
		require.Greater(t, metric(t, f.reg, "pharos_frontend_results_cache_expired_total", ""), expired)
	})
}
