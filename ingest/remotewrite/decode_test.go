package remotewrite

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

func pairs(ls ...string) []*ingesterpb.LabelPair {
	out := make([]*ingesterpb.LabelPair, 0, len(ls)/2)
	for i := 0; i < len(ls); i += 2 {
		out = append(out, &ingesterpb.LabelPair{Name: []byte(ls[i]), Value: []byte(ls[i+1])})
	}
	return out
}

// histToPB converts an upstream histogram by its wire encoding, which 1.0
// and ingesterpb share field for field.
func histToPB(t testing.TB, h prompb.Histogram) *ingesterpb.Histogram {
	b, err := h.Marshal()
	require.NoError(t, err)
	out := &ingesterpb.Histogram{}
	require.NoError(t, out.UnmarshalVT(b))
	return out
}

func v1Request() *prompb.WriteRequest {
	return &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "node"}},
				Samples: []prompb.Sample{{Value: 1, Timestamp: 1000}, {Value: 0, Timestamp: 2000}},
				Exemplars: []prompb.Exemplar{{
					Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1.5, Timestamp: 1500,
				}},
			},
			{
				// A long value forces multi-byte lengths; unsorted labels stay unsorted.
				Labels:     []prompb.Label{{Name: "z", Value: string(bytes.Repeat([]byte("v"), 300))}, {Name: "__name__", Value: "h"}},
				Histograms: []prompb.Histogram{prompb.FromIntHistogram(3000, tsdbutil.GenerateTestHistogram(3)), prompb.FromFloatHistogram(4000, tsdbutil.GenerateTestFloatHistogram(4))},
			},
			{Labels: []prompb.Label{{Name: "__name__", Value: "empty"}}},
		},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "up", Help: "is up", Unit: "1"}},
	}
}

func v1Expected(t testing.TB, req *prompb.WriteRequest) *ingesterpb.PushRequest {
	out := &ingesterpb.PushRequest{}
	for _, ts := range req.Timeseries {
		s := &ingesterpb.TimeSeries{}
		for _, l := range ts.Labels {
			s.Labels = append(s.Labels, pairs(l.Name, l.Value)...)
		}
		for _, x := range ts.Samples {
			s.Samples = append(s.Samples, &ingesterpb.Sample{TimestampMs: x.Timestamp, Value: x.Value})
		}
		for _, h := range ts.Histograms {
			s.Histograms = append(s.Histograms, histToPB(t, h))
		}
		for _, e := range ts.Exemplars {
			pe := &ingesterpb.Exemplar{Value: e.Value, TimestampMs: e.Timestamp}
			for _, l := range e.Labels {
				pe.Labels = append(pe.Labels, pairs(l.Name, l.Value)...)
			}
			s.Exemplars = append(s.Exemplars, pe)
		}
		out.Series = append(out.Series, s)
	}
	for _, m := range req.Metadata {
		out.Metadata = append(out.Metadata, &ingesterpb.MetricMetadata{
			Type: ingesterpb.MetricMetadata_MetricType(m.Type), MetricFamilyName: m.MetricFamilyName, Help: m.Help, Unit: m.Unit,
		})
	}
	return out
}

func v2Request() *writev2.Request {
	st := writev2.NewSymbolTable()
	series := []writev2.TimeSeries{
		{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "up", "job", "node"), nil),
			Samples:    []writev2.Sample{{Value: 1, Timestamp: 1000, StartTimestamp: 500}, {Value: 2, Timestamp: 2000, StartTimestamp: 500}},
			Exemplars: []writev2.Exemplar{{
				LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "abc"), nil), Value: 1.5, Timestamp: 1500,
			}},
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("is up"), UnitRef: st.Symbolize("1")},
		},
		{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "h", "le", "x"), nil),
			Histograms: []writev2.Histogram{writev2.FromIntHistogram(100, 3000, tsdbutil.GenerateTestHistogram(3)), writev2.FromFloatHistogram(100, 4000, tsdbutil.GenerateTestFloatHistogram(4))},
		},
	}
	return &writev2.Request{Symbols: st.Symbols(), Timeseries: series}
}

