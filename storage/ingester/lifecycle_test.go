package ingester

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

func pushUp(t *testing.T, c ingesterpb.IngesterClient, instance string, tv ...float64) {
	t.Helper()
	resp, err := c.Push(context.Background(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "up", "instance", instance), Samples: floats(tv...)},
	}})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
}

func TestRestartReplaysWAL(t *testing.T) {
	for _, tc := range []struct {
		name  string
		clean bool
	}{
		{name: "after Close", clean: true},
		{name: "after a crash", clean: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			ing, err := New(cfg, nil, prometheus.NewRegistry())
			require.NoError(t, err)
			h := serve(t, ing) // closes ing at the end of the test
			pushUp(t, h.client, "a", 1000, 1, 2000, 2)
			pushUp(t, h.client, "b", 1000, 3)

			reopen := cfg
			if tc.clean {
				require.NoError(t, ing.Close(context.Background()))
			} else {
				// A crash leaves the WAL as it is on disk while the process
				// runs: copy it from under the open tsdb.
				reopen.Path = t.TempDir()
				copyDir(t, cfg.Path, reopen.Path)
			}

			h2 := startIngester(t, reopen)
			require.NoError(t, h2.ing.Ready(context.Background()))
			got, _ := queryAll(t, h2.client, 0, 10_000, eq("__name__", "up"))
			require.Equal(t, map[string][]sample{
				`{__name__="up", instance="a"}`: {{T: 1000, F: 1}, {T: 2000, F: 2}},
				`{__name__="up", instance="b"}`: {{T: 1000, F: 3}},
			}, got)
			require.Equal(t, 2.0, metricValue(t, h2.reg, "prometheus_tsdb_head_series"))

			// Appending continues where the old process stopped.
			pushUp(t, h2.client, "a", 3000, 4)
		})
	}
}

func TestCloseDrainsInFlightPushes(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	ing, err := New(cfg, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	admitted := make(chan struct{})
	release := make(chan struct{})
	// The first push admitted waits for the test; others pass. Whether
	// the test already waits on admitted must not decide which push that
	// is: a select with a default let a push that arrived first through,
	// and the test then waited for ever.
	var first atomic.Bool
	ing.testHookPushAdmitted = func() {
		if first.CompareAndSwap(false, true) {
			admitted <- struct{}{}
			<-release
		}
	}
	h := serve(t, ing)

	inflight := make(chan error, 1)
	go func() {
		resp, err := h.client.Push(context.Background(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
			{Labels: lbls("__name__", "up", "instance", "inflight"), Samples: floats(1000, 1)},
		}})
		if err == nil && len(resp.Errors) > 0 {
			err = status.Error(codes.Internal, resp.Errors[0].Message)
		}
		inflight <- err
	}()
	<-admitted

	closed := make(chan error, 1)
	go func() { closed <- ing.Close(context.Background()) }()
	require.Eventually(t, func() bool { return ing.Ready(context.Background()) != nil }, 5*time.Second, time.Millisecond)

	// New calls are refused while the in-flight push holds Close back.
	_, err = h.client.Push(context.Background(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "up", "instance", "late"), Samples: floats(1000, 1)},
	}})
	require.Equal(t, codes.Unavailable, status.Code(err), err)
	_, err = h.client.LabelNames(context.Background(), &ingesterpb.LabelNamesRequest{EndMs: 1})
	require.Equal(t, codes.Unavailable, status.Code(err), err)
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v before the in-flight push finished", err)
	default:
	}

	close(release)
	require.NoError(t, <-inflight)
	require.NoError(t, <-closed)

	// The in-flight push was committed before the tsdb closed.
	h2 := startIngester(t, cfg)
	got, _ := queryAll(t, h2.client, 0, 10_000, eq("__name__", "up"))
	require.Equal(t, map[string][]sample{`{__name__="up", instance="inflight"}`: {{T: 1000, F: 1}}}, got)
}

func TestCloseTimesOut(t *testing.T) {
	ing, err := New(testConfig(t, t.TempDir()), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	// An admitted call that never finishes.
	require.NoError(t, ing.enter())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, ing.Close(ctx), context.DeadlineExceeded)
	ing.inflight.Done()
	// A second Close reports the first one's result.
	require.ErrorIs(t, ing.Close(context.Background()), context.DeadlineExceeded)
}

func TestMetrics(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	pushUp(t, h.client, "a", 1000, 1, 2000, 2)
	resp, err := h.client.Push(context.Background(), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "up", "instance", "a"), Samples: floats(1500, 7)},
	}})
	require.NoError(t, err)
	require.Len(t, resp.Errors, 1)

	require.Equal(t, 2.0, metricValue(t, h.reg, "pharos_ingester_samples_appended_total"))
	require.Equal(t, 2.0, metricValue(t, h.reg, `pharos_ingester_push_requests_total{outcome="ok"}`))
	require.Equal(t, 1.0, metricValue(t, h.reg, `pharos_ingester_samples_rejected_total{reason="out_of_order"}`))
	require.Equal(t, 1.0, metricValue(t, h.reg, "prometheus_tsdb_head_series"))
}

// metricValue finds one gathered sample by name and, optionally, {k="v"} labels.
func metricValue(t *testing.T, reg *prometheus.Registry, sel string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			id := mf.GetName()
			if len(m.Label) > 0 {
				id += "{"
				for k, l := range m.Label {
					if k > 0 {
						id += ","
					}
					id += l.GetName() + `="` + l.GetValue() + `"`
				}
				id += "}"
			}
			if id == sel || (mf.GetName() == sel && len(mf.Metric) == 1) {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s not found", sel)
	return 0
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if d.Name() == "lock" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	}))
}
