package querier_test

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// skippedSegment names a part of an upstream script (from one `clear` to the
// next) that cannot pass through our path yet, and why.
type skippedSegment struct {
	file     string
	contains string // a line of the segment
	reason   string
}

// skipped is every upstream case this test does not run. Keep it short and
// keep the reasons true: each entry is a difference from Prometheus.
var skipped = []skippedSegment{
	{
		file:   "start_timestamps.test",
		reason: "the Push protocol carries one start timestamp per series (TimeSeries.start_timestamp_ms), the scripts load one per sample",
	},
}

// promqltestDir is the directory of the upstream scripts: next to the
// promqltest package's source in the module cache.
func promqltestDir(t *testing.T) string {
	t.Helper()
	file, _ := runtime.FuncForPC(reflect.ValueOf(promqltest.RunTestWithStorage).Pointer()).FileLine(0)
	dir := filepath.Join(filepath.Dir(file), "testdata")
	_, err := os.Stat(dir)
	require.NoError(t, err, "upstream promqltest scripts not found (built with -trimpath?)")
	return dir
}

// TestPromQLConformance runs the PromQL scripts that ship with Prometheus
// (what promqltest.RunBuiltinTestsWithStorage runs) against the distributed
// path: appends go distributor → gRPC → ingester, queries go gRPC
// QueryStream → Queryable → engine. Every `clear` starts a fresh ingester, so
// no case sees another's data. The cases in skipped are blanked out, line
// numbers kept.
func TestPromQLConformance(t *testing.T) {
	runConformance(t, false, func(tb testing.TB) storage.Storage { return newClusterStorage(tb, 1) })
}

// TestPromQLConformanceRF3 runs the same scripts on three ingesters in a
// ring with RF 3: the distributor writes every series to all three and the
// querier reads through the ring, so every answer is the de-duplicated
// merge of three replicas. Each `clear` starts three fresh ingesters.
func TestPromQLConformanceRF3(t *testing.T) {
	if testing.Short() {
		t.Skip("the replicated variant triples the ingesters; -short runs only the single-ingester one")
	}
	runConformance(t, true, func(tb testing.TB) storage.Storage { return newRingStorage(tb, 3) })
}

// runConformance runs every upstream script on the storages newStorage
// makes; parallel runs the scripts at once (each has its own storages, and
// opening tsdbs, most of the variant's time, waits on the disk).
func runConformance(t *testing.T, parallel bool, newStorage func(testing.TB) storage.Storage) {
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, promqltest.DefaultMaxSamplesPerQuery)
	files, err := filepath.Glob(filepath.Join(promqltestDir(t), "*.test"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			script := string(b)
			for _, s := range skipped {
				if s.file != name {
					continue
				}
				if s.contains == "" {
					t.Skip(s.reason)
				}
				var found bool
				script, found = blankSegment(script, s.contains)
				require.True(t, found, "skipped segment %q no longer in %s: remove it from the list", s.contains, name)
				t.Logf("skipping the segment with %q: %s", s.contains, s.reason)
			}
			promqltest.RunTestWithStorage(t, script, engine, newStorage)
		})
	}
}

// blankSegment empties the lines of the segment (between `clear` commands)
// that contains line, so that the rest keeps its line numbers.
func blankSegment(script, line string) (string, bool) {
	lines := strings.Split(script, "\n")
	start, found := 0, false
	for i, l := range lines {
		if strings.TrimSpace(l) == "clear" {
			if found {
				blank(lines[start:i])
				return strings.Join(lines, "\n"), true
			}
			start = i + 1
			continue
		}
		if strings.TrimSpace(l) == strings.TrimSpace(line) {
			found = true
		}
	}
	if found {
		blank(lines[start:])
	}
	return strings.Join(lines, "\n"), found
}

func blank(lines []string) {
	for i := range lines {
		lines[i] = ""
	}
}
