package ingester

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// decodedSeries is a series as push reads it, with everything resolved, so
// that two requests can be compared whatever their form and offsets.
type decodedSeries struct {
	Labels     [][2]string
	Samples    []sampleView
	Histograms []*ingesterpb.Histogram
	Exemplars  []*ingesterpb.Exemplar
	StartMs    int64
}

// viewOf reads every series of in through readSeries, as push does (labels
// with empty values are dropped there).
func viewOf(in pushInput) ([]decodedSeries, []*ingesterpb.MetricMetadata) {
	st := pushStatePool.Get().(*pushState)
	defer st.release()
	st.setTenant(tenant.DefaultTenant)
	var out []decodedSeries
	for k := range in.numSeries() {
		s := in.readSeries(k, st)
		st.labels()
		d := decodedSeries{StartMs: s.startMs}
		rangeKey(st.key[st.prefixLen:], func(name, value string) {
			// Copies: the strings alias st.key, which the next series reuses.
			d.Labels = append(d.Labels, [2]string{strings.Clone(name), strings.Clone(value)})
		})
		d.Samples = append(d.Samples, s.samples...)
		d.Histograms = append(d.Histograms, s.histograms...)
		d.Exemplars = append(d.Exemplars, s.exemplars...)
		out = append(out, d)
	}
	return out, append([]*ingesterpb.MetricMetadata(nil), in.pushMetadata()...)
}

func randomPushRequest(rng *rand.Rand) *ingesterpb.PushRequest {
	req := &ingesterpb.PushRequest{}
	for s := range rng.IntN(20) {
		ts := &ingesterpb.TimeSeries{StartTimestampMs: rng.Int64N(1000) - 500}
		for l := range rng.IntN(6) {
			ts.Labels = append(ts.Labels, &ingesterpb.LabelPair{
				Name:  fmt.Appendf(nil, "l%d", l),
				Value: fmt.Appendf(nil, "%x", rng.Uint64()>>rng.IntN(64)),
			})
		}
		if s%3 == 0 && len(ts.Labels) > 0 {
			ts.Labels[0].Value = nil // empty values are absent on the wire
		}
		if s%5 == 1 && len(ts.Labels) > 0 {
			// Longer than the decoder's fast path for labels reads.
			ts.Labels[len(ts.Labels)-1].Value = []byte(strings.Repeat("v", 100+rng.IntN(200)))
		}
		for range rng.IntN(12) {
			ts.Samples = append(ts.Samples, &ingesterpb.Sample{TimestampMs: rng.Int64() - math.MaxInt64/2, Value: rng.NormFloat64()})
		}
		if rng.IntN(4) == 0 {
			ts.Samples = append(ts.Samples, &ingesterpb.Sample{}) // all defaults: an empty message
		}
		if rng.IntN(4) == 0 {
			// One field left at its default: the fast path for samples
			// reads only those with both.
			ts.Samples = append(ts.Samples, &ingesterpb.Sample{TimestampMs: rng.Int64N(1 << 40)}, &ingesterpb.Sample{Value: 1})
		}
		if rng.IntN(4) == 0 {
			ts.Histograms = append(ts.Histograms, &ingesterpb.Histogram{
				Count: &ingesterpb.Histogram_CountFloat{CountFloat: 3}, Sum: 1.5, TimestampMs: 7,
				PositiveSpans: []*ingesterpb.BucketSpan{{Offset: 1, Length: 2}}, PositiveCounts: []float64{1, 2},
			})
		}
		if rng.IntN(4) == 0 {
			ts.Exemplars = append(ts.Exemplars, &ingesterpb.Exemplar{Labels: lbls("trace_id", "abc"), Value: 1, TimestampMs: 9})
		}
		req.Series = append(req.Series, ts)
	}
	if rng.IntN(3) == 0 {
		req.Metadata = append(req.Metadata, &ingesterpb.MetricMetadata{Type: ingesterpb.MetricMetadata_COUNTER, MetricFamilyName: "m", Help: "h"})
	}
	return req
}

