package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigVerify checks the exit codes and output of -config.verify that
// deploy tooling (the Helm chart's test, init containers) relies on.
func TestConfigVerify(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	require.NoError(t, os.WriteFile(good, []byte("storage: {path: "+filepath.Join(dir, "data")+"}\n"), 0o644))
	bad := filepath.Join(dir, "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte("ring: {replication_factor: 0}\n"), 0o644))
	typo := filepath.Join(dir, "typo.yml")
	require.NoError(t, os.WriteFile(typo, []byte("rign: {}\n"), 0o644))

	self, err := os.Executable()
	require.NoError(t, err)
	for _, tc := range []struct {
		file     string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{file: good, wantCode: 0, wantOut: "OK\n"},
		{file: bad, wantCode: 1, wantErr: "invalid configuration: ring:"},
		{file: typo, wantCode: 1, wantErr: "field rign not found"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			cmd := exec.Command(self, "-config.file="+tc.file, "-config.verify")
			cmd.Env = append(os.Environ(), "PHAROS_TEST_RUN_MAIN=1")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.wantCode, code, "stderr: %s", stderr.String())
			require.Equal(t, tc.wantOut, stdout.String())
			require.Contains(t, stderr.String(), tc.wantErr)
		})
	}
	_, err = os.Stat(filepath.Join(dir, "data"))
	require.True(t, os.IsNotExist(err), "verify must not create the data directory")
}