func v2Expected(t testing.TB, req *writev2.Request) *ingesterpb.PushRequest {
	out := &ingesterpb.PushRequest{}
	refs := func(r []uint32) []*ingesterpb.LabelPair {
		var ps []*ingesterpb.LabelPair
		for i := 0; i < len(r); i += 2 {
			ps = append(ps, pairs(req.Symbols[r[i]], req.Symbols[r[i+1]])...)
		}
		return ps
	}
	for _, ts := range req.Timeseries {
		s := &ingesterpb.TimeSeries{Labels: refs(ts.LabelsRefs)}
		for _, x := range ts.Samples {
			s.Samples = append(s.Samples, &ingesterpb.Sample{TimestampMs: x.Timestamp, Value: x.Value})
			if s.StartTimestampMs == 0 {
				s.StartTimestampMs = x.StartTimestamp
			}
		}
		for _, h := range ts.Histograms {
			st := h.StartTimestamp
			h.StartTimestamp = 0 // not an ingesterpb field
			b, err := h.Marshal()
			require.NoError(t, err)
			ph := &ingesterpb.Histogram{}
			require.NoError(t, ph.UnmarshalVT(b))
			s.Histograms = append(s.Histograms, ph)
			if s.StartTimestampMs == 0 {
				s.StartTimestampMs = st
			}
		}
		for _, e := range ts.Exemplars {
			s.Exemplars = append(s.Exemplars, &ingesterpb.Exemplar{Labels: refs(e.LabelsRefs), Value: e.Value, TimestampMs: e.Timestamp})
		}
		out.Series = append(out.Series, s)
		if ts.Metadata.Type != 0 || ts.Metadata.HelpRef != 0 || ts.Metadata.UnitRef != 0 {
			out.Metadata = append(out.Metadata, &ingesterpb.MetricMetadata{
				Type:             ingesterpb.MetricMetadata_MetricType(ts.Metadata.Type),
				MetricFamilyName: string(s.Labels[0].Value),
				Help:             req.Symbols[ts.Metadata.HelpRef],
				Unit:             req.Symbols[ts.Metadata.UnitRef],
			})
		}
	}
	return out
}

type marshaler interface{ Marshal() ([]byte, error) }

func compress(t testing.TB, m marshaler) []byte {
	b, err := m.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

func requireEqualPush(t *testing.T, want, got *ingesterpb.PushRequest) {
	t.Helper()
	if !want.EqualVT(got) {
		wb, _ := want.MarshalVT()
		gb, _ := got.MarshalVT()
		require.Equal(t, want.String(), got.String())
		require.Equal(t, wb, gb)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		version Version
		body    []byte
		want    *ingesterpb.PushRequest
	}{
		{"v1", V1, compress(t, v1Request()), v1Expected(t, v1Request())},
		{"v2", V2, compress(t, v2Request()), v2Expected(t, v2Request())},
		{"v1 empty body", V1, nil, &ingesterpb.PushRequest{}},
		{"v2 empty body", V2, nil, &ingesterpb.PushRequest{}},
		{"v1 empty message", V1, snappy.Encode(nil, nil), &ingesterpb.PushRequest{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Twice through the same pooled request: reuse must not leak state.
			r := NewRequest()
			defer r.Release()
			for range 2 {
				r.reset()
				require.NoError(t, r.ReadBody(bytes.NewReader(tc.body), int64(len(tc.body)), 1<<20))
				require.NoError(t, r.Decode(tc.version))
				require.Empty(t, r.Invalid)
				requireEqualPush(t, tc.want, &r.Push)
			}
		})
	}
}

func TestDecodeV2InvalidSymbolRefs(t *testing.T) {
	req := v2Request()
	good := req.Timeseries[0]
	req.Timeseries = []writev2.TimeSeries{
		{LabelsRefs: []uint32{1, 9999}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}},
		good,
		{LabelsRefs: []uint32{1}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}, {Value: 2, Timestamp: 2}}},
	}
	r := NewRequest()
	defer r.Release()
	require.NoError(t, r.SetBody(compress(t, req), 1<<20))
	require.NoError(t, r.Decode(V2))
	require.Len(t, r.Push.Series, 1)
	require.Equal(t, "up", string(r.Push.Series[0].Labels[0].Value))
	require.Len(t, r.Invalid, 2)
	require.Equal(t, 0, r.Invalid[0].Index)
	require.EqualError(t, r.Invalid[0].Err, fmt.Sprintf("series labels: label reference 9999 outside of the symbols table (size %d)", len(req.Symbols)))
	require.Equal(t, 2, r.Invalid[1].Index)
	require.Equal(t, 2, r.Invalid[1].Samples)
	require.EqualError(t, r.Invalid[1].Err, "series labels: odd number of label references")
}

