package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// tokensFile is the on-disk form of an ingester's tokens, JSON so an
// operator can read it.
type tokensFile struct {
	Tokens []uint32 `json:"tokens"`
}

// loadTokens reads tokens saved by saveTokens. A missing file is not an
// error: it returns nil.
func loadTokens(path string) ([]uint32, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	var f tokensFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse tokens file %s: %w", path, err)
	}
	slices.Sort(f.Tokens)
	return slices.Compact(f.Tokens), nil
}

// saveTokens writes tokens atomically (temp file, fsync, rename), so a crash
// never leaves a truncated file that would lose the ingester's ranges.
func saveTokens(path string, tokens []uint32) error {
	b, err := json.Marshal(tokensFile{Tokens: tokens})
	if err != nil {
		return fmt.Errorf("encode tokens: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tokens-*")
	if err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save tokens: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save tokens: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	return nil
}
