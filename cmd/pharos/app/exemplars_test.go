package app

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// getExemplars runs /api/v1/query_exemplars and returns the status and the
// body as it came.
func getExemplars(t testing.TB, base, query string, start, end int64) (int, string) {
	t.Helper()
	params := url.Values{"query": {query}}
	if start != 0 || end != 0 {
		params.Set("start", secondsParam(start))
		params.Set("end", secondsParam(end))
	}
	resp, err := http.Get(base + "/api/v1/query_exemplars?" + params.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func secondsParam(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) }

// jsonTime is a positive timestamp as Prometheus's API writes it: seconds,
// and the milliseconds as three digits unless they are zero.
func jsonTime(ms int64) string {
	if ms%1000 == 0 {
		return strconv.FormatInt(ms/1000, 10)
	}
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// writeExemplarData writes two series with exemplars at ts, ts+1500 and
// ts+3000 (ms) over remote write 1.0, and one over 2.0.
func writeExemplarData(t testing.TB, base string, ts int64) {
	t.Helper()
	trace := func(id string) []prompb.Label { return []prompb.Label{{Name: "trace_id", Value: id}} }
	code, body := remoteWrite(t, base, []prompb.TimeSeries{
		{
			Labels:  []prompb.Label{{Name: "__name__", Value: "req_total"}, {Name: "instance", Value: "a"}, {Name: "job", Value: "api"}},
			Samples: []prompb.Sample{{Timestamp: ts, Value: 1}, {Timestamp: ts + 1500, Value: 2}, {Timestamp: ts + 3000, Value: 3}},
			Exemplars: []prompb.Exemplar{
				{Labels: trace("a1"), Value: 1, Timestamp: ts},
				{Labels: append(trace("a2"), prompb.Label{Name: "span_id", Value: "s2"}), Value: 0.25, Timestamp: ts + 1500},
				{Labels: trace("a3"), Value: 3, Timestamp: ts + 3000},
			},
		},
		{
			Labels:    []prompb.Label{{Name: "__name__", Value: "req_total"}, {Name: "instance", Value: "b"}, {Name: "job", Value: "api"}},
			Samples:   []prompb.Sample{{Timestamp: ts + 1500, Value: 7}},
			Exemplars: []prompb.Exemplar{{Labels: trace("b1"), Value: 7, Timestamp: ts + 1500}},
		},
		{Labels: []prompb.Label{{Name: "__name__", Value: "req_total"}, {Name: "instance", Value: "c"}, {Name: "job", Value: "api"}}, Samples: []prompb.Sample{{Timestamp: ts, Value: 1}}},
	})
	require.Equal(t, http.StatusNoContent, code, body)

	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "queue_depth", "job", "db"), nil),
		Samples:    []writev2.Sample{{Timestamp: ts, Value: 5}},
		Exemplars:  []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "d1"), nil), Value: 5, Timestamp: ts}},
	}}}
	req.Symbols = st.Symbols()
	code, body = writeV2As(t, base, "", req)
	require.Equal(t, http.StatusNoContent, code, body)
}

// wantExemplarsJSON is the exact body Prometheus answers for the data of
// writeExemplarData, for query `req_total` and `queue_depth` alike.
func wantExemplarsJSON(ts int64) (reqTotal, queueDepth string) {
	s := func(d int64) string { return jsonTime(ts + d) }
	reqTotal = `{"status":"success","data":[` +
		`{"seriesLabels":{"__name__":"req_total","instance":"a","job":"api"},"exemplars":[` +
		`{"labels":{"trace_id":"a1"},"value":"1","timestamp":` + s(0) + `},` +
		`{"labels":{"span_id":"s2","trace_id":"a2"},"value":"0.25","timestamp":` + s(1500) + `},` +
		`{"labels":{"trace_id":"a3"},"value":"3","timestamp":` + s(3000) + `}]},` +
		`{"seriesLabels":{"__name__":"req_total","instance":"b","job":"api"},"exemplars":[` +
		`{"labels":{"trace_id":"b1"},"value":"7","timestamp":` + s(1500) + `}]}]}`
	queueDepth = `{"status":"success","data":[` +
		`{"seriesLabels":{"__name__":"queue_depth","job":"db"},"exemplars":[` +
		`{"labels":{"trace_id":"d1"},"value":"5","timestamp":` + s(0) + `}]}]}`
	return reqTotal, queueDepth
}

