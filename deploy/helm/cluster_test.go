package helm_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-tsdb/pharos/internal/memcachedtest"
	"github.com/pharos-tsdb/pharos/internal/tlsconfig/tlstest"
)

// pod is one process of a rendered workload, on its own loopback address.
type pod struct {
	name string
	ip   string
	w    workload
	root string
	args []string
	logs syncBuffer // across restarts
	cmd  *exec.Cmd
	// exited is closed when the process has ended, err then holds why.
	exited chan struct{}
	err    error
}

func (p *pod) start(t *testing.T) {
	t.Helper()
	p.cmd = inRoot(p.root, []string{"POD_NAME=" + p.name, "POD_IP=" + p.ip}, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	p.exited = make(chan struct{})
	require.NoError(t, p.cmd.Start(), p.name)
	go func(cmd *exec.Cmd, exited chan struct{}) { p.err = cmd.Wait(); close(exited) }(p.cmd, p.exited)
}

// stop is a pod's termination: SIGTERM, then SIGKILL after a grace period.
func (p *pod) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRenderedClusterRuns starts every pod of a distributed install as a
// process, each in an empty root with its own mounted files and a
// resolv.conf pointing at a DNS server that plays the cluster DNS
// (headless Services, per-pod names), so the rendered addresses are what
// the processes dial: memberlist
// seeds, ruler raft peers and advertise names, the rulers' notifier URL and
// the notifier peers. Only the listen addresses are moved from the pod IP's
// wildcard to a loopback address per pod. Samples scraped by the scraper
// must be queryable from the querier, and an alert from the rule files must
// reach every notifier of a three-peer notifier cluster.
func TestRenderedClusterRuns(t *testing.T) {
	requireChroot(t)
	if testing.Short() {
		t.Skip("starts twelve processes")
	}
	small := []string{
		"distributor.replicas=1", "querier.replicas=1", "scraper.replicas=1",
		"distributor.autoscaling.enabled=false", "querier.autoscaling.enabled=false",
		"prometheus-node-exporter.enabled=false", "kube-state-metrics.enabled=false",
	}
	for _, v := range []valuesCase{
		{name: "default", set: small},
		// Every internal link encrypted: gRPC, raft and the notifier
		// cluster over mutual TLS, gossip with a key.
		secured(t, valuesCase{name: "tls", set: small}),
		// One ingester per zone: every series needs all three zones.
		{name: "zone-aware", file: "pharos/ci/zone-aware-values.yaml", set: append([]string{"ingester.replicas=3", "ruler.replicas=3"}, small...)},
		// Two queriers sharing the chart's own memcached as results cache.
		{name: "results-cache", set: append(slices.Clone(small), "querier.replicas=2", "queryFrontend.resultsCache.backend=memcached")},
	} {
		t.Run(v.name, func(t *testing.T) { runRenderedCluster(t, v) })
	}
}

func runRenderedCluster(t *testing.T, v valuesCase) {
	m := decodeStrict(t, renderChart(t, v))

	// A loopback /24 of its own, so that concurrent runs do not collide.
	subnet := fmt.Sprintf("127.%d.%d", 1+rand.IntN(254), 1+rand.IntN(254))
	var pods, caches []*pod
	for _, w := range m.workloads() {
		for i := range int(w.replicas) {
			p := &pod{name: fmt.Sprintf("%s-%d", w.name, i), ip: fmt.Sprintf("%s.%d", subnet, len(pods)+len(caches)+1), w: w}
			switch w.pod.Labels["app.kubernetes.io/name"] {
			case "pharos":
				pods = append(pods, p)
			case "memcached":
				caches = append(caches, p)
			}
		}
	}
	wantPods := 12
	if v.name == "results-cache" {
		wantPods = 13
		require.Len(t, caches, 1, "the chart's memcached")
	}
	require.Len(t, pods, wantPods)

	// The scrape section and a rule file, as a user would set them.
	var targets []string
	for _, p := range pods {
		targets = append(targets, `"`+p.ip+`:9090"`)
	}
	m = decodeStrict(t, renderChartJSON(t, v,
		`scrape={"global":{"scrape_interval":"1s","scrape_timeout":"1s"},"scrape_configs":[{"job_name":"pharos","static_configs":[{"targets":[`+strings.Join(targets, ",")+`]}]}]}`,
		`serverFiles={"alerts":{"groups":[{"name":"test","interval":"1s","rules":[{"alert":"Always","expr":"vector(1)","labels":{"severity":"notify"}}]}]}}`))

	v.addSecrets(m)

	resolvConf := "nameserver " + clusterDNS(t, subnet+".253", dnsRecords(t, m, append(slices.Clone(pods), caches...))) + "\n"
	for _, c := range caches {
		startMemcached(t, c)
	}
	for _, p := range pods {
		p.root = emptyRoot(t, m, p.w)
		require.NoError(t, os.MkdirAll(filepath.Join(p.root, "etc"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(p.root, "etc", "resolv.conf"), []byte(resolvConf), 0o644))
		p.args = append(pharosContainer(t, p.w).Args,
			"-server.http-listen="+p.ip+":9090", "-server.grpc-listen="+p.ip+":9095",
			"-memberlist.bind="+p.ip+":7946", "-notifier.cluster-bind="+p.ip+":9094",
			"-notifier.http-listen="+p.ip+":9093", "-ruler.raft-bind="+p.ip+":9096",
			"-ring.heartbeat=1s", "-memberlist.join-retry-interval=200ms")
		p.start(t)
		t.Cleanup(func() {
			p.stop()
			if t.Failed() {
				t.Logf("%s logs:\n%s", p.name, tail(p.logs.String(), 4000))
			}
		})
	}

	get := func(addr, path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitReady := func(p *pod) {
		require.Eventually(t, func() bool {
			select {
			case <-p.exited:
				require.Failf(t, "exited", "%s: %v\n%s", p.name, p.err, p.logs.String())
			default:
			}
			code, _ := get(p.ip+":9090", "/ready")
			return code == http.StatusOK
		}, 120*time.Second, 200*time.Millisecond, "%s not ready", p.name)
	}
	for _, p := range pods {
		waitReady(p)
	}

	byComponent := map[string][]*pod{}
	for _, p := range pods {
		byComponent[p.w.component()] = append(byComponent[p.w.component()], p)
	}
	querier := byComponent["querier"][0]
	require.Eventually(t, func() bool {
		code, body := get(querier.ip+":9090", "/api/v1/query?query="+url.QueryEscape(`count(up{job="pharos"} == 1)`))
		return code == http.StatusOK && strings.Contains(body, fmt.Sprintf(`"%d"`, len(pods)))
	}, 90*time.Second, 500*time.Millisecond, "the querier does not see all %d pods scraped", len(pods))
	if len(caches) > 0 {
		checkSharedResultsCache(t, byComponent["querier"], caches[0])
	}

	// Every ruler answers the alerts API, a follower by forwarding to the
	// evaluating one: the Ingress may send /api/v1/alerts to any of them.
	for _, r := range byComponent["ruler"] {
		require.Eventually(t, func() bool {
			_, body := get(r.ip+":9090", "/api/v1/alerts")
			return strings.Contains(body, `"alertname":"Always"`)
		}, 60*time.Second, 500*time.Millisecond, "%s does not show the firing alert", r.name)
	}
	for _, n := range byComponent["notifier"] {
		require.Eventually(t, func() bool {
			_, body := get(n.ip+":9093", "/api/v2/alerts")
			return strings.Contains(body, `"alertname":"Always"`)
		}, 90*time.Second, 500*time.Millisecond, "the rulers' alert did not reach %s", n.name)
		_, body := get(n.ip+":9093", "/api/v2/status")
		var status struct {
			Cluster struct {
				Peers []json.RawMessage `json:"peers"`
			} `json:"cluster"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &status))
		require.Len(t, status.Cluster.Peers, 3, "%s: notifier cluster peers", n.name)
	}
	// A rolling update restarts ingesters one at a time: the ingester keeps
	// its ring entry and tokens (instance_id is the pod name, tokens on its
	// volume, unregister_on_shutdown false), and queries keep answering
	// while it is away.
	if v.name == "zone-aware" {
		zones := map[string]bool{}
		for _, p := range byComponent["ingester"] {
			_, z, _ := strings.Cut(p.logs.String(), `registered in ring`)
			_, z, _ = strings.Cut(z, "zone=")
			z, _, _ = strings.Cut(z, " ")
			zones[z] = true
		}
		require.Equal(t, map[string]bool{"zone-a": true, "zone-b": true, "zone-c": true}, zones, "each ingester registered in its own zone")
	}
	if files := v.secrets[tlsSecret]; files != nil {
		// The links carry TLS: each listener completes a handshake with the
		// cluster's CA and name, and presents the Secret's certificate.
		clientCert := clientTLS(t, files)
		for _, l := range []struct{ component, port string }{{"ingester", "9095"}, {"ruler", "9096"}, {"notifier", "9094"}} {
			addr := byComponent[l.component][0].ip + ":" + l.port
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, clientCert.Clone())
			require.NoError(t, err, "TLS handshake with %s at %s", l.component, addr)
			require.Contains(t, conn.ConnectionState().PeerCertificates[0].DNSNames, tlsServerName, addr)
			require.NoError(t, conn.Close())
		}
	}
	ing := byComponent["ingester"][0]
	ing.stop()
	code, body := get(querier.ip+":9090", "/api/v1/query?query="+url.QueryEscape(`count(up{job="pharos"})`))
	require.Equal(t, http.StatusOK, code, "a query with one ingester of three away: %s", body)
	ing.start(t)
	waitReady(ing)
	require.Contains(t, ing.logs.String(), "rejoined=true", "the restarted ingester took its old ring entry back")
}

// startMemcached runs a memcached pod of the chart as a memcached process
// with the container's arguments, listening on the pod's address.
func startMemcached(t *testing.T, p *pod) {
	t.Helper()
	bin := memcachedtest.Binary(t)
	c := p.w.pod.Spec.Containers[0]
	// -U 0: no UDP; -u: memcached refuses to run as root without a user.
	cmd := exec.Command(bin, append(slices.Clone(c.Args), "-l", p.ip, "-p", "11211", "-U", "0", "-u", "nobody")...)
	cmd.Stdout, cmd.Stderr = &p.logs, &p.logs
	require.NoError(t, cmd.Start(), p.name)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s logs:\n%s", p.name, tail(p.logs.String(), 4000))
		}
	})
	require.Eventually(t, func() bool {
		conn, err := net.Dial("tcp", p.ip+":11211")
		if err == nil {
			_ = conn.Close()
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "%s does not listen", p.name)
}

// checkSharedResultsCache: a range query answered by one querier is cached
// in the chart's memcached, found through its headless Service, and the
// other querier answers the same query from it without evaluating a step.
func checkSharedResultsCache(t *testing.T, queriers []*pod, cache *pod) {
	t.Helper()
	require.Len(t, queriers, 2)
	// Step-aligned and older than max_cache_freshness, so all of it is
	// cacheable; vector(1) needs no samples that old.
	end := time.Now().Add(-2 * time.Minute).Truncate(15 * time.Second)
	query := fmt.Sprintf("/api/v1/query_range?query=vector(1)&start=%d&end=%d&step=15", end.Add(-10*time.Minute).Unix(), end.Unix())
	answer := func(q *pod) string {
		resp, err := http.Get("http://" + q.ip + ":9090" + query)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return string(b)
	}
	first := answer(queriers[0])
	require.Eventually(t, func() bool { return memcachedItems(t, cache.ip+":11211") > 0 },
		10*time.Second, 50*time.Millisecond, "%s cached nothing in %s", queriers[0].name, cache.name)
	require.JSONEq(t, first, answer(queriers[1]), "the cached answer is the evaluated one")
	steps := counterValues(t, queriers[1], "pharos_frontend_results_cache_steps_total")
	require.Equal(t, 41.0, steps[`result="hit"`], "%s answers all 41 steps from the shared cache: %v", queriers[1].name, steps)
	require.Zero(t, steps[`result="miss"`], "%s: %v", queriers[1].name, steps)
}

// memcachedItems is memcached's curr_items, from its stats command.
func memcachedItems(t *testing.T, addr string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = conn.Write([]byte("stats\r\n"))
	require.NoError(t, err)
	items := -1
	sc := bufio.NewScanner(conn)
	for sc.Scan() && sc.Text() != "END" {
		if n, ok := strings.CutPrefix(sc.Text(), "STAT curr_items "); ok {
			items, err = strconv.Atoi(n)
			require.NoError(t, err)
		}
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, items, 0, "memcached stats without curr_items")
	return items
}

// counterValues are a counter's values on a pod's /metrics, by label set
// (as written between the braces).
func counterValues(t *testing.T, p *pod, name string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.ip + ":9090/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	values := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		series, value, ok := strings.Cut(sc.Text(), " ")
		rest, isName := strings.CutPrefix(series, name+"{")
		if !ok || !isName {
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		require.NoError(t, err, sc.Text())
		values[strings.TrimSuffix(rest, "}")] = f
	}
	require.NoError(t, sc.Err())
	return values
}

// renderChartJSON renders with extra --set-json values.
func renderChartJSON(t *testing.T, v valuesCase, setJSON ...string) string {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace}
	for _, s := range setJSON {
		args = append(args, "--set-json", s)
	}
	out, stderr, err := runHelm(t, append(args, v.args()...)...)
	require.NoError(t, err, "helm template: %s", stderr)
	return out
}

// dnsRecords are the A records of the cluster DNS: a headless Service name
// resolves to every pod it selects, <pod>.<service> to a StatefulSet pod.
func dnsRecords(t *testing.T, m *manifests, pods []*pod) map[string][]string {
	records := map[string][]string{}
	for _, p := range pods {
		if p.w.sts != nil {
			name := fmt.Sprintf("%s.%s.%s.svc.", p.name, p.w.sts.Spec.ServiceName, namespace)
			records[name] = append(records[name], p.ip)
		}
		for _, s := range m.services {
			if s.Spec.ClusterIP == corev1.ClusterIPNone && selects(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, p.w.pod.Labels) {
				name := fmt.Sprintf("%s.%s.svc.", s.Name, namespace)
				records[name] = append(records[name], p.ip)
			}
		}
	}
	return records
}

// clusterDNS serves records on ip:53 (UDP) until the test ends, as
// kube-dns would: both Go's resolver and Prometheus's DNS discovery (which
// reads /etc/resolv.conf itself, ignoring /etc/hosts) ask it.
func clusterDNS(t *testing.T, ip string, records map[string][]string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", ip+":53")
	require.NoError(t, err)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		resp := new(dns.Msg)
		resp.SetReply(req)
		for _, q := range req.Question {
			ips, ok := records[strings.ToLower(q.Name)]
			if !ok {
				resp.Rcode = dns.RcodeNameError
				continue
			}
			if q.Qtype != dns.TypeA {
				continue
			}
			for _, a := range ips {
				resp.Answer = append(resp.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
					A:   net.ParseIP(a),
				})
			}
		}
		_ = w.WriteMsg(resp)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ip
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// The Secrets a user creates for the chart's security values, and the
// name the chart has every peer verify by default.
const (
	tlsSecret     = "pharos-tls"
	gossipSecret  = "pharos-gossip"
	tlsServerName = release + "." + namespace + ".svc"
)

// secured is v with security.tls and security.gossipKey set, and the two
// Secrets they name: a kubernetes.io/tls Secret (ca.crt, tls.crt, tls.key)
// whose certificate names tlsServerName and serves and authenticates as a
// client, as the chart wants, and a gossip key.
func secured(t *testing.T, v valuesCase) valuesCase {
	t.Helper()
	ca := tlstest.NewCA(t, "pharos test CA")
	pair := ca.Issue(t, tlsServerName)
	files := map[string]string{}
	for key, path := range map[string]string{"ca.crt": ca.CertFile, "tls.crt": pair.CertFile, "tls.key": pair.KeyFile} {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		files[key] = string(b)
	}
	v.set = append(slices.Clone(v.set), "security.tls.secretName="+tlsSecret, "security.gossipKey.secretName="+gossipSecret)
	v.secrets = map[string]map[string]string{
		tlsSecret:    files,
		gossipSecret: {"gossip.key": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))},
	}
	return v
}

// clientTLS trusts the CA of a TLS Secret's files and presents its
// certificate.
func clientTLS(t *testing.T, files map[string]string) *tls.Config {
	t.Helper()
	cert, err := tls.X509KeyPair([]byte(files["tls.crt"]), []byte(files["tls.key"]))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(files["ca.crt"])))
	return &tls.Config{RootCAs: pool, ServerName: tlsServerName, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}
