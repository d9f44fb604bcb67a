package distributor

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The tsdb and gRPC leave these behind for a moment after Close.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

func pushSeries(ls ...string) *ingesterpb.TimeSeries {
	ts := &ingesterpb.TimeSeries{Samples: []*ingesterpb.Sample{{TimestampMs: time.Now().UnixMilli(), Value: 1}}}
	for i := 0; i < len(ls); i += 2 {
		ts.Labels = append(ts.Labels, &ingesterpb.LabelPair{Name: []byte(ls[i]), Value: []byte(ls[i+1])})
	}
	return ts
}

func TestPushValidation(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.MaxLabelNamesPerSeries = 4
		c.MaxLabelNameLength = 10
		c.MaxLabelValueLength = 10
	})
	tests := []struct {
		name       string
		series     *ingesterpb.TimeSeries
		wantReason string
		wantErr    string
	}{
		{"valid", pushSeries("__name__", "ok", "a", "b"), "", ""},
		{"utf8 names are valid", pushSeries("__name__", "ok.ü", "lä bel", "b"), "", ""},
		{"too many labels", pushSeries("__name__", "m", "a", "1", "b", "2", "c", "3", "d", "4"), ReasonMaxLabelNames,
			`series has 5 labels, more than the limit of 4 (limits.max_label_names_per_series) for series {__name__="m", a="1", b="2", c="3", d="4"}`},
		{"missing name", pushSeries("a", "1"), ReasonMissingMetricName, `missing metric name (__name__ label) for series {a="1"}`},
		{"empty name is missing", pushSeries("__name__", "", "a", "1"), ReasonMissingMetricName, `missing metric name (__name__ label) for series {a="1"}`},
		{"invalid metric name", pushSeries("__name__", "\xff"), ReasonInvalidMetricName, `invalid metric name "\xff" (not valid UTF-8) for series {__name__="\xff"}`},
		{"invalid label name", pushSeries("__name__", "m", "\xfe", "v"), ReasonInvalidLabel, `invalid label name "\xfe" for series {__name__="m", "\xfe"="v"}`},
		{"label name too long", pushSeries("__name__", "m", "abcdefghijk", "v"), ReasonLabelNameTooLong,
			`label name "abcdefghijk" is longer than the limit of 10 bytes (11 bytes, limits.max_label_name_length) for series {__name__="m", abcdefghijk="v"}`},
		{"label value too long", pushSeries("__name__", "m", "a", "abcdefghijk"), ReasonLabelValueTooLong,
			`value of label "a" is longer than the limit of 10 bytes (11 bytes, limits.max_label_value_length) for series {__name__="m", a="abcdefghijk"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(e.dist.discarded.WithLabelValues(tc.wantReason, "anonymous"))
			res, err := e.dist.Push(t.Context(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{tc.series}})
			require.NoError(t, err)
			if tc.wantReason == "" {
				require.Empty(t, res.Rejected)
				require.Equal(t, uint64(1), res.SamplesWritten)
				return
			}
			require.Len(t, res.Rejected, 1)
			require.Equal(t, tc.wantReason, res.Rejected[0].Reason)
			require.Equal(t, tc.wantErr, res.Rejected[0].Error())
			require.Zero(t, res.SamplesWritten)
			require.Equal(t, before+1, testutil.ToFloat64(e.dist.discarded.WithLabelValues(tc.wantReason, "anonymous")))
		})
	}
}

func TestPushNormalisesLabels(t *testing.T) {
	e := newEnv(t, nil)
	ts := pushSeries("zone", "z", "__name__", "norm", "empty", "", "a", "1")
	res, err := e.dist.Push(t.Context(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{ts}})
	require.NoError(t, err)
	require.Empty(t, res.Rejected)
	require.Equal(t, `{__name__="norm", a="1", zone="z"}`, FormatSeries(ts.Labels))
	require.Equal(t, 1, e.samplesOf(t, "norm"))
}

func TestAppendableV2(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UnixMilli()
	ctx := tenant.With(context.Background(), tenant.DefaultTenant)

	app := e.dist.AppendableV2().AppenderV2(ctx)
	up := labels.FromStrings("__name__", "up", "job", "node")
	ref, err := app.Append(0, up, 0, now-1000, 1, nil, nil, storage.AOptions{
		Metadata:  metadata.Metadata{Type: model.MetricTypeGauge, Help: "is it up"},
		Exemplars: []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "t1"), Value: 1, Ts: now - 1000, HasTs: true}},
	})
	require.NoError(t, err)
	require.NotZero(t, ref)
	ref2, err := app.Append(ref, up, 0, now, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.Equal(t, ref, ref2, "references are stable")
	_, err = app.Append(0, labels.FromStrings("__name__", "hist"), 0, now, 0, tsdbutil.GenerateTestHistogram(1), nil, storage.AOptions{})
	require.NoError(t, err)
	_, err = app.Append(0, labels.FromStrings("__name__", "fhist"), 0, now, 0, nil, tsdbutil.GenerateTestFloatHistogram(1), storage.AOptions{})
	require.NoError(t, err)
	// A bad series is dropped and counted, not a Commit error.
	_, err = app.Append(0, labels.FromStrings("job", "nameless"), 0, now, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())

	require.Equal(t, 2, e.samplesOf(t, "up"))
	require.Equal(t, 1, e.samplesOf(t, "hist"))
	require.Equal(t, 1, e.samplesOf(t, "fhist"))
	require.Equal(t, 1.0, testutil.ToFloat64(e.dist.discarded.WithLabelValues(ReasonMissingMetricName, "anonymous")))
	md, err := e.client.MetricsMetadata(ctx, &ingesterpb.MetricsMetadataRequest{Metric: "up"})
	require.NoError(t, err)
	require.Len(t, md.Metadata, 1)
	require.Equal(t, "is it up", md.Metadata[0].Help)
	require.Equal(t, ingesterpb.MetricMetadata_GAUGE, md.Metadata[0].Type)

	// Rollback sends nothing.
	app = e.dist.AppendableV2().AppenderV2(ctx)
	_, err = app.Append(0, labels.FromStrings("__name__", "rolled_back"), 0, now, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Rollback())
	require.NoError(t, app.Commit())
	require.NotContains(t, e.metricNames(t), "rolled_back")

	// Appenders can be used concurrently, one per goroutine.
	done := make(chan error)
	for g := range 4 {
		go func() {
			app := e.dist.AppendableV2().AppenderV2(ctx)
			for i := range 50 {
				if _, err := app.Append(0, labels.FromStrings("__name__", "conc", "g", string(rune('a'+g)), "i", strings.Repeat("x", i)), 0, now, 1, nil, nil, storage.AOptions{}); err != nil {
					done <- err
					return
				}
			}
			done <- app.Commit()
		}()
	}
	for range 4 {
		require.NoError(t, <-done)
	}
	require.Equal(t, 200, e.samplesOf(t, "conc"))
}

func TestConfig(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, c.Validate())
	require.Zero(t, c.MaxLabelNamesPerSeries, "deprecated: the limits section has it")
	require.Equal(t, model.Duration(10*time.Minute), c.CreationGracePeriod)
	require.Zero(t, c.PastGracePeriod)
	require.NoError(t, fs.Parse([]string{"-distributor.past-grace-period=1h", "-distributor.max-request-body-size=1024"}))
	require.Equal(t, model.Duration(time.Hour), c.PastGracePeriod)
	require.Equal(t, int64(1024), c.MaxRequestBodySize)

	for _, mod := range []func(*Config){
		func(c *Config) { c.MaxRequestBodySize = 0 },
		func(c *Config) { c.MaxLabelNamesPerSeries = -1 },
		func(c *Config) { c.CreationGracePeriod = 0 },
		func(c *Config) { c.PastGracePeriod = -1 },
		func(c *Config) { c.RemoteTimeout = 0 },
	} {
		bad := c
		mod(&bad)
		require.Error(t, bad.Validate())
	}
}

func TestTooManyInflight(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxInflightPushRequests = 1 })
	e.dist.inflight <- struct{}{} // one push in flight
	_, err := e.dist.Push(t.Context(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{pushSeries("__name__", "x")}})
	require.ErrorIs(t, err, ErrTooManyInflight)
	require.Equal(t, 429, httpStatus(err))
	<-e.dist.inflight
	_, err = e.dist.Push(t.Context(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{pushSeries("__name__", "x")}})
	require.NoError(t, err)
}

func TestQuorum(t *testing.T) {
	// Three ingesters, every series to each: a write needs two acks.
	var clients StaticIngesters
	for range 3 {
		_, addr := startIngester(t, t.TempDir())
		c, err := ingesterclient.Dial(addr, clientConfig())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		clients = append(clients, c)
	}
	d, err := New(defaultConfig(), clients, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	push := func() error {
		_, err := d.Push(t.Context(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{pushSeries("__name__", "q")}})
		return err
	}
	require.NoError(t, push())

	require.NoError(t, clients[0].(*ingesterclient.Client).Close())
	require.NoError(t, push(), "one replica down of three still makes quorum")

	require.NoError(t, clients[1].(*ingesterclient.Client).Close())
	err = push()
	require.ErrorContains(t, err, "write quorum not reached (1 of 3 acks, need 2)")
	require.Equal(t, 503, httpStatus(err))
}