// TestExemplarsAllInOne: exemplars written over remote write 1.0 and 2.0
// come back from /api/v1/query_exemplars in Prometheus's exact JSON,
// filtered by selectors and time range; a bad selector is a 400.
func TestExemplarsAllInOne(t *testing.T) {
	a, _ := startApp(t, "")
	base := "http://" + a.HTTPAddr()
	// On a whole second plus 500ms, so that timestamps have a fraction.
	ts := time.Now().Add(-time.Minute).UnixMilli()/1000*1000 + 500
	writeExemplarData(t, base, ts)
	reqTotal, queueDepth := wantExemplarsJSON(ts)

	code, body := getExemplars(t, base, "req_total", ts-60_000, ts+60_000)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, reqTotal, body)
	code, body = getExemplars(t, base, "queue_depth", ts-60_000, ts+60_000)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, queueDepth, body)
	// Without start and end, all time.
	code, body = getExemplars(t, base, "req_total", 0, 0)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, reqTotal, body)

	// The range cuts exemplars, both ends included.
	code, body = getExemplars(t, base, `req_total{instance="a"}`, ts+1500, ts+3000)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, `{"status":"success","data":[{"seriesLabels":{"__name__":"req_total","instance":"a","job":"api"},"exemplars":[`+
		`{"labels":{"span_id":"s2","trace_id":"a2"},"value":"0.25","timestamp":`+jsonTime(ts+1500)+`},`+
		`{"labels":{"trace_id":"a3"},"value":"3","timestamp":`+jsonTime(ts+3000)+`}]}]}`, body)

	// Every selector of the expression counts.
	code, body = getExemplars(t, base, `sum(rate(req_total{instance="b"}[5m])) / queue_depth`, ts-60_000, ts+60_000)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"trace_id":"b1"`)
	require.Contains(t, body, `"trace_id":"d1"`)
	require.NotContains(t, body, `"trace_id":"a1"`)

	code, body = getExemplars(t, base, `req_total{instance="c"}`, ts-60_000, ts+60_000)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, `{"status":"success","data":[]}`, body)

	for _, bad := range []string{`req_total{job=~"("}`, `req_total{`, `{job=~".*"}`} {
		code, body = getExemplars(t, base, bad, ts-60_000, ts+60_000)
		require.Equal(t, http.StatusBadRequest, code, "%s: %s", bad, body)
		require.Contains(t, body, `"errorType":"bad_data"`, bad)
	}
	code, body = getExemplars(t, base, "req_total", ts+60_000, ts-60_000)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "end timestamp must not be before start timestamp")
}

// TestExemplarsCluster: with RF=3 every exemplar is on three ingesters and
// comes back once; with one ingester down the answer is the same, with two
// it is a 5xx naming them.
func TestExemplarsCluster(t *testing.T) {
	c := newTestCluster(t, 3, []string{"", "", ""})
	ts := time.Now().Add(-time.Minute).UnixMilli()/1000*1000 + 500
	writeExemplarData(t, c.base(), ts)
	reqTotal, queueDepth := wantExemplarsJSON(ts)

	check := func() {
		t.Helper()
		code, body := getExemplars(t, c.base(), "req_total", ts-60_000, ts+60_000)
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, reqTotal, body)
		code, body = getExemplars(t, c.base(), "queue_depth", ts-60_000, ts+60_000)
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, queueDepth, body)
	}
	check()
	c.stop(c.ings[1])
	check()
	c.stop(c.ings[2])
	code, body := getExemplars(t, c.base(), "req_total", ts-60_000, ts+60_000)
	require.GreaterOrEqual(t, code, 500, body)
	for _, id := range []string{"ing-1", "ing-2"} {
		require.Contains(t, body, fmt.Sprintf("%s@", id), "the error names the failed ingesters")
	}
}
