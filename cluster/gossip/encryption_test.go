package gossip

import (
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster/ring"
)

func writeKey(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(f, []byte(content), 0o600))
	return f
}

func TestReadEncryptionKey(t *testing.T) {
	// Not base64 (the '!'), so taken as raw bytes.
	raw := "0123456789abcdef0123456789abcde!"
	for _, tc := range []struct {
		name, content string
		want          int // key length, 0 for an error
	}{
		{"raw 32", raw, 32},
		{"raw 16", raw[16:], 16},
		{"base64 32 with newline", base64.StdEncoding.EncodeToString([]byte(raw)) + "\n", 32},
		{"base64 before raw", "0123456789abcdef0123456789abcdef", 24},
		{"too short", "short", 0},
		{"empty", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := readEncryptionKey(writeKey(t, tc.content))
			if tc.want == 0 {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Len(t, k, tc.want)
		})
	}
	c := testConfig()
	c.EncryptionKeyFile = writeKey(t, "short")
	require.ErrorContains(t, c.Validate(), "encryption_key_file")
}

// TestEncryptedGossip: members with the key gossip; a member without it or
// with another key never joins, and a plaintext TCP push/pull from it is
// dropped without touching the ring.
func TestEncryptedGossip(t *testing.T) {
	key := writeKey(t, base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	other := writeKey(t, base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210")))
	ca := testConfig()
	ca.EncryptionKeyFile = key
	a := startKV(t, ca, nil)
	cb := testConfig(a.LocalAddr())
	cb.EncryptionKeyFile = key
	b := startKV(t, cb, nil)
	<-b.Joined()
	in := ring.Instance{ID: "ing-1", Addr: "127.0.0.1:9095", State: ring.StateActive, Tokens: []uint32{1}, Timestamp: 100}
	a.Merge(&ring.Desc{Instances: map[string]ring.Instance{in.ID: in}})
	require.Eventually(t, func() bool { _, ok := b.Get().Get("ing-1"); return ok }, 5*time.Second, 10*time.Millisecond)

	for name, file := range map[string]string{"plaintext": "", "wrong key": other} {
		t.Run(name, func(t *testing.T) {
			c := testConfig(a.LocalAddr())
			c.EncryptionKeyFile = file
			c.JoinRetryInterval = 20 * time.Millisecond
			intruder := startKV(t, c, nil)
			select {
			case <-intruder.Joined():
				t.Fatal("joined an encrypted cluster")
			case <-time.After(500 * time.Millisecond):
			}
			require.Equal(t, 1, intruder.NumMembers())
			require.Equal(t, 2, a.NumMembers())
			_, ok := intruder.Get().Get("ing-1")
			require.False(t, ok, "the intruder learned the ring")
		})
	}

	// Raw bytes on the TCP port are not a member either.
	conn, err := net.Dial("tcp", a.LocalAddr())
	require.NoError(t, err)
	_, _ = conn.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	conn.Close()
	require.Equal(t, 2, a.NumMembers())
}
