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

VTPROTO_POOL := $(foreach m,PushRequest TimeSeries LabelPair Sample QueryStreamResponse ChunkSeries Chunk,pool=github.com/pharos-tsdb/pharos/storage/ingesterpb.$(m))
comma := ,
empty :=
space := $(empty) $(empty)

.PHONY: all build run test test-short lint bench proto proto-tools tools clean e2e

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pharos

run: build
	./$(BIN)

test:
	$(GO) test -race -timeout 25m $(PKGS)

# End-to-end scenarios: the built binary on hosts made of network namespaces,
# with faults. Needs root, iproute2 and iptables. A failed scenario leaves its
# processes' logs and metrics under bin/e2e-artifacts.
E2E_RUN ?= .
e2e:
	$(GO) test -tags e2e -count=1 -timeout 30m -v -run '$(E2E_RUN)' -artifacts -outputdir $(CURDIR)/bin/e2e-artifacts ./e2e/

test-short:
	$(GO) test -short $(PKGS)

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -stdmethods=false $(PKGS)
	$(STATICCHECK) $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./storage/... ./ingest/... ./querier/...

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

clean:
	rm -rf bin
