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
	procs    []*exec.Cmd
	exited   []chan error
	logs     []string
}

// Spawn starts layout from the pharos binary, with data and logs under
// dir, every port on 127.0.0.1, and waits until it takes writes.
// "allinone" is one process (RF 1) with the write and read roles; "rf3" is three ingesters at RF 3 and
// one distributor+querier process. The probe write carries one sample at
// probeMs: make it no later than the load's first samples, or the head
// would refuse them as too old.
func Spawn(ctx context.Context, binary, layout, dir string, client *http.Client, probeMs int64) (_ *Cluster, err error) {
	c := &Cluster{Target: Target{Name: layout}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	start := func(name string, args ...string) (string, error) {
		http, err := freePort()
		if err != nil {
			return "", err
		}
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o755); err != nil {
			return "", err
		}
		args = append([]string{
			"-server.http-listen=" + http,
			"-storage.path=" + filepath.Join(data, "data"),
		}, args...)
		logPath := filepath.Join(dir, name+".log")
		logf, err := os.Create(logPath)
		if err != nil {
			return "", err
		}
		cmd := exec.Command(binary, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return "", fmt.Errorf("start %s: %w", name, err)
		}
		logf.Close()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		c.exited = append(c.exited, exited)
		c.procs = append(c.procs, cmd)
		c.logs = append(c.logs, logPath)
		c.Target.PIDs = append(c.Target.PIDs, cmd.Process.Pid)
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
		h, err := start("allinone", "-target=distributor,ingester,querier", "-server.grpc-listen="+grpc, "-memberlist.bind="+gossip)
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
			if _, err := start("ing-"+strconv.Itoa(i), args...); err != nil {
				return nil, err
			}
		}
		grpc, gossip, err := freePort2()
		if err != nil {
			return nil, err
		}
		h, err := start("front", append([]string{"-target=distributor,querier", "-server.grpc-listen=" + grpc,
			"-memberlist.bind=" + gossip, "-memberlist.join=" + seed}, common...)...)
		if err != nil {
			return nil, err
		}
		c.Target.Base, c.Target.Replicas = "http://"+h, 3
	default:
		return nil, fmt.Errorf("layout %q: want one of %v", layout, Layouts)
	}
	if err := c.waitReady(ctx, client, 60*time.Second, probeMs); err != nil {
		return nil, err
	}
	return c, nil
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
		for i := range c.procs {
			select {
			case err := <-c.exited[i]:
				c.exited[i] <- err
				return fmt.Errorf("%s exited (%v): %s", c.logs[i], err, c.tail(i))
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

func (c *Cluster) tail(i int) string {
	b, _ := os.ReadFile(c.logs[i])
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// Stop interrupts every process and waits for it (killing it after 20s).
func (c *Cluster) Stop() error {
	var errs []error
	for _, cmd := range c.procs {
		_ = cmd.Process.Signal(os.Interrupt)
	}
	for i, cmd := range c.procs {
		done := c.exited[i]
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			errs = append(errs, fmt.Errorf("pid %d: killed after 20s", cmd.Process.Pid))
			<-done
		}
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
