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
	"strconv"
	"strings"
	"time"

	"github.com/pharos-tsdb/pharos/cmd/pharos-bench/bench"
)

func main() {
	var (
		cfg        bench.Config
		binary     = flag.String("pharos", "", "Path of a pharos binary: start -layouts locally and measure each in turn.")
		layouts    = flag.String("layouts", "allinone,rf3", "Local layouts to start with -pharos: allinone (RF 1), rf3 (3 ingesters, RF 3).")
		target     = flag.String("target", "", "Base URL of a running Pharos to measure instead of -pharos.")
		metrics    = flag.String("target.metrics", "", "Comma-separated /metrics URLs of the target's processes (default: -target's own).")
		replicas   = flag.Int("target.replicas", 1, "Replication factor of -target, to report memory per replica.")
		skipLocal  = flag.Bool("local.skip", false, "Do not measure the in-process tsdb.")
		dataDir    = flag.String("data-dir", "", "Directory for the local tsdb and spawned clusters (default: a temporary one, removed after).")
		shardsFlag = flag.String("query.shards", "2,4", "With -pharos: after the run, restart each layout on its data with query sharding at each of these shard counts (and 0) and time the range queries; empty skips.")
		extraArgs  = flag.String("pharos.args", "", "With -pharos: extra flags for every spawned process, space-separated (e.g. -ingester.client.grpc-compression=s2).")
		cacheCheck = flag.Bool("query.cache-check", true, "Time a step-aligned dashboard query through the results cache cold and warm, then write one more round and check the cached answer sees it (with -pharos: after a restart with the cache on).")
	)
	cfg.RegisterFlags(flag.CommandLine)
	flag.Parse()
	if err := cfg.Validate(); err != nil {
		fatal(err)
	}
	var shards []int
	for _, f := range strings.Split(*shardsFlag, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			fatal(fmt.Errorf("-query.shards: %q is not a shard count of at least 2", f))
		}
		shards = append(shards, n)
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

	// The local tsdb fed the same rounds as target r: the same samples and
	// series, so rates, memory and query times compare like with like.
	local := func(r *bench.Result) (*bench.Result, error) {
		if *skipLocal {
			return nil, nil
		}
		fmt.Fprintln(os.Stderr, "pharos-bench: local tsdb, same rounds as", r.Name)
		lc := cfg
		lc.MaxRounds = max(1, r.Write.Rounds)
		lc.Duration = 10 * cfg.Duration
		ldir := filepath.Join(dir, "local-tsdb")
		l, err := bench.RunLocal(ctx, lc, ldir, r.T0)
		if err != nil {
			return nil, fmt.Errorf("local tsdb: %w", err)
		}
		l.Name = "local tsdb for " + r.Name
		_ = os.RemoveAll(ldir)
		return l, nil
	}
	var pairs []bench.Pair
	switch {
	case *target != "":
		t := &bench.Target{Name: *target, Base: strings.TrimSuffix(*target, "/"), Replicas: *replicas}
		t.Metrics = []string{t.Base + "/metrics"}
		if *metrics != "" {
			t.Metrics = strings.Split(*metrics, ",")
		}
		r, err := bench.RunTarget(ctx, cfg, t, client)
		if err != nil {
			fatal(err)
		}
		r.QueryNote = "as the target is configured"
		if *cacheCheck {
			if r.Cache, err = bench.CacheCheck(ctx, cfg, t, client, r); err != nil {
				fatal(fmt.Errorf("results cache: %w", err))
			}
		}
		p := bench.Pair{Target: r}
		if p.Local, err = local(r); err != nil {
			fatal(err)
		}
		pairs = append(pairs, p)
	case *binary != "":
		for _, layout := range strings.Split(*layouts, ",") {
			p, err := runLayout(ctx, cfg, *binary, layout, filepath.Join(dir, layout), client, local, shards, *cacheCheck, strings.Fields(*extraArgs))
			if err != nil {
				fatal(fmt.Errorf("%s: %w", layout, err))
			}
			pairs = append(pairs, p)
		}
	default:
		fatal(fmt.Errorf("give -pharos or -target"))
	}
	if *extraArgs != "" {
		fmt.Printf("# pharos processes started with: %s\n", *extraArgs)
	}
	bench.Report(os.Stdout, cfg, pairs)
}

// runLayout spawns layout, writes to and queries it with its query
// frontend's cache off, stops it and measures its disk, runs the local
// tsdb on the same rounds while it is stopped (so the two never share the
// cores), then restarts it on the same data for the query frontend's runs,
// and last on its heads compacted into blocks.
func runLayout(ctx context.Context, cfg bench.Config, binary, layout, dir string, client *http.Client,
	local func(*bench.Result) (*bench.Result, error), shards []int, cache bool, extra []string) (_ bench.Pair, err error) {
	fmt.Fprintln(os.Stderr, "pharos-bench:", layout)
	c, err := bench.Spawn(ctx, binary, layout, dir, client, bench.StartMs(cfg)-1, bench.FrontendArgs(0, false), extra)
	if err != nil {
		return bench.Pair{}, err
	}
	defer func() {
		if stopErr := c.Stop(); stopErr != nil {
			fmt.Fprintln(os.Stderr, "pharos-bench: stop", layout+":", stopErr)
		}
		_ = os.RemoveAll(dir)
	}()
	r, err := bench.RunTarget(ctx, cfg, &c.Target, client)
	if err != nil {
		return bench.Pair{}, err
	}
	r.QueryNote = "results cache off (-query-frontend.cache-results=false), no query sharding"
	if err := c.Stop(); err != nil {
		return bench.Pair{}, fmt.Errorf("stop: %w", err)
	}
	// Stopped cleanly, the ingesters' directories are closed tsdbs.
	d, err := bench.MeasureDisk(dir, c.TSDBDirs...)
	if err != nil {
		return bench.Pair{}, fmt.Errorf("measure disk: %w", err)
	}
	r.Disk = &d
	p := bench.Pair{Target: r}
	if p.Local, err = local(r); err != nil {
		return bench.Pair{}, err
	}
	if len(shards) > 0 || cache {
		fmt.Fprintln(os.Stderr, "pharos-bench:", layout+": query frontend, restarting on the same data")
		if err := bench.RunFrontend(ctx, cfg, c, client, r, shards, cache); err != nil {
			return bench.Pair{}, fmt.Errorf("query frontend: %w", err)
		}
	}
	if cfg.QueryBlocks {
		fmt.Fprintln(os.Stderr, "pharos-bench:", layout+": queries on blocks, restarting on the compacted heads")
		if err := bench.RunBlocks(ctx, cfg, c, client, r); err != nil {
			return bench.Pair{}, fmt.Errorf("queries on blocks: %w", err)
		}
	}
	return p, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "pharos-bench:", err)
	os.Exit(1)
}
