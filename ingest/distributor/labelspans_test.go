package distributor

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster"
)

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
