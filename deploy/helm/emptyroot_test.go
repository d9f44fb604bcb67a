package helm_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// The image runs as this user (deploy/docker/Dockerfile, podSecurityContext).
const nobody = 65534

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the binary staticBinary built, which outlives any one test.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// staticBinary builds pharos as make build and the Dockerfile do (no cgo),
// once per test binary.
func staticBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pharos-static-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pharos")
		cmd := exec.Command("go", "build", "-o", binPath, "../../cmd/pharos")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

func requireChroot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("starting pharos in an empty root needs chroot, which needs root; CI runs as root")
	}
}

// emptyRoot lays out what a container of w sees: the binary and the
// ConfigMaps and Secrets at their mount paths, writable /data and /tmp,
// nothing else (no /etc/passwd, no CA bundle, no zoneinfo, no /proc).
func emptyRoot(t *testing.T, m *manifests, w workload) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.Chmod(root, 0o755))
	if err := os.Link(staticBinary(t), filepath.Join(root, "pharos")); err != nil {
		bin, err := os.ReadFile(staticBinary(t)) // another file system
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(root, "pharos"), bin, 0o755))
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range w.pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range pharosContainer(t, w).VolumeMounts {
		dir := filepath.Join(root, vm.MountPath)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		files := map[string]string{}
		switch v, ok := volumes[vm.Name]; {
		case ok && v.ConfigMap != nil:
			files = m.configMaps[v.ConfigMap.Name].Data
		case ok && v.Secret != nil:
			s := m.secrets[v.Secret.SecretName]
			files = s.StringData
			for k, b := range s.Data {
				files[k] = string(b)
			}
		default: // data, tmp: writable by the pod's user
			require.NoError(t, os.Chown(dir, nobody, nobody))
		}
		for name, content := range files {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
		}
	}
	return root
}

// inRoot runs /pharos in root as the image's user with only env.
func inRoot(root string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command("/pharos", args...)
	cmd.Dir = "/"
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: nobody, Gid: nobody},
	}
	return cmd
}

func podEnv(w workload) []string {
	return []string{"POD_NAME=" + w.name + "-0", "POD_IP=10.0.0.10"}
}

func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(staticBinary(t))
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "the binary asks for a dynamic loader: it would not run FROM scratch")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs)
}

// TestRenderedConfigVerifies runs `pharos -config.verify` with the exact
// arguments, environment and mounted files of every Pharos container the
// chart renders, for every values file.
func TestRenderedConfigVerifies(t *testing.T) {
	requireChroot(t)
	cases := append(slices.Clone(valuesCases),
		secured(t, valuesCase{name: "tls"}),
		// One process serves gRPC with TLS and is its own client.
		secured(t, valuesCase{name: "single-ha-tls", file: "pharos/ci/single-values.yaml", set: []string{"single.replicas=3"}}),
	)
	for _, v := range cases {
		t.Run(v.name, func(t *testing.T) {
			m := decodeStrict(t, renderChart(t, v))
			v.addSecrets(m)
			for _, w := range m.pharosWorkloads() {
				root := emptyRoot(t, m, w)
				c := pharosContainer(t, w)
				cmd := inRoot(root, podEnv(w), append(c.Args, "-config.verify")...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				require.NoError(t, cmd.Run(), "%s %s: %s", w.kind, w.name, stderr.String())
				require.Equal(t, "OK\n", stdout.String(), "%s %s", w.kind, w.name)
			}
		})
	}
}

// TestRenderedConfigVerifyRefusesBadFiles: the rendered files are really
// read: a broken rule file or alertmanager.yml fails verification.
func TestRenderedConfigVerifyRefusesBadFiles(t *testing.T) {
	requireChroot(t)
	m := decodeStrict(t, renderChart(t, valuesCase{name: "tutorial", file: "pharos/ci/tutorial-values.yaml"}))
	for _, tc := range []struct {
		component, file, content, wantErr string
	}{
		{"ruler", "/etc/pharos/rules/alerts", "groups:\n- name: nodes\n  rules:\n  - alert: X\n    expr: count(\n", "rules.files"},
		{"notifier", "/etc/pharos/alertmanager/alertmanager.yml", "route: {receiver: nobody}\nreceivers: [{name: slack}]\n", "notifier.config_file"},
	} {
		t.Run(tc.component, func(t *testing.T) {
			var w workload
			for _, x := range m.pharosWorkloads() {
				if x.component() == tc.component {
					w = x
				}
			}
			root := emptyRoot(t, m, w)
			require.NoError(t, os.WriteFile(filepath.Join(root, tc.file), []byte(tc.content), 0o644))
			cmd := inRoot(root, podEnv(w), append(pharosContainer(t, w).Args, "-config.verify")...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "verify accepted a broken %s: %v", tc.file, err)
			require.Equal(t, 1, exit.ExitCode())
			require.Contains(t, stderr.String(), tc.wantErr)
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// TestStaticBinaryRunsInEmptyRoot starts the all-in-one pod of mode single
// in a root holding only the binary and its mounted config, as the image's
// non-root user with only the pod's environment: it must become ready,
// answer a query and the notifier API, stop cleanly on SIGTERM, and write
// nowhere but its volumes.
func TestStaticBinaryRunsInEmptyRoot(t *testing.T) {
	requireChroot(t)
	m := decodeStrict(t, renderChart(t, valuesCase{name: "single", file: "pharos/ci/single-values.yaml"}))
	ws := m.pharosWorkloads()
	require.Len(t, ws, 1)
	w := ws[0]
	root := emptyRoot(t, m, w)

	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	// The pod's ports would clash with other tests on this host: move them.
	args := append(pharosContainer(t, w).Args,
		"-server.http-listen="+httpAddr, "-server.grpc-listen="+grpcAddr,
		"-ring.instance-addr="+grpcAddr, "-scraper.instance-addr="+httpAddr)
	cmd := inRoot(root, []string{"POD_NAME=" + w.name + "-0", "POD_IP=127.0.0.1"}, args...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("pharos logs:\n%s", logs.String())
		}
	}()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	require.Eventually(t, func() bool {
		code, _ := get("/-/ready")
		return code == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "not ready")
	code, body := get("/api/v1/query?query=vector(1)")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"status":"success"`)
	code, body = get("/alertmanager/api/v2/status")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "default-receiver", "the notifier loaded the chart's alertmanager.yml")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		exited = true
		require.NoError(t, err, "exit after SIGTERM")
	case <-time.After(60 * time.Second):
		t.Fatal("no exit within 60s of SIGTERM")
	}

	var stray []string
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(path, root), "/")
		for _, ok := range []string{"/data", "/tmp", "/etc/pharos", "/pharos"} {
			if rel == ok || strings.HasPrefix(rel, ok+"/") || strings.HasPrefix(ok, rel) {
				return err
			}
		}
		stray = append(stray, rel)
		return err
	}))
	require.Empty(t, stray, "pharos wrote outside its volumes")
	entries, err := os.ReadDir(filepath.Join(root, "data"))
	require.NoError(t, err)
	require.NotEmpty(t, entries, "the TSDB lives under /data")
}
