//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Names of everything a run creates carry its pid, so that a later run can
// tell leftovers of a dead run (sweep them) from a live concurrent one.
const (
	nsPrefix     = "phe2e-" // namespaces: phe2e-<pid>-<net>-<host>
	bridgePrefix = "pb"     // bridges: pb<pid>n<net>
	vethPrefix   = "pv"     // host ends of veths: pv<pid>n<net>h<i>
)

var netSeq atomic.Int32

// network is one bridge in the root namespace and one namespace per host
// attached to it. The test process stays in the root namespace and reaches
// every host through the bridge's own address (gateway).
type network struct {
	t       testing.TB
	id      string // <pid>-<seq>
	bridge  string
	prefix  string // "10.77.<n>."
	gateway string // the bridge's address, the harness's source address
	hosts   []*host
}

// host is one network namespace with one interface, eth0.
type host struct {
	net  *network
	name string
	ns   string
	ip   string
	veth string // host-side end in the root namespace
}

// run executes a command and fails the test with its output on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runQuiet executes a command and returns its error; for teardown, where
// one failure must not stop the rest.
func runQuiet(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newNetwork creates the bridge on a free 10.77.x.0/24 and registers its
// teardown.
func newNetwork(t testing.TB) *network {
	t.Helper()
	seq := netSeq.Add(1)
	n := &network{t: t, id: fmt.Sprintf("%d-%d", os.Getpid(), seq)}
	n.bridge = fmt.Sprintf("%s%dn%d", bridgePrefix, os.Getpid(), seq)
	used := run(t, "ip", "-4", "-o", "addr", "show")
	for i := 0; i < 250; i++ {
		oct := (os.Getpid()+int(seq)*7+i)%250 + 1
		p := fmt.Sprintf("10.77.%d.", oct)
		if !strings.Contains(used, " "+p) {
			n.prefix = p
			break
		}
	}
	if n.prefix == "" {
		t.Fatal("no free 10.77.x.0/24 subnet")
	}
	n.gateway = n.prefix + "1"
	run(t, "ip", "link", "add", n.bridge, "type", "bridge")
	t.Cleanup(n.teardown)
	run(t, "ip", "addr", "add", n.gateway+"/24", "dev", n.bridge)
	run(t, "ip", "link", "set", n.bridge, "up")
	return n
}

// addHost creates a namespace with eth0 on the bridge and lo up.
func (n *network) addHost(name string) *host {
	t := n.t
	t.Helper()
	i := len(n.hosts)
	h := &host{net: n, name: name, ns: nsPrefix + n.id + "-" + name, ip: n.prefix + strconv.Itoa(10+i)}
	h.veth = fmt.Sprintf("%s%sh%d", vethPrefix, strings.ReplaceAll(n.id, "-", "n"), i)
	run(t, "ip", "netns", "add", h.ns)
	n.hosts = append(n.hosts, h)
	run(t, "ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	run(t, "ip", "link", "set", h.veth, "master", n.bridge, "up")
	run(t, "ip", "-n", h.ns, "addr", "add", h.ip+"/24", "dev", "eth0")
	run(t, "ip", "-n", h.ns, "link", "set", "eth0", "up")
	run(t, "ip", "-n", h.ns, "link", "set", "lo", "up")
	return h
}

// teardown deletes the namespaces (their veths go with them) and the
// bridge. Processes must be gone first; see cluster.teardown.
func (n *network) teardown() {
	for _, h := range n.hosts {
		killNamespacePids(h.ns)
		if err := runQuiet("ip", "netns", "del", h.ns); err != nil {
			n.t.Logf("teardown: %v", err)
		}
	}
	if err := runQuiet("ip", "link", "del", n.bridge); err != nil {
		n.t.Logf("teardown: %v", err)
	}
}

// Faults on a host's network.

// linkDown takes the host's only interface down: every connection to and
// from it stalls or fails, as when a machine drops off the network.
func (h *host) linkDown() { run(h.net.t, "ip", "-n", h.ns, "link", "set", "eth0", "down") }

// linkUp brings it back (the address and route stay configured).
func (h *host) linkUp() { run(h.net.t, "ip", "-n", h.ns, "link", "set", "eth0", "up") }

// partition drops every packet between h and the given hosts, both ways,
// inside h's namespace. DROP, not REJECT: a partition is silence, and
// timeouts are what the cluster must survive. The harness (gateway)
// stays reachable so it can observe and collect.
func (h *host) partition(from ...*host) {
	for _, o := range from {
		run(h.net.t, "ip", "netns", "exec", h.ns, "iptables", "-w", "-A", "INPUT", "-s", o.ip, "-j", "DROP")
		run(h.net.t, "ip", "netns", "exec", h.ns, "iptables", "-w", "-A", "OUTPUT", "-d", o.ip, "-j", "DROP")
	}
}

// heal removes every partition rule of h.
func (h *host) heal() {
	run(h.net.t, "ip", "netns", "exec", h.ns, "iptables", "-w", "-F", "INPUT")
	run(h.net.t, "ip", "netns", "exec", h.ns, "iptables", "-w", "-F", "OUTPUT")
}

// killNamespacePids kills every process left in a namespace.
func killNamespacePids(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscallKill(pid)
		}
	}
}

// sweepStale removes what runs that no longer exist left behind:
// namespaces (and their processes), bridges and tmpfs mounts whose names
// carry a dead pid. Live concurrent runs are left alone.
func sweepStale(logf func(string, ...any)) {
	alive := func(pid string) bool {
		if pid == strconv.Itoa(os.Getpid()) {
			return true
		}
		_, err := os.Stat(filepath.Join("/proc", pid))
		return err == nil
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
				continue
			}
			pid, _, _ := strings.Cut(strings.TrimPrefix(f[0], nsPrefix), "-")
			if alive(pid) {
				continue
			}
			killNamespacePids(f[0])
			logf("sweep: stale namespace %s: %v", f[0], runQuiet("ip", "netns", "del", f[0]))
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name := strings.TrimSuffix(f[1], ":")
			rest, ok := strings.CutPrefix(name, bridgePrefix)
			pid, _, found := strings.Cut(rest, "n")
			if !ok || !found || alive(pid) {
				continue
			}
			if _, err := strconv.Atoi(pid); err != nil {
				continue
			}
			logf("sweep: stale bridge %s: %v", name, runQuiet("ip", "link", "del", name))
		}
	}
	if data, err := os.ReadFile("/proc/mounts"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[2] != "tmpfs" || !strings.Contains(f[1], "/"+nsPrefix) {
				continue
			}
			pid, _, _ := strings.Cut(f[1][strings.LastIndex(f[1], "/"+nsPrefix)+1+len(nsPrefix):], "-")
			if alive(pid) {
				continue
			}
			logf("sweep: stale mount %s: %v", f[1], runQuiet("umount", "-l", f[1]))
		}
	}
}
