package ingester

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// TestDiskFullStopsWritesAndRecovers fills a small tmpfs under the
// ingester: the push whose commit fails answers Unavailable, the ingester
// reports not ready and refuses writes, and once space returns it reopens
// its tsdb and takes writes again; every acknowledged sample is there, also
// after a restart. Needs root for the mount (CI has it).
func TestDiskFullStopsWritesAndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	cfg := testConfig(t, dir)
	h := startIngester(t, cfg)
	ctx := context.Background()

	push := func(k int) error {
		req := &ingesterpb.PushRequest{}
		for s := range 50 {
			req.Series = append(req.Series, &ingesterpb.TimeSeries{
				Labels:  lbls("__name__", "fill", "series", fmt.Sprint(s), "pad", fmt.Sprintf("%0200d", s)),
				Samples: floats(float64(k*1000), float64(k)),
			})
		}
		_, err := h.client.Push(ctx, req)
		return err
	}
	// Leave the WAL little room, then write until a commit fails.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	require.NoError(t, err)
	for {
		if _, err := f.Write(make([]byte, 1<<20)); err != nil {
			break
		}
	}
	require.NoError(t, f.Close())
	require.NoError(t, os.Truncate(filler, mustSize(t, filler)-(256<<10)))
	acked := 0
	var pushErr error
	for k := 1; k < 10_000; k++ {
		if pushErr = push(k); pushErr != nil {
			break
		}
		acked = k
	}
	require.Error(t, pushErr)
	require.Equal(t, codes.Unavailable, status.Code(pushErr), pushErr)
	require.Error(t, h.ing.Ready(ctx), "a failed ingester is not ready")
	require.Equal(t, codes.Unavailable, status.Code(push(acked+1)), "writes stay refused")

	// Space returns: the ingester reopens its tsdb and takes writes again.
	require.NoError(t, os.Remove(filler))
	require.Eventually(t, func() bool { return h.ing.Ready(ctx) == nil }, 20*time.Second, 50*time.Millisecond)
	require.NoError(t, push(acked+2))

	check := func(c ingesterpb.IngesterClient) {
		got, _ := queryAll(t, c, 0, 1<<40, eq("__name__", "fill"))
		require.Len(t, got, 50)
		for _, samples := range got {
			n := 0
			for _, s := range samples {
				if s.T <= int64(acked*1000) {
					n++
				}
			}
			require.Equal(t, acked, n, "acknowledged samples before the failure")
			require.Equal(t, int64((acked+2)*1000), samples[len(samples)-1].T)
		}
	}
	check(h.client)
	require.NoError(t, h.ing.Close(ctx))

	// And after a restart (WAL replay) all of it is still there.
	h2 := startIngester(t, cfg)
	check(h2.client)
	require.NoError(t, h2.ing.Close(ctx))
}

func mustSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}
