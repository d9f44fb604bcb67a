package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/pharos-tsdb/pharos/cluster/gossip"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/internal/tlsconfig"
	"github.com/pharos-tsdb/pharos/internal/tlsconfig/tlstest"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// Secrets the secured cluster is configured with; none may appear in any
// output.
const (
	secBasicPassword = "basic-auth-pw-7f3a9c"
	secScrapePass    = "scrape-target-pw-91bd2e"
	secSlackToken    = "SLACKTOKEN4e8d1f"
	secGossipKey     = "gossip-key-0123456789abcdef-XYZ!" // 32 bytes, not base64
)

// securedCluster is three all-in-one processes with every link encrypted
// and authenticated: HTTPS with client certificates and basic auth, gRPC
// with mTLS, encrypted gossip, raft with mTLS, and the notifier cluster on
// alertmanager's TLS transport.
type securedCluster struct {
	ca, otherCA          *tlstest.CA
	node, stranger       tlstest.Pair
	keyFile              string
	apps                 []*App
	raftAddrs            []string
	notifierAddrs        []string
	gossipAddrs          []string
	logs                 *syncBuffer
	client               *http.Client // valid certificate, no basic auth
	nodeTLS, strangerTLS *tls.Config
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	f := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(f, []byte(body), 0o600))
	return f
}

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(freeGossipPort(t, "127.0.0.1"))
}

