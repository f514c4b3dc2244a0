# userservice — every command a newcomer needs. `make help` lists them.
SHELL := /bin/bash
GO    ?= go
BIN   ?= bin/userservice
IMAGE ?= userservice:dev
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/userservice/userservice/bootstrap.Version=$(VERSION) -X github.com/userservice/userservice/bootstrap.Commit=$(COMMIT)
# The race detector needs cgo and a C compiler; use it wherever they exist.
RACE ?= $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v gcc >/dev/null && echo -race)
TEST_TIMEOUT ?= 25m
FUZZTIME ?= 30s
SOAK_DURATION ?= 5m
# make test's record of every test event, read back for its summary.
TEST_JSON ?= bin/test-events.json

.DEFAULT_GOAL := help
.PHONY: help run build test test-short fuzz soak bench generate check-generated lint fmt docker-build compose-up compose-down

help: ## List the targets
	@if [ -t 1 ]; then on=$$'\033[36m' off=$$'\033[0m'; else on= off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %s%-16s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

run: build ## Build, then serve on :8000 (embedded SQLite userservice.db unless DATABASE_URL is set)
	exec $(BIN) serve

build: ## Build the static binary into bin/
	@echo "compiling $(BIN) (about a minute the first time, seconds after)"
	@CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

test: ## Run every test, then name what was skipped and why, and count passed/failed/skipped
	@mkdir -p $(dir $(TEST_JSON)); status=0; \
	$(GO) tool gotestsum --format pkgname-and-test-fails --hide-summary=skipped --jsonfile $(TEST_JSON) -- \
		$(RACE) -timeout $(TEST_TIMEOUT) ./... || status=$$?; \
	$(GO) run ./tests/testsummary $(TEST_JSON) || status=$${status/#0/1}; exit $$status

test-short: ## Unit tests only, no databases
	$(GO) test -short ./...

PG_BIN ?= /usr/lib/postgresql/15/bin
export PG_BIN

fuzz: ## Run every Fuzz target for FUZZTIME each (default 30s); crashers are kept under testdata/fuzz as seeds
	@set -e; for pkg in $$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | xargs -n1 dirname | sort -u); do \
		for name in $$($(GO) test -list '^Fuzz' ./$$pkg | grep '^Fuzz'); do \
			echo "=== $$pkg $$name ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
		done; \
	done

soak: ## Mixed REST + WebSocket traffic for SOAK_DURATION (default 5m): zero 5xx, zero lost events, flat goroutines and heap
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -run '^TestSoak' -count 1 -v -timeout 60m ./tests/soak/

bench: ## Benchmarks beside baselines of the same run, one table (PostgreSQL 15 binaries; see docs/performance.md)
	@[ -n "$$BENCH_DATABASE_URL" ] || [ -x "$(PG_BIN)/initdb" ] || command -v initdb >/dev/null || { \
		echo "make bench needs PostgreSQL's server binaries (Debian: apt-get install postgresql-15), PG_BIN=dir, or BENCH_DATABASE_URL"; exit 1; }
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./tests/bench/...

generate: ## Regenerate generated code (OpenAPI server and models, operation table, Swagger UI assets)
	$(GO) generate ./...

check-generated: generate ## Fail when committed generated code is stale
	@git diff --exit-code -- . || { echo "generated code is stale: run make generate and commit"; exit 1; }

fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go')

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

docker-build: ## Build the container image
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

compose-up: ## Start PostgreSQL and the service with docker-compose
	docker-compose up --build -d

compose-down: ## Stop the compose stack
	docker-compose down
