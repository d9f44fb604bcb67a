package distributor

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

func chunkSamples(t testing.TB, c interface {
	GetEncoding() uint32
	GetData() []byte
}) int {
	ch, err := chunkenc.FromData(chunkenc.Encoding(c.GetEncoding()), c.GetData())
	require.NoError(t, err)
	return ch.NumSamples()
}

const (
	ctV1 = "application/x-protobuf;proto=prometheus.WriteRequest"
	ctV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

// TestRemoteWriteBadInput is the acceptance table: every bad input gets its
// documented status and message, what was good in it is stored, the discard
// counters move, and the server keeps serving.
func TestRemoteWriteBadInput(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PastGracePeriod = model.Duration(time.Hour)
		c.MaxRequestBodySize = 64 << 10
	})
	now := time.Now().UnixMilli()
	ok := func(name string) prompb.TimeSeries {
		return series([]string{"__name__", name, "job", "j"}, prompb.Sample{Timestamp: now, Value: 1})
	}
	v1 := func(ts ...prompb.TimeSeries) []byte { return encode(t, &prompb.WriteRequest{Timeseries: ts}) }
	valid, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ok("x")}}).Marshal()
	require.NoError(t, err)

	st := writev2.NewSymbolTable()
	goodRefs := st.SymbolizeLabels(labels.FromStrings("__name__", "v2_good", "job", "j"), nil)
	v2bad := encode(t, &writev2.Request{
		Symbols: append(st.Symbols(), "extra"),
		Timeseries: []writev2.TimeSeries{
			{LabelsRefs: []uint32{1, 99}, Samples: []writev2.Sample{{Value: 1, Timestamp: now}}},
			{LabelsRefs: goodRefs, Samples: []writev2.Sample{{Value: 1, Timestamp: now}}},
		},
	})
	nsyms := len(st.Symbols()) + 1

	tests := []struct {
		name        string
		contentType string
		encoding    string
		body        []byte
		wantCode    int
		wantMsg     string // the response body, exactly, unless wantPrefix
		wantPrefix  bool
		wantStored  []string // metric names that must be stored afterwards
		notStored   []string
		discarded   map[string]float64 // reason -> increase
	}{
		{name: "not snappy", body: []byte("definitely not snappy"), wantCode: 400,
			wantMsg: "malformed request: body is not snappy block compressed: ", wantPrefix: true},
		{name: "snappy but not protobuf", body: snappy.Encode(nil, []byte("\xff\xff\xff\xffnot protobuf")), wantCode: 400,
			wantMsg: "malformed request: decode prometheus.WriteRequest: ", wantPrefix: true},
		{name: "truncated protobuf", body: snappy.Encode(nil, valid[:len(valid)-4]), wantCode: 400,
			wantMsg: "malformed request: decode prometheus.WriteRequest: field 1: unexpected EOF"},
		{name: "empty body", body: nil, wantCode: 204},
		{name: "no metric name", body: v1(series([]string{"job", "a"}, prompb.Sample{Timestamp: now, Value: 1})), wantCode: 400,
			wantMsg:   `missing metric name (__name__ label) for series {job="a"}`,
			discarded: map[string]float64{ReasonMissingMetricName: 1}},
		{name: "duplicate label names", body: v1(series([]string{"__name__", "dup", "job", "a", "job", "b"}, prompb.Sample{Timestamp: now, Value: 1})), wantCode: 400,
			wantMsg: `duplicate label name "job" for series {__name__="dup", job="a", job="b"}`, notStored: []string{"dup"},
			discarded: map[string]float64{ReasonDuplicateLabelNames: 1}},
		{name: "invalid utf8 value", body: v1(series([]string{"__name__", "badutf8", "job", "a\xffb"}, prompb.Sample{Timestamp: now, Value: 1})), wantCode: 400,
			wantMsg: `value of label "job" is not valid UTF-8 for series {__name__="badutf8", job="a\xffb"}`, notStored: []string{"badutf8"},
			discarded: map[string]float64{ReasonInvalidUTF8: 1}},
		{name: "oversized label value", body: v1(series([]string{"__name__", "long", "job", strings.Repeat("v", 2049)}, prompb.Sample{Timestamp: now, Value: 1})), wantCode: 400,
			wantMsg:    fmt.Sprintf(`value of label "job" is longer than the limit of 2048 bytes (2049 bytes, limits.max_label_value_length) for series {__name__="long", job="%s"...}`, strings.Repeat("v", 256)),
			notStored:  []string{"long"},
			discarded:  map[string]float64{ReasonLabelValueTooLong: 1},
			wantPrefix: false},
		{name: "far future sample", body: v1(series([]string{"__name__", "future"}, prompb.Sample{Timestamp: now + time.Hour.Milliseconds(), Value: 1}, prompb.Sample{Timestamp: now, Value: 2})), wantCode: 400,
			wantMsg:    `sample timestamp ` + time.UnixMilli(now+time.Hour.Milliseconds()).UTC().Format(time.RFC3339Nano) + fmt.Sprintf(" (%d) is too far in the future (creation grace period 10m) for series {__name__=\"future\"}", now+time.Hour.Milliseconds()),
			wantStored: []string{"future"}, // the sample at now is written
			discarded:  map[string]float64{ReasonTooFarInFuture: 1}},
		{name: "too old sample", body: v1(series([]string{"__name__", "old"}, prompb.Sample{Timestamp: now - 2*time.Hour.Milliseconds(), Value: 1})), wantCode: 400,
			wantMsg:   "sample timestamp " + time.UnixMilli(now-2*time.Hour.Milliseconds()).UTC().Format(time.RFC3339Nano) + fmt.Sprintf(" (%d) is too old (past grace period 1h) for series {__name__=\"old\"}", now-2*time.Hour.Milliseconds()),
			notStored: []string{"old"},
			discarded: map[string]float64{ReasonTooOld: 1}},
		{name: "mixed good and bad series", body: v1(ok("mixed_good1"), series([]string{"job", "nameless"}, prompb.Sample{Timestamp: now, Value: 1}, prompb.Sample{Timestamp: now + 1, Value: 1}), ok("mixed_good2")), wantCode: 400,
			wantMsg:    `missing metric name (__name__ label) for series {job="nameless"}`,
			wantStored: []string{"mixed_good1", "mixed_good2"},
			discarded:  map[string]float64{ReasonMissingMetricName: 2}},
		{name: "unsorted labels and empty values are fine", body: v1(series([]string{"job", "j", "empty", "", "__name__", "unsorted"}, prompb.Sample{Timestamp: now, Value: 1})), wantCode: 204,
			wantStored: []string{"unsorted"}},
		{name: "unsupported content type", contentType: "application/json", body: v1(ok("json")), wantCode: 415,
			wantMsg: `unsupported media type: content type "application/json", want application/x-protobuf`, notStored: []string{"json"}},
		{name: "unsupported proto", contentType: "application/x-protobuf;proto=foo.Bar", body: v1(ok("foo")), wantCode: 415,
			wantMsg: `unsupported media type: unknown proto "foo.Bar" in content type "application/x-protobuf;proto=foo.Bar", want prometheus.WriteRequest or io.prometheus.write.v2.Request`},
		{name: "unsupported encoding", encoding: "gzip", body: v1(ok("gzipped")), wantCode: 415,
			wantMsg: `unsupported media type: content encoding "gzip", only snappy is accepted`, notStored: []string{"gzipped"}},
		{name: "body too large", body: snappy.Encode(nil, bytes.Repeat([]byte{0}, 128<<10)), wantCode: 413,
			wantMsg: "request too large: decompressed body of 131072 bytes exceeds the limit of 65536 bytes"},
		{name: "v2 bad symbol refs", contentType: ctV2, body: v2bad, wantCode: 400,
			wantMsg:    fmt.Sprintf("series 0: series labels: label reference 99 outside of the symbols table (size %d)", nsyms),
			wantStored: []string{"v2_good"},
			discarded:  map[string]float64{ReasonInvalidSymbolRef: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]float64{}
			for r := range tc.discarded {
				before[r] = testutil.ToFloat64(e.dist.discarded.WithLabelValues(r, "anonymous"))
			}
			reqsBefore := testutil.ToFloat64(e.dist.requests.WithLabelValues(fmt.Sprint(tc.wantCode)))
			ct := tc.contentType
			if ct == "" {
				ct = ctV1
			}
			enc := tc.encoding
			if enc == "" {
				enc = "snappy"
			}
			resp := post(t, e.http.URL+"/api/v1/write", ct, enc, tc.body)
			require.Equal(t, tc.wantCode, resp.code, resp.body)
			body := strings.TrimSuffix(resp.body, "\n")
			if tc.wantPrefix {
				require.True(t, strings.HasPrefix(body, tc.wantMsg), "body %q does not start with %q", body, tc.wantMsg)
			} else {
				require.Equal(t, tc.wantMsg, body)
			}
			names := e.metricNames(t)
			for _, n := range tc.wantStored {
				require.Contains(t, names, n)
			}
			for _, n := range tc.notStored {
				require.NotContains(t, names, n)
			}
			for r, d := range tc.discarded {
				require.Equal(t, before[r]+d, testutil.ToFloat64(e.dist.discarded.WithLabelValues(r, "anonymous")), r)
			}
			require.Equal(t, reqsBefore+1, testutil.ToFloat64(e.dist.requests.WithLabelValues(fmt.Sprint(tc.wantCode))))
		})
	}

	t.Run("ingester rejects out of order", func(t *testing.T) {
		resp := e.write(t, ctV1, v1(series([]string{"__name__", "ooo"}, prompb.Sample{Timestamp: now, Value: 1})))
		require.Equal(t, http.StatusNoContent, resp.code, resp.body)
		before := testutil.ToFloat64(e.dist.discarded.WithLabelValues(ReasonOutOfOrder, "anonymous"))
		resp = e.write(t, ctV1, v1(series([]string{"__name__", "ooo"}, prompb.Sample{Timestamp: now - 60_000, Value: 1})))
		require.Equal(t, http.StatusBadRequest, resp.code, resp.body)
		require.Contains(t, resp.body, "out of order")
		require.Contains(t, resp.body, `{__name__="ooo"}`)
		require.Equal(t, before+1, testutil.ToFloat64(e.dist.discarded.WithLabelValues(ReasonOutOfOrder, "anonymous")))
		require.Equal(t, 1, e.samplesOf(t, "ooo"))
	})

	t.Run("still serving", func(t *testing.T) {
		resp := e.write(t, ctV1, v1(ok("after_all_bad")))
		require.Equal(t, http.StatusNoContent, resp.code, resp.body)
		// 1.0 answers carry no written counts, as Prometheus's do.
		require.Empty(t, resp.header.Get(headerSamplesWritten))
		require.Equal(t, 1, e.samplesOf(t, "after_all_bad"))
	})
}