func startSecuredCluster(t *testing.T) *securedCluster {
	t.Helper()
	c := &securedCluster{ca: tlstest.NewCA(t, "pharos-ca"), otherCA: tlstest.NewCA(t, "other-ca"), logs: &syncBuffer{}}
	c.node, c.stranger = c.ca.Issue(t, "node"), c.otherCA.Issue(t, "node")
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(secBasicPassword), bcrypt.MinCost)
	require.NoError(t, err)
	webCfg := writeFile(t, dir, "web.yml", fmt.Sprintf(`tls_server_config:
  cert_file: %s
  key_file: %s
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: %s
basic_auth_users:
  pharos: %s
`, c.node.CertFile, c.node.KeyFile, c.ca.CertFile, hash))
	clusterTLS := writeFile(t, dir, "cluster-tls.yml", fmt.Sprintf(`tls_server_config:
  cert_file: %[1]s
  key_file: %[2]s
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: %[3]s
tls_client_config:
  cert_file: %[1]s
  key_file: %[2]s
  ca_file: %[3]s
`, c.node.CertFile, c.node.KeyFile, c.ca.CertFile))
	c.keyFile = writeFile(t, dir, "gossip.key", secGossipKey)
	amCfg := writeFile(t, dir, "alertmanager.yml", `route:
  receiver: slack
  group_wait: 1s
receivers:
- name: slack
  slack_configs:
  - api_url: "https://hooks.slack.com/services/T000/B000/`+secSlackToken+`"
    channel: "#alerts"
`)
	rules := writeFile(t, dir, "rules.yml", `groups:
- name: secured
  interval: 1s
  rules:
  - alert: SecuredAlert
    expr: sec_metric > 0
    labels:
      severity: page
`)
	pharosCfg := writeFile(t, dir, "pharos.yml", `scrape:
  global:
    scrape_interval: 1h
  scrape_configs:
  - job_name: protected
    basic_auth:
      username: scraper
      password: `+secScrapePass+`
    static_configs:
    - targets: ["127.0.0.1:1"]
`)

	for range 3 {
		c.raftAddrs = append(c.raftAddrs, freeTCPAddr(t))
		c.notifierAddrs = append(c.notifierAddrs, "127.0.0.1:"+strconv.Itoa(freeGossipPort(t, "127.0.0.1")))
		c.gossipAddrs = append(c.gossipAddrs, "127.0.0.1:"+strconv.Itoa(freeGossipPort(t, "127.0.0.1")))
	}
	tlsFlags := func(prefix string) []string {
		return []string{prefix + "ca-file=" + c.ca.CertFile, prefix + "cert-file=" + c.node.CertFile, prefix + "key-file=" + c.node.KeyFile}
	}
	for i := range 3 {
		args := append(clusterArgs(3),
			"-config.file="+pharosCfg,
			"-server.grpc-listen=127.0.0.1:0",
			"-storage.path="+t.TempDir(),
			"-ring.instance-id=node-"+strconv.Itoa(i),
			"-web.config.file="+webCfg,
			"-server.http-client-basic-auth.username=pharos",
			"-server.http-client-basic-auth.password="+secBasicPassword,
			"-server.grpc-tls.cert-file="+c.node.CertFile,
			"-server.grpc-tls.key-file="+c.node.KeyFile,
			"-server.grpc-tls.client-ca-file="+c.ca.CertFile,
			"-server.grpc-tls.client-auth=require_and_verify",
			"-memberlist.bind="+c.gossipAddrs[i],
			"-memberlist.encryption-key-file="+c.keyFile,
			"-ruler.raft-bind="+c.raftAddrs[i],
			"-ruler.peers="+strings.Join(c.raftAddrs, ","),
			"-ruler.evaluation-interval=1s",
			"-ruler.resend-delay=1s",
			"-rules.files="+rules,
			"-notifier.config-file="+amCfg,
			"-notifier.cluster-bind="+c.notifierAddrs[i],
		)
		if i == 0 {
			// The upstream file on one node, the certificate flags on the
			// others: both build the same transport.
			args = append(args, "-notifier.cluster-tls-config="+clusterTLS)
		} else {
			args = append(args, tlsFlags("-notifier.cluster-tls.")...)
		}
		args = append(args, tlsFlags("-server.http-client-tls.")...)
		args = append(args, tlsFlags("-ingester.client.tls.")...)
		args = append(args, tlsFlags("-ruler.raft-tls.")...)
		for j := range 3 {
			if j == i {
				continue
			}
			args = append(args, "-memberlist.join="+c.gossipAddrs[j])
			// Under -race each notifier stays alone (its TLS transport
			// still listens): upstream's cluster.Peer reads memberlist
			// nodes without memberlist's lock (see alerting's
			// skipUpstreamRace).
			if !raceEnabled {
				args = append(args, "-notifier.peer="+c.notifierAddrs[j])
			}
		}
		cfg, err := Load(args)
		require.NoError(t, err)
		a, err := New(cfg, slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			require.NoError(t, <-done)
		})
		c.apps = append(c.apps, a)
	}

	var err2 error
	c.nodeTLS, err2 = (&tlsconfig.ClientConfig{CAFile: c.ca.CertFile, CertFile: c.node.CertFile, KeyFile: c.node.KeyFile}).Build()
	require.NoError(t, err2)
	c.strangerTLS, err2 = (&tlsconfig.ClientConfig{CAFile: c.ca.CertFile, CertFile: c.stranger.CertFile, KeyFile: c.stranger.KeyFile}).Build()
	require.NoError(t, err2)
	c.client = &http.Client{Transport: &http.Transport{TLSClientConfig: c.nodeTLS}, Timeout: time.Minute}
	for _, a := range c.apps {
		require.Eventually(t, func() bool { return c.status(http.MethodGet, c.url(a, "/ready"), nil) == http.StatusOK },
			60*time.Second, 20*time.Millisecond, "%s not ready", a.HTTPAddr())
	}
	return c
}

func (c *securedCluster) url(a *App, path string) string { return "https://" + a.HTTPAddr() + path }

// do sends an authenticated request with the node certificate.
func (c *securedCluster) do(method, u string, body io.Reader, hdr map[string]string) (int, []byte, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth("pharos", secBasicPassword)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *securedCluster) status(method, u string, body io.Reader) int {
	code, _, err := c.do(method, u, body, nil)
	if err != nil {
		return 0
	}
	return code
}

