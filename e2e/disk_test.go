//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// fillDisk writes a file into dir until the filesystem is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	// Partial pages a smaller write could still use: take them too.
	for _, n := range []int{64 << 10, 4 << 10, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// pushDirect sends one sample straight to an ingester's gRPC Push, as a
// distributor does, and returns the error (nil: stored).
func pushDirect(ctx context.Context, p *proc, ts int64) error {
	cl, err := ingesterclient.Dial(fmt.Sprintf("%s:%d", p.host.ip, portGRPC), ingesterclient.Config{
		MaxRecvMsgSize: 1 << 20, MaxSendMsgSize: 1 << 20, RemoteTimeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(tenant.With(ctx, tenant.DefaultTenant), 10*time.Second)
	defer cancel()
	lbls := labels.FromStrings("__name__", "e2e_direct", "ingester", p.name)
	var pbl []*ingesterpb.LabelPair
	lbls.Range(func(l labels.Label) {
		pbl = append(pbl, &ingesterpb.LabelPair{Name: []byte(l.Name), Value: []byte(l.Value)})
	})
	resp, err := cl.Push(ctx, &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{
		Labels: pbl, Samples: []*ingesterpb.Sample{{TimestampMs: ts, Value: 1}},
	}}})
	if err != nil {
		return err
	}
	if len(resp.Errors) > 0 {
		return errors.New("rejected: " + resp.Errors[0].Message)
	}
	return nil
}

// TestDiskFull fills ingester c's data filesystem (a 64 MiB tmpfs) under
// load. Expected: it refuses writes with a server error and reports not
// ready; the others carry the writes, nothing acknowledged is lost; when
// space returns it takes writes again, and a kill -9 and restart after
// that keeps what it acknowledged since (its WAL replays past the failed
// writes). Two of these are known gaps today (see checkKnownGap).
func TestDiskFull(t *testing.T) {
	t.Parallel()
	c := newCluster(t, topology{diskMB: 64})
	tl := newTimeline(t)
	ingC := c.ingesters[2]
	ws := startLoad(t, c)
	waitAll(t, ws, 20, 30*time.Second)
	tl.step("load running; %s's data on a 64 MiB tmpfs", ingC.name)

	filler := fillDisk(t, c.diskDir)
	full := time.Now()
	tl.step("%s's disk filled", ingC.name)
	require.Eventually(t, func() bool {
		v, _ := metric(ingC, "prometheus_tsdb_wal_writes_failed_total")
		return v > 0
	}, 30*time.Second, 100*time.Millisecond, "the TSDB never hit the full disk")
	tl.step("%s's WAL writes fail (%.1fs after filling)", ingC.name, time.Since(full).Seconds())
	waitAll(t, ws, 50, 60*time.Second)
	requireStallBounded(t, tl, ws, full, 5*time.Second)
	tl.step("writes continue on the other two")

	err := pushDirect(t.Context(), ingC, time.Now().UnixMilli())
	require.Error(t, err, "a push to the full ingester must fail")
	tl.step("a push straight to %s: %v", ingC.name, err)
	require.Contains(t, []codes.Code{codes.Internal, codes.Unavailable, codes.ResourceExhausted}, status.Code(err),
		"a full disk is a server error (5xx), not the sender's fault")
	ready := statusOf(ingC.http + "/ready")
	tl.step("%s /ready: %d", ingC.name, ready)
	checkKnownGap(t, ready == http.StatusServiceUnavailable,
		"an ingester whose disk is full still reports ready (/ready %d)", ready)
	requireExactlyOnce(t, c.fronts, ws...)
	tl.step("reads exact while %s's disk is full", ingC.name)

	require.NoError(t, os.Remove(filler))
	freed := time.Now()
	tl.step("space returned")
	require.Eventually(t, func() bool { return pushDirect(t.Context(), ingC, time.Now().UnixMilli()) == nil },
		60*time.Second, 500*time.Millisecond, "the ingester does not take writes after space returned")
	waitHeadPast(t, ingC, freed, 30*time.Second)
	require.Eventually(t, func() bool { return statusOf(ingC.http+"/ready") == http.StatusOK }, 30*time.Second, 200*time.Millisecond)
	tl.step("%s takes writes and is ready again %.1fs after space returned", ingC.name, time.Since(freed).Seconds())
	recovered := time.Now()
	waitAll(t, ws, 30, 30*time.Second)

	ingC.kill9()
	began := time.Now()
	ingC.restart()
	tl.step("%s kill -9 and restart: ready in %.1fs", ingC.name, time.Since(began).Seconds())
	if log, err := os.ReadFile(ingC.logPath); err == nil && strings.Contains(string(log), "Encountered WAL read error") {
		tl.step("%s's WAL replay found the record torn by ENOSPC and truncated the WAL there", ingC.name)
	}
	waitAll(t, ws, 20, 30*time.Second)
	stopLoad(t, c, tl, ws)
	// The replica's own durability across the crash: what it acknowledged
	// after recovering must survive the restart.
	for _, w := range ws {
		var in []int64
		for _, ts := range ackedAfter(w.ackedSnapshot(), recovered) {
			if ts < began.UnixMilli()-1000 {
				in = append(in, ts)
			}
		}
		require.NotEmpty(t, in)
		problems, err := ingesterHolds(t.Context(), ingC, w, in)
		require.NoError(t, err)
		checkKnownGap(t, len(problems) == 0,
			"%s: %s lost samples it acknowledged after the disk recovered, at its kill -9 and restart "+
				"(the WAL write that hit ENOSPC left a torn record; replay 'repairs' by dropping everything after it): %v",
			w.name, ingC.name, problems[:min(3, len(problems))])
		if len(problems) == 0 {
			tl.step("%s: the %d batches acknowledged after recovery are in %s's own TSDB, across the restart", w.name, len(in), ingC.name)
		}
	}
}
