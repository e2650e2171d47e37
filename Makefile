# Build, test and run. PYTHON selects the interpreter machida3 embeds:
# empty for the system's python3-embed, or a version such as 3.12.
PYTHON ?=
GO ?= go
PYENV_CMD = env_exports=$$(build/python-env $(PYTHON)) && eval "$$env_exports"

.PHONY: build machida3 machida machida-if-present tools test test-py2 test-pythons test-go test-py e2e demo setup fuzz-smoke vet clean

build: machida3 machida-if-present tools

machida3:
	@case "$(PYTHON)" in 2*) echo "error: machida3 embeds Python 3 (PYTHON=$(PYTHON)); the Python 2.7 binary is machida" >&2; exit 1;; esac
	@$(PYENV_CMD) && $(GO) build -o bin/machida3 ./machida3

# machida is machida3's program built against Python 2.7 (-tags py2).
machida:
	@env_exports=$$(build/python-env 2.7) && eval "$$env_exports" && $(GO) build -tags py2 -o bin/machida ./machida

# make build includes machida when a Python 2.7 with its library is found.
machida-if-present:
	@if build/python-env 2.7 >/dev/null 2>&1; then $(MAKE) --no-print-directory machida; \
	else echo "note: no Python 2.7 embedding library found; skipped bin/machida (make machida says why)"; fi

tools:
	$(GO) build -o bin/ ./cmd/...

# Everything: Go unit tests (engine, bridge against a real interpreter,
# host), the wallaroo package's unittest suite, and the end-to-end tests
# that drive the built binaries.
test: build
	@$(PYENV_CMD) && WALLAROO_BIN=$(CURDIR)/bin $(GO) test -race -count=1 -timeout 40m ./...
	@if [ -x bin/machida ]; then $(MAKE) --no-print-directory test-py2; fi

# The bridge and host tests built against Python 2.7 (the end-to-end suite
# already ran with bin/machida as part of `make test`).
test-py2:
	@env_exports=$$(build/python-env 2.7) && eval "$$env_exports" && $(GO) test -tags py2 -count=1 ./bridge/ ./host/

test-go:
	@$(PYENV_CMD) && $(GO) test -count=1 ./...

test-py:
	cd pyapi && python3 -m unittest discover -s wallaroo/tests -t .

e2e: build
	WALLAROO_BIN=$(CURDIR)/bin $(GO) test -count=1 -v ./tests/...

# The end-to-end suite with the full cluster matrix (every example at 2, 3
# and 5 workers; E2E_FULL=1), with machida3 and, when built, machida; then
# the cluster examples again with --run-with-resilience (E2E_RESILIENCE=1).
.PHONY: e2e-full
e2e-full: build
	@$(PYENV_CMD) && E2E_FULL=1 WALLAROO_BIN=$(CURDIR)/bin $(GO) test -count=1 -timeout 60m ./tests/e2e/
	@$(PYENV_CMD) && E2E_FULL=1 E2E_RESILIENCE=1 WALLAROO_BIN=$(CURDIR)/bin $(GO) test -count=1 -timeout 60m -run 'TestClusterExample_' ./tests/e2e/

# Builds machida3 against each Python 3 from 3.8 to 3.13 found and runs the
# bridge, host and end-to-end tests with each; prints a table.
test-pythons:
	build/test-pythons

# Runs the word count example end to end and prints the counts.
demo: build
	examples/python/word_count/run.sh

# Installs the Debian packages the build and tests need, if missing.
setup:
	@missing=""; for p in make gcc pkg-config python3-dev python3-venv python3-redis python3-pika python3-psycopg2 python3-kafka postgresql-client chromium nftables; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	else echo "the build and test packages are installed"; fi

fuzz-smoke:
	$(GO) test -run '^$$' -fuzz FuzzFramer -fuzztime 30s ./engine/source/
	$(GO) test -run '^$$' -fuzz FuzzReadFrame -fuzztime 30s ./internal/extframe/
	$(GO) test -run '^$$' -fuzz FuzzWire -fuzztime 30s ./engine/cluster/
	$(GO) test -run '^$$' -fuzz FuzzSecureWire -fuzztime 30s ./engine/cluster/
	$(GO) test -run '^$$' -fuzz FuzzLinkAuth -fuzztime 30s ./internal/linkauth/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./engine/checkpoint/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./internal/hubproto/
	@env_exports=$$(build/python-env) && eval "$$env_exports" && $(GO) test -run '^$$' -fuzz FuzzTextColumns -fuzztime 30s ./host/

# Benchmarks machida3 against the plain-Python ceiling and a hand-written
# asyncio server on word count and market spread, prints a table and writes
# it as JSON to bench/out/ (see bench/README.md). About 7 minutes;
# BENCH_QUICK=1 for about 2; BENCH_DURATION=N sets the memory check's
# seconds; BENCH_ARGS passes flags (go run ./bench -h lists them).
.PHONY: bench
bench: build
	BENCH_QUICK="$(BENCH_QUICK)" BENCH_DURATION="$(BENCH_DURATION)" $(GO) run ./bench $(BENCH_ARGS)

# A/B: builds machida3 from the git revision BENCH_BASE (required) in a
# temporary worktree, with that revision's own `make build`, then runs the
# throughput phase with -baseline-bin: in every rep the baseline and
# bin/machida3 run alternately on the same input (5 reps unless BENCH_REPS
# or -reps says otherwise); the table adds CPU per message of the
# interpreter thread and of the process, throughput and ratios. The
# worktree is removed afterwards. Example: make bench-ab BENCH_BASE=HEAD~2
.PHONY: bench-ab
bench-ab: build
	@if [ -z "$(BENCH_BASE)" ]; then \
	  echo "error: make bench-ab needs BENCH_BASE, the git revision to build the baseline machida3 from (e.g. make bench-ab BENCH_BASE=HEAD~1)" >&2; exit 2; fi
	@rev=$$(git rev-parse --verify --quiet "$(BENCH_BASE)^{commit}") || { \
	  echo "error: BENCH_BASE=$(BENCH_BASE) is not a commit of this repository" >&2; exit 2; }; \
	tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/machida-bench-base.XXXXXX") || exit 1; \
	cleanup() { git worktree remove --force "$$tmp/src" >/dev/null 2>&1; git worktree prune; rm -rf "$$tmp"; }; \
	trap cleanup EXIT; trap 'exit 130' INT TERM; \
	echo "bench-ab: baseline $(BENCH_BASE) = $$rev, built in $$tmp/src"; \
	git worktree add --quiet --detach "$$tmp/src" "$$rev" && \
	if [ -d "$(CURDIR)/../shared" ]; then ln -s "$(CURDIR)/../shared" "$$tmp/shared"; fi && \
	$(MAKE) --no-print-directory -C "$$tmp/src" build PYTHON="$(PYTHON)" && \
	BENCH_QUICK="$(BENCH_QUICK)" $(GO) run ./bench -baseline-bin "$$tmp/src/bin" -phases throughput $(BENCH_ARGS)

vet:
	@$(PYENV_CMD) && $(GO) vet ./...

clean:
	rm -rf bin .build
