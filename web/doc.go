// Package web serves Pharos's browser UI: the Prometheus-style pages
// (/graph, /alerts, /targets, /rules, /config, /status), the cluster page
// (/cluster) and the notifier's pages (/alertmanager/). The UI is a set of
// static files embedded in the binary; it talks to the node only through
// the HTTP APIs every role already serves (Prometheus /api/v1, /ring,
// alertmanager /api/v2), so the Go side has no per-page logic.
//
// The files under static/ are served as they are: our own JavaScript modules
// need no build step, and static/vendor holds the npm libraries (preact,
// htm, uPlot) that ui/vendor.mjs copies from ui/node_modules. A test checks
// that the copies match ui/package.json, so `make run` needs no Node.
package web
