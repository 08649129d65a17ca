# Tarifa — flat and readable. `make test` and `make demo` bring the local
# stack up themselves (deploy/local/stack.sh); the stack is shared by every
# clone on this machine and lives in /var/lib/tarifa-stack.

SHELL      := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
STACK      := deploy/local/stack.sh
ENV        := $(or $(TARIFA_STACK_DIR),/var/lib/tarifa-stack)/env
BIN        := bin/tarifa
VERSION    := $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOFLAGS_LD := -ldflags "-X main.version=$(VERSION)"
WITH_ENV   := set -a && source $$( $(STACK) env >/dev/null 2>&1 && echo $(ENV) ) && set +a &&

.PHONY: build test test-fresh demo bench bench-e2e bench-rerate bench-reports bench-scaleout deploy-check fuzz lint up down status migrate clean console-shots

build:
	go build $(GOFLAGS_LD) -o $(BIN) ./cmd/tarifa

up:
	$(STACK) up

down:
	$(STACK) down

status:
	$(STACK) status

migrate: build up
	$(WITH_ENV) $(BIN) migrate

# test: the whole suite, integration tests included, against the real stack.
test: up
	go vet ./...
	$(WITH_ENV) go test -race -count=1 -timeout 20m ./...

# test-fresh: `make up` on a pristine Debian 12 root (debootstrap minbase, its
# own mount, PID and network namespaces), then every server must answer and
# `down` must leave nothing; the host's stack is never touched.
test-fresh:
	deploy/local/test-fresh.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...

bench:
	go test -run '^$$' -bench . -benchmem -benchtime 2s ./codedeck ./rater ./ingest

# bench-e2e: 1M CDRs through broker → worker → ClickHouse + PostgreSQL on
# this machine; prints CDRs/s and the seconds spent per commit phase.
bench-e2e: up
	$(WITH_ENV) go test -run '^$$' -bench WorkerEndToEnd -benchtime 1x -timeout 30m ./cmd/tarifa

# bench-reports: the summary by day x orig client over 10M xDRs generated
# straight into ClickHouse, after a 1% rerating and late CDRs; every stage
# is checked against xdrs FINAL and both times are printed.
bench-reports: up
	$(WITH_ENV) go test -run '^$$' -bench Summary10M -benchtime 1x -timeout 60m ./report

# bench-rerate: rerating jobs over 1M CDRs a worker rated (TARIFA_BENCH_CDRS
# for more): dry run and confirmed job, CDRs/s and peak RSS of each.
bench-rerate: up
	$(WITH_ENV) go test -run '^$$' -bench BenchmarkRerate -benchtime 1x -timeout 60m ./cmd/tarifa

# deploy-check: the production files of deploy/ (promtool on the alert
# rules and their unit tests, systemd-analyze on the units, parsers on the
# compose and Kubernetes files); make test runs it too.
deploy-check:
	go test -count=1 ./deploy

# bench-scaleout: one worker, then two, on one ClickHouse server, then on a
# private two-shard cluster; then what one PostgreSQL allows (pgbench).
bench-scaleout: up
	for c in "1 0" "2 0" "1 1" "2 1"; do set -- $$c; \
		$(WITH_ENV) TARIFA_BENCH_WORKERS=$$1 TARIFA_BENCH_CLUSTER=$$2 go test -run '^$$' -bench ScaleOut -benchtime 1x -timeout 30m ./cmd/tarifa | grep Benchmark; done
	$(WITH_ENV) deploy/scaleout/measure.sh

# console-shots: the README's pictures of the console, taken by its browser
# test in headless Chromium, into docs/console (shrunk with pngquant when it
# is installed).
console-shots: up
	$(WITH_ENV) TARIFA_CONSOLE_SHOTS=$(CURDIR)/docs/console go test -count=1 -run 'TestConsoleInBrowser$$|TestInvoicesInBrowser' ./console
	-command -v pngquant >/dev/null && pngquant --quality=70-90 --speed 1 --force --ext .png docs/console/*.png

fuzz:
	go test -run '^$$' -fuzz FuzzParseCSV -fuzztime 30s ./codedeck
	go test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./ingest

demo: build up
	$(WITH_ENV) deploy/demo.sh

clean:
	rm -rf bin
