package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
)

// Scrape benchmark sizes. The defaults give the sample rate of 1000
// targets × 1000 series at 15s (66,667 samples/s) with 200 targets at 3s,
// so a run takes seconds; PHAROS_BENCH_SCRAPE="targets,series,interval"
// (for example "1000,1000,15s") runs the full size.
func scrapeBenchSize(tb testing.TB) (targets, series int, interval time.Duration) {
	targets, series, interval = 200, 1000, 3*time.Second
	if s := os.Getenv("PHAROS_BENCH_SCRAPE"); s != "" {
		p := strings.Split(s, ",")
		require.Len(tb, p, 3)
		var err error
		targets, err = strconv.Atoi(p[0])
		require.NoError(tb, err)
		series, err = strconv.Atoi(p[1])
		require.NoError(tb, err)
		interval, err = time.ParseDuration(p[2])
		require.NoError(tb, err)
	}
	return targets, series, interval
}

// benchExporters starts n exporters serving series node-exporter-shaped
// series each, and returns their addresses and a count of the scrapes
// they served, all together.
func benchExporters(tb testing.TB, n, series int) ([]string, *atomic.Int64) {
	var b strings.Builder
	b.WriteString("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n# TYPE node_cpu_seconds_total counter\n")
	for i := range series {
		fmt.Fprintf(&b, "node_cpu_seconds_total{cpu=\"%d\",mode=\"m%d\"} %d.25\n", i/8, i%8, 1000+i)
	}
	body := []byte(b.String())
	addrs := make([]string, n)
	scrapes := new(atomic.Int64)
	for i := range addrs {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			scrapes.Add(1)
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = w.Write(body)
		}))
		tb.Cleanup(srv.Close)
		addrs[i] = strings.TrimPrefix(srv.URL, "http://")
	}
	return addrs, scrapes
}

func benchScrapeYAML(addrs []string, interval time.Duration) string {
	return fmt.Sprintf("global: {scrape_interval: %s, scrape_timeout: %s}\nscrape_configs:\n  - job_name: node\n    static_configs: [{targets: [%s]}]\n",
		interval, min(interval, 10*time.Second), `"`+strings.Join(addrs, `","`)+`"`)
}

// measureScrape waits until each of the targets has been scraped about
// once (their loops have started), then reports the samples appended while
// the exporters serve rounds more scrapes of every target, and the process
// CPU that took. scrapes counts the exporters' answers.
func measureScrape(b *testing.B, reg prometheus.Gatherer, scrapes *atomic.Int64, targets int, interval time.Duration, rounds int) {
	scraped := func() float64 {
		mfs, err := reg.Gather()
		require.NoError(b, err)
		total := 0.0
		for _, mf := range mfs {
			if mf.GetName() == "prometheus_tsdb_head_samples_appended_total" {
				for _, m := range mf.GetMetric() {
					total += m.GetCounter().GetValue()
				}
			}
		}
		return total
	}
	served := func(n int64) func() bool { return func() bool { return scrapes.Load() >= n } }
	require.Eventually(b, served(scrapes.Load()+int64(targets)), 10*interval, interval/100, "every target has started its loop")
	s0, c0, t0, n0 := scraped(), cpuTime(b), time.Now(), scrapes.Load()
	require.Eventually(b, served(n0+int64(rounds*targets)), time.Duration(4*rounds)*interval, interval/100, "the rounds of scrapes to measure")
	s1, c1, el := scraped(), cpuTime(b), time.Since(t0)
	samples := s1 - s0
	require.Positive(b, samples)
	b.ReportMetric(samples/el.Seconds(), "samples/s")
	b.ReportMetric((c1-c0).Seconds()/(samples/1e6), "cpu-s/Msamples")
	b.ReportMetric((c1-c0).Seconds()/el.Seconds(), "cores")
}

// BenchmarkScrapeIngest compares, in one run, scraping through Pharos
// (scrape manager → distributor → gRPC → ingester TSDB, all-in-one) with
// Prometheus's own scrape manager appending to a local TSDB. CPU is the
// whole process's, exporters included, in both cases. Run with
// -benchtime 1x.
func BenchmarkScrapeIngest(b *testing.B) {
	targets, series, interval := scrapeBenchSize(b)
	addrs, scrapes := benchExporters(b, targets, series)
	const rounds = 5
	b.Run("upstream", func(b *testing.B) {
		for range b.N {
			reg := prometheus.NewRegistry()
			db, err := tsdb.Open(b.TempDir(), promslog.NewNopLogger(), reg, tsdb.DefaultOptions(), nil)
			require.NoError(b, err)
			cfg, err := promconfig.Load(benchScrapeYAML(addrs, interval), promslog.NewNopLogger())
			require.NoError(b, err)
			m, err := scrape.NewManager(&scrape.Options{DiscoveryReloadOnStartup: true, AppendMetadata: true}, promslog.NewNopLogger(), nil, nil, db, reg)
			require.NoError(b, err)
			require.NoError(b, m.ApplyConfig(cfg))
			tsets := make(chan map[string][]*targetgroup.Group, 1)
			go func() { _ = m.Run(tsets) }()
			g := &targetgroup.Group{Source: "0"}
			for _, a := range addrs {
				g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(a)})
			}
			tsets <- map[string][]*targetgroup.Group{"node": {g}}
			measureScrape(b, reg, scrapes, targets, interval, rounds)
			m.Stop()
			require.NoError(b, db.Close())
		}
	})
	b.Run("pharos", func(b *testing.B) {
		for range b.N {
			dir := b.TempDir()
			file := filepath.Join(dir, "pharos.yml")
			var y strings.Builder
			y.WriteString("scrape:\n")
			for _, l := range strings.SplitAfter(benchScrapeYAML(addrs, interval), "\n") {
				if l != "" {
					y.WriteString("  " + l)
				}
			}
			require.NoError(b, os.WriteFile(file, []byte(y.String()), 0o644))
			cfg, err := Load([]string{"-config.file=" + file, "-server.http-listen=127.0.0.1:0", "-server.grpc-listen=127.0.0.1:0",
				"-storage.path=" + filepath.Join(dir, "data")})
			require.NoError(b, err)
			a, err := New(cfg, slog.New(slog.DiscardHandler))
			require.NoError(b, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			require.Eventually(b, func() bool { return httpStatusOf("http://"+a.HTTPAddr()+"/-/ready") == http.StatusOK }, time.Minute, 10*time.Millisecond)
			measureScrape(b, a.Registry(), scrapes, targets, interval, rounds)
			cancel()
			require.NoError(b, <-done)
		}
	})
}
