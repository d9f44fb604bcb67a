package app

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
)

// The cluster benchmarks run whole Pharos processes in this test process on
// loopback, so CPU is the process's: client, distributor and every ingester.
// Run them with -benchtime 1x; each iteration is a full ingest.
const (
	benchSeries   = 20000
	benchRounds   = 10 // samples per series
	benchBatch    = 2000
	benchSenders  = 4
	benchInterval = 15_000 // ms between a series' samples, as a 15s scrape
)

// benchTimeSeries is n series shaped like node-exporter targets (metric
// name, job, instance, a per-series label), each with one sample at ts.
func benchTimeSeries(n int, ts int64) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, n)
	for i := range out {
		out[i] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "m"},
				{Name: "cpu", Value: strconv.Itoa(i % 16)},
				{Name: "instance", Value: fmt.Sprintf("host-%d:9100", i/16)},
				{Name: "job", Value: "job-" + strconv.Itoa(i%10)},
				{Name: "mode", Value: "m" + strconv.Itoa(i/16%8)},
			},
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(i) + float64(ts)/1000}},
		}
	}
	return out
}

// encodeWrites is every remote-write body, snappy-compressed, for rounds
// samples of n series from t0 on.
func encodeWrites(tb testing.TB, n, rounds int, t0 int64) [][]byte {
	tb.Helper()
	var bodies [][]byte
	for r := range rounds {
		series := benchTimeSeries(n, t0+int64(r)*benchInterval)
		for i := 0; i < n; i += benchBatch {
			raw, err := (&prompb.WriteRequest{Timeseries: series[i:min(i+benchBatch, n)]}).Marshal()
			require.NoError(tb, err)
			bodies = append(bodies, snappy.Encode(nil, raw))
		}
	}
	return bodies
}

// sendWrites posts bodies to base with benchSenders concurrent senders,
// round by round so each series' samples stay in order.
func sendWrites(tb testing.TB, base string, bodies [][]byte, perRound int) {
	tb.Helper()
	for r := 0; r < len(bodies); r += perRound {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		ch := make(chan []byte)
		for range benchSenders {
			wg.Go(func() {
				for body := range ch {
					if err := postWrite(base, body); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}
			})
		}
		for _, b := range bodies[r:min(r+perRound, len(bodies))] {
			ch <- b
		}
		close(ch)
		wg.Wait()
		require.Empty(tb, errs)
	}
}

func postWrite(base string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("remote write: status %d", resp.StatusCode)
	}
	return nil
}

// cpuTime is the CPU time (user + system) this process used so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkClusterIngest remote-writes the same series to an all-in-one
// process (RF 1) and to a 3-ingester RF 3 cluster; samples/s and CPU
// seconds per million samples of the two give the cost of replication.
func BenchmarkClusterIngest(b *testing.B) {
	cpuPerM := map[string]float64{}
	for _, bc := range []struct {
		name  string
		setup func(b *testing.B) string
	}{
		{"rf1_allinone", func(b *testing.B) string {
			a, _ := startApp(b, "")
			return "http://" + a.HTTPAddr()
		}},
		{"rf3_3ingesters", func(b *testing.B) string {
			return newTestCluster(b, 3, []string{"", "", ""}).base()
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			base := bc.setup(b)
			t0 := time.Now().Add(-time.Hour).UnixMilli()
			perRound := (benchSeries + benchBatch - 1) / benchBatch
			var wall, cpu time.Duration
			samples := 0
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				bodies := encodeWrites(b, benchSeries, benchRounds, t0+int64(i*benchRounds)*benchInterval)
				runtime.GC()
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime(b)
				sendWrites(b, base, bodies, perRound)
				wall += time.Since(start)
				cpu += cpuTime(b) - cpu0
				samples += benchSeries * benchRounds
			}
			b.ReportMetric(float64(samples)/wall.Seconds(), "samples/s")
			b.ReportMetric(cpu.Seconds()/(float64(samples)/1e6), "cpu-s/Msamples")
			cpuPerM[bc.name] = cpu.Seconds() / (float64(samples) / 1e6)
		})
	}
	if one, three := cpuPerM["rf1_allinone"], cpuPerM["rf3_3ingesters"]; one > 0 && three > 0 {
		b.Logf("CPU per sample, RF 3 cluster / all-in-one RF 1: %.2f", three/one)
	}
}

