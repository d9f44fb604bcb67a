package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/prometheus/prometheus/tsdb"
)

// DiskUsage is what the tsdb directories of one side hold after the write
// phase: the write-ahead log and memory-mapped head chunks the head keeps
// while it ingests, and the blocks the same head becomes once compacted.
type DiskUsage struct {
	WALBytes, HeadChunkBytes int64
	// BlockBytes and BlockSamples are summed over the blocks that
	// compacting each replica's head produced.
	BlockBytes, BlockSamples int64
	// BlockDirs are where those blocks were left, one directory per
	// measured tsdb directory, in order: each holds the blocks of one
	// replica's head, a tsdb directory of its own (see RunBlocks). They are
	// inside the scratch directory, which the caller removes.
	BlockDirs []string
}

// BytesPerSample is the compacted size per stored sample (replicas
// included, as each replica stores its own copy).
func (d DiskUsage) BytesPerSample() float64 {
	if d.BlockSamples == 0 {
		return 0
	}
	return float64(d.BlockBytes) / float64(d.BlockSamples)
}

// MeasureDisk measures the closed tsdb directories dirs. It compacts each
// head as the tsdb would when the head is full, through a read-only open
// that flushes the WAL into a block in a scratch directory, so the data
// directory itself is left as it was. The blocks stay in scratch
// (DiskUsage.BlockDirs).
func MeasureDisk(scratch string, dirs ...string) (DiskUsage, error) {
	var u DiskUsage
	for i, dir := range dirs {
		wal, err := dirSize(filepath.Join(dir, "wal"))
		if err != nil {
			return u, err
		}
		chunks, err := dirSize(filepath.Join(dir, "chunks_head"))
		if err != nil {
			return u, err
		}
		u.WALBytes += wal
		u.HeadChunkBytes += chunks
		out := filepath.Join(scratch, fmt.Sprintf("blocks-%d", i))
		if err := compactHead(dir, scratch, out); err != nil {
			return u, fmt.Errorf("compact the head of %s: %w", dir, err)
		}
		bytes, samples, err := blockStats(out)
		if err != nil {
			return u, err
		}
		u.BlockBytes += bytes
		u.BlockSamples += samples
		u.BlockDirs = append(u.BlockDirs, out)
	}
	return u, nil
}

func compactHead(dir, scratch, out string) (err error) {
	db, err := tsdb.OpenDBReadOnly(dir, scratch, nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	return db.FlushWAL(out)
}

// blockStats sums the size and the samples (from meta.json) of the blocks
// in dir.
func blockStats(dir string) (bytes, samples int64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta.json"))
		if err != nil {
			continue // not a block
		}
		var meta tsdb.BlockMeta
		if err := json.Unmarshal(b, &meta); err != nil {
			return 0, 0, fmt.Errorf("block %s: %w", e.Name(), err)
		}
		n, err := dirSize(filepath.Join(dir, e.Name()))
		if err != nil {
			return 0, 0, err
		}
		bytes += n
		samples += int64(meta.Stats.NumSamples)
	}
	return bytes, samples, nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}
