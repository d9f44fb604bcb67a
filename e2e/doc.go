// Package e2e runs Pharos as a real multi-host cluster: every host is a
// Linux network namespace with its own address on a shared bridge, every
// role the built pharos binary, and faults are what production sees —
// kill -9, SIGSTOP, restarts, links going down, iptables partitions and a
// full disk.
//
// The tests carry the build tag e2e and need root (ip netns, veth,
// bridges, iptables, tmpfs mounts); run them with `make e2e`. Each test
// builds its own network with names unique to the run, and a run sweeps
// away what a crashed earlier run left behind.
//
// The pieces, all in the test files: net (namespaces, bridge, faults),
// cluster (hosts, processes, generated configuration, readiness, artifacts
// on failure), helpers (fake exporters and a fake Slack webhook, the test
// binary re-executed inside a namespace), checker (a remote-write client
// with Prometheus's retry semantics and the exactly-once read check) and
// one file per scenario, each a short timeline.
package e2e
