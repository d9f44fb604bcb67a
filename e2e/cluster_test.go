//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Ports are the defaults of the design; every host has its own address,
// so every process uses them.
const (
	portHTTP           = 9090
	portGRPC           = 9095
	portGossip         = 7946
	portNotifier       = 9093
	portNotifierGossip = 9094
	portRaft           = 9096
	portSlack          = 8080
	portKSM            = 8080
	portNodeExporter0  = 9100
	portExporterCtl    = 8000
)

// Timing of the whole cluster, shortened from production defaults so a
// scenario takes a minute, not an hour; each scenario says what it relies
// on.
const (
	scrapeInterval       = 2 * time.Second
	scraperHBTimeout     = 3 * time.Second
	ruleInterval         = 2 * time.Second
	resendDelay          = 5 * time.Second
	alertFor             = 20 * time.Second // the tutorial's `for: 1m`
	groupWait            = 10 * time.Second // the tutorial's, unchanged
	groupInterval        = 15 * time.Second // the tutorial's 5m
	notifierPeerTimeout  = 2 * time.Second
	ingesterHBTimeout    = 6 * time.Second
	processReadyDeadline = 90 * time.Second
)

// topology says which roles a scenario starts; ingesters (zones a, b, c,
// RF=3) and the two distributor+querier fronts always run.
type topology struct {
	scrapers  int    // hosts running distributor+scraper
	exporters int    // node-exporter targets (plus kube-state-metrics) when scrapers > 0
	rulers    int    // ruler hosts
	notifiers int    // notifier hosts (plus the fake Slack)
	diskMB    int    // > 0: ingester c's data dir is a tmpfs this size
	rules     string // initial rule file (rulers > 0)
	// scrapeEvery overrides scrapeInterval.
	scrapeEvery time.Duration
}

