# Spillway — set-up, tests, demo and benchmarks.
#   make demo    build the tool (release) and run the demo against the embedded receiver
#   make test    unit, integration and conformance tests, then the ring's ThreadSanitizer run
#   make bench   ordo-one/benchmark suites, side by side with swift-otel 1.6.0
#   make bench-service  a Hummingbird service under wrk: no back end, Spillway, swift-otel
#   make bench-instructions  instructions and allocations per emitted record, under callgrind
#   make soak    the random-fault run with 10 M spans (make test runs it with 1 M), and a 30 s
#                collector outage ridden out on disk (make test: 5 s), for spans and for metrics
#   make fuzz    libFuzzer on the spill segment reader and recovery (FUZZ_SECONDS, default 60)
#   make faults  the fault suite (outages, throttling, resets, a slow collector, misconfiguration,
#                SIGKILL, a full disk, hostile files) with the release tool: one table row each;
#                make test runs its short version
# Every target first installs what is missing (Debian packages, PyPI packages), non-interactively.

SWIFT      ?= swift
DEBS       := liburing-dev libzstd-dev zlib1g-dev
PY_MODULES := opentelemetry.proto:opentelemetry-proto zstandard:zstandard cryptography:cryptography grpc:grpcio prometheus_client:prometheus-client
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The Python test packages live in a virtual environment, never in the system Python (Debian's is
# externally managed); the tests find python3 there first.
VENV       := $(CURDIR)/.build/venv
WITH_VENV  := PATH="$(VENV)/bin:$$PATH"
# The ring stress test under TSan: 4 producers x this many records (1,000,000 without TSan).
TSAN_RECORDS ?= 200000

.PHONY: test-traits check-traits all deps demo test lint bench-service bench-instructions test-consumer test-unit test-pwrite test-tsan tsan-selftest test-faults faults bench soak fuzz examples clean

all: test

deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing < /dev/null; \
	fi
	@if [ ! -x "$(VENV)/bin/python3" ]; then \
		if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then \
			echo "make deps: installing Debian package: python3-venv"; \
			$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv < /dev/null; \
		fi; \
		echo "make deps: creating a Python virtual environment in $(VENV)"; \
		python3 -m venv "$(VENV)" < /dev/null; \
	fi
	@for pair in $(PY_MODULES); do module=$${pair%%:*}; package=$${pair##*:}; \
		"$(VENV)/bin/python3" -c "import $$module" 2>/dev/null || { echo "make deps: installing $$package from PyPI into $(VENV)"; \
		"$(VENV)/bin/python3" -m pip install -q --disable-pip-version-check $$package < /dev/null; }; done

demo: deps
	$(SWIFT) build -c release --product spillway
	.build/release/spillway demo --spans 1000000 --logs 100000 --threads 2 --faults 0.1

# The ThreadSanitizer steps come first and the main suite last, so the run ends with its summary.
test: deps test-consumer test-tsan tsan-selftest test-pwrite test-unit test-faults

# A hung test fails the run after TEST_TIMEOUT seconds instead of holding CI until its own limit
# (every wait in a test has a deadline; this is the backstop for one that does not).
TEST_TIMEOUT ?= 1200
TIMEOUT := timeout --kill-after=30 $(TEST_TIMEOUT)

# The test that blocks every thread of Swift's cooperative pool on purpose (emitters on a full
# ring, to prove exports do not need the pool) runs alone, after the rest: beside the suite, a
# slow run of it (57 s once, with two CPU hogs) held the pool from every other test, and twenty of
# them failed their time limits for it.
POOL_TEST := exportsProgressWhileEveryCooperativeThreadIsBlockedEmitting
# The crash suites start `spillway load` children at full speed and kill them: beside the
# parallel suite they starved it (a loaded run went from 76 s to 122 s and five timing waits
# failed), so they run after it, on their own.
CRASH_TESTS := RingFileRecoveryTests|MachineCrashRouteTests
# Tests that time a collector's behaviour (a Retry-After waited out, a breaker's cool-down, an
# export timeout, the window under strain, a replay over a pool whose members' health changes as it
# runs, a reload under traffic): in the parallel suite on a 2-vCPU machine each failed one run in
# three to eight (2026-12-07: nine unit runs, the same tests at a0a2b04 as at HEAD), and none alone.
# They run after it, one at a time (24 s).
TIMING_TESTS := aReplayedFrameIsCutByTraceAndAPartRefusedForGood|aMetricsRequestIsNotRetriedPastTheExportTimeout|fiveFailuresOpenTheBreaker|a503WithRetryAfterForFiveSeconds|aCollectorUnderStrainClosesTheWindow|metricsGoToTheirRoutesDestinationsInOrder|aFileFansAnAuditRouteOut|aShutDownPipelineReleasesItsPort
test-unit: deps
	$(SWIFT) build --build-tests
	$(WITH_VENV) $(TIMEOUT) $(SWIFT) test --skip-build --skip "$(POOL_TEST)|$(CRASH_TESTS)|$(TIMING_TESTS)" || { rc=$$?; [ $$rc -ne 124 ] || echo "test-unit: no result after $(TEST_TIMEOUT) s: a test hangs"; exit $$rc; }
	$(WITH_VENV) $(TIMEOUT) $(SWIFT) test --skip-build --no-parallel --filter "$(TIMING_TESTS)"
	$(WITH_VENV) $(TIMEOUT) $(SWIFT) test --skip-build --filter "$(CRASH_TESTS)"
	$(WITH_VENV) $(TIMEOUT) $(SWIFT) test --skip-build --filter $(POOL_TEST)

# A throw-away package depending on Spillway by version (from a tagged clone of HEAD) gets past
# planning: SwiftPM refuses dependencies with unsafe build flags there.
test-consumer: deps
	Tests/consumer/check_consumer.sh

# The package with its default traits (TLS, GRPC) left out, as a plaintext OTLP/HTTP user builds
# it: it compiles, and the tool refuses https:// and grpc with messages naming the traits.
# `make test` does this with test-faults' release build; this target does it in debug.
test-traits: deps
	$(SWIFT) build --disable-default-traits --product spillway
	@$(MAKE) --no-print-directory check-traits SPILLWAY_BIN=.build/debug/spillway

check-traits:
	@out=$$($(SPILLWAY_BIN) load --endpoint https://127.0.0.1:9 --spans 1 --quiet 2>&1); rc=$$?; \
	if [ $$rc -ne 0 ] && echo "$$out" | grep -q "needs the package trait TLS"; then \
		echo "check-traits: ok — without the TLS trait, https:// is refused: $$(echo "$$out" | head -1)"; \
	else echo "check-traits: FAILED (exit $$rc): $$out"; exit 1; fi
	@out=$$(OTEL_EXPORTER_OTLP_PROTOCOL=grpc $(SPILLWAY_BIN) load --endpoint http://127.0.0.1:9 --spans 1 --quiet 2>&1); rc=$$?; \
	if [ $$rc -ne 0 ] && echo "$$out" | grep -q "grpc needs the package trait GRPC"; then \
		echo "check-traits: ok — without the GRPC trait, grpc is refused: $$(echo "$$out" | head -1)"; \
	else echo "check-traits: FAILED (exit $$rc): $$out"; exit 1; fi

# The fault suite's short version, with the release build: some bugs live only in -O code (a
# replay livelock did). Its scenarios speak plaintext OTLP/HTTP, so this build leaves out the
# default traits (TLS, GRPC) — which makes it the check of that configuration too (check-traits),
# and spares compiling BoringSSL and HTTP/2 a second time with -O (a fifth of a fresh run).
test-faults: deps
	$(SWIFT) build -c release --disable-default-traits --product spillway
	@$(MAKE) --no-print-directory check-traits SPILLWAY_BIN=.build/release/spillway
	.build/release/spillway faults --short

faults: deps
	$(SWIFT) build -c release --product spillway
	.build/release/spillway faults --report .build/faults.md
	@echo "The table is also in .build/faults.md"

# The spill tests again with the pwrite writer forced, so both write paths pass the same suite.
test-pwrite: deps
	$(SWIFT) build --build-tests
	SPILLWAY_SPILL_IO=pwrite $(WITH_VENV) $(TIMEOUT) $(SWIFT) test --skip-build --filter "SegmentWriterTests|SegmentReaderTests|AsynchronousWriteTests|CrashTests|SpillStoreTests|SpillDiskFullTests|FileToolTests"

# The ring's tests under ThreadSanitizer, built as their own small package (Tests/ring-tsan) so
# that TSan does not instrument and build every dependency of the main package. This toolchain's
# `swift test --sanitize=thread` exits 0 even when TSan reports a race, so halt_on_error=1 makes
# a report fail the step.
TSAN := $(SWIFT) test --sanitize=thread --package-path Tests/ring-tsan --scratch-path .build-tsan
test-tsan: deps
	TSAN_OPTIONS=halt_on_error=1 SPILLWAY_RING_STRESS_RECORDS=$(TSAN_RECORDS) $(TIMEOUT) $(TSAN)

# Proves test-tsan can fail: a deliberately racy test must make the same command exit non-zero.
tsan-selftest: deps
	@mkdir -p .build-tsan
	@if TSAN_OPTIONS=halt_on_error=1 SPILLWAY_TSAN_SELFTEST=1 \
		$(TSAN) --filter ThreadSanitizerSelfTest > .build-tsan/selftest.log 2>&1; then \
		echo "tsan-selftest: FAILED — the deliberate data race was not reported; see .build-tsan/selftest.log"; exit 1; \
	elif grep -q "WARNING: ThreadSanitizer" .build-tsan/selftest.log; then \
		echo "tsan-selftest: ok — ThreadSanitizer reported the deliberate race and the step exited non-zero"; \
	else \
		echo "tsan-selftest: FAILED — the step failed for another reason; see .build-tsan/selftest.log"; tail -20 .build-tsan/selftest.log; exit 1; \
	fi

# Instructions and heap allocations per emitted span and log record and per swift-metrics
# counter increment and timer recording, under callgrind: exact
# numbers that repeat run after run (wall-clock benchmarks on 2 shared cores do not).
bench-instructions: deps
	@command -v valgrind >/dev/null || { echo "make bench-instructions: installing Debian package: valgrind"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq valgrind < /dev/null; }
	Benchmarks/Instructions/measure.sh

# A Hummingbird 2 service with TracingMiddleware and one logger.info per request, loaded by wrk, with
# no telemetry back end, with Spillway and with swift-otel 1.6.0 (ROUNDS, DURATION, CONNECTIONS;
# Benchmarks/Service/run.sh). Builds Hummingbird and swift-otel in release: minutes the first time.
bench-service: deps
	SWIFT=$(SWIFT) Benchmarks/Service/run.sh

bench: deps
	rm -f Benchmarks/e2e-report.txt
	cd Benchmarks && BENCH_E2E_SPANS=$${BENCH_E2E_SPANS:-5000000} $(SWIFT) package --allow-writing-to-package-directory benchmark --no-progress
	@echo "End-to-end loss reports:"; cat Benchmarks/e2e-report.txt

soak: deps
	$(SWIFT) build --build-tests
	SPILLWAY_FAULT_RUN_RECORDS=$${SPILLWAY_FAULT_RUN_RECORDS:-10000000} $(WITH_VENV) $(SWIFT) test --skip-build --filter aMillionRecordsThroughRandom
	@cat .build/fault-run.txt; echo
	SPILLWAY_OUTAGE_SECONDS=$${SPILLWAY_OUTAGE_SECONDS:-30} $(WITH_VENV) $(SWIFT) test --skip-build --filter aCollectorDownUnderLoadIsRiddenOutOnDisk
	SPILLWAY_POOL_SPANS=$${SPILLWAY_POOL_SPANS:-1000000} SPILLWAY_POOL_OUTAGE_SECONDS=$${SPILLWAY_POOL_OUTAGE_SECONDS:-10} \
		$(SWIFT) test --skip-build --filter balanceByTraceDeliversEverySpanOnce
	SPILLWAY_FANOUT_OUTAGE_SECONDS=$${SPILLWAY_FANOUT_OUTAGE_SECONDS:-10} $(SWIFT) test --skip-build --filter anAuditRouteFansOut
	SPILLWAY_METRICS_OUTAGE_SECONDS=$${SPILLWAY_METRICS_OUTAGE_SECONDS:-30} $(WITH_VENV) $(SWIFT) test --skip-build --filter metricsOfAnOutage

# The README's quick start and Hummingbird-style service, built against this checkout (Hummingbird
# takes minutes to build, so this is not part of `make test`).
examples: deps
	python3 Tests/readme/check_readme.py . .build-examples

FUZZ_SECONDS ?= 60
fuzz: deps
	@mkdir -p .build/fuzz/corpus .build/fuzz/artifacts
	clang -g -O1 -fsanitize=fuzzer,address,undefined -ISources/CSpill/include Sources/CSpill/*.c Tests/fuzz/reader_fuzz.c \
		-luring -lzstd -o .build/fuzz/reader
	FUZZ_SEED_DIR=.build/fuzz/corpus .build/fuzz/reader -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 \
		-artifact_prefix=.build/fuzz/artifacts/ .build/fuzz/corpus

# Style, not run by make test: swift-format (.swift-format) over the Swift sources, tests and
# benchmarks; no line over 140 characters (Swift and C); no source file over 420 lines.
LINT_DIRS := Sources Tests Benchmarks/Benchmarks Benchmarks/Service
lint:
	swift format lint --strict -r --configuration .swift-format $(LINT_DIRS)
	@long=$$(grep -rn '.\{141,\}' $(LINT_DIRS) --include='*.swift' --include='*.c' --include='*.h'); \
	if [ -n "$$long" ]; then echo "$$long"; echo "make lint: lines over 140 characters"; exit 1; fi
	@big=$$(find Sources -name '*.swift' -o -name '*.c' -o -name '*.h' | xargs wc -l | awk '$$2 != "total" && $$1 > 420'); \
	if [ -n "$$big" ]; then echo "$$big"; echo "make lint: source files over 420 lines"; exit 1; fi
	@echo "make lint: clean"

clean:
	rm -rf .build .build-tsan .build-examples Benchmarks/.build
