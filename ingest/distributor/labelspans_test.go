package distributor

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// seriesSamples returns each series the ingester at addr stores, as
// FormatSeries writes it, with its number of samples.
func seriesSamples(t *testing.T, c ingesterpb.IngesterClient) map[string]int {
	stream, err := c.QueryStream(tenant.With(context.Background(), tenant.DefaultTenant), &ingesterpb.QueryRequest{
		StartMs: math.MinInt64, EndMs: math.MaxInt64,
		Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: ".+"}},
	})
	require.NoError(t, err)
	out := map[string]int{}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		for _, s := range resp.Series {
			for _, c := range s.Chunks {
				out[FormatSeries(s.Labels)] += chunkSamples(t, c)
			}
		}
	}
}

// Remote write 1.0 into the ingester of the same process hands it each
// series' label span, by which it finds known series. The HA tracker
// removes the replica label after decoding, so those series must go
// without their spans: the span of m{cluster, __replica__} would find the
// series stored before HA deduplication was on, not m{cluster}.
func TestLabelSpansDroppedWithHARelabelling(t *testing.T) {
	ing, addr := startIngester(t, t.TempDir())
	d, err := New(defaultConfig(), StaticIngesters{ing.LocalClient()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(d.RemoteWriteHandler())
	t.Cleanup(srv.Close)
	client, err := ingesterclient.Dial(addr, clientConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })

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
	require.Equal(t, map[string]int{
		`{__name__="m", __replica__="a", cluster="prom"}`: 2,
		`{__name__="m", cluster="prom"}`:                  1,
	}, seriesSamples(t, client))
}
