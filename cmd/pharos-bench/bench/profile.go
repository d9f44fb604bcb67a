package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
)

// ProfileSeconds is the length of the CPU profile Target.Profile takes.
const ProfileSeconds = 10

// TraceSeconds is the length of the execution trace taken after it.
const TraceSeconds = 2

// Profile starts fetching a CPU profile (ProfileSeconds long), then a
// heap profile and an execution trace (TraceSeconds) of every process of t
// into dir, as <target>-<process>-<phase>.cpu.pb.gz, .heap.pb.gz and
// .trace, once start is closed, and returns a function that waits for them
// and reports the first failure. Without dir it does nothing.
func (t *Target) Profile(ctx context.Context, client *http.Client, dir, phase string, start <-chan struct{}) (wait func() error) {
	if dir == "" {
		return func() error { return nil }
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i, m := range t.Metrics {
		name := strconv.Itoa(i)
		if i < len(t.Procs) {
			name = t.Procs[i]
		}
		base := strings.TrimSuffix(m, "/metrics")
		prefix := filepath.Join(dir, fileName(t.Name)+"-"+fileName(name)+"-"+phase)
		wg.Go(func() {
			select {
			case <-start:
			case <-ctx.Done():
				return
			}
			err := fetchFile(ctx, client, base+"/debug/pprof/profile?seconds="+strconv.Itoa(ProfileSeconds), prefix+".cpu.pb.gz")
			if err == nil {
				err = fetchFile(ctx, client, base+"/debug/pprof/heap", prefix+".heap.pb.gz")
			}
			if err == nil {
				// Where the process waits rather than works: `go tool trace
				// -pprof=sync` (or net, syscall, sched) on it.
				err = fetchFile(ctx, client, base+"/debug/pprof/trace?seconds="+strconv.Itoa(TraceSeconds), prefix+".trace")
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("profile %s: %w", name, err))
				mu.Unlock()
			}
		})
	}
	return func() error {
		wg.Wait()
		return errors.Join(errs...)
	}
}

// profileSelf writes a CPU profile of this process (the harness) into
// dir as harness-<target>-<phase>.cpu.pb.gz until stop is called; without
// dir it does nothing. It shows what the client side of a phase costs.
func profileSelf(dir, target, phase string) (stop func() error, err error) {
	if dir == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, "harness-"+fileName(target)+"-"+phase+".cpu.pb.gz"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("profile the harness: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// fetchFile GETs url into the file path.
func fetchFile(ctx context.Context, client *http.Client, url, path string) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	return fetch(ctx, client, url, f)
}

// fileName keeps letters, digits, '-' and '.' of s, other runes become '_'.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}