func TestRemoteWriteV2RoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UnixMilli()
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for i := range 3 {
		ts := writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "rt", "i", fmt.Sprint(i)), nil),
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("a gauge")},
		}
		for k := range 4 {
			ts.Samples = append(ts.Samples, writev2.Sample{Timestamp: now - int64(4-k)*1000, Value: float64(k)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	resp := e.write(t, ctV2, encode(t, req))
	require.Equal(t, http.StatusNoContent, resp.code, resp.body)
	require.Equal(t, "12", resp.header.Get(headerSamplesWritten))
	require.Equal(t, "0", resp.header.Get(headerHistogramsWritten))
	require.Equal(t, "0", resp.header.Get(headerExemplarsWritten))
	require.Equal(t, 12, e.samplesOf(t, "rt"))
	require.Equal(t, 12.0, testutil.ToFloat64(e.dist.receivedSamples))
}

func TestRemoteWriteV2SeriesWithoutSamples(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UnixMilli()
	st := writev2.NewSymbolTable()
	exemplar := writev2.Exemplar{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "t1"), nil), Value: 42, Timestamp: now}
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "kept"), nil),
			Samples:    []writev2.Sample{{Timestamp: now, Value: 1}},
		},
		{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "orphan", "job", "j"), nil),
			Exemplars:  []writev2.Exemplar{exemplar},
		},
	}}
	req.Symbols = st.Symbols()
	resp := e.write(t, ctV2, encode(t, req))
	// Not a 2xx: the exemplar was not written, and the spec forbids a 2xx
	// then. The rest of the request is.
	require.Equal(t, http.StatusBadRequest, resp.code, resp.body)
	require.Equal(t, `timeseries must contain at least one sample or histogram (1 exemplars) for series {__name__="orphan", job="j"}`, strings.TrimSpace(resp.body))
	require.Equal(t, "1", resp.header.Get(headerSamplesWritten))
	require.Equal(t, "0", resp.header.Get(headerExemplarsWritten))
	require.Equal(t, 1, e.samplesOf(t, "kept"))
	require.NotContains(t, e.metricNames(t), "orphan")
	require.Equal(t, 1.0, testutil.ToFloat64(e.dist.requests.WithLabelValues("400")))

	// 1.0 senders send exemplars in series of their own: accepted.
	resp = e.write(t, ctV1, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:    []prompb.Label{{Name: "__name__", Value: "kept"}},
		Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "t2"}}, Value: 1, Timestamp: now}},
	}}}))
	require.Equal(t, http.StatusNoContent, resp.code, resp.body)
}

