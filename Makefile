# Pharos. `make run` starts the all-in-one node; `make test` runs every test.
GO        ?= go
BIN       := bin/pharos
PKGS      := ./...
GOBIN     := $(shell $(GO) env GOPATH)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
VPKG      := github.com/prometheus/common/version
LDFLAGS   := -X $(VPKG).Version=$(VERSION) -X $(VPKG).Revision=$(REVISION) -X $(VPKG).Branch=main -X $(VPKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOC_GEN_VTPROTO_VERSION := v0.6.1-0.20240319094008-0393e58bdf10
STATICCHECK_VERSION        := v0.8.2
HELM_VERSION               := v3.22.0

VTPROTO_POOL := $(foreach m,PushRequest TimeSeries LabelPair Sample QueryStreamResponse ChunkSeries Chunk,pool=github.com/pharos-tsdb/pharos/storage/ingesterpb.$(m))
comma := ,
empty :=
space := $(empty) $(empty)

.PHONY: all build run test test-short fuzz-short fuzz-long lint bench bench-cluster proto proto-tools tools clean e2e ui-test image helm helm-lint manifests manifests-check

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pharos

run: build
	./$(BIN)

# Every fuzz target also runs here, on its seed corpus and the inputs saved
# under testdata/fuzz, as a plain test under the race detector.
test:
	$(GO) test -race -timeout 25m $(PKGS)

# Every fuzz target, as package:Target:executions. fuzz-short runs each for
# its executions (a few seconds each here), one after the other; fuzz-long
# runs each for 5 minutes, FUZZ_JOBS at a time, one worker each. Neither is
# part of make test: fuzzing instruments every package a target imports, so
# on a clean build cache fuzz-short spends about 10 minutes of a 2-core
# machine compiling for 15 seconds of fuzzing. Short runs count executions rather than time: Go 1.26's fuzz
# coordinator can report a time budget's end as "context deadline exceeded"
# on a loaded machine (golang/go#75804, fixed in Go 1.27), so on a long run
# that message without a written input is not a finding. New interesting
# inputs stay in the Go build cache; a failing one is written to the
# package's testdata/fuzz and fails the target.
FUZZ_TARGETS := ./ingest/remotewrite:FuzzDecodeV1:2000x ./ingest/remotewrite:FuzzDecodeV2:2000x \
	./storage/ingester:FuzzPushRequestDecode:8000x ./cluster/ring:FuzzUnmarshal:15000x \
	./cluster/ring:FuzzMerge:15000x ./ruler:FuzzFSMApply:8000x ./ruler:FuzzParseGroup:3000x \
	./alerting:FuzzLoadConfig:300x ./cmd/pharos/app:FuzzLoad:200x ./cmd/pharos/app:FuzzScrapeSection:60x
FUZZTIME  ?=
FUZZ_JOBS ?= 1
fuzz-short:
	@printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(FUZZ_JOBS) -I{} sh -c 't={}; pkg=$${t%%:*}; r=$${t#*:}; name=$${r%%:*}; \
		ft="$(FUZZTIME)"; [ -n "$$ft" ] || ft=$${r#*:}; log=$$(mktemp); \
		if $(GO) test -run "^$$" -fuzz "^$$name$$" -fuzztime $$ft -fuzzminimizetime 10s -parallel 1 "$$pkg" >$$log 2>&1; \
		then echo "ok   $$pkg:$$name: $$(grep "^fuzz: elapsed" $$log | tail -1)"; rm -f $$log; \
		else echo "FAIL $$pkg:$$name"; cat $$log; rm -f $$log; exit 255; fi'

fuzz-long:
	$(MAKE) fuzz-short FUZZTIME=5m FUZZ_JOBS=2

# End-to-end scenarios: the built binary on hosts made of network namespaces,
# with faults. Needs root, iproute2 and iptables. A failed scenario leaves its
# processes' logs and metrics under bin/e2e-artifacts.
# Scenarios spend most of their time waiting out heartbeats, `for` and
# group_wait, each on a network of its own, so E2E_PARALLEL of them run at
# once: all nine took 186 s of wall time and 99 s of user CPU on 2 cores,
# two at a time 307 s, one at a time 9.8 min.
E2E_RUN      ?= .
E2E_PARALLEL ?= 9
e2e:
	mkdir -p $(CURDIR)/bin/e2e-artifacts
	PHAROS_E2E_STRICT=1 $(GO) test -tags e2e -count=1 -timeout 30m -parallel $(E2E_PARALLEL) -v -run '$(E2E_RUN)' -artifacts -outputdir $(CURDIR)/bin/e2e-artifacts ./e2e/

# The browser tests: Debian's chromium driven by playwright-core from npm
# (web/ui/package.json), against a real pharos binary.
ui-test:
	web/ui/run-browser-tests.sh

test-short:
	$(GO) test -short $(PKGS)

# vet builds every package; with CGO_ENABLED=0, as make build does, the
# build then takes them from the cache (on a clean cache: 8 s instead of
# 143 s after vet).
lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	CGO_ENABLED=0 $(GO) vet -stdmethods=false $(PKGS)
	$(STATICCHECK) $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./storage/... ./ingest/... ./querier/...

# Load harness: an all-in-one (RF 1) and a 3-ingester RF 3 cluster started
# from bin/pharos on loopback, each measured against an in-process tsdb in
# the same run (docs/performance.md). Size it with BENCH_FLAGS, e.g.
# BENCH_FLAGS='-load.series=100000 -load.duration=60s'.
BENCH_FLAGS ?= -load.series=10000 -load.duration=30s -query.duration=5s
bench-cluster: build
	$(GO) build -o bin/pharos-bench ./cmd/pharos-bench
	./bin/pharos-bench -pharos $(BIN) -layouts allinone,rf3 $(BENCH_FLAGS)

# Tools are installed per version under bin/tools, so every machine runs the pinned one.
STATICCHECK := $(CURDIR)/bin/tools/staticcheck-$(STATICCHECK_VERSION)

tools: $(STATICCHECK)

$(STATICCHECK):
	GOBIN=$(CURDIR)/bin/tools/tmp $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(CURDIR)/bin/tools/tmp/staticcheck $@ && rmdir $(CURDIR)/bin/tools/tmp

proto-tools:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	$(GO) install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$(PROTOC_GEN_VTPROTO_VERSION)

# protoc comes from Debian's protobuf-compiler package.
proto: proto-tools
	cd storage/ingesterpb && PATH="$(GOBIN):$$PATH" protoc \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		--go-vtproto_out=. --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+unmarshal_unsafe+size+pool+clone+equal,$(subst $(space),$(comma),$(VTPROTO_POOL)) \
		ingester.proto
	@# proto3 writes a double that is -0 (it is not the default, +0); vtproto
	@# tests m.X != 0, false for -0, and would drop the sign. Its singular
	@# doubles compare bits instead; TestNegativeZeroRoundTrips finds any missed.
	sed -i -E 's/if m\.(Value|Sum|ZeroThreshold) != 0 \{/if math.Float64bits(m.\1) != 0 {/' storage/ingesterpb/ingester_vtproto.pb.go

clean:
	rm -rf bin

# Deploy: the container image, the Helm chart and the plain manifests
# rendered from it (deploy/kubernetes). helm is installed per version under
# bin/tools like staticcheck; the chart's Go tests (deploy/helm) find it there.
HELM       := $(CURDIR)/bin/tools/helm-$(HELM_VERSION)
CHART      := deploy/helm/pharos
IMAGE      ?= pharos-tsdb/pharos:$(VERSION)

image:
	@docker info >/dev/null 2>&1 || { echo "make image: no Docker engine reachable (docker info failed)"; exit 1; }
	docker build -f deploy/docker/Dockerfile --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE) .

