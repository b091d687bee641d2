# lumos — build, run and test.
#   make dev    install what is missing, build, run a one-process cluster
#   make test   install what tests need, run every test
#   make bench  run the benchmarks and print their figures

GO      ?= go
BIN     := bin/lumos
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build dev deps test-deps test test-short bench cluster cluster-stop fmt vet tidy-check clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/lumos

deps:
	@./scripts/deps.sh dev

test-deps:
	@./scripts/deps.sh test

dev: deps build
	./$(BIN) dev

vet:
	$(GO) vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# Unit and in-process cluster tests first (with the race detector), then the
# end-to-end tests with real processes on their own, so CPU-hungry race
# builds do not starve the gossip timings of real clusters.
test: test-deps fmt vet build
	LUMOS_REQUIRE_BROWSER=1 $(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e)
	$(GO) test -count=1 -timeout 20m ./e2e/

test-short: build
	$(GO) test -short -count=1 ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./...

# A local cluster of real processes: 3 control nodes and 2 shields on
# 127.0.0.x (see scripts/cluster.sh).
cluster: build
	./scripts/cluster.sh start

cluster-stop:
	./scripts/cluster.sh stop

clean:
	rm -rf bin