func TestRemoteWriteIngesterDown(t *testing.T) {
	// An address nothing listens on: the push must fail retryably, never 2xx.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	client, err := ingesterclient.Dial(addr, clientConfig())
	require.NoError(t, err)
	defer client.Close()
	cfg := defaultConfig()
	cfg.RemoteTimeout = model.Duration(2 * time.Second)
	d, err := New(cfg, StaticIngesters{client}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(d.RemoteWriteHandler())
	defer srv.Close()

	resp := post(t, srv.URL, ctV1, "snappy", encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series([]string{"__name__", "down"}, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1}),
	}}))
	require.Equal(t, http.StatusServiceUnavailable, resp.code, resp.body)
	require.Contains(t, resp.body, "push to ingester 1 of 1")
	require.Equal(t, 1.0, testutil.ToFloat64(d.requests.WithLabelValues("503")))

	// No ingesters at all is retryable too.
	d2, err := New(cfg, StaticIngesters{}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	_, err = d2.Push(t.Context(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{
		Labels:  []*ingesterpb.LabelPair{{Name: []byte("__name__"), Value: []byte("x")}},
		Samples: []*ingesterpb.Sample{{TimestampMs: time.Now().UnixMilli()}},
	}}})
	require.ErrorIs(t, err, ErrNoIngesters)
	require.Equal(t, http.StatusServiceUnavailable, httpStatus(err))
}
