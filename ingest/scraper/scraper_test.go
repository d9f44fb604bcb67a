package scraper

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// recorder is an AppendableV2 that keeps every committed float sample,
// stale markers included, which a TSDB might reject as out of order.
type recorder struct {
	mu      sync.Mutex
	samples map[string][]float64 // by instance label, `up` only
	stale   map[string]int       // stale markers of any series, by instance
}

func newRecorder() *recorder {
	return &recorder{samples: map[string][]float64{}, stale: map[string]int{}}
}

func (r *recorder) AppenderV2(context.Context) storage.AppenderV2 { return &recAppender{r: r} }

func (r *recorder) upCount(instance string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.samples[instance])
}

func (r *recorder) staleCount(instance string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stale[instance]
}

type recSample struct {
	ls labels.Labels
	v  float64
}

type recAppender struct {
	r   *recorder
	buf []recSample
}

func (a *recAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, _ int64, v float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	a.buf = append(a.buf, recSample{ls, v})
	return 0, nil
}

func (a *recAppender) Commit() error {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	for _, s := range a.buf {
		inst := s.ls.Get("instance")
		if value.IsStaleNaN(s.v) {
			a.r.stale[inst]++
			continue
		}
		if s.ls.Get("__name__") == "up" {
			a.r.samples[inst] = append(a.r.samples[inst], s.v)
		}
	}
	a.buf = nil
	return nil
}

func (a *recAppender) Rollback() error { a.buf = nil; return nil }

// flipSharding owns every key except those of the instances in away, and
// signals a change whenever away changes.
type flipSharding struct {
	mu   sync.Mutex
	away map[uint32]bool
	ch   chan struct{}
}

func (f *flipSharding) Owns() func(uint32) bool {
	f.mu.Lock()
	away := make(map[uint32]bool, len(f.away))
	for k, v := range f.away {
		away[k] = v
	}
	f.mu.Unlock()
	return func(k uint32) bool { return !away[k] }
}

func (f *flipSharding) Changes(context.Context) <-chan struct{} { return f.ch }

func (f *flipSharding) giveAway(key uint32) {
	f.mu.Lock()
	f.away[key] = true
	f.mu.Unlock()
	f.ch <- struct{}{}
}

// exporter serves one gauge and stores the time of its latest scrape
// (Unix nanoseconds) in last.
func exporter(t *testing.T, last *atomic.Int64) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		last.Store(time.Now().UnixNano())
		fmt.Fprintln(w, "# TYPE node_load1 gauge\nnode_load1 0.5")
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func writeSD(t *testing.T, path string, targets ...string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(`[{"targets": ["`+strings.Join(targets, `","`)+`"]}]`), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// TestHandOffWritesNoStalenessMarkers runs the upstream scrape manager
// over two targets: one is handed to another scraper while file_sd still
// lists it, the other is removed from file_sd. Only the removed one may
// get staleness markers.
func TestHandOffWritesNoStalenessMarkers(t *testing.T) {
	var lastA, lastB atomic.Int64
	a, b := exporter(t, &lastA), exporter(t, &lastB)
	sd := filepath.Join(t.TempDir(), "targets.json")
	writeSD(t, sd, a, b)
	cfg, err := promconfig.Load(`
global: {scrape_interval: 100ms, scrape_timeout: 100ms}
scrape_configs:
  - job_name: node
    file_sd_configs: [{files: ["`+sd+`"], refresh_interval: 100ms}]
`, promslog.NewNopLogger())
	require.NoError(t, err)

	rec := newRecorder()
	sh := &flipSharding{away: map[uint32]bool{}, ch: make(chan struct{}, 1)}
	s, err := New(Options{Appendable: rec, Sharding: sh, InstanceID: "s1", ReloadInterval: 50 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	require.NoError(t, s.ApplyConfig(cfg))
	s.Run()
	defer s.Stop()

	require.Eventually(t, func() bool { return rec.upCount(a) >= 3 && rec.upCount(b) >= 3 }, 10*time.Second, 10*time.Millisecond)

	// Hand a off: its key as the filter computes it (file_sd's meta labels
	// do not survive relabelling, so they do not matter).
	p := prepare(map[string][]*targetgroup.Group{"node": {{Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(a)}}}}}, s.configs())
	sh.giveAway(p.refs["node"][0][0].key)
	// And remove b from discovery.
	writeSD(t, sd, a)

	// Both stop being scraped: neither has been for 3 intervals...
	quiet := func(last *atomic.Int64) bool { return time.Since(time.Unix(0, last.Load())) > 300*time.Millisecond }
	require.Eventually(t, func() bool { return quiet(&lastA) && quiet(&lastB) }, 10*time.Second, 10*time.Millisecond)
	// ...b gets its markers after two intervals, a never does: not in the
	// next 5 intervals, by when they would have been written (2.1
	// intervals after its loop stopped).
	require.Eventually(t, func() bool { return rec.staleCount(b) > 0 }, 10*time.Second, 10*time.Millisecond)
	require.Never(t, func() bool { return rec.staleCount(a) > 0 }, 500*time.Millisecond, 10*time.Millisecond,
		"a handed-off target gets no staleness markers")
}
