package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// Client authentication modes of a ServerConfig.
const (
	// ClientAuthNone accepts clients without a certificate.
	ClientAuthNone = "none"
	// ClientAuthRequireAndVerify refuses a client unless it presents a
	// certificate that chains to client_ca_file.
	ClientAuthRequireAndVerify = "require_and_verify"
)

// ServerConfig is the server end of a TLS link. TLS is on when CertFile is
// set; the server then refuses plaintext connections.
type ServerConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is none or require_and_verify (mTLS).
	ClientAuth string `yaml:"client_auth"`
}

// RegisterFlags registers the flags under prefix (e.g. "server.grpc-tls.").
func (c *ServerConfig) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.StringVar(&c.CertFile, prefix+"cert-file", "", "PEM certificate of the server; setting it turns TLS on and plaintext off.")
	fs.StringVar(&c.KeyFile, prefix+"key-file", "", "PEM private key of the server certificate.")
	fs.StringVar(&c.ClientCAFile, prefix+"client-ca-file", "", "PEM CA bundle that client certificates must chain to.")
	fs.StringVar(&c.ClientAuth, prefix+"client-auth", ClientAuthNone, "Client certificate policy: none or require_and_verify (mTLS).")
}

// Enabled reports whether TLS is configured.
func (c *ServerConfig) Enabled() bool { return c.CertFile != "" }

// Validate reports the first invalid field by its YAML name.
func (c *ServerConfig) Validate() error {
	switch c.ClientAuth {
	case "", ClientAuthNone:
	case ClientAuthRequireAndVerify:
		if c.ClientCAFile == "" {
			return errors.New("client_ca_file: required with client_auth require_and_verify")
		}
	default:
		return fmt.Errorf("client_auth: %q is not one of none, require_and_verify", c.ClientAuth)
	}
	if !c.Enabled() {
		if c.KeyFile != "" || c.ClientCAFile != "" || c.ClientAuth == ClientAuthRequireAndVerify {
			return errors.New("cert_file: required when key_file, client_ca_file or client_auth is set")
		}
		return nil
	}
	if c.KeyFile == "" {
		return errors.New("key_file: required with cert_file")
	}
	return nil
}

// Build returns the server's TLS configuration, nil when TLS is off. The
// files are read now, so that a wrong path fails at start, and again at a
// handshake after they changed.
func (c *ServerConfig) Build() (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	kp, err := newKeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() },
	}
	if c.ClientCAFile != "" {
		pool, err := loadCAs(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client_ca_file: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if c.ClientAuth == ClientAuthRequireAndVerify {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig is the client end of a TLS link. Its YAML keys are those of
// prometheus/common config.TLSConfig. TLS is on when Enabled is set or any
// file, the server name or insecure_skip_verify is.
type ClientConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// RegisterFlags registers the flags under prefix (e.g. "ingester.client.tls.").
func (c *ClientConfig) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, prefix+"enabled", false, "Use TLS even when no other TLS flag of this client is set (system CAs, no client certificate).")
	fs.StringVar(&c.CAFile, prefix+"ca-file", "", "PEM CA bundle that server certificates must chain to (empty: the system's).")
	fs.StringVar(&c.CertFile, prefix+"cert-file", "", "PEM client certificate, for servers that require one (mTLS).")
	fs.StringVar(&c.KeyFile, prefix+"key-file", "", "PEM private key of the client certificate.")
	fs.StringVar(&c.ServerName, prefix+"server-name", "", "Name the server certificate must carry (empty: the host dialled).")
	fs.BoolVar(&c.InsecureSkipVerify, prefix+"insecure-skip-verify", false, "Accept any server certificate. For tests only.")
}

// IsEnabled reports whether the client uses TLS.
func (c *ClientConfig) IsEnabled() bool {
	return c.Enabled || c.CAFile != "" || c.CertFile != "" || c.ServerName != "" || c.InsecureSkipVerify
}

// Validate reports the first invalid field by its YAML name.
func (c *ClientConfig) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("cert_file and key_file: set both or neither")
	}
	return nil
}

// Common is the configuration in prometheus/common's form, for the
// upstream components (the ruler's notifier manager) that take it.
func (c *ClientConfig) Common() commoncfg.TLSConfig {
	return commoncfg.TLSConfig{
		CAFile:             c.CAFile,
		CertFile:           c.CertFile,
		KeyFile:            c.KeyFile,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify,
	}
}