helm: $(HELM)

# The -X flags are those of helm's own release build: without them helm
# reports version "v3.22" and assumes Kubernetes 1.20 for .Capabilities.
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	$(foreach p,pkg/chartutil pkg/lint/rules,-X helm.sh/helm/v3/$(p).k8sVersionMajor=1 -X helm.sh/helm/v3/$(p).k8sVersionMinor=37)

$(HELM):
	GOBIN=$(CURDIR)/bin/tools/tmp-helm $(GO) install -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(CURDIR)/bin/tools/tmp-helm/helm $@ && rmdir $(CURDIR)/bin/tools/tmp-helm

# helm lint and template for every values file in the chart's ci/. The
# chart's Go tests (strict decoding, invariants, -config.verify in an empty
# root, wrong values, manifests current) run with make test once helm is here.
helm-lint: $(HELM)
	@set -e; for f in $(CHART)/ci/*-values.yaml; do \
		echo "helm lint/template -f $$f"; \
		$(HELM) lint --strict $(CHART) --namespace metrics -f $$f >/dev/null; \
		$(HELM) template pharos $(CHART) --namespace metrics -f $$f >/dev/null; \
	done

manifests: $(HELM)
	HELM=$(HELM) $(GO) test -count=1 -run '^TestManifests$$' ./deploy/helm/ -args -update

manifests-check: $(HELM)
	HELM=$(HELM) $(GO) test -count=1 -run '^TestManifests$$' ./deploy/helm/
