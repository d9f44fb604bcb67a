package app

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNotifierPeersFromJoin(t *testing.T) {
	for _, tc := range []struct {
		name            string
		target          string
		join, peers     []string
		bind, advertise string
		wantBind        string
		wantPeers       []string
	}{
		{name: "lone all-in-one does not gossip", target: "all", bind: ":9094"},
		{name: "all-in-one takes join hosts", target: "all", bind: ":9094", wantBind: ":9094",
			join:      []string{"pharos-0.pharos:7946", "dns+pharos.monitoring.svc:7946", "dnssrv+_gossip._tcp.pharos", "10.0.0.3:7946"},
			wantPeers: []string{"pharos-0.pharos:9094", "pharos.monitoring.svc:9094", "10.0.0.3:9094"}},
		{name: "advertised port wins", target: "all", bind: ":9094", advertise: "10.0.0.1:19094", wantBind: ":9094",
			join: []string{"a:7946"}, wantPeers: []string{"a:19094"}},
		{name: "explicit peers win", target: "all", bind: ":9094", wantBind: ":9094",
			join: []string{"a:7946"}, peers: []string{"b:9094"}, wantPeers: []string{"b:9094"}},
		{name: "dynamic port derives nothing", target: "all", bind: "127.0.0.1:0", wantBind: "127.0.0.1:0",
			join: []string{"a:7946"}},
		{name: "split roles never derive", target: "notifier", bind: ":9094", wantBind: ":9094",
			join: []string{"a:7946"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load([]string{"-target=" + tc.target})
			require.NoError(t, err)
			cfg.Memberlist.Join = tc.join
			cfg.Notifier.Peers = tc.peers
			cfg.Notifier.ClusterBind = tc.bind
			cfg.Notifier.ClusterAdvertise = tc.advertise
			n := cfg.notifierConfig()
			require.Equal(t, tc.wantBind, n.ClusterBind)
			require.Equal(t, tc.wantPeers, n.Peers)
		})
	}
}

func TestNotifierListenerChoice(t *testing.T) {
	for target, own := range map[string]bool{
		"all": false, "notifier": true, "notifier,distributor": true, "querier,notifier": false, "ingester": false,
	} {
		cfg, err := Load([]string{"-target=" + target})
		require.NoError(t, err)
		require.Equal(t, own, cfg.notifierOwnListener(), target)
	}
	cfg, err := Load([]string{"-target=notifier", "-notifier.http-listen="})
	require.NoError(t, err)
	require.ErrorContains(t, cfg.Validate(), "notifier: http_listen")
	file := writeConfig(t, "notifier:\n  http_listen: \":19093\"\n  peer_timeout: 3s\n")
	cfg, err = Load([]string{"-config.file=" + file})
	require.NoError(t, err)
	require.Equal(t, ":19093", cfg.Notifier.HTTPListen)
	require.Equal(t, 3*time.Second, cfg.Notifier.PeerTimeout, "the alerting keys stay inline")
}