func TestDecodeErrors(t *testing.T) {
	v1, err := v1Request().Marshal()
	require.NoError(t, err)
	tests := []struct {
		name    string
		body    []byte
		limit   int64
		version Version
		want    error
	}{
		{"not snappy", []byte("this is not snappy"), 1 << 20, V1, ErrMalformed},
		{"snappy but not protobuf", snappy.Encode(nil, []byte("\xff\xff\xff\xff not a protobuf")), 1 << 20, V1, ErrMalformed},
		{"truncated protobuf", snappy.Encode(nil, v1[:len(v1)-3]), 1 << 20, V1, ErrMalformed},
		{"v2 symbols without leading empty string", snappy.Encode(nil, []byte("\x22\x01a")), 1 << 20, V2, ErrMalformed},
		{"compressed over limit", snappy.Encode(nil, v1), 10, V1, ErrTooLarge},
		{"decompressed over limit", snappy.Encode(nil, make([]byte, 4096)), 1024, V1, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRequest()
			defer r.Release()
			err := r.ReadBody(bytes.NewReader(tc.body), -1, tc.limit)
			if err == nil {
				err = r.Decode(tc.version)
			}
			require.ErrorIs(t, err, tc.want)
			require.Empty(t, r.Push.Series)
		})
	}
}

// Labels and series encoded in ways the fast paths do not take (fields out
// of order, repeated, unknown, long, empty, truncated) decode as upstream
// decodes them, or fail as malformed.
func TestDecodeV1LabelEncodings(t *testing.T) {
	bytesField := func(num protowire.Number, b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	long := bytes.Repeat([]byte("x"), 200)
	sample := bytesField(2, cat([]byte{0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}, []byte{0x10, 0x64}))
	series := func(labels ...[]byte) []byte { return bytesField(1, cat(append(labels, sample)...)) }
	for _, tc := range []struct {
		name  string
		label []byte // one label message
	}{
		{"name then value", cat(bytesField(1, []byte("job")), bytesField(2, []byte("node")))},
		{"value then name", cat(bytesField(2, []byte("node")), bytesField(1, []byte("job")))},
		{"repeated name", cat(bytesField(1, []byte("a")), bytesField(1, []byte("job")), bytesField(2, []byte("node")))},
		{"unknown field", cat(bytesField(1, []byte("job")), bytesField(3, []byte("?")), bytesField(2, []byte("node")))},
		{"trailing unknown varint", cat(bytesField(1, []byte("job")), bytesField(2, []byte("node")), []byte{0x18, 0x01})},
		{"long name", cat(bytesField(1, long), bytesField(2, []byte("v")))},
		{"long value", cat(bytesField(1, []byte("job")), bytesField(2, long))},
		{"no value", bytesField(1, []byte("job"))},
		{"empty name and value", cat(bytesField(1, nil), bytesField(2, nil))},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := series(bytesField(1, cat(bytesField(1, []byte("__name__")), bytesField(2, []byte("up")))), bytesField(1, tc.label))
			var up prompb.WriteRequest
			require.NoError(t, up.Unmarshal(data))
			r := NewRequest()
			defer r.Release()
			require.NoError(t, r.DecodeProto(V1, data))
			require.Len(t, r.Push.Series, 1)
			got := r.Push.Series[0]
			require.Len(t, got.Labels, 2)
			for i, l := range up.Timeseries[0].Labels {
				require.Equal(t, l.Name, string(got.Labels[i].Name))
				require.Equal(t, l.Value, string(got.Labels[i].Value))
			}
			require.Len(t, got.Samples, 1)
			require.Equal(t, int64(100), got.Samples[0].TimestampMs)
			require.Equal(t, 1.0, got.Samples[0].Value)
		})
	}

	// A label whose length runs past the end of its series, and a label
	// field whose length runs past the label.
	for _, data := range [][]byte{
		bytesField(1, []byte{0x0a, 0x7f, 'a'}),
		bytesField(1, bytesField(1, []byte{0x0a, 0x05, 'a'})),
	} {
		r := NewRequest()
		require.ErrorIs(t, r.DecodeProto(V1, data), ErrMalformed)
		r.Release()
	}
}

