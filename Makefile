# rewardpool build and test entry points. `make test` is what CI runs.

GO        ?= go
# A count, not a duration: with a wall-clock -fuzztime, Go 1.26's fuzz
# coordinator can fail a target with "context deadline exceeded" and no
# failing input when the deadline races a busy worker (golang/go#75804,
# fixed in Go 1.27). About 4 s per target on 2 cores.
FUZZTIME  ?= 20000x
BENCHTIME ?= 1s
COUNT     ?= 5

# Every fuzz target as package:Target; `make test` gives each a short run.
FUZZ_TARGETS = \
	./wal:FuzzDecodeBinary \
	./wal:FuzzDecodeText \
	./wal:FuzzDecodeJSONL \
	./wal:FuzzSegmentHeader \
	./snapshot:FuzzDecode \
	./journal:FuzzDecodeBody \
	./pool:FuzzParseWeight \
	./internal/server:FuzzParseDrawBody \
	./internal/drawbatch:FuzzDecodeJSON \
	./internal/drawbatch:FuzzDrawsProto \
	./internal/server:FuzzSniffH2C

.PHONY: all build test vet race alloc powerloss fuzz bench bench-ratios redis-server clean

all: build test

build:
	$(GO) build ./...

## test: format check, vet, race-enabled tests, the allocation check, the
## power-loss simulator, a short fuzz pass
test: vet race alloc powerloss fuzz

vet:
	@fmt_out=$$(gofmt -l .); if [ -n "$$fmt_out" ]; then echo "gofmt needed:"; echo "$$fmt_out"; exit 1; fi
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 -timeout 15m ./...

# The race detector makes sync.Pool drop items on purpose, so the
# zero-allocation check runs in its own pass without -race.
alloc:
	$(GO) test -count=1 -run 'DoesNotAllocate' ./...

# The power-loss test cuts the power thousands of times; without -race it
# takes about a minute. REWARDPOOL_POWERLOSS_RUNS=N makes it a longer soak.
powerloss:
	$(GO) test -count=1 -run '^TestPowerLoss$$' -v .

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

## bench: every benchmark, $(COUNT) runs each; compare runs with benchstat
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT) ./... | tee bench.txt

## bench-ratios: issue 9's ratio table against a no-op server and Redis
## (scripts/bench-ratios.py; several minutes, not part of test)
bench-ratios:
	python3 scripts/bench-ratios.py

## redis-server: install Redis (the benchmarks' comparison) with apt-get when
## it is missing; needs root
redis-server:
	@if command -v redis-server >/dev/null 2>&1; then \
		echo "redis-server: $$(redis-server --version)"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
		echo "redis-server is missing; run as root: sudo make redis-server" >&2; exit 1; \
	else \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null && \
		echo "installed: $$(redis-server --version)"; \
	fi

clean:
	rm -f bench.txt
	rm -rf data
