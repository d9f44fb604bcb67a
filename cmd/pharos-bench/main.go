// Command pharos-bench is Pharos's load harness: it remote-writes realistic
// series (1.0 or 2.0) and runs dashboard and rule queries against Pharos,
// and does the same against a prometheus tsdb in its own process, printing
// both side by side with their ratios.
//
//	pharos-bench -pharos bin/pharos -layouts allinone,rf3     # start local clusters
//	pharos-bench -target http://pharos:9090 -target.metrics http://ing-0:9090/metrics,...
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/pharos-tsdb/pharos/cmd/pharos-bench/bench"
)

func main() {
	var (
		cfg       bench.Config
		binary    = flag.String("pharos", "", "Path of a pharos binary: start -layouts locally and measure each in turn.")
		layouts   = flag.String("layouts", "allinone,rf3", "Local layouts to start with -pharos: allinone (RF 1), rf3 (3 ingesters, RF 3).")
		target    = flag.String("target", "", "Base URL of a running Pharos to measure instead of -pharos.")
		metrics   = flag.String("target.metrics", "", "Comma-separated /metrics URLs of the target's processes (default: -target's own).")
		replicas  = flag.Int("target.replicas", 1, "Replication factor of -target, to report memory per replica.")
		skipLocal = flag.Bool("local.skip", false, "Do not measure the in-process tsdb.")
		dataDir   = flag.String("data-dir", "", "Directory for the local tsdb and spawned clusters (default: a temporary one, removed after).")
	)
	cfg.RegisterFlags(flag.CommandLine)
	flag.Parse()
	if err := cfg.Validate(); err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "pharos-bench-")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 2 * time.Minute}

	// Each target first, then the local tsdb fed the same rounds: the same
	// samples and series, so rates, memory and query times compare like
	// with like.
	var pairs []bench.Pair
	measure := func(t *bench.Target) error {
		r, err := bench.RunTarget(ctx, cfg, t, client)
		if err != nil {
			return err
		}
		p := bench.Pair{Target: r}
		if !*skipLocal {
			fmt.Fprintln(os.Stderr, "pharos-bench: local tsdb, same rounds as", t.Name)
			lc := cfg
			lc.MaxRounds = max(1, r.Write.Rounds)
			lc.Duration = 10 * cfg.Duration
			ldir := filepath.Join(dir, "local-tsdb")
			if p.Local, err = bench.RunLocal(ctx, lc, ldir, r.T0); err != nil {
				return err
			}
			p.Local.Name = "local tsdb for " + t.Name
			_ = os.RemoveAll(ldir)
		}
		pairs = append(pairs, p)
		return nil
	}
	switch {
	case *target != "":
		t := &bench.Target{Name: *target, Base: strings.TrimSuffix(*target, "/"), Replicas: *replicas}
		t.Metrics = []string{t.Base + "/metrics"}
		if *metrics != "" {
			t.Metrics = strings.Split(*metrics, ",")
		}
		if err := measure(t); err != nil {
			fatal(err)
		}
	case *binary != "":
		for _, layout := range strings.Split(*layouts, ",") {
			fmt.Fprintln(os.Stderr, "pharos-bench:", layout)
			c, err := bench.Spawn(ctx, *binary, layout, filepath.Join(dir, layout), client, bench.StartMs(cfg)-1)
			if err != nil {
				fatal(err)
			}
			err = measure(&c.Target)
			if stopErr := c.Stop(); stopErr != nil {
				fmt.Fprintln(os.Stderr, "pharos-bench: stop", layout+":", stopErr)
			}
			if err != nil {
				fatal(err)
			}
			// Stopped cleanly, the ingesters' directories are closed tsdbs.
			d, err := bench.MeasureDisk(filepath.Join(dir, layout), c.TSDBDirs...)
			if err != nil {
				fatal(fmt.Errorf("%s: measure disk: %w", layout, err))
			}
			pairs[len(pairs)-1].Target.Disk = &d
			_ = os.RemoveAll(filepath.Join(dir, layout))
		}
	default:
		fatal(fmt.Errorf("give -pharos or -target"))
	}
	bench.Report(os.Stdout, cfg, pairs)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "pharos-bench:", err)
	os.Exit(1)
}