func TestParseContentType(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		err  error
	}{
		{"", V1, nil},
		{"application/x-protobuf", V1, nil},
		{"application/x-protobuf;proto=prometheus.WriteRequest", V1, nil},
		{"application/x-protobuf; proto=io.prometheus.write.v2.Request", V2, nil},
		{"application/json", 0, ErrUnsupportedMediaType},
		{"application/x-protobuf;proto=foo.Bar", 0, ErrUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			v, err := ParseContentType(tc.in)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, v)
		})
	}
	require.NoError(t, CheckContentEncoding("snappy"))
	require.NoError(t, CheckContentEncoding(""))
	require.ErrorIs(t, CheckContentEncoding("gzip"), ErrUnsupportedMediaType)
}

// benchRequests builds requests of n series with 10 labels and 10 samples.
func benchV1(n int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for i := range n {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "metric_" + fmt.Sprint(i%50)}}}
		for j := range 9 {
			ts.Labels = append(ts.Labels, prompb.Label{Name: fmt.Sprintf("label_%d", j), Value: fmt.Sprintf("value_%d_%d", j, i)})
		}
		for k := range 10 {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: int64(k) * 15000, Value: float64(i + k)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}

func benchV2(n int) *writev2.Request {
	return asV2(benchV1(n), writev2.Metadata_METRIC_TYPE_GAUGE, "help")
}

