package distributor

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// Remote write 1.0 into the ingester of the same process hands it each
// series' label span, by which it finds known series. The HA tracker
// removes the replica label after decoding, so those series must go
// without their spans: the span of m{cluster, __replica__} would find the
// series stored before HA deduplication was on, not m{cluster}.
// Sent to an ingester over gRPC, a span is the series' labels on the wire
// (ingesterpb.LabelSpanPush), and the same holds: m{cluster} would be
// stored with the replica label.
func TestLabelSpansDroppedWithHARelabelling(t *testing.T) {
	for _, client := range []string{"local", "grpc"} {
		t.Run(client, func(t *testing.T) { testLabelSpansDroppedWithHARelabelling(t, client == "local") })
	}
}

func testLabelSpansDroppedWithHARelabelling(t *testing.T, local bool) {
	ing, addr := startIngester(t, t.TempDir())
	var c ingesterpb.IngesterClient = ing.LocalClient()
	if !local {
		gc, err := ingesterclient.Dial(addr, clientConfig())
		require.NoError(t, err)
		t.Cleanup(func() { _ = gc.Close() })
		c = gc
	}
	d, err := New(defaultConfig(), StaticIngesters{c}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(d.RemoteWriteHandler())
	t.Cleanup(srv.Close)

	now := time.Now().UnixMilli()
	write := func(ts int64) {
		t.Helper()
		resp := post(t, srv.URL, "application/x-protobuf", "snappy", encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			series([]string{"__name__", "m", "__replica__", "a", "cluster", "prom"}, prompb.Sample{Timestamp: ts, Value: 1}),
		}}))
		require.Equal(t, http.StatusNoContent, resp.code, resp.body)
	}
	write(now)
	write(now + 1) // found by its span
	tr, err := NewHATracker(haConfig(), cluster.Namespace(cluster.NewMemKV(), HATrackerRingName), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	d.SetHATracker(tr, DefaultHALimits())
	write(now + 2)
	require.Equal(t, []string{
		fmt.Sprintf(`{__name__="m", __replica__="a", cluster="prom"}| %d=1 %d=1`, now, now+1),
		fmt.Sprintf(`{__name__="m", cluster="prom"}| %d=1`, now+2),
	}, dumpIngester(t, addr))
}

// A 1.0 body's label spans go to ingesters over gRPC as the series' labels,
// byte for byte, on each way a push reaches them: one ingester (a call of
// its own), three at RF 3 (one marshalling for all), four at RF 2 (a batch
// of part of the request each). A sender's own encoding of a label (value
// before name) arrives as the labels it encodes; a series the distributor
// normalised (unsorted, an empty value) goes with its labels encoded anew.
func TestLabelSpansSentToRemoteIngesters(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n, rf int
	}{{"one", 1, 1}, {"whole", 3, 3}, {"split", 4, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			d, _, ings := startRingCluster(t, tc.n, tc.rf)
			srv := httptest.NewServer(d.RemoteWriteHandler())
			t.Cleanup(srv.Close)

			now := time.Now().UnixMilli()
			var body []byte
			var names []string
			for k := range 20 {
				name := fmt.Sprintf("m%02d", k)
				names = append(names, name)
				var ts []byte
				switch k % 3 {
				case 0: // as every encoder writes it
					ts = v1Label(ts, "__name__", name, false)
					ts = v1Label(ts, "job", "node", false)
				case 1: // the sender's own field order
					ts = v1Label(ts, "__name__", name, true)
					ts = v1Label(ts, "job", "node", true)
				case 2: // normalised by the distributor
					ts = v1Label(ts, "job", "node", false)
					ts = v1Label(ts, "empty", "", false)
					ts = v1Label(ts, "__name__", name, false)
				}
				var smp []byte
				smp = protowire.AppendTag(smp, 1, protowire.Fixed64Type)
				smp = protowire.AppendFixed64(smp, math.Float64bits(float64(k)))
				smp = protowire.AppendTag(smp, 2, protowire.VarintType)
				smp = protowire.AppendVarint(smp, uint64(now))
				ts = protowire.AppendTag(ts, 2, protowire.BytesType)
				ts = protowire.AppendBytes(ts, smp)
				body = protowire.AppendTag(body, 1, protowire.BytesType)
				body = protowire.AppendBytes(body, ts)
			}
			resp := post(t, srv.URL, "application/x-protobuf", "snappy", snappy.Encode(nil, body))
			require.Equal(t, http.StatusNoContent, resp.code, resp.body)

			copies := map[string]int{}
			for _, in := range ings {
				for _, s := range dumpIngester(t, in.addr) {
					copies[s]++
				}
			}
			want := map[string]int{}
			for k, name := range names {
				want[fmt.Sprintf(`{__name__="%s", job="node"}| %d=%d`, name, now, k)] = tc.rf
			}
			require.Equal(t, want, copies)
		})
	}
}

// v1Label appends a remote-write 1.0 TimeSeries.labels field, its Label's
// fields in the usual order or reversed.
func v1Label(b []byte, name, value string, reversed bool) []byte {
	var l []byte
	if reversed {
		l = protowire.AppendTag(l, 2, protowire.BytesType)
		l = protowire.AppendString(l, value)
		l = protowire.AppendTag(l, 1, protowire.BytesType)
		l = protowire.AppendString(l, name)
	} else {
		l = protowire.AppendTag(l, 1, protowire.BytesType)
		l = protowire.AppendString(l, name)
		if value != "" {
			l = protowire.AppendTag(l, 2, protowire.BytesType)
			l = protowire.AppendString(l, value)
		}
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, l)
}
