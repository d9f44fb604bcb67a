package api_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/web/api/testhelpers"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/pharos-tsdb/pharos/ingest/distributor"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/querier/api"
	"github.com/pharos-tsdb/pharos/storage/ingester"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
)

// dataStart is where the fixed data set begins; queries are pinned to it so
// that responses do not depend on the clock.
var dataStart = time.Unix(1_700_000_000, 0)

type fixture struct {
	pharos, prom http.Handler
}

// newFixture loads the same data into a Pharos path (distributor → gRPC →
// ingester, read back through querier.Queryable) and into a plain local
// tsdb, and serves each with the same upstream API and engine settings.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	// Ingester behind real gRPC.
	var icfg ingester.Config
	ifs := flag.NewFlagSet("ingester", flag.ContinueOnError)
	icfg.RegisterFlags(ifs)
	require.NoError(t, ifs.Parse(nil))
	icfg.Path = t.TempDir()
	icfg.Retention = 0
	ing, err := ingester.New(icfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	srv := grpc.NewServer(ingesterclient.ServerOptions(64<<20, 64<<20)...)
	ing.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	var ccfg ingesterclient.Config
	ccfg.RegisterFlags("", flag.NewFlagSet("client", flag.ContinueOnError))
	// The API is tested without the tenant middleware: calls go out as
	// the default tenant, as with multi-tenancy off.
	client, err := ingesterclient.Dial(lis.Addr().String(), ccfg, grpc.WithUnaryInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(tenant.With(ctx, tenant.DefaultTenant), method, req, reply, cc, opts...)
		}), grpc.WithStreamInterceptor(
		func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(tenant.With(ctx, tenant.DefaultTenant), desc, cc, method, opts...)
		}))
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, client.Close())
		srv.Stop()
		<-served
		require.NoError(t, ing.Close(context.Background()))
	})
	var dcfg distributor.Config
	dfs := flag.NewFlagSet("distributor", flag.ContinueOnError)
	dcfg.RegisterFlags(dfs)
	require.NoError(t, dfs.Parse(nil))
	dist, err := distributor.New(dcfg, distributor.StaticIngesters{client}, nil, prometheus.NewRegistry())
	require.NoError(t, err)

	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = 1000
	local, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, local.Close()) })

	load(t, dist.AppendableV2())
	load(t, local)

	newEngine := func() *promql.Engine {
		var qcfg querier.Config
		qcfg.RegisterFlags(flag.NewFlagSet("querier", flag.ContinueOnError))
		e := querier.NewEngine(qcfg, nil, nil)
		t.Cleanup(func() { require.NoError(t, e.Close()) })
		return e
	}
	ings := querier.StaticIngesters{client}
	common := func(o api.Options) http.Handler {
		o.Version = &v1.PrometheusVersion{Version: "3.16.0", Revision: "abc", Branch: "main", BuildUser: "u", BuildDate: "d", GoVersion: "go"}
		o.Flags = map[string]string{"querier.timeout": "2m"}
		o.LookbackDelta = 5 * time.Minute
		o.QueryTimeout = 2 * time.Minute
		o.ExternalURL = &url.URL{Scheme: "http", Host: "localhost:9090"}
		a, err := api.New(o)
		require.NoError(t, err)
		return a.Handler()
	}
	staticMD := func(context.Context, string, int, int) (map[string][]metadata.Metadata, error) {
		return map[string][]metadata.Metadata{
			"http_requests_total": {{Type: model.MetricTypeCounter, Help: "Requests.", Unit: ""}},
		}, nil
	}
	return &fixture{
		pharos: common(api.Options{Queryable: querier.NewQueryable(ings, nil, nil), Engine: newEngine(), Metadata: querier.NewMetadataFunc(ings), Exemplars: querier.NewExemplarQueryable(ings)}),
		prom:   common(api.Options{Queryable: local, Engine: newEngine(), Metadata: staticMD, Exemplars: local}),
	}
}