// BenchmarkClusterQuery runs the same range-vector aggregation against a
// single node and through the fan-out and de-duplication of a 3-ingester
// RF 3 cluster.
func BenchmarkClusterQuery(b *testing.B) {
	const (
		nSeries = 2000
		rounds  = 40 // 10 minutes of 15s samples
		q       = `sum by (job) (rate(m[5m]))`
	)
	for _, bc := range []struct {
		name  string
		setup func(b *testing.B) string
	}{
		{"single_node", func(b *testing.B) string {
			a, _ := startApp(b, "")
			return "http://" + a.HTTPAddr()
		}},
		{"rf3_3ingesters", func(b *testing.B) string {
			return newTestCluster(b, 3, []string{"", "", ""}).base()
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			base := bc.setup(b)
			t0 := time.Now().Add(-time.Hour).UnixMilli()
			sendWrites(b, base, encodeWrites(b, nSeries, rounds, t0), (nSeries+benchBatch-1)/benchBatch)
			end := t0 + (rounds-1)*benchInterval
			code, r := query(b, base, q, end)
			require.Equal(b, http.StatusOK, code, r.Error)
			require.Contains(b, string(r.Data), `"job-9"`)
			b.ResetTimer()
			for b.Loop() {
				if code, r := query(b, base, q, end); code != http.StatusOK {
					b.Fatal(r.Error)
				}
			}
		})
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC() // the second pass frees what sync.Pools released in the first
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkRAMPerSeries compares the heap an ingester replica spends per
// active series with a plain tsdb head holding the same series and samples.
// The cluster is 3 ingesters at RF 3, so every one holds every series; its
// whole growth (front included) is divided by 3 × series.
func BenchmarkRAMPerSeries(b *testing.B) {
	const (
		nSeries = 20000
		rounds  = 10
	)
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	for range b.N {
		// A plain tsdb head.
		db, err := tsdb.Open(b.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
		require.NoError(b, err)
		before := heapInUse()
		for r := range rounds {
			app := db.Appender(b.Context())
			for _, s := range benchTimeSeries(nSeries, t0+int64(r)*benchInterval) {
				sb := labels.NewScratchBuilder(len(s.Labels))
				for _, l := range s.Labels {
					sb.Add(l.Name, l.Value)
				}
				_, err := app.Append(0, sb.Labels(), s.Samples[0].Timestamp, s.Samples[0].Value)
				require.NoError(b, err)
			}
			require.NoError(b, app.Commit())
		}
		plain := float64(heapInUse()-before) / nSeries
		require.Equal(b, uint64(nSeries), db.Head().NumSeries())
		require.NoError(b, db.Close())

		// The cluster, fed the same series through remote write.
		c := newTestCluster(b, 3, []string{"", "", ""})
		bodies := encodeWrites(b, nSeries, rounds, t0)
		before = heapInUse()
		sendWrites(b, c.base(), bodies, (nSeries+benchBatch-1)/benchBatch)
		after := heapInUse()
		runtime.KeepAlive(bodies)
		for _, ing := range c.ings {
			require.Len(b, labelValues(b, ing.grpcAddr, "instance"), nSeries/16)
		}
		perReplica := float64(int64(after)-int64(before)) / (3 * nSeries)
		b.ReportMetric(perReplica, "bytes/series")
		b.ReportMetric(plain, "tsdb-bytes/series")
		b.ReportMetric(perReplica/plain, "ratio")
		for _, ing := range c.ings {
			c.stop(ing)
		}
		c.stop(c.front)
	}
}