// proc is one process on a host: pharos, or a helper (this test binary).
type proc struct {
	c       *cluster
	name    string
	host    *host
	exe     string
	args    []string
	env     []string
	logPath string
	http    string // base URL of /ready and /metrics; "" for helpers

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// cluster is a network of hosts and the processes on them.
type cluster struct {
	t     *testing.T
	net   *network
	dir   string
	start time.Time

	procs                                     []*proc
	ingesters, fronts, scrapers, rulers, nots []*proc
	exporter, slack                           *proc
	rulesFile                                 string
	diskDir                                   string // ingester c's tmpfs, if any
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// newCluster builds the network, starts every process of top and waits
// until each reports ready. Everything is torn down when the test ends,
// also after a failure or panic; the processes' logs and metrics are
// saved to the test's artifact directory first when it failed.
func newCluster(t *testing.T, top topology) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), start: time.Now()}
	c.net = newNetwork(t)
	t.Cleanup(c.teardown) // runs before the network's teardown

	ings := []*host{c.net.addHost("ing-a"), c.net.addHost("ing-b"), c.net.addHost("ing-c")}
	fronts := []*host{c.net.addHost("front-1"), c.net.addHost("front-2")}
	var seeds []string
	for _, h := range append(append([]*host{}, ings...), fronts...) {
		seeds = append(seeds, fmt.Sprintf("%s:%d", h.ip, portGossip))
	}

	var exp, slack *host
	if top.scrapers > 0 {
		exp = c.net.addHost("exporters")
	}
	if top.notifiers > 0 {
		slack = c.net.addHost("slack")
	}
	var scr, rul, nots []*host
	for i := range top.scrapers {
		scr = append(scr, c.net.addHost(fmt.Sprintf("scraper-%d", i+1)))
	}
	for i := range top.rulers {
		rul = append(rul, c.net.addHost(fmt.Sprintf("ruler-%d", i+1)))
	}
	for i := range top.notifiers {
		nots = append(nots, c.net.addHost(fmt.Sprintf("notifier-%d", i+1)))
	}

	// Helpers first: the exporters and Slack must answer from the start.
	if exp != nil {
		c.exporter = c.startExporter(exp, top.exporters)
	}
	if slack != nil {
		c.slack = c.newProc("slack", slack, testBinary, nil)
		c.slack.env = []string{helperEnv + "=slack", fmt.Sprintf("%s=%s:%d", helperListenEnv, slack.ip, portSlack)}
		c.slack.startProc()
	}

	zones := []string{"a", "b", "c"}
	for i, h := range ings {
		data := filepath.Join(c.dir, h.name, "data")
		if i == 2 && top.diskMB > 0 {
			data = c.mountDisk(h, top.diskMB)
		}
		cfg := c.baseConfigAt(h, "ingester", seeds, data) + fmt.Sprintf(`ring:
  replication_factor: 3
  tokens: 64
  heartbeat: 1s
  heartbeat_timeout: %s
  zone: %s
  instance_id: %s
  unregister_on_shutdown: false
`, ingesterHBTimeout, zones[i], h.name)
		c.ingesters = append(c.ingesters, c.pharos(h, cfg))
	}
	for _, h := range fronts {
		c.fronts = append(c.fronts, c.pharos(h, c.baseConfig(h, "distributor,querier", seeds)+c.ringConfig(h)))
	}
	scrape := ""
	if exp != nil {
		every := top.scrapeEvery
		if every == 0 {
			every = scrapeInterval
		}
		scrape = c.scrapeSection(exp, top.exporters, every)
	}
	for _, h := range scr {
		cfg := c.baseConfig(h, "distributor,scraper", seeds) + c.ringConfig(h) + scrape + fmt.Sprintf(`scraper:
  heartbeat: 500ms
  heartbeat_timeout: %s
  reload_interval: 500ms
`, scraperHBTimeout)
		c.scrapers = append(c.scrapers, c.pharos(h, cfg))
	}
	if len(nots) > 0 {
		amFile := filepath.Join(c.dir, "alertmanager.yml")
		require.NoError(t, os.WriteFile(amFile, []byte(tutorialAlertmanagerYAML(t, slack)), 0o644))
		var peers []string
		for _, h := range nots {
			peers = append(peers, fmt.Sprintf("%s:%d", h.ip, portNotifierGossip))
		}
		for _, h := range nots {
			cfg := fmt.Sprintf(`target: notifier
server:
  http_listen: %[1]s:%[2]d
  grpc_listen: %[1]s:%[3]d
memberlist:
  bind: %[1]s:%[4]d
  node_name: %[5]s
storage:
  path: %[6]s
notifier:
  config_file: %[7]s
  http_listen: %[1]s:%[8]d
  cluster_bind: %[1]s:%[9]d
  cluster_peer_name: %[5]s
  peers: [%[10]s]
  peer_timeout: %[11]s
  pushpull_interval: 5s
  reconnect_interval: 2s
`, h.ip, portHTTP, portGRPC, portGossip, h.name, filepath.Join(c.dir, h.name, "data"), amFile,
				portNotifier, portNotifierGossip, strings.Join(peers, ", "), notifierPeerTimeout)
			c.nots = append(c.nots, c.pharos(h, cfg))
		}
	}
	if len(rul) > 0 {
		c.rulesFile = filepath.Join(c.dir, "rules.yml")
		require.NoError(t, os.WriteFile(c.rulesFile, []byte(top.rules), 0o644))
		var peers, ams []string
		for _, h := range rul {
			peers = append(peers, fmt.Sprintf("%s:%d", h.ip, portRaft))
		}
		for _, h := range nots {
			ams = append(ams, fmt.Sprintf("http://%s:%d", h.ip, portNotifier))
		}
		for _, h := range rul {
			cfg := c.baseConfig(h, "ruler", seeds) + c.ringConfig(h) + fmt.Sprintf(`rules:
  files: [%s]
ruler:
  raft_bind: %s:%d
  peers: [%s]
  evaluation_interval: %s
  resend_delay: %s
  alertmanager_url: [%s]
`, c.rulesFile, h.ip, portRaft, strings.Join(peers, ", "), ruleInterval, resendDelay, strings.Join(ams, ", "))
			c.rulers = append(c.rulers, c.pharos(h, cfg))
		}
	}

	// Start in dependency order, each group in parallel, each waited on.
	for _, group := range [][]*proc{c.ingesters, c.fronts, c.scrapers, c.nots, c.rulers} {
		for _, p := range group {
			p.startProc()
		}
		for _, p := range group {
			p.waitReady()
		}
	}
	t.Logf("cluster of %d processes on %d hosts ready in %s", len(c.procs), len(c.net.hosts), time.Since(c.start).Round(100*time.Millisecond))
	return c
}

// baseConfig is what every pharos process shares: its listeners on its
// host's address, and gossip fast enough for a test but not so fast that
// a dozen processes saturate two cores.
func (c *cluster) baseConfig(h *host, target string, seeds []string) string {
	return c.baseConfigAt(h, target, seeds, filepath.Join(c.dir, h.name, "data"))
}

func (c *cluster) baseConfigAt(h *host, target string, seeds []string, data string) string {
	return fmt.Sprintf(`target: %[1]s
server:
  http_listen: %[2]s:%[3]d
  grpc_listen: %[2]s:%[4]d
  graceful_shutdown_timeout: 10s
memberlist:
  bind: %[2]s:%[5]d
  node_name: %[6]s
  join: [%[7]s]
  gossip_interval: 100ms
  push_pull_interval: 5s
  probe_interval: 500ms
  probe_timeout: 400ms
  join_retry_interval: 500ms
  rejoin_interval: 5s
storage:
  path: %[8]s
`, target, h.ip, portHTTP, portGRPC, portGossip, h.name, strings.Join(seeds, ", "), data)
}

