package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// tenantRequest sends a request as tenant id ("" sends no header) and
// returns the status and body.
func tenantRequest(t testing.TB, method, u, id string, body []byte, header map[string]string) (int, string) {
	t.Helper()
	r := limitsDo(t, method, u, id, body, header)
	return r.code, r.body
}

// writeV1As sends a remote write 1.0 request as tenant id.
func writeV1As(t testing.TB, base, path, id string, wr *prompb.WriteRequest) (int, string) {
	t.Helper()
	raw, err := wr.Marshal()
	require.NoError(t, err)
	return tenantRequest(t, http.MethodPost, base+path, id, snappy.Encode(nil, raw), map[string]string{
		"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0",
	})
}

// writeV2As sends a remote write 2.0 request as tenant id.
func writeV2As(t testing.TB, base, id string, wr *writev2.Request) (int, string) {
	t.Helper()
	raw, err := wr.Marshal()
	require.NoError(t, err)
	return tenantRequest(t, http.MethodPost, base+"/api/v1/write", id, snappy.Encode(nil, raw), map[string]string{
		"Content-Type":     "application/x-protobuf;proto=io.prometheus.write.v2.Request",
		"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "2.0.0",
	})
}

// apiGetAs runs a GET of the query API as tenant id and decodes the data of
// a successful answer into data.
func apiGetAs(t testing.TB, base, path string, params url.Values, id string, data any) {
	t.Helper()
	code, body := tenantRequest(t, http.MethodGet, base+path+"?"+params.Encode(), id, nil, nil)
	require.Equal(t, http.StatusOK, code, "%s as %s: %s", path, id, body)
	var r apiResponse
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	require.Equal(t, "success", r.Status, body)
	require.NoError(t, json.Unmarshal(r.Data, data), body)
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

type promResult struct {
	ResultType string       `json:"resultType"`
	Result     []promSample `json:"result"`
}

// writeTenantData writes, as tenant id, the series every tenant writes
// (same names, values that tell the tenants apart) over remote write 1.0
// and 2.0, and a metric and a label only this tenant has.
func writeTenantData(t testing.TB, base, id string, v float64, ts int64) {
	t.Helper()
	only := "only_" + id
	wr := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				// A client's tenant label is dropped: it cannot write into
				// another tenant.
				Labels: []prompb.Label{
					{Name: "__name__", Value: "shared_v1"}, {Name: tenant.Label, Value: "someone-else"},
					{Name: "job", Value: "j"}, {Name: "who", Value: only},
				},
				Samples:   []prompb.Sample{{Timestamp: ts, Value: v}, {Timestamp: ts + 15000, Value: v}},
				Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "trace-" + id}}, Value: v, Timestamp: ts}},
			},
			{Labels: []prompb.Label{{Name: "__name__", Value: only}}, Samples: []prompb.Sample{{Timestamp: ts, Value: v}}},
		},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "shared_v1", Help: "help of " + id}},
	}
	code, body := writeV1As(t, base, "/api/v1/write", id, wr)
	require.Equal(t, http.StatusNoContent, code, body)

	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "shared_v2", "job", "j", tenant.Label, "someone-else"), nil),
		Samples:    []writev2.Sample{{Timestamp: ts, Value: v * 10}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("v2 help of " + id)},
	}}}
	req.Symbols = st.Symbols()
	code, body = writeV2As(t, base, id, req)
	require.Equal(t, http.StatusNoContent, code, body)

	// Mimir's path takes the same writes.
	code, body = writeV1As(t, base, "/api/v1/push", id, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "shared_push"}}, Samples: []prompb.Sample{{Timestamp: ts, Value: v}}},
	}})
	require.Equal(t, http.StatusNoContent, code, body)
}

