package gossip

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"

	"github.com/hashicorp/memberlist"
)

// readEncryptionKey reads an AES key from file: 16, 24 or 32 bytes,
// base64-encoded (what `openssl rand -base64 32` writes), or else raw. A
// file that is valid base64 is always decoded, so every node reads the
// same key from the same file.
func readEncryptionKey(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(b); len(t) > 0 {
		if k, err := base64.StdEncoding.DecodeString(string(t)); err == nil && validKeyLen(len(k)) {
			return k, nil
		}
	}
	if !validKeyLen(len(b)) {
		return nil, fmt.Errorf("%s: the key must be 16, 24 or 32 bytes, raw or base64-encoded", file)
	}
	return b, nil
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }

// setEncryption turns on memberlist's AES-GCM encryption of every packet
// and stream with the key in file, and makes it refuse anything that is
// not encrypted with it: an intruder can neither read the ring nor write
// it. Nothing changes when file is empty.
func setEncryption(c *memberlist.Config, file string) error {
	if file == "" {
		return nil
	}
	key, err := readEncryptionKey(file)
	if err != nil {
		return fmt.Errorf("memberlist.encryption_key_file: %w", err)
	}
	c.SecretKey = key
	c.GossipVerifyIncoming = true
	c.GossipVerifyOutgoing = true
	return nil
}