// startNotifierApp runs a process with only the notifier role.
func startNotifierApp(t *testing.T, extra ...string) *App {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{
		"-target=notifier",
		"-server.http-listen=127.0.0.1:0",
		"-notifier.http-listen=127.0.0.1:0",
		"-notifier.cluster-bind=127.0.0.1:0",
		"-memberlist.bind=127.0.0.1:0",
		"-storage.path=" + filepath.Join(dir, "data"),
	}, extra...)
	cfg, err := Load(args)
	require.NoError(t, err)
	a := runApp(t, cfg)
	require.NotEmpty(t, a.NotifierAddr())
	require.Eventually(t, func() bool {
		code, _ := httpGet(t, "http://"+a.NotifierAddr()+"/-/ready")
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	return a
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestNotifierRoleOwnListener: a notifier-only process looks like an
// Alertmanager on notifier.http_listen: API v2 and the ops endpoints at the
// root, upstream metric names on /metrics.
func TestNotifierRoleOwnListener(t *testing.T) {
	a := startNotifierApp(t)
	base := "http://" + a.NotifierAddr()

	resp, err := http.Post(base+"/api/v2/alerts", "application/json",
		strings.NewReader(`[{"labels":{"alertname":"TooManyNodes","severity":"notify"}}]`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	code, body := httpGet(t, base+"/api/v2/status")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"cluster"`)
	code, body = httpGet(t, base+"/api/v2/alerts")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "TooManyNodes")

	for _, p := range []string{"/-/healthy", "/-/ready"} {
		code, _ := httpGet(t, base+p)
		require.Equal(t, http.StatusOK, code, p)
	}
	resp, err = http.Post(base+"/-/reload", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	code, body = httpGet(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, name := range []string{
		"alertmanager_alerts_received_total", "alertmanager_notifications_total{integration=\"slack\"}",
		"alertmanager_notifications_failed_total{integration=\"slack\",reason=", "alertmanager_cluster_enabled 1",
		"alertmanager_cluster_members 1", "alertmanager_cluster_health_score", "go_goroutines",
	} {
		require.Contains(t, body, name)
	}

	// Nothing of the notifier on the main server in this mode.
	code, _ = httpGet(t, "http://"+a.HTTPAddr()+"/alertmanager/api/v2/status")
	require.Equal(t, http.StatusNotFound, code)
}

// freeGossipPort finds a port free for TCP and UDP on every host, as a
// memberlist address needs both.
func freeGossipPort(t *testing.T, hosts ...string) int {
	t.Helper()
	for range 100 {
		port := candidatePort(t, hosts[0])
		ok := true
		for _, h := range hosts {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
			u, err := net.ListenPacket("udp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			u.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on all hosts")
	return 0
}

// candidatePort is a port to try for a listener a test must bind by
// number later. It is picked at random below the kernel's ephemeral range:
// a port from that range, once released, can be taken in between by any
// outgoing connection's local end or any port-0 listener of the tests
// running in parallel, which is how a TLS gossip listener once found its
// port in use.
func candidatePort(t *testing.T, host string) int {
	t.Helper()
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > 11000 {
				return 10000 + rand.IntN(lo-10000)
			}
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestAllInOneNotifierPeersFromJoin: two all-in-one nodes that only name
// each other in memberlist.join form one notifier cluster, without
// notifier.peers. Like two hosts sharing one config, they use the same
// notifier cluster port, on two loopback addresses.
func TestAllInOneNotifierPeersFromJoin(t *testing.T) {
	hosts := []string{"127.0.0.1", "127.0.0.2"}
	notifierPort := strconv.Itoa(freeGossipPort(t, hosts...))
	gossip := []string{
		net.JoinHostPort(hosts[0], strconv.Itoa(freeGossipPort(t, hosts[0]))),
		net.JoinHostPort(hosts[1], strconv.Itoa(freeGossipPort(t, hosts[1]))),
	}
	var apps []*App
	for i, h := range hosts {
		dir := t.TempDir()
		cfg, err := Load([]string{
			"-server.http-listen=" + h + ":0",
			"-server.grpc-listen=" + h + ":0",
			"-storage.path=" + filepath.Join(dir, "data"),
			"-memberlist.bind=" + gossip[i],
			"-memberlist.join=" + gossip[1-i],
			"-memberlist.join-retry-interval=50ms",
			"-ring.replication-factor=1",
			"-notifier.cluster-bind=" + net.JoinHostPort(h, notifierPort),
		})
		require.NoError(t, err)
		require.Empty(t, cfg.Notifier.Peers)
		a := runApp(t, cfg)
		apps = append(apps, a)
	}
	for _, a := range apps {
		require.Eventually(t, func() bool {
			code, body := httpGet(t, "http://"+a.HTTPAddr()+"/alertmanager/api/v2/status")
			if code != http.StatusOK {
				return false
			}
			var st struct {
				Cluster struct {
					Peers []struct {
						Address string `json:"address"`
					} `json:"peers"`
				} `json:"cluster"`
			}
			return json.Unmarshal([]byte(body), &st) == nil && len(st.Cluster.Peers) == 2
		}, 30*time.Second, 50*time.Millisecond)
	}
}
