package tlsconfig_test

import (
	"crypto/tls"
	"flag"
	"io"
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tlsconfig"
	"github.com/pharos-tsdb/pharos/internal/tlsconfig/tlstest"
)

// serveOnce accepts connections on a TLS listener and answers "ok" after a
// completed handshake, until the listener closes.
func serveOnce(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte("ok"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// talk dials addr with cfg and reports whether it read the server's "ok".
func talk(addr string, cfg *tls.Config) error {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(b) != "ok" {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func TestMutualTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "pharos-ca"), tlstest.NewCA(t, "other-ca")
	srvPair, cliPair, strangerPair := ca.Issue(t, "server"), ca.Issue(t, "client"), other.Issue(t, "stranger")

	srv := tlsconfig.ServerConfig{CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile, ClientCAFile: ca.CertFile, ClientAuth: tlsconfig.ClientAuthRequireAndVerify}
	scfg, err := srv.Build()
	require.NoError(t, err)
	addr := serveOnce(t, scfg)

	for _, tc := range []struct {
		name string
		cli  tlsconfig.ClientConfig
		ok   bool
	}{
		{"valid certificate", tlsconfig.ClientConfig{CAFile: ca.CertFile, CertFile: cliPair.CertFile, KeyFile: cliPair.KeyFile}, true},
		{"no certificate", tlsconfig.ClientConfig{CAFile: ca.CertFile}, false},
		{"certificate of another CA", tlsconfig.ClientConfig{CAFile: ca.CertFile, CertFile: strangerPair.CertFile, KeyFile: strangerPair.KeyFile}, false},
		{"server not trusted", tlsconfig.ClientConfig{CAFile: other.CertFile, CertFile: cliPair.CertFile, KeyFile: cliPair.KeyFile}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, err := tc.cli.Build()
			require.NoError(t, err)
			err = talk(addr, ccfg)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}

	t.Run("peer", func(t *testing.T) {
		p := tlsconfig.PeerConfig{CertFile: cliPair.CertFile, KeyFile: cliPair.KeyFile, CAFile: ca.CertFile}
		ps, pc, err := p.Build()
		require.NoError(t, err)
		require.Equal(t, tls.RequireAndVerifyClientCert, ps.ClientAuth)
		require.NoError(t, talk(addr, pc))
		require.NoError(t, talk(serveOnce(t, ps), pc))
	})
}

func TestServerReloadsRotatedCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	first, second := ca.Issue(t, "first"), ca.Issue(t, "second")
	srv := tlsconfig.ServerConfig{CertFile: first.CertFile, KeyFile: first.KeyFile}
	scfg, err := srv.Build()
	require.NoError(t, err)
	addr := serveOnce(t, scfg)
	commonName := func() string {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		require.NoError(t, err)
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	require.Equal(t, "first", commonName())
	for _, f := range [][2]string{{second.CertFile, first.CertFile}, {second.KeyFile, first.KeyFile}} {
		b, err := os.ReadFile(f[0])
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(f[1], append(b, '\n'), 0o600))
	}
	require.Eventually(t, func() bool { return commonName() == "second" }, 5e9, 5e7)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    interface{ Validate() error }
		err  string
	}{
		{"server key without cert", &tlsconfig.ServerConfig{KeyFile: "k"}, "cert_file"},
		{"server bad client_auth", &tlsconfig.ServerConfig{CertFile: "c", KeyFile: "k", ClientAuth: "maybe"}, "client_auth"},
		{"server mTLS without CA", &tlsconfig.ServerConfig{CertFile: "c", KeyFile: "k", ClientAuth: "require_and_verify"}, "client_ca_file"},
		{"server ok", &tlsconfig.ServerConfig{CertFile: "c", KeyFile: "k"}, ""},
		{"client cert without key", &tlsconfig.ClientConfig{CertFile: "c"}, "key_file"},
		{"peer without CA", &tlsconfig.PeerConfig{CertFile: "c", KeyFile: "k"}, "ca_file"},
		{"basic auth without user", &tlsconfig.BasicAuth{Password: "p"}, "username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestSecretFlagNeverPrints(t *testing.T) {
	var b tlsconfig.BasicAuth
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	b.RegisterFlags("x.", fs)
	require.NoError(t, fs.Parse([]string{"-x.username=u", "-x.password=hunter2"}))
	require.Equal(t, "hunter2", string(b.Password))
	fs.VisitAll(func(f *flag.Flag) { require.NotContains(t, f.Value.String(), "hunter2") })
	require.Equal(t, "<secret>", fs.Lookup("x.password").Value.String())
}

func TestPlaintextClientRefused(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	p := ca.Issue(t, "server")
	srv := tlsconfig.ServerConfig{CertFile: p.CertFile, KeyFile: p.KeyFile}
	scfg, err := srv.Build()
	require.NoError(t, err)
	addr := serveOnce(t, scfg)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	b, _ := io.ReadAll(c)
	require.NotContains(t, string(b), "ok")
}