// TestPushRequestDecode checks the hand-written decoder against the
// generated one: a request marshalled by vtproto decodes to what the
// generated unmarshaller sees, whichever way it arrives.
func TestPushRequestDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		req := randomPushRequest(rng)
		raw, err := req.MarshalVT()
		require.NoError(t, err)
		if n%2 == 1 {
			// Unknown fields, at every level, must be skipped.
			raw = protowire.AppendTag(raw, 9, protowire.BytesType)
			raw = protowire.AppendBytes(raw, []byte("future"))
			raw = protowire.AppendTag(raw, 10, protowire.Fixed32Type)
			raw = protowire.AppendFixed32(raw, 1)
		}
		want := &ingesterpb.PushRequest{}
		require.NoError(t, want.UnmarshalVT(raw))

		var viaWire pushRequest
		// Split the wire bytes across buffers as gRPC may hand them over.
		cut := 0
		if len(raw) > 0 {
			cut = rng.IntN(len(raw))
		}
		data := mem.BufferSlice{mem.SliceBuffer(raw[:cut]), mem.SliceBuffer(raw[cut:])}
		require.NoError(t, viaWire.UnmarshalBuffers(data))

		wantSeries, wantMeta := viewOf((*protoPush)(want))
		gotSeries, gotMeta := viewOf(&viaWire)
		require.Equal(t, len(wantSeries), len(gotSeries), "request %d", n)
		for k := range wantSeries {
			w, g := wantSeries[k], gotSeries[k]
			require.Equal(t, w.Labels, g.Labels, "request %d series %d", n, k)
			require.Equal(t, w.Samples, g.Samples, "request %d series %d", n, k)
			require.Equal(t, w.StartMs, g.StartMs, "request %d series %d", n, k)
			require.Equal(t, len(w.Histograms), len(g.Histograms))
			for h := range w.Histograms {
				require.True(t, w.Histograms[h].EqualVT(g.Histograms[h]), "request %d series %d", n, k)
			}
			require.Equal(t, len(w.Exemplars), len(g.Exemplars))
			for e := range w.Exemplars {
				require.True(t, w.Exemplars[e].EqualVT(g.Exemplars[e]), "request %d series %d", n, k)
			}
		}
		require.Equal(t, len(wantMeta), len(gotMeta))
		for m := range wantMeta {
			require.True(t, wantMeta[m].EqualVT(gotMeta[m]))
		}

		// Reuse must not leak anything of the previous request.
		viaWire.reset()
		require.NoError(t, viaWire.UnmarshalVT(raw))
		again, _ := viewOf(&viaWire)
		require.Equal(t, gotSeries, again)
	}
}

func TestPushRequestDecodeErrors(t *testing.T) {
	valid, err := (&ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{
		Labels: lbls("__name__", "up"), Samples: floats(1, 2),
	}}}).MarshalVT()
	require.NoError(t, err)

	wrongType := protowire.AppendTag(nil, 1, protowire.VarintType)
	wrongType = protowire.AppendVarint(wrongType, 3)

	// A sample whose value is sent as a varint.
	badSample := protowire.AppendTag(nil, 2, protowire.VarintType)
	badSample = protowire.AppendVarint(badSample, 3)
	badSeries := protowire.AppendTag(nil, 2, protowire.BytesType)
	badSeries = protowire.AppendBytes(badSeries, badSample)
	badReq := protowire.AppendTag(nil, 1, protowire.BytesType)
	badReq = protowire.AppendBytes(badReq, badSeries)

	// A series whose length runs past the end of the request.
	overlong := protowire.AppendTag(nil, 1, protowire.BytesType)
	overlong = protowire.AppendVarint(overlong, 100)
	overlong = append(overlong, 1, 2, 3)

	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"truncated", valid[:len(valid)-3]},
		{"series as varint", wrongType},
		{"sample value as varint", badReq},
		{"length past the end", overlong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Error(t, (&ingesterpb.PushRequest{}).UnmarshalVT(tc.raw), "the generated decoder must refuse it too")
			var r pushRequest
			require.Error(t, r.UnmarshalVT(tc.raw))
		})
	}
}