// asV2 is v1 as remote write 2.0 sends it: labels as references into the
// symbols table, and on every series metadata of type typ with help.
func asV2(v1 *prompb.WriteRequest, typ writev2.Metadata_MetricType, help string) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	sb := labels.NewScratchBuilder(0)
	for _, ts := range v1.Timeseries {
		s := writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(ts.ToLabels(&sb, nil), nil)}
		for _, x := range ts.Samples {
			s.Samples = append(s.Samples, writev2.Sample{Timestamp: x.Timestamp, Value: x.Value})
		}
		s.Metadata = writev2.Metadata{Type: typ, HelpRef: st.Symbolize(help)}
		req.Timeseries = append(req.Timeseries, s)
	}
	req.Symbols = st.Symbols()
	return req
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	for _, tc := range []struct {
		v    Version
		body []byte
	}{{V1, compress(t, benchV1(200))}, {V2, compress(t, benchV2(200))}} {
		t.Run(tc.v.String(), func(t *testing.T) {
			r := NewRequest()
			defer r.Release()
			rd := bytes.NewReader(nil)
			run := func() {
				r.reset()
				rd.Reset(tc.body)
				if err := r.ReadBody(rd, int64(len(tc.body)), 1<<24); err != nil {
					panic(err)
				}
				if err := r.Decode(tc.v); err != nil {
					panic(err)
				}
			}
			run() // warm
			require.Zero(t, testing.AllocsPerRun(20, run))
			require.Len(t, r.Push.Series, 200)
			if tc.v == V2 {
				require.Len(t, r.Push.Metadata, 50, "metadata is sent once per family")
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, tc := range []struct {
		v    Version
		body []byte
	}{{V1, compress(b, benchV1(2000))}, {V2, compress(b, benchV2(2000))}} {
		b.Run(tc.v.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := NewRequest()
				if err := r.ReadBody(bytes.NewReader(tc.body), int64(len(tc.body)), 1<<26); err != nil {
					b.Fatal(err)
				}
				if err := r.Decode(tc.v); err != nil {
					b.Fatal(err)
				}
				r.Release()
			}
			b.ReportMetric(float64(b.N)*20000/b.Elapsed().Seconds(), "samples/s")
		})
	}
	b.Run("upstream-gogo-v1", func(b *testing.B) {
		body := compress(b, benchV1(2000))
		b.ReportAllocs()
		for b.Loop() {
			raw, err := snappy.Decode(nil, body)
			if err != nil {
				b.Fatal(err)
			}
			var req prompb.WriteRequest
			if err := req.Unmarshal(raw); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)*20000/b.Elapsed().Seconds(), "samples/s")
	})
}

// promV1 is a request of n Prometheus-shaped series: 11 sorted labels of a
// node-exporter series scraped through the Prometheus operator, one sample
// each, as pharos-bench sends them.
func promV1(n int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	modes := []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"}
	for i := range n {
		host := i / 60
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: []string{"node_cpu_seconds_total", "node_network_receive_bytes_total", "node_filesystem_avail_bytes"}[i%3]},
				{Name: "cluster", Value: "prod-eu-" + fmt.Sprint(i%3)},
				{Name: "cpu", Value: fmt.Sprint(i / 3 % 20)},
				{Name: "endpoint", Value: "metrics"},
				{Name: "instance", Value: fmt.Sprintf("10.%d.%d.%d:9100", host>>16&255, host>>8&255, host&255)},
				{Name: "job", Value: "node-exporter"},
				{Name: "mode", Value: modes[i%8]},
				{Name: "namespace", Value: "monitoring"},
				{Name: "node", Value: fmt.Sprintf("ip-10-%d-%d-g0", host>>8&255, host&255)},
				{Name: "pod", Value: fmt.Sprintf("node-exporter-%05x", host*7919)},
				{Name: "service", Value: "node-exporter"},
			},
			Samples: []prompb.Sample{{Timestamp: 1_700_000_000_000 + int64(i), Value: float64(i)}},
		})
	}
	return req
}

// promV2 is promV1 as remote write 2.0 sends it, with each series'
// metadata.
func promV2(n int) *writev2.Request {
	return asV2(promV1(n), writev2.Metadata_METRIC_TYPE_COUNTER, "Seconds the CPUs spent in each mode.")
}

// BenchmarkDecodeProto measures decoding alone (no snappy) of a 2000-series
// Prometheus-shaped request, 1.0 (decodeV1Series, decodeLabel) and 2.0
// (decodeV2Series, addLabelRefs, metadata).
func BenchmarkDecodeProto(b *testing.B) {
	v1, err := promV1(2000).Marshal()
	require.NoError(b, err)
	v2, err := promV2(2000).Marshal()
	require.NoError(b, err)
	for _, tc := range []struct {
		v   Version
		raw []byte
	}{{V1, v1}, {V2, v2}} {
		b.Run(tc.v.String(), func(b *testing.B) {
			r := NewRequest()
			defer r.Release()
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.raw)))
			c0 := cpuTime()
			for b.Loop() {
				r.reset()
				if err := r.DecodeProto(tc.v, tc.raw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/series")
			b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N*2000), "cpu-ns/series")
		})
	}
}

