package app

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	"google.golang.org/grpc"

	"github.com/pharos-tsdb/pharos/internal/tlsconfig"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
)

// SecurityConfig is the part of the `server:` section that encrypts and
// authenticates this process's listeners and its HTTP clients. The other
// links have their settings in their own sections: ingester_client.tls,
// memberlist.encryption_key_file, ruler.raft_tls and
// notifier.cluster_tls_config. docs/security.md shows them together.
type SecurityConfig struct {
	// WebConfigFile is Prometheus's web configuration file
	// (exporter-toolkit: tls_server_config, basic_auth_users with bcrypt
	// hashes, http_server_config). It applies to every HTTP listener of
	// the process: server.http_listen and notifier.http_listen, probes
	// included, as in Prometheus.
	WebConfigFile string `yaml:"web_config_file"`
	// HTTPClientTLS and HTTPClientBasicAuth are what this process presents
	// to the HTTP listeners of the other Pharos processes (scrapers'
	// targets, the ruler leader, notifiers).
	HTTPClientTLS       tlsconfig.ClientConfig `yaml:"http_client_tls"`
	HTTPClientBasicAuth tlsconfig.BasicAuth    `yaml:"http_client_basic_auth"`
	// GRPCTLS is the ingesters' gRPC server; clients set ingester_client.tls.
	GRPCTLS tlsconfig.ServerConfig `yaml:"grpc_tls"`
}

// RegisterFlags registers the security flags. The web configuration file
// keeps Prometheus's flag name.
func (c *SecurityConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.WebConfigFile, "web.config.file", "", "Prometheus web configuration file (TLS, mTLS, basic auth) for every HTTP listener of this process.")
	c.HTTPClientTLS.RegisterFlags("server.http-client-tls.", fs)
	c.HTTPClientBasicAuth.RegisterFlags("server.http-client-basic-auth.", fs)
	c.GRPCTLS.RegisterFlags("server.grpc-tls.", fs)
}

// Validate reports the first invalid field by its YAML name. The web
// configuration file is checked as Prometheus checks it at start.
func (c *SecurityConfig) Validate() error {
	if c.WebConfigFile != "" {
		if err := web.Validate(c.WebConfigFile); err != nil {
			return fmt.Errorf("web_config_file: %w", err)
		}
	}
	if err := c.HTTPClientTLS.Validate(); err != nil {
		return fmt.Errorf("http_client_tls: %w", err)
	}
	if err := c.HTTPClientBasicAuth.Validate(); err != nil {
		return fmt.Errorf("http_client_basic_auth: %w", err)
	}
	if err := c.GRPCTLS.Validate(); err != nil {
		return fmt.Errorf("grpc_tls: %w", err)
	}
	return nil
}

// webTLS reports whether the web configuration file serves HTTPS, so the
// URLs this process advertises to its peers say https.
func (c *SecurityConfig) webTLS() (bool, error) {
	if c.WebConfigFile == "" {
		return false, nil
	}
	b, err := os.ReadFile(c.WebConfigFile)
	if err != nil {
		return false, fmt.Errorf("web_config_file: %w", err)
	}
	var wc struct {
		TLS struct {
			Cert     string `yaml:"cert"`
			CertFile string `yaml:"cert_file"`
		} `yaml:"tls_server_config"`
	}
	if err := yaml.Unmarshal(b, &wc); err != nil {
		return false, fmt.Errorf("web_config_file: %w", err)
	}
	return wc.TLS.Cert != "" || wc.TLS.CertFile != "", nil
}

// security is what New derives from the SecurityConfig for the roles.
type security struct {
	// scheme is http or https: how this process's HTTP listeners, and so
	// every process's of one configuration, are reached.
	scheme string
	// transport carries internal HTTP requests to other Pharos processes
	// with the client TLS configuration and basic auth.
	transport http.RoundTripper
	client    *http.Client
	grpcOpts  []grpc.ServerOption
}

func (a *App) buildSecurity() error {
	c := &a.cfg.Server.SecurityConfig
	a.sec.scheme = "http"
	if on, err := c.webTLS(); err != nil {
		return err
	} else if on {
		a.sec.scheme = "https"
	}
	rt, err := tlsconfig.RoundTripper(c.HTTPClientTLS, c.HTTPClientBasicAuth, "pharos_internal")
	if err != nil {
		return fmt.Errorf("server.http_client_tls: %w", err)
	}
	a.sec.transport = rt
	a.sec.client = &http.Client{Transport: rt}
	// One configuration serves every process of a cluster: a process
	// whose ingesters refuse plaintext dials them with TLS too.
	if c.GRPCTLS.Enabled() && !a.cfg.IngesterClient.TLS.IsEnabled() &&
		(a.has(RoleDistributor) || a.has(RoleQuerier) || a.has(RoleRuler)) {
		return errors.New("ingester_client.tls: required when server.grpc_tls is set, as the ingesters refuse plaintext")
	}
	opt, err := ingesterclient.ServerTLSOption(c.GRPCTLS)
	if err != nil {
		return fmt.Errorf("server.grpc_tls: %w", err)
	}
	if opt != nil {
		a.sec.grpcOpts = append(a.sec.grpcOpts, opt)
	}
	return nil
}

// serveHTTP serves srv on ln, through the web configuration file when one
// is set: TLS, client certificates and basic auth then guard every path.
// It returns as http.Server.Serve does.
func (a *App) serveHTTP(srv *http.Server, ln net.Listener, logger *slog.Logger) error {
	// Failed handshakes (plaintext, missing or foreign certificates) are
	// worth a warning; http.Server would print them to stderr.
	srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	file := a.cfg.Server.WebConfigFile
	if file == "" {
		return srv.Serve(ln)
	}
	err := web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &file}, logger)
	if errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err != nil {
		return fmt.Errorf("web config %s: %w", file, err)
	}
	return nil
}

// rulerHTTPClient is how the ruler reaches the notifiers: the process's
// client TLS and basic auth.
func (a *App) rulerHTTPClient() *commoncfg.HTTPClientConfig {
	hc := tlsconfig.HTTPClient(a.cfg.Server.HTTPClientTLS, a.cfg.Server.HTTPClientBasicAuth)
	return &hc
}
