// Package helm holds the tests of the Pharos Helm chart in pharos/: they
// render it with the helm binary for every values file in pharos/ci, decode
// each object strictly with the Kubernetes API types of the k8s.io/api
// version in go.mod, check the invariants a cluster depends on (ingester
// budgets and volumes, probes, headless gossip, RBAC for service
// discovery), run `pharos -config.verify` on the rendered configuration in
// an empty root, start a whole rendered install as processes (one loopback
// address per pod, a test DNS server as the cluster DNS) and follow a sample
// and an alert through it, and keep the plain manifests in deploy/kubernetes
// equal to the chart's output (go test ./deploy/helm -run TestManifests
// -update rewrites them). The tests that start pharos need root (chroot).
//
// The helm binary is $HELM, else bin/tools/helm-* (make helm), else helm on
// PATH; without one the tests skip and say so.
package helm
