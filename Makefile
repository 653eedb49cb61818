# Meridian build, test and generation. Everything runs offline once the Go
# module cache is filled (go mod download).
GO        ?= go
BUF       := $(GO) tool -modfile=tools/go.mod buf
PKGS      := ./...
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report a spurious "context deadline exceeded" at the deadline on a loaded
# machine (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 20000x
BENCHTIME ?= 1s
BENCHCOUNT ?= 5

.PHONY: build test test-race generate check-generate lint fuzz bench bench-e2e bench-peers dev ci chaos console-test soak-fenced terraform-test clean

build:
	$(GO) build -o bin/meridian ./cmd/meridian

## test: the default suite (fast, in-process, no root). README's test command.
test:
	$(GO) test -count=1 -timeout 20m $(PKGS)

## test-race: the pure packages and the client under the race detector
## (HLC monotonicity under concurrency, session-token merging, the Raft log
## store read by replication while it is written and compacted).
test-race:
	$(GO) test -race -count=1 -timeout 20m ./causal/... ./crdt/... ./client/... ./internal/raftlog/...

generate:
	$(BUF) generate

## check-generate: generated code must match the .proto files.
check-generate: generate
	@git diff --exit-code -- api || (echo "generated code under api/ is stale: run make generate and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- api | grep '^??')" || (echo "untracked generated files under api/" >&2; exit 1)

lint:
	$(BUF) lint
	$(GO) vet $(PKGS)
	$(GO) vet -tags chaos ./tests/chaos/
	$(GO) vet -tags console ./cmd/meridian/
	GOOS=darwin $(GO) vet ./cmd/meridian/ ./client/... ./internal/raftlog/
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1)

## fuzz: every fuzz target briefly (FUZZTIME each).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./causal/... ./crdt/... ./region/...

## bench-e2e: floors, bare raft and a 3-process region side by side (docs/PERFORMANCE.md).
E2E_OPS ?= 3000x
bench-e2e:
	$(GO) test -run '^$$' -bench . -benchtime $(E2E_OPS) -count $(BENCHCOUNT) -timeout 60m ./tests/perf/

## bench-peers: a 3-process Meridian region beside NATS JetStream and etcd,
## through each system's own client, in one run (issue 14). Needs the peers
## installed as $(PEERBENCH)/README.md says; says so when they are not.
PEERBENCH     ?= ../shared/peerbench
PEER_ROUNDS   ?= 3
PEER_DURATION ?= 5s
bench-peers: build
	@gobin=$$($(GO) env GOPATH)/bin; missing=""; \
	for b in nats-server etcd benchmark; do test -x "$$gobin/$$b" || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  echo "bench-peers: not installed in $$gobin:$$missing" >&2; \
	  echo "install them once per machine as $(PEERBENCH)/README.md shows (nats-server v2.15.2 with go install; etcd v3.6.8 and its benchmark tool built from a tools module), then run make bench-peers again" >&2; \
	  exit 2; fi; \
	test -x $(PEERBENCH)/run.sh || { echo "bench-peers: $(PEERBENCH)/run.sh not found (PEERBENCH=path to peerbench)" >&2; exit 2; }; \
	MERIDIAN_BIN=$(CURDIR)/bin/meridian $(PEERBENCH)/run.sh $(PEER_ROUNDS) $(PEER_DURATION)

## chaos: real processes in network namespaces, iptables partitions, SIGKILL/SIGSTOP (root).
chaos:
	$(GO) test -tags chaos -count=1 -timeout 25m -v -run '^TestChaos' ./tests/chaos/

## console-test: the operator console in headless Chromium against a
## 3-region meridian dev (needs chromium: .ci/run installs it; screenshots
## in $$MERIDIAN_TEST_ARTIFACTS/console).
console-test:
	$(GO) test -tags console -count=1 -timeout 5m -v -run '^TestConsoleInHeadlessChromium$$' ./cmd/meridian/

## soak-fenced: the fenced-homes nemesis at soak size (SOAK_SCHEDULES of
## SOAK_DURATION each; every schedule logs its replay command).
SOAK_SCHEDULES ?= 100
SOAK_DURATION ?= 60s
soak-fenced:
	MERIDIAN_FENCED_SCHEDULES=$(SOAK_SCHEDULES) MERIDIAN_FENCED_DURATION=$(SOAK_DURATION) \
	  $(GO) test -count=1 -timeout 6h -v -run '^TestFencedHomesNemesis$$' ./tests/multiregion/

dev: build
	./bin/meridian dev

## terraform-test: fmt, init (AWS provider from the local mirror), validate and
## terraform test of every module and example, then apply + destroy of
## terraform/examples/local (real meridian server processes on 127.0.0.1).
terraform-test:
	bash terraform/test.sh

ci: check-generate lint test test-race fuzz terraform-test

clean:
	rm -rf bin