func TestSecuredCluster(t *testing.T) {
	c := startSecuredCluster(t)

	t.Run("ring forms over encrypted gossip", func(t *testing.T) {
		for _, a := range c.apps {
			require.Eventually(t, func() bool {
				active := 0
				for _, in := range a.Ring().Instances() {
					if in.State == ring.StateActive {
						active++
					}
				}
				return active == 3
			}, 30*time.Second, 20*time.Millisecond)
		}
	})

	ts := time.Now().Add(-time.Minute).UnixMilli()
	t.Run("write and read with RF 3 over TLS gRPC", func(t *testing.T) {
		series := genSeries(0, 50, ts)
		series = append(series, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "sec_metric"}},
			Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}},
		})
		raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
		require.NoError(t, err)
		code, body, err := c.do(http.MethodPost, c.url(c.apps[0], "/api/v1/write"), bytes.NewReader(snappy.Encode(nil, raw)), map[string]string{
			"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0",
		})
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, code, string(body))
		for _, a := range c.apps {
			got := c.ingesterLabelValues(t, a.GRPCAddr(), "id")
			require.Len(t, got, 50, "ingester %s holds every series", a.GRPCAddr())
		}
		for _, a := range c.apps {
			u := c.url(a, "/api/v1/query?query="+url.QueryEscape("count(m)")+"&time="+strconv.FormatFloat(float64(ts+1000)/1000, 'f', 3, 64))
			code, body, err := c.do(http.MethodGet, u, nil, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code, string(body))
			require.Contains(t, string(body), `"50"`)
		}
	})

	t.Run("rule, alert, notifier over raft and the notifier cluster under TLS", func(t *testing.T) {
		peers := 3
		if raceEnabled {
			peers = 1
		}
		for _, a := range c.apps {
			require.Eventually(t, func() bool {
				code, body, err := c.do(http.MethodGet, c.url(a, "/alertmanager/api/v2/status"), nil, nil)
				if err != nil || code != http.StatusOK {
					return false
				}
				var st struct {
					Cluster struct {
						Peers []json.RawMessage `json:"peers"`
					} `json:"cluster"`
				}
				return json.Unmarshal(body, &st) == nil && len(st.Cluster.Peers) == peers
			}, 30*time.Second, 50*time.Millisecond, "notifier cluster of %s", a.HTTPAddr())
		}
		// The raft leader evaluates and sends to its own notifier; the
		// followers forward /api/v1/alerts to it over HTTPS.
		require.Eventually(t, func() bool {
			for _, a := range c.apps {
				code, body, err := c.do(http.MethodGet, c.url(a, "/alertmanager/api/v2/alerts"), nil, nil)
				if err == nil && code == http.StatusOK && strings.Contains(string(body), "SecuredAlert") {
					return true
				}
			}
			return false
		}, 60*time.Second, 100*time.Millisecond, "the alert reaches a notifier")
		for _, a := range c.apps {
			require.Eventually(t, func() bool {
				code, body, err := c.do(http.MethodGet, c.url(a, "/api/v1/alerts"), nil, nil)
				return err == nil && code == http.StatusOK && strings.Contains(string(body), `"state":"firing"`)
			}, 30*time.Second, 100*time.Millisecond, "alerts through %s", a.HTTPAddr())
		}
	})

	t.Run("targets fan out to every scraper over HTTPS with basic auth", func(t *testing.T) {
		require.Eventually(t, func() bool {
			code, body, err := c.do(http.MethodGet, c.url(c.apps[1], "/api/v1/targets"), nil, nil)
			return err == nil && code == http.StatusOK && strings.Contains(string(body), `"job":"protected"`) && !strings.Contains(string(body), "warnings")
		}, 30*time.Second, 100*time.Millisecond)
	})

	a := c.apps[0]
	t.Run("HTTP refuses plaintext, foreign and missing certificates, and bad credentials", func(t *testing.T) {
		for _, addr := range []string{a.HTTPAddr()} {
			resp, err := http.Get("http://" + addr + "/ready")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.Equal(t, http.StatusBadRequest, resp.StatusCode, "plaintext HTTP: %s", body)
			}
			for name, cfg := range map[string]*tls.Config{
				"no certificate":           {RootCAs: c.nodeTLS.RootCAs},
				"another CA's certificate": c.strangerTLS,
			} {
				cl := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
				resp, err := cl.Get("https://" + addr + "/ready")
				if err == nil {
					resp.Body.Close()
				}
				require.Error(t, err, name)
			}
			for name, set := range map[string]func(*http.Request){
				"no basic auth":  func(*http.Request) {},
				"wrong password": func(r *http.Request) { r.SetBasicAuth("pharos", "wrong") },
				"unknown user":   func(r *http.Request) { r.SetBasicAuth("mallory", secBasicPassword) },
			} {
				for _, path := range []string{"/ready", "/-/healthy", "/api/v1/query?query=1", "/alertmanager/api/v2/status"} {
					req, err := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
					require.NoError(t, err)
					set(req)
					resp, err := c.client.Do(req)
					require.NoError(t, err)
					resp.Body.Close()
					require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s on %s", name, path)
				}
			}
		}
	})

	t.Run("gRPC refuses plaintext and clients without a valid certificate", func(t *testing.T) {
		check := func(tc tlsconfig.ClientConfig) error {
			cl, err := ingesterclient.Dial(a.GRPCAddr(), ingesterclient.Config{MaxRecvMsgSize: 1 << 20, MaxSendMsgSize: 1 << 20, RemoteTimeout: time.Second, TLS: tc})
			require.NoError(t, err)
			defer cl.Close()
			ctx, cancel := context.WithTimeout(tenant.With(context.Background(), tenant.DefaultTenant), 3*time.Second)
			defer cancel()
			_, err = cl.LabelNames(ctx, &ingesterpb.LabelNamesRequest{EndMs: time.Now().UnixMilli()})
			return err
		}
		require.NoError(t, check(tlsconfig.ClientConfig{CAFile: c.ca.CertFile, CertFile: c.node.CertFile, KeyFile: c.node.KeyFile}), "a valid client is served")
		require.Error(t, check(tlsconfig.ClientConfig{}), "plaintext")
		require.Error(t, check(tlsconfig.ClientConfig{CAFile: c.ca.CertFile}), "no certificate")
		require.Error(t, check(tlsconfig.ClientConfig{CAFile: c.ca.CertFile, CertFile: c.stranger.CertFile, KeyFile: c.stranger.KeyFile}), "another CA's certificate")
	})

	t.Run("gossip refuses members without the key", func(t *testing.T) {
		for name, keyFile := range map[string]string{
			"plaintext": "",
			"other key": writeFile(t, t.TempDir(), "k", base64.StdEncoding.EncodeToString([]byte("another-gossip-key-0123456789abc"))),
		} {
			var cfg gossip.Config
			require.NoError(t, func() error {
				fs := flag.NewFlagSet("t", flag.ContinueOnError)
				cfg.RegisterFlags(fs)
				return fs.Parse([]string{"-memberlist.bind=127.0.0.1:0", "-memberlist.join=" + a.GossipAddr(), "-memberlist.join-retry-interval=20ms", "-memberlist.leave-timeout=100ms"})
			}())
			cfg.EncryptionKeyFile = keyFile
			kv, err := gossip.New(cfg, slog.New(slog.DiscardHandler), nil)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = kv.Run(ctx) }()
			select {
			case <-kv.Joined():
				t.Errorf("%s: joined the encrypted cluster", name)
			case <-time.After(time.Second):
			}
			require.Empty(t, kv.Get().Instances, name)
			cancel()
			<-done
			require.NoError(t, kv.Close())
		}
		require.Equal(t, 3, c.apps[0].gossip.NumMembers())
	})

	t.Run("raft and notifier cluster refuse plaintext and foreign certificates", func(t *testing.T) {
		for _, addr := range []string{c.raftAddrs[0], c.notifierAddrs[0], c.notifierAddrs[1]} {
			require.NoError(t, tlsHandshake(addr, c.nodeTLS), "%s: a valid peer is accepted", addr)
			require.Error(t, tlsHandshake(addr, &tls.Config{RootCAs: c.nodeTLS.RootCAs}), "%s: no certificate", addr)
			require.Error(t, tlsHandshake(addr, c.strangerTLS), "%s: another CA's certificate", addr)
			require.True(t, plaintextRefused(t, addr), "%s: plaintext", addr)
		}
	})

	t.Run("secrets never printed", func(t *testing.T) {
		for _, path := range []string{"/api/v1/status/flags", "/api/v1/status/config", "/alertmanager/api/v2/status", "/config"} {
			code, body, err := c.do(http.MethodGet, c.url(a, path), nil, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code, path)
			for _, s := range []string{secBasicPassword, secScrapePass, secSlackToken, secGossipKey} {
				require.NotContains(t, string(body), s, "%s shows a secret", path)
			}
		}
		_, body, err := c.do(http.MethodGet, c.url(a, "/api/v1/status/flags"), nil, nil)
		require.NoError(t, err)
		require.Contains(t, string(body), `"server.http-client-basic-auth.password":"\u003csecret\u003e"`)
		_, body, err = c.do(http.MethodGet, c.url(a, "/api/v1/status/config"), nil, nil)
		require.NoError(t, err)
		require.Contains(t, string(body), "password: \\u003csecret\\u003e")
		logs := c.logs.String()
		require.NotEmpty(t, logs)
		for _, s := range []string{secBasicPassword, secScrapePass, secSlackToken, secGossipKey} {
			require.NotContains(t, logs, s, "the logs show a secret")
		}
		cfg, err := Load(a.cfg.args)
		require.NoError(t, err)
		require.NoError(t, Verify(cfg))
	})
}

