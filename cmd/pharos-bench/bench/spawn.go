package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// Layouts are the local deployments Spawn can start.
var Layouts = []string{"allinone", "rf3"}

// Cluster is local pharos processes started by Spawn.
type Cluster struct {
	Target Target
	// TSDBDirs are the tsdb directories of the processes that ingest.
	TSDBDirs []string
	binary   string
	procs    []*proc
	running  bool
}

// proc is one process of a cluster: how to start it, and its run.
type proc struct {
	name, log string
	args      []string
	// front serves the cluster's HTTP API (through the query frontend):
	// the process the frontend flags go to.
	front  bool
	cmd    *exec.Cmd
	exited chan error
}

// FrontendArgs are the query-frontend flags of a spawned cluster's API
// process: query sharding over shards (0: off) and the results cache.
func FrontendArgs(shards int, cache bool) []string {
	return []string{
		"-query-frontend.query-sharding-total-shards=" + strconv.Itoa(shards),
		"-query-frontend.cache-results=" + strconv.FormatBool(cache),
	}
}

// Spawn starts layout from the pharos binary, with data and logs under
// dir, every port on 127.0.0.1, and waits until it takes writes.
// "allinone" is one process (RF 1) with the write and read roles; "rf3" is three ingesters at RF 3 and
// one distributor+querier process. front are extra flags of the process
// that serves the API (FrontendArgs); extra go to every process (e.g.
// -ingester.client.grpc-compression=s2). The probe write carries one sample
// at probeMs: make it no later than the load's first samples, or the head
// would refuse them as too old.
func Spawn(ctx context.Context, binary, layout, dir string, client *http.Client, probeMs int64, front, extra []string) (_ *Cluster, err error) {
	c := &Cluster{Target: Target{Name: layout}, binary: binary}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	add := func(name string, isFront bool, args ...string) (string, error) {
		http, err := freePort()
		if err != nil {
			return "", err
		}
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o755); err != nil {
			return "", err
		}
		c.procs = append(c.procs, &proc{
			name: name, log: filepath.Join(dir, name+".log"), front: isFront,
			args: slices.Concat([]string{"-server.http-listen=" + http, "-storage.path=" + filepath.Join(data, "data")}, args, extra),
		})
		c.Target.Procs = append(c.Target.Procs, name)
		c.Target.Metrics = append(c.Target.Metrics, "http://"+http+"/metrics")
		if name != "front" {
			c.TSDBDirs = append(c.TSDBDirs, filepath.Join(data, "data", "tsdb"))
		}
		return http, nil
	}
	switch layout {
	case "allinone":
		grpc, gossip, err := freePort2()
		if err != nil {
			return nil, err
		}
		// Every role that holds or serves data, without the scraper: its
		// self-scrape at wall time would push the head past the load's
		// back-filled samples.
		h, err := add("allinone", true, "-target=distributor,ingester,querier", "-server.grpc-listen="+grpc, "-memberlist.bind="+gossip)
		if err != nil {
			return nil, err
		}
		c.Target.Base, c.Target.Replicas = "http://"+h, 1
	case "rf3":
		common := []string{"-ring.replication-factor=3", "-ring.heartbeat=1s", "-memberlist.gossip-interval=50ms",
			"-memberlist.push-pull-interval=1s", "-memberlist.join-retry-interval=100ms"}
		var seed string
		for i := range 3 {
			grpc, gossip, err := freePort2()
			if err != nil {
				return nil, err
			}
			args := append([]string{"-target=ingester", "-server.grpc-listen=" + grpc, "-memberlist.bind=" + gossip,
				"-ring.instance-id=ing-" + strconv.Itoa(i)}, common...)
			if seed != "" {
				args = append(args, "-memberlist.join="+seed)
			} else {
				seed = gossip
			}
			if _, err := add("ing-"+strconv.Itoa(i), false, args...); err != nil {
				return nil, err
			}
		}
		grpc, gossip, err := freePort2()
		if err != nil {
			return nil, err
		}
		h, err := add("front", true, append([]string{"-target=distributor,querier", "-server.grpc-listen=" + grpc,
			"-memberlist.bind=" + gossip, "-memberlist.join=" + seed}, common...)...)
		if err != nil {
			return nil, err
		}
		c.Target.Base, c.Target.Replicas = "http://"+h, 3
	default:
		return nil, fmt.Errorf("layout %q: want one of %v", layout, Layouts)
	}
	if err := c.start(front); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, client, 60*time.Second, probeMs); err != nil {
		return nil, err
	}
	return c, nil
}

