// Package e2e runs Pharos as a real multi-host cluster: every host is a
// Linux network namespace with its own address on a shared bridge, every
// role the built pharos binary started from a generated YAML file, and
// faults are what production sees: kill -9, SIGSTOP/SIGCONT, restarts,
// links going down, iptables partitions and a full disk.
//
// The tests carry the build tag e2e and need root (ip netns, veth,
// bridges, iptables, tmpfs mounts); `make e2e` runs them and keeps the
// logs and /metrics of every process of a failed scenario under
// bin/e2e-artifacts. Each test builds its own network with names that
// carry the run's pid, so scenarios run in parallel (E2E_PARALLEL, all
// of them by default); a run sweeps what a dead run left behind, and the processes
// die with the test binary (Pdeathsig).
//
// The harness, in the test files:
//   - net_test.go: bridge, namespaces, link down/up, partitions, sweeping.
//   - cluster_test.go: the topology, generated configuration, processes
//     (start, kill -9, stop, pause, resume, restart), readiness, artifacts.
//   - helpers_test.go: fake exporters and a fake Slack webhook, which are
//     this test binary re-executed inside their own namespaces.
//   - checker_test.go: a remote-write sender with Prometheus's retry
//     semantics that records every acknowledged sample, and the check that
//     each querier returns every one of them exactly once.
//   - api_test.go: small clients of the HTTP APIs the scenarios read.
//
// Each scenario is one test written as a timeline, logged with the time
// since the cluster was ready: tutorial_test.go, ingester_test.go,
// ruler_test.go, scraper_test.go, zone_test.go, notifier_test.go,
// restart_test.go, disk_test.go. Expectations the product does not meet
// yet are logged as KNOWN GAP and fail under PHAROS_E2E_STRICT=1.
package e2e