// ingesterLabelValues asks one ingester over gRPC with the node's client
// certificate.
func (c *securedCluster) ingesterLabelValues(t *testing.T, addr, name string) []string {
	t.Helper()
	cl, err := ingesterclient.Dial(addr, ingesterclient.Config{MaxRecvMsgSize: 64 << 20, MaxSendMsgSize: 1 << 20, RemoteTimeout: 10 * time.Second,
		TLS: tlsconfig.ClientConfig{CAFile: c.ca.CertFile, CertFile: c.node.CertFile, KeyFile: c.node.KeyFile}})
	require.NoError(t, err)
	defer cl.Close()
	resp, err := cl.LabelValues(tenant.With(t.Context(), tenant.DefaultTenant), &ingesterpb.LabelValuesRequest{Name: name, EndMs: time.Now().Add(time.Hour).UnixMilli()})
	require.NoError(t, err)
	return resp.Values
}

// tlsHandshake completes a TLS 1.2 handshake with addr: in TLS 1.2 a
// server that refuses the client's certificate (or its absence) fails the
// handshake itself, where TLS 1.3 would report it only at the next read.
func tlsHandshake(addr string, cfg *tls.Config) error {
	cfg = cfg.Clone()
	cfg.MaxVersion = tls.VersionTLS12
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	return conn.Close()
}

