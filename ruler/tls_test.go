package ruler

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tlsconfig"
	"github.com/pharos-tsdb/pharos/internal/tlsconfig/tlstest"
)

// TestTLSStream: two raft stream layers with the same CA talk; a plaintext
// peer and a peer with another CA's certificate get nothing through.
func TestTLSStream(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	good, stranger := ca.Issue(t, "ruler"), other.Issue(t, "ruler")
	newStream := func(p tlstest.Pair, caFile string) raft.StreamLayer {
		tcp, err := newTCPStream("127.0.0.1:0", "", true)
		require.NoError(t, err)
		s, err := withTLS(tcp, tlsconfig.PeerConfig{CertFile: p.CertFile, KeyFile: p.KeyFile, CAFile: caFile})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	server := newStream(good, ca.CertFile)
	require.IsType(t, &tlsStream{}, server)
	// The server echoes one line per accepted connection.
	go func() {
		for {
			c, err := server.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				b := make([]byte, 5)
				if _, err := io.ReadFull(c, b); err == nil {
					_, _ = c.Write(b)
				}
			}()
		}
	}()
	addr := raft.ServerAddress(server.Addr().String())

	client := newStream(good, ca.CertFile)
	c, err := client.Dial(addr, 5*time.Second)
	require.NoError(t, err)
	_, err = c.Write([]byte("hello"))
	require.NoError(t, err)
	b := make([]byte, 5)
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
	c.Close()

	_, err = newStream(stranger, other.CertFile).Dial(addr, 5*time.Second)
	require.Error(t, err, "a peer of another CA")

	plain, err := net.DialTimeout("tcp", string(addr), 5*time.Second)
	require.NoError(t, err)
	defer plain.Close()
	_, _ = plain.Write([]byte("hello"))
	_ = plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(plain)
	require.NotContains(t, string(got), "hello", "a plaintext peer is answered")

	tcp, err := newTCPStream("127.0.0.1:0", "", true)
	require.NoError(t, err)
	defer tcp.Close()
	s, err := withTLS(tcp, tlsconfig.PeerConfig{})
	require.NoError(t, err)
	require.Same(t, tcp, s, "no TLS configured: the plain stream")
}