// ringConfig is the ingester ring as readers see it.
func (c *cluster) ringConfig(h *host) string {
	return fmt.Sprintf(`ring:
  replication_factor: 3
  heartbeat_timeout: %s
  instance_id: %s
`, ingesterHBTimeout, h.name)
}

// scrapeSection is a Prometheus scrape configuration of the exporters:
// the tutorial's kube-state-metrics, and n node exporters.
func (c *cluster) scrapeSection(exp *host, n int, every time.Duration) string {
	var nodes []string
	for i := range n {
		nodes = append(nodes, fmt.Sprintf("%q", fmt.Sprintf("%s:%d", exp.ip, portNodeExporter0+i)))
	}
	s := fmt.Sprintf(`scrape:
  global:
    scrape_interval: %[1]s
    scrape_timeout: %[1]s
    evaluation_interval: %[1]s
  scrape_configs:
  - job_name: kube-state-metrics
    static_configs:
    - targets: ["%[2]s:%[3]d"]
`, every, exp.ip, portKSM)
	if n > 0 {
		s += fmt.Sprintf(`  - job_name: node-exporter
    static_configs:
    - targets: [%s]
`, strings.Join(nodes, ", "))
	}
	return s
}

// tutorialAlertmanagerYAML is the tutorial's alertmanager.yml with Slack's
// URL pointed at the fake and group_interval shortened from 5m, so that a
// resolve is notified within the test.
func tutorialAlertmanagerYAML(t *testing.T, slack *host) string {
	b, err := os.ReadFile("testdata/tutorial/alertmanager.yml")
	require.NoError(t, err)
	s := string(b)
	for old, repl := range map[string]string{
		"https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX": fmt.Sprintf("http://%s:%d/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", slack.ip, portSlack),
		"group_interval: 5m": "group_interval: " + groupInterval.String(),
	} {
		require.Contains(t, s, old)
		s = strings.Replace(s, old, repl, 1)
	}
	require.Contains(t, s, "group_wait: "+groupWait.String())
	return s
}

func (c *cluster) newProc(name string, h *host, exe string, args []string) *proc {
	p := &proc{c: c, name: name, host: h, exe: exe, args: args, logPath: filepath.Join(c.dir, name+".log")}
	c.procs = append(c.procs, p)
	return p
}

// pharos writes cfg as h's configuration file and returns its process,
// not started.
func (c *cluster) pharos(h *host, cfg string) *proc {
	dir := filepath.Join(c.dir, h.name)
	require.NoError(c.t, os.MkdirAll(dir, 0o755))
	file := filepath.Join(dir, "pharos.yml")
	require.NoError(c.t, os.WriteFile(file, []byte(cfg), 0o644))
	p := c.newProc(h.name, h, pharosBin, []string{"-config.file=" + file})
	p.http = fmt.Sprintf("http://%s:%d", h.ip, portHTTP)
	return p
}

// startExporter serves kube-state-metrics and n node exporters from the
// tutorial's exposition files, copied so a scenario may change them.
func (c *cluster) startExporter(h *host, n int) *proc {
	dir := filepath.Join(c.dir, h.name)
	require.NoError(c.t, os.MkdirAll(dir, 0o755))
	var listen []string
	for i := -1; i < n; i++ {
		src, port := "node-exporter.txt", portNodeExporter0+i
		if i < 0 {
			src, port = "kube-state-metrics.txt", portKSM
		}
		b, err := os.ReadFile(filepath.Join("testdata/tutorial", src))
		require.NoError(c.t, err)
		file := filepath.Join(dir, fmt.Sprintf("%d.txt", port))
		require.NoError(c.t, os.WriteFile(file, b, 0o644))
		listen = append(listen, fmt.Sprintf("%s:%d=%s", h.ip, port, file))
	}
	p := c.newProc("exporters", h, testBinary, nil)
	p.env = []string{helperEnv + "=exporter", helperListenEnv + "=" + strings.Join(listen, ","),
		fmt.Sprintf("%s=%s:%d", helperControlEnv, h.ip, portExporterCtl)}
	p.startProc()
	require.Eventually(c.t, func() bool {
		resp, err := httpClient.Get(fmt.Sprintf("http://%s:%d/scrapes", h.ip, portExporterCtl))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "exporters not up")
	return p
}

// mountDisk mounts a tmpfs of size MB as h's data dir: a disk that fills.
// Its path carries the run's pid so a crashed run's mount is swept.
func (c *cluster) mountDisk(h *host, sizeMB int) string {
	dir := filepath.Join(c.dir, nsPrefix+c.net.id+"-disk")
	require.NoError(c.t, os.MkdirAll(dir, 0o755))
	run(c.t, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMB), "tmpfs", dir)
	c.diskDir = dir
	return dir
}