// load appends the fixed data set: counters for two jobs with an exemplar
// every 8th sample, a gauge, and the metadata of the counter.
func load(t *testing.T, s storage.AppendableV2) {
	t.Helper()
	app := s.AppenderV2(context.Background())
	for i := range 4 {
		for _, job := range []string{"api", "db"} {
			ls := labels.FromStrings("__name__", "http_requests_total", "job", job, "instance", "host-"+string(rune('a'+i)))
			for k := range 40 {
				ts := dataStart.Add(time.Duration(k) * 15 * time.Second).UnixMilli()
				opts := storage.AOptions{Metadata: metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests."}}
				if k%8 == 0 {
					opts.Exemplars = []exemplar.Exemplar{{
						Labels: labels.FromStrings("trace_id", fmt.Sprintf("%s-%d-%d", job, i, k)),
						Value:  float64(k) / 4, Ts: ts + 250, HasTs: true,
					}}
				}
				_, err := app.Append(0, ls, 0, ts, float64(k*(i+1)), nil, nil, opts)
				require.NoError(t, err)
			}
		}
	}
	for k := range 40 {
		ts := dataStart.Add(time.Duration(k) * 15 * time.Second).UnixMilli()
		_, err := app.Append(0, labels.FromStrings("__name__", "temperature", "room", "a"), 0, ts, 20+float64(k%5), nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

type request struct {
	name   string
	method string
	path   string
	params url.Values
	// validate: the response is described by the upstream OpenAPI spec.
	validate bool
}

func unix(d time.Duration) string {
	return strconv.FormatInt(dataStart.Add(d).Unix(), 10)
}

var requests = []request{
	{"instant vector", "GET", "/api/v1/query", url.Values{"query": {"http_requests_total"}, "time": {unix(5 * time.Minute)}}, true},
	{"instant sum rate", "POST", "/api/v1/query", url.Values{"query": {"sum by (job)(rate(http_requests_total[2m]))"}, "time": {unix(8 * time.Minute)}}, true},
	{"instant scalar", "GET", "/api/v1/query", url.Values{"query": {"1+1"}, "time": {unix(0)}}, true},
	// The upstream OpenAPI description has no string result type.
	{"instant string", "GET", "/api/v1/query", url.Values{"query": {`"x"`}, "time": {unix(0)}}, false},
	{"instant with stats", "GET", "/api/v1/query", url.Values{"query": {"temperature"}, "time": {unix(time.Minute)}, "stats": {"all"}}, false},
	{"range", "GET", "/api/v1/query_range", url.Values{"query": {"rate(http_requests_total{job=\"api\"}[1m])"}, "start": {unix(0)}, "end": {unix(9 * time.Minute)}, "step": {"60"}}, true},
	{"range post", "POST", "/api/v1/query_range", url.Values{"query": {"avg_over_time(temperature[2m])"}, "start": {unix(0)}, "end": {unix(9 * time.Minute)}, "step": {"30s"}}, true},
	{"bad promql", "GET", "/api/v1/query", url.Values{"query": {"sum(rate(x[5m])"}}, true},
	{"bad promql range", "GET", "/api/v1/query_range", url.Values{"query": {"foo{"}, "start": {"0"}, "end": {"1"}, "step": {"1"}}, true},
	{"bad time", "GET", "/api/v1/query", url.Values{"query": {"up"}, "time": {"yesterday"}}, true},
	{"bad step", "GET", "/api/v1/query_range", url.Values{"query": {"up"}, "start": {"10"}, "end": {"0"}, "step": {"1"}}, true},
	{"too many points", "GET", "/api/v1/query_range", url.Values{"query": {"up"}, "start": {"0"}, "end": {"100000000"}, "step": {"1"}}, true},
	{"exec error", "GET", "/api/v1/query", url.Values{"query": {`label_replace(temperature, "x", "$1", "room", "(")`}, "time": {unix(0)}}, true},
	{"series", "GET", "/api/v1/series", url.Values{"match[]": {"http_requests_total{job=\"db\"}"}, "start": {unix(0)}, "end": {unix(10 * time.Minute)}}, true},
	{"series post two matchers", "POST", "/api/v1/series", url.Values{"match[]": {"temperature", `{job="api"}`}, "start": {unix(0)}, "end": {unix(10 * time.Minute)}}, true},
	// Invalid requests by design: the OpenAPI request check rejects them.
	{"series no match", "GET", "/api/v1/series", url.Values{}, false},
	{"series limit", "GET", "/api/v1/series", url.Values{"match[]": {"http_requests_total"}, "limit": {"3"}, "start": {unix(0)}, "end": {unix(10 * time.Minute)}}, true},
	{"labels", "GET", "/api/v1/labels", url.Values{"start": {unix(0)}, "end": {unix(10 * time.Minute)}}, true},
	{"labels match", "POST", "/api/v1/labels", url.Values{"match[]": {"temperature"}, "start": {unix(0)}, "end": {unix(10 * time.Minute)}}, true},
	{"labels limit", "GET", "/api/v1/labels", url.Values{"limit": {"2"}, "start": {unix(0)}, "end": {unix(10 * time.Minute)}}, true},
	{"label values", "GET", "/api/v1/label/instance/values", url.Values{"start": {unix(0)}, "end": {unix(10 * time.Minute)}}, true},
	{"label values match", "GET", "/api/v1/label/job/values", url.Values{"match[]": {`http_requests_total{instance="host-a"}`}, "start": {unix(0)}, "end": {unix(10 * time.Minute)}}, true},
	{"unknown label values", "GET", "/api/v1/label/nope/values", url.Values{"start": {unix(0)}, "end": {unix(10 * time.Minute)}}, true},
	{"bad label name", "GET", "/api/v1/label/%20/values", url.Values{}, false},
	{"format query", "GET", "/api/v1/format_query", url.Values{"query": {"sum by(job)(rate(x[5m]))"}}, true},
	{"parse query", "POST", "/api/v1/parse_query", url.Values{"query": {"sum(x) by (job)"}}, true},
	{"exemplars", "GET", "/api/v1/query_exemplars", url.Values{"query": {"http_requests_total"}, "start": {unix(0)}, "end": {unix(10 * time.Minute)}}, true},
	{"exemplars two selectors", "POST", "/api/v1/query_exemplars", url.Values{"query": {`rate(http_requests_total{job="db"}[5m]) / on() group_left temperature + http_requests_total{instance="host-a"}`}, "start": {unix(time.Minute)}, "end": {unix(5 * time.Minute)}}, true},
	{"exemplars default range", "GET", "/api/v1/query_exemplars", url.Values{"query": {`http_requests_total{instance="host-b"}`}}, true},
	{"exemplars no match", "GET", "/api/v1/query_exemplars", url.Values{"query": {"temperature"}}, true},
	// Upstream answers 204 without a body, which its OpenAPI description lacks.
	{"exemplars no selector", "GET", "/api/v1/query_exemplars", url.Values{"query": {"1+1"}}, false},
	{"exemplars bad matcher", "GET", "/api/v1/query_exemplars", url.Values{"query": {`http_requests_total{job=~"("}`}}, true},
	{"exemplars empty matcher", "GET", "/api/v1/query_exemplars", url.Values{"query": {`{job=~".*"}`}}, true},
	{"exemplars bad range", "GET", "/api/v1/query_exemplars", url.Values{"query": {"http_requests_total"}, "start": {unix(time.Minute)}, "end": {unix(0)}}, true},
	{"buildinfo", "GET", "/api/v1/status/buildinfo", nil, true},
	{"flags", "GET", "/api/v1/status/flags", nil, true},
	{"config", "GET", "/api/v1/status/config", nil, true},
	{"targets", "GET", "/api/v1/targets", nil, true},
	{"rules", "GET", "/api/v1/rules", nil, true},
	{"alerts", "GET", "/api/v1/alerts", nil, true},
	{"alertmanagers", "GET", "/api/v1/alertmanagers", nil, true},
	{"metadata", "GET", "/api/v1/metadata", nil, true},
	{"metadata one", "GET", "/api/v1/metadata", url.Values{"metric": {"http_requests_total"}}, true},
	{"metadata bad limit", "GET", "/api/v1/metadata", url.Values{"limit": {"x"}}, false},
	{"remote write is not here", "POST", "/api/v1/write", nil, false},
}

func do(t *testing.T, h http.Handler, r request) (int, map[string]any) {
	t.Helper()
	var req *http.Request
	if r.method == "POST" {
		req = httptest.NewRequest(r.method, r.path, strings.NewReader(r.params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		target := r.path
		if len(r.params) > 0 {
			target += "?" + r.params.Encode()
		}
		req = httptest.NewRequest(r.method, target, http.NoBody)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body map[string]any
	if rec.Body.Len() > 0 && strings.Contains(rec.Header().Get("Content-Type"), "json") {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	}
	return rec.Code, body
}

// TestAPIMatchesPrometheus: every endpoint answers through Pharos exactly
// what Prometheus answers over a local tsdb holding the same data, errors
// included.
func TestAPIMatchesPrometheus(t *testing.T) {
	f := newFixture(t)
	for _, r := range requests {
		t.Run(r.name, func(t *testing.T) {
			pcode, pbody := do(t, f.prom, r)
			code, body := do(t, f.pharos, r)
			require.Equal(t, pcode, code)
			// Timings differ between any two runs.
			for _, b := range []map[string]any{pbody, body} {
				if d, ok := b["data"].(map[string]any); ok {
					if s, ok := d["stats"].(map[string]any); ok {
						delete(s, "timings")
					}
				}
			}
			require.Equal(t, pbody, body)
		})
	}
	t.Run("exemplars are there to compare", func(t *testing.T) {
		// The comparisons above would hold for two empty answers too.
		code, body := do(t, f.pharos, requests[slices.IndexFunc(requests, func(r request) bool { return r.name == "exemplars" })])
		require.Equal(t, http.StatusOK, code)
		series := body["data"].([]any)
		require.Len(t, series, 8)
		first := series[0].(map[string]any)
		require.Equal(t, map[string]any{"__name__": "http_requests_total", "instance": "host-a", "job": "api"}, first["seriesLabels"])
		require.Len(t, first["exemplars"], 5)
		require.Equal(t, map[string]any{"labels": map[string]any{"trace_id": "api-0-8"}, "value": "2", "timestamp": 1_700_000_120.25}, first["exemplars"].([]any)[1])
	})
	t.Run("remote write is not served", func(t *testing.T) {
		code, _ := do(t, f.pharos, request{method: "POST", path: "/api/v1/write"})
		require.Contains(t, []int{http.StatusNotFound, http.StatusNotImplemented}, code)
	})
	t.Run("tsdb status without local tsdb", func(t *testing.T) {
		code, body := do(t, f.pharos, request{method: "GET", path: "/api/v1/status/tsdb"})
		require.Equal(t, http.StatusInternalServerError, code)
		require.Equal(t, "error", body["status"])
		require.Contains(t, body["error"], "ingester")
	})
	t.Run("timeout", func(t *testing.T) {
		// A subquery with millions of steps outlasts a 50ms timeout in
		// evaluation; a microsecond timeout would instead race the query's
		// set-up and fail as bad_data.
		code, body := do(t, f.pharos, request{method: "GET", path: "/api/v1/query", params: url.Values{"query": {"sum(count_over_time(http_requests_total[1h:1ms]))"}, "timeout": {"0.05"}, "time": {unix(0)}}})
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		require.Equal(t, "timeout", body["errorType"])
	})
}

// openAPIDir is upstream's web/api/v1, whose testdata holds the OpenAPI
// descriptions testhelpers validates against.
func openAPIDir(t *testing.T) string {
	t.Helper()
	file, _ := runtime.FuncForPC(reflect.ValueOf(v1.NewAPI).Pointer()).FileLine(0)
	dir := filepath.Dir(file)
	_, err := os.Stat(filepath.Join(dir, "testdata", "openapi_3.1_golden.yaml"))
	require.NoError(t, err, "upstream OpenAPI description not found (built with -trimpath?)")
	return dir
}

// TestAPIOpenAPI validates requests and responses against the OpenAPI
// description that ships with Prometheus.
func TestAPIOpenAPI(t *testing.T) {
	f := newFixture(t)
	t.Chdir(openAPIDir(t))
	w := &testhelpers.APIWrapper{Handler: f.pharos}
	for _, r := range requests {
		if !r.validate {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			var params []string
			for k, vs := range r.params {
				for _, v := range vs {
					params = append(params, k, v)
				}
			}
			var resp *testhelpers.Response
			if r.method == "POST" {
				resp = testhelpers.POST(t, w, r.path, params...)
			} else {
				resp = testhelpers.GET(t, w, r.path, params...)
			}
			resp.ValidateOpenAPI()
			require.NotNil(t, resp.JSON)
		})
	}
}