// checkTenantIsolation is acceptance 1 of issue 12 against base: two
// tenants write the same series names; each reads only its own through
// every read endpoint; requests without a tenant get 401.
func checkTenantIsolation(t *testing.T, base string) {
	ts := time.Now().Add(-time.Minute).UnixMilli()
	tenants := map[string]float64{"team-a": 1, "team-b": 2}
	for id, v := range tenants {
		writeTenantData(t, base, id, v, ts)
	}
	at := strconv.FormatFloat(float64(ts+15000)/1000, 'f', 3, 64)
	for id, v := range tenants {
		other := "team-b"
		if id == other {
			other = "team-a"
		}
		// The writes are acknowledged after a write quorum: the last
		// replica may still be applying them.
		require.Eventually(t, func() bool {
			var res promResult
			apiGetAs(t, base, "/api/v1/query", url.Values{"query": {"count({job=\"j\"})"}, "time": {at}}, id, &res)
			return len(res.Result) == 1 && res.Result[0].Value[1] == "2"
		}, 10*time.Second, 20*time.Millisecond)

		var res promResult
		apiGetAs(t, base, "/api/v1/query", url.Values{"query": {`{__name__=~"shared_.*"}`}, "time": {at}}, id, &res)
		got := map[string]string{}
		for _, s := range res.Result {
			require.NotContains(t, s.Metric, tenant.Label)
			got[s.Metric["__name__"]] = s.Value[1].(string)
			if s.Metric["__name__"] == "shared_v1" {
				require.Equal(t, "only_"+id, s.Metric["who"])
			}
		}
		require.Equal(t, map[string]string{"shared_v1": fmt.Sprint(v), "shared_v2": fmt.Sprint(v * 10), "shared_push": fmt.Sprint(v)}, got, id)

		var rng promResult
		apiGetAs(t, base, "/api/v1/query_range", url.Values{
			"query": {"shared_v1"}, "start": {strconv.FormatInt(ts/1000, 10)}, "end": {strconv.FormatInt(ts/1000+60, 10)}, "step": {"15"},
		}, id, &rng)
		require.Len(t, rng.Result, 1, id)
		require.Equal(t, "only_"+id, rng.Result[0].Metric["who"])
		for _, p := range rng.Result[0].Values {
			require.Equal(t, fmt.Sprint(v), p[1], id)
		}

		// The tenant label is invisible: naming another tenant finds
		// nothing, naming its absence finds everything of one's own.
		var none promResult
		apiGetAs(t, base, "/api/v1/query", url.Values{"query": {`shared_v1{` + tenant.Label + `="` + other + `"}`}, "time": {at}}, id, &none)
		require.Empty(t, none.Result, id)
		apiGetAs(t, base, "/api/v1/query", url.Values{"query": {`shared_v1{` + tenant.Label + `="` + id + `"}`}, "time": {at}}, id, &none)
		require.Empty(t, none.Result, id)

		var series []map[string]string
		apiGetAs(t, base, "/api/v1/series", url.Values{"match[]": {`{job="j"}`}}, id, &series)
		require.ElementsMatch(t, []map[string]string{
			{"__name__": "shared_v1", "job": "j", "who": "only_" + id},
			{"__name__": "shared_v2", "job": "j"},
		}, series, id)

		var names []string
		apiGetAs(t, base, "/api/v1/labels", nil, id, &names)
		require.Equal(t, []string{"__name__", "job", "who"}, names, id)
		var values []string
		apiGetAs(t, base, "/api/v1/label/__name__/values", nil, id, &values)
		require.Equal(t, []string{"only_" + id, "shared_push", "shared_v1", "shared_v2"}, values, id)
		apiGetAs(t, base, "/api/v1/label/who/values", nil, id, &values)
		require.Equal(t, []string{"only_" + id}, values, id)
		apiGetAs(t, base, "/api/v1/label/"+tenant.Label+"/values", nil, id, &values)
		require.Empty(t, values, id)

		var md map[string][]struct {
			Help string `json:"help"`
		}
		apiGetAs(t, base, "/api/v1/metadata", nil, id, &md)
		require.Len(t, md["shared_v1"], 1, id)
		require.Equal(t, "help of "+id, md["shared_v1"][0].Help)
		require.Len(t, md["shared_v2"], 1, id)
		require.Equal(t, "v2 help of "+id, md["shared_v2"][0].Help)

		// Exemplars: the tenant's own, never another tenant's.
		code, body := tenantRequest(t, http.MethodGet, base+"/api/v1/query_exemplars?query=shared_v1&start="+strconv.FormatInt(ts/1000-60, 10)+"&end="+at, id, nil, nil)
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"trace_id":"trace-`+id+`"`)
		require.NotContains(t, body, "trace-"+other)
		require.NotContains(t, body, tenant.Label)
	}

	// Without a tenant: 401 naming the header, on writes and reads.
	code, body := writeV1As(t, base, "/api/v1/write", "", &prompb.WriteRequest{Timeseries: genSeries(0, 1, ts)})
	require.Equal(t, http.StatusUnauthorized, code, body)
	require.Contains(t, body, tenant.HeaderName)
	for _, path := range []string{"/api/v1/query?query=up", "/api/v1/query_range?query=up&start=0&end=60&step=15", "/api/v1/series?match[]=up", "/api/v1/labels", "/api/v1/label/__name__/values", "/api/v1/metadata"} {
		code, body := tenantRequest(t, http.MethodGet, base+path, "", nil, nil)
		require.Equal(t, http.StatusUnauthorized, code, "%s: %s", path, body)
		require.Contains(t, body, tenant.HeaderName, path)
	}
}

func TestTenantsAllInOne(t *testing.T) {
	a, _ := startApp(t, "multitenancy:\n  enabled: true\n")
	base := "http://" + a.HTTPAddr()
	checkTenantIsolation(t, base)

	// The local head's statistics span every tenant: refused.
	code, body := tenantRequest(t, http.MethodGet, base+"/api/v1/status/tsdb", "team-a", nil, nil)
	require.NotEqual(t, http.StatusOK, code, body)
	require.Contains(t, body, "multi-tenancy")
}

func TestTenantsCluster(t *testing.T) {
	c := newTestClusterWith(t, 3, []string{"", "", ""}, "-multitenancy.enabled=true")
	checkTenantIsolation(t, c.base())
}

// With multi-tenancy off the header is ignored: everything is the default
// tenant's, written and read with or without it.
func TestTenantHeaderIgnoredWhenOff(t *testing.T) {
	a, _ := startApp(t, "")
	base := "http://" + a.HTTPAddr()
	ts := time.Now().Add(-time.Minute).UnixMilli()
	writeTenantData(t, base, "team-a", 1, ts)
	writeTenantData(t, base, "team-b", 2, ts+1000)
	at := strconv.FormatFloat(float64(ts+1000)/1000, 'f', 3, 64)
	for _, id := range []string{"", "team-a", "team-b"} {
		var res promResult
		apiGetAs(t, base, "/api/v1/query", url.Values{"query": {"shared_v2"}, "time": {at}}, id, &res)
		require.Len(t, res.Result, 1, id)
		require.Equal(t, "20", res.Result[0].Value[1], "the later write to the one series wins")
		var values []string
		apiGetAs(t, base, "/api/v1/label/__name__/values", nil, id, &values)
		require.Equal(t, []string{"only_team-a", "only_team-b", "shared_push", "shared_v1", "shared_v2"}, values, id)
	}
	code, body := tenantRequest(t, http.MethodGet, base+"/api/v1/status/tsdb", "", nil, nil)
	require.Equal(t, http.StatusOK, code, body)
	require.NotContains(t, body, tenant.Label)
}

// The scraper writes as scraper.tenant: its data is that tenant's alone.
func TestScraperWritesAsItsTenant(t *testing.T) {
	exp := exporter(t, "# TYPE scraped gauge\nscraped 1\n")
	a, _ := startApp(t, "multitenancy:\n  enabled: true\nscraper:\n  tenant: platform\n"+
		scrapeConfig(map[string]string{"exp": strings.TrimPrefix(exp.URL, "http://")}))
	base := "http://" + a.HTTPAddr()
	require.Eventually(t, func() bool {
		var res promResult
		apiGetAs(t, base, "/api/v1/query", url.Values{"query": {`scraped{job="exp"}`}}, "platform", &res)
		return len(res.Result) == 1
	}, 30*time.Second, 100*time.Millisecond)
	var res promResult
	apiGetAs(t, base, "/api/v1/query", url.Values{"query": {`{job="exp"}`}}, "team-a", &res)
	require.Empty(t, res.Result)
	apiGetAs(t, base, "/api/v1/query", url.Values{"query": {`{job="exp"}`}}, tenant.DefaultTenant, &res)
	require.Empty(t, res.Result)
}