// TestPushKeepsNoAliasOfRequest proves that nothing the tsdb keeps points
// into a request buffer: after each push every recycled buffer is
// overwritten, and the stored series, labels, exemplars and error messages
// must come back intact. Run it with -tags slicelabels too: that labels
// implementation keeps the strings it is given, so an alias shows there
// (the default stringlabels copies them on its own).
func TestPushKeepsNoAliasOfRequest(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	ctx := context.Background()

	scribble := func() int {
		n := 0
		for {
			select {
			case r := <-h.ing.pushReqs.free:
				b := r.buf[:cap(r.buf)]
				for k := range b {
					b[k] = 'X'
				}
				defer func() { h.ing.pushReqs.free <- r }()
				n++
				continue
			default:
			}
			return n
		}
	}

	series := func(round int) []*ingesterpb.TimeSeries {
		var out []*ingesterpb.TimeSeries
		for s := range 50 {
			out = append(out, &ingesterpb.TimeSeries{
				Labels:    lbls("__name__", "alias_test", "instance", fmt.Sprintf("host-%d", s), "job", "node"),
				Samples:   floats(float64(1000*round), float64(s)),
				Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", fmt.Sprintf("t%d", s)), Value: 1, TimestampMs: int64(1000 * round)}},
			})
		}
		return out
	}
	// Round 0 creates the series, round 1 appends to them, and round 2 is
	// refused (a duplicate of round 1 with other values), so that an error
	// message is built from the labels.
	for round := range 3 {
		ts := series(min(round, 1))
		if round == 2 {
			for _, s := range ts {
				s.Samples[0].Value = -1
			}
		}
		resp, err := h.client.Push(ctx, &ingesterpb.PushRequest{Series: ts})
		require.NoError(t, err)
		require.Positive(t, scribble(), "the push must have recycled its request")
		if round < 2 {
			require.Empty(t, resp.Errors)
			require.Equal(t, uint64(50), resp.SamplesWritten)
			continue
		}
		require.Len(t, resp.Errors, 50)
		for k, e := range resp.Errors {
			require.Contains(t, e.Message, fmt.Sprintf(`{__name__="alias_test", instance="host-%d", job="node"}`, e.Index), "error %d", k)
		}
	}

	got, order := queryAll(t, h.client, math.MinInt64, math.MaxInt64, eq("__name__", "alias_test"))
	require.Len(t, order, 50)
	requireAliasTestStored(t, h.ing, got, "")
}

// requireAliasTestStored checks what the alias tests push (50 series
// alias_test{instance="host-<s>", job="node"}, two samples of value s and
// two exemplars each) against got, the series read back by labels, and the
// ingester's exemplar storage. tenantValue is the tenant label the stored
// series carry ("" for the default tenant's, which have none).
func requireAliasTestStored(t *testing.T, ing *Ingester, got map[string][]sample, tenantValue string) {
	t.Helper()
	for s := range 50 {
		ls := labels.FromStrings("__name__", "alias_test", "instance", fmt.Sprintf("host-%d", s), "job", "node")
		require.Equal(t, []sample{{T: 0, F: float64(s)}, {T: 1000, F: float64(s)}}, got[ls.String()], ls.String())
	}
	q, err := ing.DB().ExemplarQuerier(context.Background())
	require.NoError(t, err)
	res, err := q.Select(0, 2000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "alias_test")})
	require.NoError(t, err)
	require.Len(t, res, 50)
	for _, r := range res {
		require.Equal(t, "alias_test", r.SeriesLabels.Get("__name__"))
		require.Equal(t, tenantValue, r.SeriesLabels.Get(tenant.Label))
		require.Len(t, r.Exemplars, 2)
		for _, e := range r.Exemplars {
			require.Regexp(t, `^t\d+$`, e.Labels.Get("trace_id"))
		}
	}
}

