// Package memcachedtest finds the memcached server binary for tests that
// run a real one. Without it such a test is skipped, unless
// PHAROS_REQUIRE_MEMCACHED is set: .ci/run installs the Debian package and
// sets it, so CI never skips them.
package memcachedtest

import (
	"os"
	"os/exec"
	"testing"
)

// Binary is the path of memcached, or skips (or, with
// PHAROS_REQUIRE_MEMCACHED set, fails) the test.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		if os.Getenv("PHAROS_REQUIRE_MEMCACHED") != "" {
			t.Fatalf("memcached: %v", err)
		}
		t.Skip("memcached is not installed (apt-get install memcached)")
	}
	return bin
}