// plaintextRefused sends plaintext bytes and reports whether the server
// answered with no more than a TLS alert and closed the connection.
func plaintextRefused(t *testing.T, addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	_, _ = conn.Write([]byte("\x00\x00\x00\x10plaintext request\r\n\r\n"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false // still open, as if it were waiting for more
	}
	// A TLS alert record (content type 21), or nothing.
	return len(b) == 0 || b[0] == 21
}

func TestSecurityConfigErrors(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	p := ca.Issue(t, "node")
	dir := t.TempDir()
	badWeb := writeFile(t, dir, "web.yml", "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n")
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"unreadable web config", []string{"-web.config.file=" + badWeb}, "web_config_file"},
		{"gRPC TLS without a key", []string{"-server.grpc-tls.cert-file=" + p.CertFile}, "grpc_tls: key_file"},
		{"client cert without key", []string{"-server.http-client-tls.cert-file=" + p.CertFile}, "http_client_tls"},
		{"password without user", []string{"-server.http-client-basic-auth.password=x"}, "http_client_basic_auth: username"},
		{"raft TLS without CA", []string{"-ruler.raft-tls.cert-file=" + p.CertFile, "-ruler.raft-tls.key-file=" + p.KeyFile}, "raft_tls: ca_file"},
		{"gossip key too short", []string{"-memberlist.encryption-key-file=" + writeFile(t, dir, "k", "short")}, "encryption_key_file"},
		{"notifier TLS twice", []string{"-notifier.cluster-tls-config=x.yml", "-notifier.cluster-tls.cert-file=" + p.CertFile, "-notifier.cluster-tls.key-file=" + p.KeyFile, "-notifier.cluster-tls.ca-file=" + ca.CertFile}, "at most one"},
		{"gRPC TLS without client TLS", []string{"-server.grpc-tls.cert-file=" + p.CertFile, "-server.grpc-tls.key-file=" + p.KeyFile}, "ingester_client.tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(append([]string{"-server.http-listen=127.0.0.1:0", "-server.grpc-listen=127.0.0.1:0", "-storage.path=" + t.TempDir()}, tc.args...))
			require.NoError(t, err)
			_, err = New(cfg, slog.New(slog.DiscardHandler))
			require.ErrorContains(t, err, tc.err)
		})
	}
}