// cpuTime is the CPU time (user + system) of the process so far: steadier
// than wall time on a machine shared with other work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fuzzDecode checks that arbitrary bytes never panic the decoder, and that a
// message upstream decodes is decoded by us to the same labels and samples.
func fuzzDecode(t *testing.T, v Version, data []byte) {
	r := NewRequest()
	defer r.Release()
	err := r.DecodeProto(v, data)
	if err != nil {
		require.True(t, errors.Is(err, ErrMalformed), err)
		return
	}
	// Whatever we decoded must marshal for the ingester.
	_, err = r.Push.MarshalVT()
	require.NoError(t, err)
	if v == V1 {
		var up prompb.WriteRequest
		if up.Unmarshal(data) != nil {
			return
		}
		require.Len(t, r.Push.Series, len(up.Timeseries))
		for i, ts := range up.Timeseries {
			require.Len(t, r.Push.Series[i].Labels, len(ts.Labels))
			for j, l := range ts.Labels {
				require.Equal(t, l.Name, string(r.Push.Series[i].Labels[j].Name))
				require.Equal(t, l.Value, string(r.Push.Series[i].Labels[j].Value))
			}
			require.Len(t, r.Push.Series[i].Samples, len(ts.Samples))
		}
		// A series' label span is its labels' fields and nothing else.
		spans := r.LabelSpans()
		require.Len(t, spans, len(r.Push.Series))
		for i, span := range spans {
			if span == nil {
				continue
			}
			var got ingesterpb.TimeSeries
			require.NoError(t, got.UnmarshalVT(span))
			require.Empty(t, got.Samples)
			require.Empty(t, got.Histograms)
			require.Empty(t, got.Exemplars)
			require.Len(t, got.Labels, len(r.Push.Series[i].Labels))
			for j, l := range got.Labels {
				require.Equal(t, string(r.Push.Series[i].Labels[j].Name), string(l.Name))
				require.Equal(t, string(r.Push.Series[i].Labels[j].Value), string(l.Value))
			}
		}
	}
	if v == V2 {
		var up writev2.Request
		if up.Unmarshal(data) != nil {
			return
		}
		// Series whose references do not resolve are reported in Invalid
		// and left out; every other one is upstream's, resolved.
		k := 0
		for i, ts := range up.Timeseries {
			if slices.ContainsFunc(r.Invalid, func(s InvalidSeries) bool { return s.Index == i }) {
				continue
			}
			require.Less(t, k, len(r.Push.Series))
			got := r.Push.Series[k]
			k++
			require.Len(t, got.Labels, len(ts.LabelsRefs)/2)
			for j := 0; j+1 < len(ts.LabelsRefs); j += 2 {
				require.Equal(t, up.Symbols[ts.LabelsRefs[j]], string(got.Labels[j/2].Name))
				require.Equal(t, up.Symbols[ts.LabelsRefs[j+1]], string(got.Labels[j/2].Value))
			}
			require.Len(t, got.Samples, len(ts.Samples))
			for j, smp := range ts.Samples {
				require.Equal(t, smp.Timestamp, got.Samples[j].TimestampMs)
				require.Equal(t, math.Float64bits(smp.Value), math.Float64bits(got.Samples[j].Value))
			}
		}
		require.Equal(t, k, len(r.Push.Series))
		// Every metadata entry is one a series of its family carries.
		is := func(ref uint32, want string) bool { return int(ref) < len(up.Symbols) && up.Symbols[ref] == want }
		for _, m := range r.Push.Metadata {
			require.True(t, slices.ContainsFunc(up.Timeseries, func(ts writev2.TimeSeries) bool {
				md := ts.Metadata
				family := false
				for j := 0; j+1 < len(ts.LabelsRefs); j += 2 {
					family = family || (is(ts.LabelsRefs[j], "__name__") && is(ts.LabelsRefs[j+1], m.MetricFamilyName))
				}
				return family && int32(md.Type) == int32(m.Type) && is(md.HelpRef, m.Help) && is(md.UnitRef, m.Unit)
			}), "metadata %v is no series' of its family", m)
		}
	}
}

