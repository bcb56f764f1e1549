# Developer entry points. `make help` lists them.
SHELL := /bin/bash
GO    ?= go
BUF   := tools/node_modules/.bin/buf
PKGS  := ./...
FUZZTIME ?= 20s
BIN   := bin/node

# What `node version` and meshnode_build_info report. A build with a VCS stamp (go build's
# default inside a repository) takes the commit from the stamp; these fill in where it has none
# (GOFLAGS=-buildvcs=false, a source archive).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
MODIFIED  ?= $(shell git diff --quiet HEAD -- 2>/dev/null || echo true)
DATE      ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
BUILDINFO := github.com/meshnode/meshnode/internal/buildinfo
LDFLAGS   := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).modified=$(MODIFIED) -X $(BUILDINFO).date=$(DATE)

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: tools
tools: $(BUF) ## Install the pinned tools (buf from npm; protoc plugins are go.mod tool lines).
	$(GO) build tool

$(BUF): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	@touch $(BUF)

.PHONY: build
build: ## Build the node binary to bin/node, with its version, commit and build date.
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/node

# The container image (Dockerfile): IMAGE names it; IMAGE_TOOL is docker, podman or buildah,
# whichever is found first.
IMAGE      ?= meshnode:dev
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_TOOL ?= $(shell for t in docker podman buildah; do command -v $$t >/dev/null && { echo $$t; break; }; done)

.PHONY: static
static: ## Build the static node binary (CGO off) the image holds, to bin/node-static.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/node-static ./cmd/node

.PHONY: image
image: ## Build the container image $(IMAGE) from source (docker, podman or buildah).
	@test -n "$(IMAGE_TOOL)" || { echo "make image needs docker, podman or buildah"; exit 1; }
	$(IMAGE_TOOL) build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

.PHONY: image-check
image-check: static ## Build the image daemonless with buildah from bin/node-static and run the node from it.
	scripts/image-check.sh

.PHONY: test
test: ## Run every test with the race detector (the bench and deploy/kubernetes/check modules' too).
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	cd bench && $(GO) test -race -count=1 ./...
	cd deploy/kubernetes/check && $(GO) test -race -count=1 ./...

SIM_NODES ?= 2048
# SIM_RESULTS, when set (e.g. $(CURDIR)/bench/results/sim/overlay.jsonl), receives the simulator's figures.
SIM_RESULTS ?=
# SIM_MEMLIMIT bounds the simulation's heap (GOMEMLIMIT): 4,096 nodes fit in 20 GiB.
SIM_MEMLIMIT ?= 20GiB

.PHONY: sim-scale
sim-scale: ## The overlay in the deterministic simulator at SIM_NODES nodes (default 2048: about 3 minutes and 6 GiB; 4096: 7 minutes and 20 GiB).
	GOMEMLIMIT=$(SIM_MEMLIMIT) GOGC=200 SIM_NODES=$(SIM_NODES) SIM_RESULTS=$(SIM_RESULTS) $(GO) test -count=1 -timeout 90m -run 'TestOverlaySimulationAtScale' -v ./membership/