// TestPushWithInterceptor covers the other Push path: a server with a unary
// interceptor hands it a decoded PushRequest.
func TestPushWithInterceptor(t *testing.T) {
	ing, err := New(testConfig(t, t.TempDir()), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ing.Close(context.Background())) })
	seen := 0
	icpt := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := req.(*ingesterpb.PushRequest); ok {
			seen++
		}
		return handler(ctx, req)
	}
	srv := grpc.NewServer(append(ingesterclient.ServerOptions(1<<20, 1<<20), grpc.UnaryInterceptor(icpt))...)
	ing.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() { srv.Stop(); <-served })
	var ccfg ingesterclient.Config
	ccfg.RegisterFlags("ingester.client.", flag.NewFlagSet("client", flag.ContinueOnError))
	client, err := ingesterclient.Dial(lis.Addr().String(), ccfg, defaultTenant()...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close()) })
	h := &harness{ing: ing, client: client, srv: srv}

	resp, err := h.client.Push(context.Background(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "up", "job", "a"), Samples: floats(1000, 1, 2000, 2)},
		{Labels: lbls("job", "b", "__name__", "up", "empty", ""), Samples: floats(1000, 3)},
	}})
	require.NoError(t, err)
	require.Equal(t, uint64(3), resp.SamplesWritten)
	require.Equal(t, 1, seen)
	got, _ := queryAll(t, h.client, 0, 3000, eq("__name__", "up"))
	require.Equal(t, map[string][]sample{
		`{__name__="up", job="a"}`: {{T: 1000, F: 1}, {T: 2000, F: 2}},
		`{__name__="up", job="b"}`: {{T: 1000, F: 3}},
	}, got)
}

// TestPushRequestDecodeUncommonForms covers the forms an encoder may write
// that the decoder's fast paths leave to the general walk: a sample's
// fields in reverse order, labels on both sides of a sample, a LabelPair
// without its value field. Each must decode as the generated decoder reads
// it, and such a series has no key bytes.
func TestPushRequestDecodeUncommonForms(t *testing.T) {
	label := func(b []byte, name, value string) []byte {
		var lp []byte
		lp = protowire.AppendTag(lp, 1, protowire.BytesType)
		lp = protowire.AppendString(lp, name)
		lp = protowire.AppendTag(lp, 2, protowire.BytesType)
		lp = protowire.AppendString(lp, value)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		return protowire.AppendBytes(b, lp)
	}
	var reversed []byte
	reversed = protowire.AppendTag(reversed, 2, protowire.Fixed64Type)
	reversed = protowire.AppendFixed64(reversed, math.Float64bits(2.5))
	reversed = protowire.AppendTag(reversed, 1, protowire.VarintType)
	reversed = protowire.AppendVarint(reversed, 1_700_000_000_000)

	var series []byte
	series = label(series, "__name__", "up")
	series = protowire.AppendTag(series, 2, protowire.BytesType)
	series = protowire.AppendBytes(series, reversed)
	series = label(series, "job", "node")
	// A LabelPair without a value: an empty one, which push drops.
	var half []byte
	half = protowire.AppendTag(half, 1, protowire.BytesType)
	half = protowire.AppendString(half, "zone")
	series = protowire.AppendTag(series, 1, protowire.BytesType)
	series = protowire.AppendBytes(series, half)
	raw := protowire.AppendTag(nil, 1, protowire.BytesType)
	raw = protowire.AppendBytes(raw, series)

	want := &ingesterpb.PushRequest{}
	require.NoError(t, want.UnmarshalVT(raw))
	var got pushRequest
	require.NoError(t, got.UnmarshalVT(raw))
	require.False(t, got.series[0].keyOK, "labels with a sample between them are no key bytes")
	wantSeries, _ := viewOf((*protoPush)(want))
	gotSeries, _ := viewOf(&got)
	require.Equal(t, wantSeries, gotSeries)
	require.Equal(t, [][2]string{{"__name__", "up"}, {"job", "node"}}, gotSeries[0].Labels, "zone has no value")
	require.Equal(t, []sampleView{{t: 1_700_000_000_000, v: 2.5}}, gotSeries[0].Samples)
}
