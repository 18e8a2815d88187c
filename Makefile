# dbx — build, test, lint, bench. Every target works on a fresh machine with Go installed.
GO        ?= go
PKGS      ?= ./...
STATICCHECK_VERSION ?= v0.6.1
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
# The version dbx-node --version prints (the build has no VCS stamp: GOFLAGS=-buildvcs=false here).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Fuzz budgets are execution counts, not durations: a duration-based
# -fuzztime races its own deadline in Go 1.26 (golang/go#75804) and fails
# with "context deadline exceeded" and no crasher. ~10 s each on this machine.
FUZZ_WAL      ?= 150000x
FUZZ_SEGMENT  ?= 400000x
FUZZ_ROUTER   ?= 800000x
FUZZ_FRAME    ?= 150000x
FUZZ_RESP     ?= 300000x
FUZZ_COMMAND  ?= 100000x


.PHONY: cluster-demo cluster cluster-stop engine-demo
# Quick start: build dbx-node, start a 3-node cluster on loopback, write on
# one node and read through the others (redis-cli), print status, stop.
cluster-demo:
	scripts/cluster.sh demo

# The same cluster, left running until Ctrl-C (or make cluster-stop).
cluster:
	scripts/cluster.sh

cluster-stop:
	scripts/cluster.sh stop

# The storage engine on its own (engine/example_test.go).
engine-demo:
	$(GO) test ./engine -run '^Example$$' -count=1 -v

.PHONY: docker cluster-up cluster-down chaos chaos-short chaos-clean
# Docker: the image is FROM scratch around a static dbx-node built here
# (no registry needed). compose.yaml runs a 3-node cluster of it.
DOCKER ?= docker
docker:
	mkdir -p bin/docker/empty
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags='-s -w -X main.version=$(VERSION)' -o bin/docker/dbx-node ./cmd/dbx-node
	$(DOCKER) build -t dbx-node:dev .

# Uses `docker compose` or `docker-compose`, whichever exists.
cluster-up: docker
	scripts/compose.sh up

cluster-down:
	scripts/compose.sh down

# The chaos suite (integration/chaos): 5 containers, faults, checkers.
# make chaos runs rounds of every fault for CHAOS_DURATION; chaos-short is
# the CI mode (one round, ~3 minutes on 2 cores). CHAOS_FLAGS passes more go test flags.
CHAOS_DURATION ?= 10m
chaos:
	scripts/chaos.sh $(CHAOS_DURATION)

chaos-short:
	scripts/chaos.sh short

# Removes the Docker objects of a chaos run that was killed before its cleanup.
chaos-clean:
	scripts/chaos.sh clean

.PHONY: all build test test-short lint vet fmt fmt-check tidy-check staticcheck bench bench-placement bench-engine fuzz-short clean deploy-check

# The Prometheus alert rules in deploy/ (needs promtool: Debian's prometheus
# package). deploy/deploy_test.go checks that every dashboard and rule query
# names a metric dbx exports.
deploy-check:
	promtool check rules deploy/prometheus/dbx-alerts.yml

all: build test

build:
	$(GO) build $(PKGS)

# The test suite: race detector on, no cached results, invariant checks on.
test:
	$(GO) test -race -count=1 -tags invariants -timeout 20m $(PKGS)

test-short:
	$(GO) test -count=1 -short $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

tidy-check:
	$(GO) mod tidy -diff

staticcheck:
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck $(PKGS)

lint: fmt-check vet tidy-check staticcheck

# Short coverage-guided fuzz runs over the decoders (seed corpora live in testdata/fuzz).
# Longer by hand: make fuzz-short FUZZ_WAL=5000000x ...
fuzz-short:
	$(GO) test ./engine/wal -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZ_WAL)
	$(GO) test ./engine/segment -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZ_SEGMENT)
	$(GO) test ./router -run '^$$' -fuzz '^FuzzHashTag$$' -fuzztime $(FUZZ_ROUTER)
	$(GO) test ./transport -run '^$$' -fuzz '^FuzzFrameDecode$$' -fuzztime $(FUZZ_FRAME)
	$(GO) test ./server/resp -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZ_RESP)
	$(GO) test ./server -run '^$$' -fuzz '^FuzzCommand$$' -fuzztime $(FUZZ_COMMAND)

bench: bench-placement bench-engine

# Balance and movement figures of the weighted ring vs buraksezer/consistent, and router lookup speed.
bench-placement:
	$(GO) test ./ring ./router ./rebalancer -run '^$$' -bench . -benchtime 1x -count 1 >/dev/null
	$(GO) test ./ring -run '^TestPlacementReport$$' -v -count=1 -report
	$(GO) test ./router -run '^$$' -bench 'BenchmarkOwner' -benchtime 2s -count 5

# One dbx node vs a plain redis-server with redis-benchmark, same script
# (needs redis-server and redis-tools). ROUNDS=3 for medians.
.PHONY: bench-redis
bench-redis:
	scripts/bench-redis.sh

# dbx-bench against redis-server, a one-member etcd (bench/etcdbench), one dbx
# node and a 3-node dbx cluster in one run; one table of ops/s, p99 and ratios.
# Installs redis-server, redis-tools, etcd-server, jq, curl when root on Debian.
# ROUNDS=3 for medians; DURATION, WARMUP, CLIENTS, VALUE, KEYS, BASE_PORT, OUT.
.PHONY: bench-compare
bench-compare:
	scripts/bench-compare.sh

# TLS overhead on SET/GET: one node, plain and TLS RESP ports side by side,
# dbx-bench on each, alternating; medians of ROUNDS (3). Needs openssl, jq.
.PHONY: bench-tls
bench-tls:
	scripts/bench-tls.sh

# dbx engine vs Pebble, same workloads, same run (separate module: bench/).
bench-engine:
	cd bench && $(GO) run ./enginebench $(ENGINEBENCH_FLAGS)

clean:
	$(GO) clean -testcache
