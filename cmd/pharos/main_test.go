package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary act as the pharos binary when re-executed,
// so process-level tests need no separate build step.
func TestMain(m *testing.M) {
	if os.Getenv("PHAROS_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

type node struct {
	cmd  *exec.Cmd
	http string
	logs *bytes.Buffer
}

func startNode(t *testing.T, args ...string) *node {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	n := &node{logs: &bytes.Buffer{}}
	for _, a := range args {
		if v, ok := cutPrefix(a, "-server.http-listen="); ok {
			n.http = v
		}
	}
	n.cmd = exec.Command(self, args...)
	n.cmd.Env = append(os.Environ(), "PHAROS_TEST_RUN_MAIN=1")
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	require.NoError(t, n.cmd.Start())
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		_, _ = n.cmd.Process.Wait()
		if t.Failed() {
			t.Logf("node logs:\n%s", n.logs.String())
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + n.http + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "node did not become ready")
	return n
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

const restartSeries = 50

// push writes one sample for every series at ts and reports whether it was
// acknowledged with 2xx.
func push(client *http.Client, base string, ts int64) bool {
	req := &prompb.WriteRequest{}
	for i := 0; i < restartSeries; i++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "restart_test"}, {Name: "series", Value: strconv.Itoa(i)}},
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(ts)}},
		})
	}
	body, _ := req.Marshal()
	hreq, _ := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, body)))
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("Content-Encoding", "snappy")
	resp, err := client.Do(hreq)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// TestKill9KeepsAcknowledgedSamples is the WAL guarantee: whatever was
// acknowledged with 2xx before a kill -9 is queryable after a restart.
func TestKill9KeepsAcknowledgedSamples(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "pharos.yml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("storage:\n  path: "+filepath.Join(dir, "data")+"\n"), 0o644))
	args := []string{"-config.file=" + cfgFile, "-server.http-listen=" + freePort(t), "-server.grpc-listen=" + freePort(t)}

	n := startNode(t, args...)
	base := "http://" + n.http
	client := &http.Client{Timeout: 5 * time.Second}

	start := time.Now().Add(-time.Minute).UnixMilli()
	var (
		mu    sync.Mutex
		acked []int64
	)
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for ts := start; ; ts += 100 {
			select {
			case <-stop:
				return
			default:
			}
			if push(client, base, ts) {
				mu.Lock()
				acked = append(acked, ts)
				mu.Unlock()
			}
		}
	}()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 200 }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, n.cmd.Process.Kill()) // kill -9, in the middle of ingestion
	_, _ = n.cmd.Process.Wait()
	close(stop)
	<-writerDone

	n = startNode(t, args...)
	mu.Lock()
	defer mu.Unlock()
	last := acked[len(acked)-1]
	q := url.Values{"query": {fmt.Sprintf("restart_test[%dms]", last-start+1)}, "time": {strconv.FormatFloat(float64(last)/1000, 'f', 3, 64)}}
	resp, err := client.Get("http://" + n.http + "/api/v1/query?" + q.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	require.Len(t, r.Data.Result, restartSeries)
	for _, s := range r.Data.Result {
		have := map[int64]bool{}
		for _, v := range s.Values {
			f, err := strconv.ParseFloat(v[1].(string), 64)
			require.NoError(t, err)
			have[int64(f)] = true
		}
		for _, ts := range acked {
			require.True(t, have[ts], "series %v lost acknowledged sample at %d (of %d acknowledged)", s.Metric, ts, len(acked))
		}
	}
	t.Logf("%d acknowledged pushes of %d series survived kill -9", len(acked), restartSeries)
}
