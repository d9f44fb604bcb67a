package alerting

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// amtoolDir holds the amtool binary built once per package run; TestMain
// removes it.
var (
	amtoolOnce sync.Once
	amtoolDir  string
	amtoolPath string
	amtoolErr  error
)

// buildAmtool builds the amtool of the alertmanager module this module
// pins (a `tool` in go.mod), so the CLI and the server are the same
// release.
func buildAmtool(t *testing.T) string {
	t.Helper()
	amtoolOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			amtoolErr = err
			return
		}
		if amtoolDir, amtoolErr = os.MkdirTemp("", "pharos-amtool-"); amtoolErr != nil {
			return
		}
		amtoolPath = filepath.Join(amtoolDir, "amtool")
		// Built the way make build builds pharos (CGO_ENABLED=0), so the
		// packages they share come out of the build cache: with cgo on,
		// every package that imports net is compiled again, which on a
		// clean cache took 100 s of a 2-core machine.
		cmd := exec.Command(goBin, "build", "-o", amtoolPath, "github.com/prometheus/alertmanager/cmd/amtool")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			amtoolErr = &buildError{err: err, out: string(out)}
		}
	})
	require.NoError(t, amtoolErr)
	return amtoolPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build amtool: " + e.err.Error() + "\n" + e.out }

func removeAmtool() {
	if amtoolDir != "" {
		_ = os.RemoveAll(amtoolDir)
	}
}

// amtool runs the binary with a private HOME (so no user amtool config
// applies) and returns its combined output and exit error.
func amtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(buildAmtool(t), args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustAmtool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := amtool(t, args...)
	require.NoError(t, err, "amtool %s: %s", strings.Join(args, " "), out)
	return out
}

// startSingle runs one notifier without gossip, its handler under prefix
// ("" serves at the root, as the notifier role's own listener does).
func startSingle(t *testing.T, cfgFile, prefix string) string {
	t.Helper()
	c := defaultConfig(t)
	c.ConfigFile = cfgFile
	c.ClusterBind = ""
	n, err := New(c, prefix, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("notifier exited: %v", err)
	}
	return srv.URL + prefix
}

func TestAmtoolCheckConfig(t *testing.T) {
	out := mustAmtool(t, "check-config", tutorialConfig)
	require.Contains(t, out, "SUCCESS")
	require.Contains(t, out, "- 1 receivers")

	bad := filepath.Join(t.TempDir(), "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(validConfig, "receiver: slack", "receiver: nope", 1)), 0o644))
	out, err := amtool(t, "check-config", bad)
	require.Error(t, err)
	require.Contains(t, out, `undefined receiver "nope"`)
}

// TestAmtool drives the notifier with the upstream CLI, served at the
// root (the notifier role's own port) and under /alertmanager (all-in-one).
func TestAmtool(t *testing.T) {
	slack := newFakeSlack(t)
	cfgFile := writeTutorialConfig(t, t.TempDir(), slack.srv.URL)
	for name, prefix := range map[string]string{"root": "", "prefixed": "/alertmanager"} {
		t.Run(name, func(t *testing.T) {
			url := "--alertmanager.url=" + startSingle(t, cfgFile, prefix)

			mustAmtool(t, url, "alert", "add", "alertname=ClusterIncreased", "severity=notify", "frequency=low",
				"--annotation=summary=Cluster increased", "--end="+time.Now().Add(time.Hour).Format(time.RFC3339))
			mustAmtool(t, url, "alert", "add", "alertname=DiskFull", "severity=page")
			require.Eventually(t, func() bool {
				out := mustAmtool(t, url, "alert", "query")
				return strings.Contains(out, "ClusterIncreased") && strings.Contains(out, "DiskFull")
			}, 10*time.Second, 50*time.Millisecond)
			out := mustAmtool(t, url, "alert", "query", "severity=page")
			require.Contains(t, out, "DiskFull")
			require.NotContains(t, out, "ClusterIncreased")

			id := strings.TrimSpace(mustAmtool(t, url, "silence", "add", "alertname=ClusterIncreased",
				"--comment=maintenance", "--author=test", "--duration=1h"))
			require.Regexp(t, `^[0-9a-f-]{36}$`, id)
			require.Equal(t, id, strings.TrimSpace(mustAmtool(t, url, "silence", "query", "-q")))
			out = mustAmtool(t, url, "silence", "query", "alertname=ClusterIncreased")
			require.Contains(t, out, "maintenance")
			// A silenced alert drops out of the default alert query.
			require.Eventually(t, func() bool {
				return !strings.Contains(mustAmtool(t, url, "alert", "query"), "ClusterIncreased")
			}, 10*time.Second, 50*time.Millisecond)
			require.Contains(t, mustAmtool(t, url, "alert", "query", "--silenced"), "ClusterIncreased")

			mustAmtool(t, url, "silence", "expire", id)
			require.Empty(t, strings.TrimSpace(mustAmtool(t, url, "silence", "query", "-q")))
			require.Contains(t, mustAmtool(t, url, "silence", "query", "--expired", "-q"), id)

			out = mustAmtool(t, url, "config", "show")
			require.Contains(t, out, "slack_configs")
			require.Contains(t, mustAmtool(t, url, "config", "routes", "test", "severity=notify", "frequency=low"), "slack")
		})
	}
}