// Restart stops every process and starts them again on the same ports and
// data directories, the API process with the flags front, and returns the
// time from start to ready: the heads' WAL replay, mostly. The probe write
// carries one sample at probeMs, which must not be older than an hour
// before the newest sample written (the head's appendable window).
func (c *Cluster) Restart(ctx context.Context, client *http.Client, front []string, probeMs int64) (time.Duration, error) {
	if err := c.Stop(); err != nil {
		return 0, err
	}
	t := time.Now()
	if err := c.start(front); err != nil {
		return 0, err
	}
	if err := c.waitReady(ctx, client, 10*time.Minute, probeMs); err != nil {
		return 0, err
	}
	return time.Since(t), nil
}

// start starts every process, logging to its file (appended on restarts).
func (c *Cluster) start(front []string) error {
	c.Target.PIDs = c.Target.PIDs[:0]
	c.running = true
	for _, p := range c.procs {
		args := p.args
		if p.front {
			args = append(slices.Clip(args), front...)
		}
		logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		cmd := exec.Command(c.binary, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		err = cmd.Start()
		logf.Close()
		if err != nil {
			return fmt.Errorf("start %s: %w", p.name, err)
		}
		p.cmd, p.exited = cmd, make(chan error, 1)
		go func() { p.exited <- cmd.Wait() }()
		c.Target.PIDs = append(c.Target.PIDs, cmd.Process.Pid)
	}
	return nil
}

// waitReady polls until every process answers /ready and a probe write of
// one sample is acknowledged (the ring has its replicas).
func (c *Cluster) waitReady(ctx context.Context, client *http.Client, timeout time.Duration, probeMs int64) error {
	deadline := time.Now().Add(timeout)
	probe := NewHTTPSink(c.Target.Base+"/api/v1/write", false, 1, client)
	sb := labels.NewScratchBuilder(1)
	sb.Add(model.MetricNameLabel, "pharos_bench_probe")
	b := &Batch{Labels: []labels.Labels{sb.Labels()}, Counter: []bool{false}, Samples: []prompb.Sample{{Timestamp: probeMs, Value: 1}}}
	var last error
	for time.Now().Before(deadline) {
		for _, p := range c.procs {
			if p.cmd == nil {
				continue
			}
			select {
			case err := <-p.exited:
				p.exited <- err
				return fmt.Errorf("%s exited (%v): %s", p.log, err, p.tail())
			default:
			}
		}
		last = nil
		for _, m := range c.Target.Metrics {
			u := m[:len(m)-len("/metrics")] + "/ready"
			resp, err := client.Get(u)
			if err != nil {
				last = err
				break
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				last = fmt.Errorf("%s: %s", u, resp.Status)
				break
			}
		}
		if last == nil {
			if last = probe.Write(ctx, 0, b); last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s: %w", c.Target.Name, timeout, last)
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// Stop interrupts every process and waits for it (killing it after a
// minute: a head of a million series takes a while to close). Stopping a
// stopped cluster does nothing.
func (c *Cluster) Stop() error {
	if !c.running {
		return nil
	}
	c.running = false
	var errs []error
	for _, p := range c.procs {
		if p.cmd != nil {
			_ = p.cmd.Process.Signal(os.Interrupt)
		}
	}
	for _, p := range c.procs {
		if p.cmd == nil {
			continue
		}
		select {
		case err := <-p.exited:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
			}
		case <-time.After(time.Minute):
			_ = p.cmd.Process.Kill()
			errs = append(errs, fmt.Errorf("%s (pid %d): killed after a minute", p.name, p.cmd.Process.Pid))
			<-p.exited
		}
		p.cmd = nil
	}
	return errors.Join(errs...)
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func freePort2() (string, string, error) {
	a, err := freePort()
	if err != nil {
		return "", "", err
	}
	b, err := freePort()
	return a, b, err
}