// startProc starts p in its host's namespace. `ip netns exec` execs the
// command in place, so the pid is p's own and signals reach it directly.
func (p *proc) startProc() {
	t := p.c.t
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Nil(t, p.cmd, "%s already running", p.name)
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	p.starts++
	fmt.Fprintf(log, "=== e2e: start #%d of %s at %s\n", p.starts, p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.host.ns, p.exe}, p.args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig: if the test binary dies (a -timeout panic), so do its hosts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// running reports whether p's process has been started and not reaped.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	require.NotNil(p.c.t, cmd, "%s not running", p.name)
	require.NoError(p.c.t, cmd.Process.Signal(sig), "signal %s to %s", sig, p.name)
}

// kill9 is kill -9: no shutdown, no flush, no leaving the ring.
func (p *proc) kill9() {
	p.signal(syscall.SIGKILL)
	p.reap(10 * time.Second)
}

// stop is a graceful shutdown (SIGTERM), as a rolling restart does.
func (p *proc) stop() {
	p.signal(syscall.SIGTERM)
	p.reap(60 * time.Second)
}

func (p *proc) pause()  { p.signal(syscall.SIGSTOP) }
func (p *proc) resume() { p.signal(syscall.SIGCONT) }

// restart starts p again with the same configuration and data, and waits
// until it is ready.
func (p *proc) restart() {
	p.startProc()
	p.waitReady()
}

func (p *proc) reap(timeout time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		p.c.t.Errorf("%s did not exit within %s; killed", p.name, timeout)
	}
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
}

// waitReady polls /ready until 200, failing early if the process exits.
func (p *proc) waitReady() {
	t := p.c.t
	t.Helper()
	// Atomic: on a timeout Eventually returns while a check may still run.
	var exited atomic.Bool
	ready := assert.Eventually(t, func() bool {
		exited.Store(!p.running())
		return exited.Load() || statusOf(p.http+"/ready") == http.StatusOK
	}, processReadyDeadline, 100*time.Millisecond)
	switch {
	case exited.Load():
		t.Fatalf("%s exited before it was ready; log tail:\n%s", p.name, tail(p.logPath, 30))
	case !ready:
		t.Fatalf("%s not ready after %s; log tail:\n%s", p.name, processReadyDeadline, tail(p.logPath, 30))
	}
}

// teardown saves artifacts if the test failed, then kills every process
// (a stopped one too) and unmounts the disk; the network goes after.
func (c *cluster) teardown() {
	if c.t.Failed() {
		c.collect()
	}
	for _, p := range c.procs {
		p.mu.Lock()
		cmd, done := p.cmd, p.done
		p.mu.Unlock()
		if cmd == nil {
			continue
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.t.Logf("teardown: %s did not die", p.name)
		}
	}
	if c.diskDir != "" {
		if err := runQuiet("umount", "-l", c.diskDir); err != nil {
			c.t.Logf("teardown: %v", err)
		}
	}
}

// collect copies every process's log and current /metrics (and the
// notifier's, on its own listener) to the test's artifact directory, and
// prints the end of each log.
func (c *cluster) collect() {
	dir := c.t.ArtifactDir()
	for _, p := range c.procs {
		if p.starts == 0 {
			continue
		}
		if b, err := os.ReadFile(p.logPath); err == nil {
			_ = os.WriteFile(filepath.Join(dir, p.name+".log"), b, 0o644)
		}
		if p.http != "" && p.running() {
			for _, u := range []string{p.http + "/metrics", p.http + "/ring", p.http + "/api/v1/status/ruler"} {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					name := p.name + "." + strings.NewReplacer("/", "_").Replace(strings.TrimPrefix(u, p.http+"/")) + ".txt"
					_ = os.WriteFile(filepath.Join(dir, name), b, 0o644)
				}
				cancel()
			}
		}
		c.t.Logf("--- %s (last lines; full log in %s)\n%s", p.name, dir, tail(p.logPath, 15))
	}
	c.t.Logf("artifacts in %s (kept with go test -artifacts)", dir)
}

func statusOf(u string) int {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// timeline logs a scenario's steps with the time since it began (the
// cluster was ready).
type timeline struct {
	t     *testing.T
	start time.Time
}

func newTimeline(t *testing.T) *timeline { return &timeline{t: t, start: time.Now()} }

// step logs one entry of the timeline.
func (tl *timeline) step(format string, args ...any) {
	tl.t.Helper()
	tl.t.Logf("[%6.1fs] %s", time.Since(tl.start).Seconds(), fmt.Sprintf(format, args...))
}