func FuzzDecodeV1(f *testing.F) {
	b, err := v1Request().Marshal()
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte{})
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, V1, data) })
}

func FuzzDecodeV2(f *testing.F) {
	b, err := v2Request().Marshal()
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte{})
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, V2, data) })
}

// A 1.0 series' label span is the encoding an ingester keys it by when the
// sender encodes as Prometheus does (labels first, sorted); labels split by
// another field have none. A 2.0 series' span is its labels encoded so by
// the decoder.
func TestDecodeLabelSpans(t *testing.T) {
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "node"}}, Samples: []prompb.Sample{{Timestamp: 1, Value: 1}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "x"}}, Samples: []prompb.Sample{{Timestamp: 1, Value: 2}}},
	}}
	body, err := req.Marshal()
	require.NoError(t, err)
	// A third series: a label, a sample, a label.
	var third []byte
	third = protowire.AppendTag(third, 1, protowire.BytesType)
	third = protowire.AppendBytes(third, []byte("\x0a\x08__name__\x12\x01y"))
	third = protowire.AppendTag(third, 2, protowire.BytesType)
	third = protowire.AppendBytes(third, []byte("\x09\x00\x00\x00\x00\x00\x00\xf0\x3f\x10\x01"))
	third = protowire.AppendTag(third, 1, protowire.BytesType)
	third = protowire.AppendBytes(third, []byte("\x0a\x03job\x12\x01j"))
	body = protowire.AppendTag(body, 1, protowire.BytesType)
	body = protowire.AppendBytes(body, third)

	r := NewRequest()
	defer r.Release()
	require.NoError(t, r.DecodeProto(V1, body))
	spans := r.LabelSpans()
	require.Len(t, spans, 3)
	for i, ts := range r.Push.Series[:2] {
		want, err := (&ingesterpb.TimeSeries{Labels: ts.Labels}).MarshalVT()
		require.NoError(t, err)
		require.Equal(t, want, spans[i], "series %d", i)
	}
	require.Nil(t, spans[2])
	require.Len(t, r.Push.Series[2].Labels, 2)

	// 2.0: the decoder encodes each valid series' labels itself, as
	// MarshalVT would; none for a series with an empty value, and an
	// invalid series (exemplars alone) shifts nothing.
	st := writev2.NewSymbolTable()
	one := func(ls labels.Labels, samples ...writev2.Sample) writev2.TimeSeries {
		ts := writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(ls, nil), Samples: samples}
		if len(samples) == 0 {
			ts.Exemplars = []writev2.Exemplar{{Value: 1, Timestamp: 1}}
		}
		return ts
	}
	smp := writev2.Sample{Timestamp: 1, Value: 1}
	v2 := &writev2.Request{Timeseries: []writev2.TimeSeries{
		one(labels.FromStrings("__name__", "up"), smp),
		one(labels.FromStrings("__name__", "a", "empty", ""), smp),
		one(labels.FromStrings("__name__", "exemplars_alone")),
		one(labels.FromStrings("__name__", "b", "job", "node"), smp),
	}}
	v2.Symbols = st.Symbols()
	body, err = v2.Marshal()
	require.NoError(t, err)
	r2 := NewRequest()
	defer r2.Release()
	require.NoError(t, r2.DecodeProto(V2, body))
	require.Len(t, r2.Push.Series, 3)
	require.Len(t, r2.Invalid, 1)
	spans2 := r2.LabelSpans()
	require.Len(t, spans2, 3)
	for _, i := range []int{0, 2} {
		want, err := (&ingesterpb.TimeSeries{Labels: r2.Push.Series[i].Labels}).MarshalVT()
		require.NoError(t, err)
		require.Equal(t, want, spans2[i], "series %d", i)
	}
	require.Nil(t, spans2[1])
}