.PHONY: lint
lint: $(BUF) ## buf lint + buf format + buf breaking + go vet + gofmt.
	$(BUF) lint
	$(BUF) format --diff --exit-code
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
	  echo "$(BUF) breaking --against .git#ref=HEAD~1"; \
	  $(BUF) breaking --against '.git#ref=HEAD~1'; \
	else echo "buf breaking: no previous commit, skipped"; fi
	$(GO) vet $(PKGS)
	cd deploy/kubernetes/check && $(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: generate
generate: $(BUF) ## Regenerate gen/ from proto/.
	$(BUF) generate

.PHONY: check-generated
check-generated: generate ## Fail if gen/ differs from what proto/ generates.
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
	  echo "gen/ is stale: run 'make generate' and commit"; git status --porcelain -- gen; git diff --stat -- gen; exit 1; fi
	@echo "gen/ is up to date"

.PHONY: fuzz
FUZZ_TARGETS := membership:FuzzParseNodeID membership:FuzzCoreReceive server:FuzzSessionOpen server:FuzzDecodeMessage server:FuzzReassemble

fuzz: ## Run each fuzz target briefly (FUZZTIME=$(FUZZTIME) each).
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$fn ($$pkg)"; \
	  $(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) ./$$pkg/; done

.PHONY: demo
demo: build ## Run the three-node example as real processes on loopback.
	scripts/demo.sh

.PHONY: api-check
api-check: build examples/nodejs/node_modules ## grpcurl, grpc_health_probe and the Node.js example against real nodes.
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" scripts/api-check.sh

examples/nodejs/node_modules: examples/nodejs/package.json examples/nodejs/package-lock.json
	cd examples/nodejs && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: api-tools
api-tools: ## Install grpcurl and grpc_health_probe (used by api-check).
	$(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4
	$(GO) install github.com/grpc-ecosystem/grpc-health-probe@v0.4.62

.PHONY: chaos
chaos: ## Fault-injection suite (root): real nodes in network namespaces; writes docs/reliability.md.
	scripts/chaos.sh

# Benchmarks against hashicorp/memberlist. bench/ is its own Go module (memberlist and gonum
# never become dependencies of the product); BENCHMARKS.md and bench/results/ are regenerated.
BENCH_QUICK ?= -n 8,32 -trials 3 -steady-trials 1 -steady-profiles lan -formation-trials 0
BENCH_FULL  ?= -n 8,32,128 -trials 3 -steady-trials 1 -formation-trials 3 -formation-grace 30s
BENCH_256   ?= -n 256 -trials 1 -steady-trials 1 -formation-trials 1 -formation-grace 30s
# The engine commit the benchmark binary is built from (+uncommitted if membership/ or server/ differ).
BENCH_COMMIT = $(shell git rev-parse --short HEAD 2>/dev/null)$(shell git diff --quiet HEAD -- membership server 2>/dev/null || echo +uncommitted)

.PHONY: bench
bench: ## Benchmark vs memberlist, N = 8, 32 (under 5 minutes); regenerates BENCHMARKS.md.
	cd bench && $(GO) build -ldflags "-X main.buildCommit=$(BENCH_COMMIT)" -o ../bin/meshbench ./cmd/meshbench && $(GO) build -o ../bin/benchreport ./cmd/benchreport
	cd bench && ../bin/meshbench $(BENCH_QUICK) -label quick -out results/quick.jsonl
	cd bench && ../bin/benchreport -results results -out ../BENCHMARKS.md -plots results/plots

.PHONY: bench-resolver
bench-resolver: ## Client traffic through meshnode:///, a static list and dns:/// while backends change (about 1 minute); regenerates BENCHMARKS.md.
	cd bench && $(GO) build -o ../bin/resolverbench ./cmd/resolverbench && $(GO) build -o ../bin/benchreport ./cmd/benchreport
	cd bench && ../bin/resolverbench -trials 3 -out results/resolver/resolver.json
	cd bench && ../bin/benchreport -results results -out ../BENCHMARKS.md -plots results/plots

.PHONY: bench-full
bench-full: ## Benchmark vs memberlist, N = 8, 32, 128, 256 (about 45 minutes); regenerates BENCHMARKS.md.
	cd bench && $(GO) build -ldflags "-X main.buildCommit=$(BENCH_COMMIT)" -o ../bin/meshbench ./cmd/meshbench && $(GO) build -o ../bin/benchreport ./cmd/benchreport
	cd bench && ../bin/meshbench $(BENCH_FULL) -label full -out results/full.jsonl
	cd bench && ../bin/meshbench $(BENCH_256) -label full-256 -out results/full-256.jsonl
	cd bench && ../bin/benchreport -results results -out ../BENCHMARKS.md -plots results/plots
