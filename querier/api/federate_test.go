package api_test

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/querier/api"
)

// TestFederate serves /federate from a local tsdb: the latest sample of
// each selected series once, stale and too-old series left out, external
// labels attached where missing, native histograms only in protobuf.
func TestFederate(t *testing.T) {
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	now := time.Now()
	at := func(d time.Duration) int64 { return now.Add(-d).UnixMilli() }
	app := db.AppenderV2(context.Background())
	add := func(ls labels.Labels, ts int64, v float64, h *histogram.Histogram) {
		_, err := app.Append(0, ls, 0, ts, v, h, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	a1 := labels.FromStrings("__name__", "up", "job", "a", "instance", "h1")
	add(a1, at(30*time.Second), 0, nil)
	add(a1, at(15*time.Second), 1, nil)
	add(labels.FromStrings("__name__", "up", "job", "b", "instance", "h2", "replica", "own"), at(15*time.Second), 1, nil)
	// Gone stale: left out.
	stale := labels.FromStrings("__name__", "up", "job", "a", "instance", "h3")
	add(stale, at(30*time.Second), 1, nil)
	add(stale, at(15*time.Second), math.Float64frombits(value.StaleNaN), nil)
	// Older than the lookback delta: left out.
	add(labels.FromStrings("__name__", "up", "job", "a", "instance", "h4"), at(10*time.Minute), 1, nil)
	add(labels.FromStrings("__name__", "node_load1", "job", "a"), at(5*time.Second), 0.5, nil)
	add(labels.FromStrings("__name__", "latency", "job", "a"), at(5*time.Second), 0,
		&histogram.Histogram{Count: 3, Sum: 1.5, ZeroCount: 1, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{2}})
	require.NoError(t, app.Commit())

	cfg := config.DefaultConfig
	cfg.GlobalConfig.ExternalLabels = labels.FromStrings("replica", "r1", "cluster", "eu")
	var qcfg querier.Config
	qcfg.RegisterFlags(flag.NewFlagSet("querier", flag.ContinueOnError))
	eng := querier.NewEngine(qcfg, nil, nil)
	t.Cleanup(func() { require.NoError(t, eng.Close()) })
	reg := prometheus.NewRegistry()
	a, err := api.New(api.Options{
		Queryable: db, Engine: eng, Exemplars: db, LookbackDelta: 5 * time.Minute,
		Metadata:   func(context.Context, string, int, int) (map[string][]metadata.Metadata, error) { return nil, nil },
		PromConfig: func() config.Config { return cfg },
		Registerer: reg,
	})
	require.NoError(t, err)

	get := func(accept string, match ...string) (int, string, string) {
		req := httptest.NewRequest(http.MethodGet, "/federate?"+url.Values{"match[]": match}.Encode(), nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		a.Federate().ServeHTTP(rec, req)
		return rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()
	}

	// Overlapping selectors: each series once.
	code, ctype, body := get("", `up`, `{job="a"}`)
	require.Equal(t, http.StatusOK, code, body)
	require.True(t, strings.HasPrefix(ctype, "text/plain"), ctype)
	want := fmt.Sprintf(`# TYPE node_load1 untyped
node_load1{cluster="eu",instance="",job="a",replica="r1"} 0.5 %d
# TYPE up untyped
up{cluster="eu",instance="h1",job="a",replica="r1"} 1 %d
up{cluster="eu",instance="h2",job="b",replica="own"} 1 %d
`, at(5*time.Second), at(15*time.Second), at(15*time.Second))
	require.Equal(t, want, body)
	// Prometheus's own parser reads it.
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	require.Len(t, fams["up"].GetMetric(), 2)

	// Protobuf carries the native histogram too.
	code, ctype, body = get(`application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`, `{job="a"}`)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, ctype, "application/vnd.google.protobuf")
	dec := expfmt.NewDecoder(strings.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim))
	got := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		got[mf.GetName()] = &mf
	}
	require.Len(t, got, 3)
	h := got["latency"]
	require.Equal(t, dto.MetricType_HISTOGRAM, h.GetType())
	require.Equal(t, 3.0, h.GetMetric()[0].GetHistogram().GetSampleCountFloat())
	require.Equal(t, []float64{2}, h.GetMetric()[0].GetHistogram().GetPositiveCount())
	require.Len(t, got["up"].GetMetric(), 1)

	code, _, body = get("", `up{`)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP prometheus_web_federation_errors_total Total number of errors that occurred while sending federation responses.
# TYPE prometheus_web_federation_errors_total counter
prometheus_web_federation_errors_total 0
`), "prometheus_web_federation_errors_total"))
}