// Build returns the client's TLS configuration, nil when TLS is off. The
// client certificate is re-read when its files change.
func (c *ClientConfig) Build() (*tls.Config, error) {
	if !c.IsEnabled() {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	common := c.Common()
	cfg, err := commoncfg.NewTLSConfig(&common)
	if err != nil {
		return nil, fmt.Errorf("tls client: %w", err)
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg, nil
}

// BasicAuth is the credentials an internal HTTP client sends, for servers
// whose web.config.file lists basic_auth_users.
type BasicAuth struct {
	Username string `yaml:"username"`
	// Password prints as <secret> in every output.
	Password     commoncfg.Secret `yaml:"password"`
	PasswordFile string           `yaml:"password_file"`
}

// RegisterFlags registers the flags under prefix.
func (b *BasicAuth) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.StringVar(&b.Username, prefix+"username", "", "Basic-auth user name sent to the other Pharos processes.")
	fs.Var((*secretFlag)(&b.Password), prefix+"password", "Basic-auth password sent with the user name (shown as <secret>).")
	fs.StringVar(&b.PasswordFile, prefix+"password-file", "", "File holding the basic-auth password.")
}

// Validate reports the first invalid field by its YAML name.
func (b *BasicAuth) Validate() error {
	if b.Password != "" && b.PasswordFile != "" {
		return errors.New("password and password_file: set at most one")
	}
	if b.Username == "" && (b.Password != "" || b.PasswordFile != "") {
		return errors.New("username: required with a password")
	}
	return nil
}

// HTTPClient returns the configuration of prometheus/common's HTTP client
// with tls and, when a user name is set, basic auth.
func HTTPClient(tlsCfg ClientConfig, auth BasicAuth) commoncfg.HTTPClientConfig {
	hc := commoncfg.DefaultHTTPClientConfig
	hc.TLSConfig = tlsCfg.Common()
	if auth.Username != "" {
		hc.BasicAuth = &commoncfg.BasicAuth{Username: auth.Username, Password: auth.Password, PasswordFile: auth.PasswordFile}
	}
	return hc
}

// RoundTripper returns a transport that speaks TLS as tlsCfg says and adds
// basic auth. name labels its connection metrics upstream.
func RoundTripper(tlsCfg ClientConfig, auth BasicAuth, name string) (http.RoundTripper, error) {
	if err := tlsCfg.Validate(); err != nil {
		return nil, err
	}
	if err := auth.Validate(); err != nil {
		return nil, err
	}
	rt, err := commoncfg.NewRoundTripperFromConfig(HTTPClient(tlsCfg, auth), name, commoncfg.WithHTTP2Disabled())
	if err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	return rt, nil
}

// PeerConfig is a symmetric link between equals: each side serves and
// dials with the same certificate, and each refuses a peer whose
// certificate does not chain to CAFile. TLS is on when CertFile is set.
type PeerConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
	// ServerName is the name peer certificates must carry (empty: the host
	// dialled).
	ServerName string `yaml:"server_name"`
}

// RegisterFlags registers the flags under prefix (e.g. "ruler.raft-tls.").
func (c *PeerConfig) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.StringVar(&c.CertFile, prefix+"cert-file", "", "PEM certificate this node presents as server and as client; setting it turns mutual TLS on and plaintext off.")
	fs.StringVar(&c.KeyFile, prefix+"key-file", "", "PEM private key of the certificate.")
	fs.StringVar(&c.CAFile, prefix+"ca-file", "", "PEM CA bundle every peer's certificate must chain to.")
	fs.StringVar(&c.ServerName, prefix+"server-name", "", "Name peer certificates must carry (empty: the host dialled).")
}

// Enabled reports whether TLS is configured.
func (c *PeerConfig) Enabled() bool { return c.CertFile != "" }

// Validate reports the first invalid field by its YAML name.
func (c *PeerConfig) Validate() error {
	if !c.Enabled() {
		if c.KeyFile != "" || c.CAFile != "" || c.ServerName != "" {
			return errors.New("cert_file: required when key_file, ca_file or server_name is set")
		}
		return nil
	}
	if c.KeyFile == "" {
		return errors.New("key_file: required with cert_file")
	}
	if c.CAFile == "" {
		return errors.New("ca_file: required with cert_file (peers verify each other)")
	}
	return nil
}

// Build returns the server side and the client side of the link, both nil
// when TLS is off.
func (c *PeerConfig) Build() (server, client *tls.Config, err error) {
	if !c.Enabled() {
		return nil, nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	srv := ServerConfig{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCAFile: c.CAFile, ClientAuth: ClientAuthRequireAndVerify}
	if server, err = srv.Build(); err != nil {
		return nil, nil, err
	}
	cli := ClientConfig{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile, ServerName: c.ServerName}
	if client, err = cli.Build(); err != nil {
		return nil, nil, err
	}
	return server, client, nil
}

// keyPair is a certificate and key read from files, re-read when either
// file's modification time or size changes.
type keyPair struct {
	certFile, keyFile string

	mu       sync.Mutex
	stamp    [2]fileStamp
	cert     *tls.Certificate
	lastStat time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func newKeyPair(certFile, keyFile string) (*keyPair, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile}
	if _, err := kp.get(); err != nil {
		return nil, err
	}
	return kp, nil
}

// statEvery bounds how often a busy server looks at the files.
const statEvery = time.Second

func (kp *keyPair) get() (*tls.Certificate, error) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	now := time.Now()
	if kp.cert != nil && now.Sub(kp.lastStat) < statEvery {
		return kp.cert, nil
	}
	kp.lastStat = now
	var st [2]fileStamp
	for i, f := range []string{kp.certFile, kp.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			if kp.cert != nil {
				return kp.cert, nil // keep serving through a rotation's gap
			}
			return nil, fmt.Errorf("tls certificate: %w", err)
		}
		st[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	if kp.cert != nil && st == kp.stamp {
		return kp.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		if kp.cert != nil {
			return kp.cert, nil // a half-written pair: keep the old one
		}
		return nil, fmt.Errorf("tls certificate %s: %w", kp.certFile, err)
	}
	kp.cert, kp.stamp = &cert, st
	return kp.cert, nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bytes.TrimSpace(pem)) {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return pool, nil
}

// secretFlag is a flag.Value over a Secret that never prints its value:
// flag listings (/api/v1/status/flags, -help defaults) show <secret>.
type secretFlag commoncfg.Secret

func (s *secretFlag) String() string {
	if s == nil || *s == "" {
		return ""
	}
	return "<secret>"
}

func (s *secretFlag) Set(v string) error { *s = secretFlag(v); return nil }

// SecretFlag returns a flag.Value that sets *s and prints as <secret>.
func SecretFlag(s *commoncfg.Secret) flag.Value { return (*secretFlag)(s) }
