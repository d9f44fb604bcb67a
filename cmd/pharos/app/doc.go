// Package app assembles a Pharos process from its roles: it owns the
// configuration file and flags, the HTTP and gRPC servers, the operational
// endpoints (/metrics, /ready, /-/healthy, /-/reload) and the order in which
// roles start and stop. cmd/pharos only turns os.Args and signals into a call
// to Run, so tests can start whole nodes in-process.
package app
