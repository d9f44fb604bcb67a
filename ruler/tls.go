package ruler

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
	commoncfg "github.com/prometheus/common/config"
	promconfig "github.com/prometheus/prometheus/config"

	"github.com/pharos-tsdb/pharos/internal/tlsconfig"
)

// tlsStream is the raft stream layer with mutual TLS: every accepted
// connection must complete a handshake with a certificate from the
// configured CA before raft reads an RPC from it, and every dialled peer
// must present one too. A plaintext peer fails the handshake and is
// dropped.
type tlsStream struct {
	*tcpStream
	server, client *tls.Config
}

// withTLS wraps tcp in mutual TLS when cfg turns it on, else returns it.
func withTLS(tcp *tcpStream, cfg tlsconfig.PeerConfig) (raft.StreamLayer, error) {
	server, client, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("raft_tls: %w", err)
	}
	if server == nil {
		return tcp, nil
	}
	return &tlsStream{tcpStream: tcp, server: server, client: client}, nil
}

// handshakeTimeout bounds a handshake, so a silent client cannot hold an
// accepted connection open.
const handshakeTimeout = 10 * time.Second

// Accept returns the next connection; its handshake happens on the first
// read, in raft's connection goroutine, so one slow peer does not stall
// Accept for the others.
func (s *tlsStream) Accept() (net.Conn, error) {
	c, err := s.tcpStream.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, s.server), nil
}

// Dial connects to a peer and completes the handshake within timeout.
func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := s.tcpStream.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	cfg := s.client
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(string(addr))
		if err != nil {
			c.Close()
			return nil, err
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	if timeout <= 0 {
		timeout = handshakeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// applyHTTPClient gives every alertmanager of cfg the TLS settings of hc,
// and its basic auth unless the alertmanager_url carried credentials.
func applyHTTPClient(cfg *promconfig.Config, hc *commoncfg.HTTPClientConfig) {
	if hc == nil {
		return
	}
	for _, am := range cfg.AlertingConfig.AlertmanagerConfigs {
		am.HTTPClientConfig.TLSConfig = hc.TLSConfig
		if am.HTTPClientConfig.BasicAuth == nil && hc.BasicAuth != nil {
			ba := *hc.BasicAuth
			am.HTTPClientConfig.BasicAuth = &ba
		}
	}
}
