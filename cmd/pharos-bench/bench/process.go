package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Target is a Pharos deployment under test.
type Target struct {
	Name string
	// Base is the HTTP address that takes remote writes and queries.
	Base string
	// Metrics are the /metrics URLs of every process of the target; their
	// process_cpu_seconds_total and process_resident_memory_bytes are summed.
	Metrics []string
	// Procs name the processes in Metrics' order (for profile files);
	// optional.
	Procs []string
	// PIDs, when the processes are local, give RSS from /proc instead.
	PIDs []int
	// Replicas is how many copies of each series the target keeps (RF).
	Replicas int
}

// Usage is a target's summed CPU time and memory at one moment.
type Usage struct {
	CPUSeconds float64
	RSSBytes   float64
	// HeapInuseBytes is the Go heap's spans in use (live objects, garbage
	// not yet collected and free slots in used spans), HeapAllocBytes its
	// allocated objects: runtime.MemStats' HeapInuse and HeapAlloc, which
	// Go processes export as go_memstats_heap_inuse_bytes and
	// go_memstats_heap_alloc_bytes. Right after a GC, HeapAllocBytes is the
	// live heap.
	HeapInuseBytes, HeapAllocBytes float64
}

// Sample reads the target's usage now.
func (t *Target) Sample(ctx context.Context, client *http.Client) (Usage, error) {
	var u Usage
	for _, m := range t.Metrics {
		vals, err := scrapeProcess(ctx, client, m)
		if err != nil {
			return u, err
		}
		u.CPUSeconds += vals["process_cpu_seconds_total"]
		u.HeapInuseBytes += vals["go_memstats_heap_inuse_bytes"]
		u.HeapAllocBytes += vals["go_memstats_heap_alloc_bytes"]
		if len(t.PIDs) == 0 {
			u.RSSBytes += vals["process_resident_memory_bytes"]
		}
	}
	for _, pid := range t.PIDs {
		rss, err := procRSS(pid)
		if err != nil {
			return u, err
		}
		u.RSSBytes += rss
	}
	return u, nil
}

// LiveHeap forces a GC in every process of the target (the heap profile
// does, with gc=1) and returns their summed heap right after it: the
// memory the processes hold, without the garbage a GC cycle leaves.
func (t *Target) LiveHeap(ctx context.Context, client *http.Client) (float64, error) {
	for _, m := range t.Metrics {
		u := strings.TrimSuffix(m, "/metrics") + "/debug/pprof/heap?gc=1"
		if err := fetch(ctx, client, u, io.Discard); err != nil {
			return 0, fmt.Errorf("force a GC: %w", err)
		}
	}
	u, err := t.Sample(ctx, client)
	return u.HeapAllocBytes, err
}

// fetch GETs url into w; any answer but 200 is an error.
func fetch(ctx context.Context, client *http.Client, url string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(msg))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return nil
}

// scrapeProcess reads the process_* and go_memstats_* gauges of a
// /metrics page.
func scrapeProcess(ctx context.Context, client *http.Client, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "process_") && !strings.HasPrefix(line, "go_memstats_") && !strings.HasPrefix(line, "pharos_frontend_") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}

// procRSS is VmRSS of a local process, in bytes.
func procRSS(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("rss: %w", err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("rss: no VmRSS for pid %d", pid)
}

// selfUsage is this process's CPU time, RSS and heap, as they are (no GC).
func selfUsage() Usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	rss, _ := procRSS(os.Getpid())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Usage{
		CPUSeconds: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), RSSBytes: rss,
		HeapInuseBytes: float64(ms.HeapInuse), HeapAllocBytes: float64(ms.HeapAlloc),
	}
}

// selfLiveHeap is this process's heap right after a GC, as
// Target.LiveHeap reads a target's.
func selfLiveHeap() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc)
}
