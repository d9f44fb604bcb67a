package ruler

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDecodeCommandRefusesHugeClaims: the input FuzzFSMApply found (kept
// in testdata/fuzz/FuzzFSMApply) is 8 bytes whose snappy header claims
// 2.3 GB; decoding it must be refused before anything is allocated, or
// the fuzz worker, like a ruler replaying a corrupt log, runs out of memory.
func TestDecodeCommandRefusesHugeClaims(t *testing.T) {
	_, err := decodeCommand([]byte("s\x92\xcb\xd9\xd1\b\xf10"))
	require.ErrorContains(t, err, "corrupt")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _ = decodeCommand([]byte("s\x92\xcb\xd9\xd1\b\xf10"))
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "bytes allocated")
}
