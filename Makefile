# The README's two commands: `make demo` and `make test`.  Meson does the
# real work; this file only strings the steps together.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PYTEST     ?= /usr/bin/python3 -m pytest

.PHONY: all deps build build-asan demo test unit integration kubesim format-check fuzz bench clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

# A demo that needs no remote host: throwaway sshd on loopback.
demo: build
	DEVBRIDGE_BIN=$(CURDIR)/$(BUILD)/devbridge scripts/demo.sh

# The whole suite, under ASan+UBSan, warnings as errors.
test: deps format-check build-asan unit integration kubesim
	@echo "==> all tests passed"

unit: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(ASAN_BUILD) --print-errorlogs

integration: build-asan
	DEVBRIDGE_BIN=$(CURDIR)/$(ASAN_BUILD)/devbridge \
	ASAN_OPTIONS=detect_leaks=1:exitcode=86 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87 \
		$(PYTEST) -q tests/integration

# The Kubernetes test cluster (tests/kubesim) against the real kubectl.
kubesim: deps
	$(PYTEST) -q tests/kubesim

format-check:
	@out=$$(clang-format --dry-run src/*.c src/*/*.c src/*/*.h tests/unit/*.c tests/unit/*.h fuzz/*.c 2>&1); \
	if [ -n "$$out" ]; then echo "$$out" | head -40; echo "clang-format: run 'make format'"; exit 1; fi

format:
	clang-format -i src/*.c src/*/*.c src/*/*.h tests/unit/*.c tests/unit/*.h fuzz/*.c

# libFuzzer runs (clang); FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz: deps
	CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false 2>/dev/null || true
	ninja -C build-fuzz
	# New inputs go to a scratch dir: the checked-in corpus stays small.
	for f in config dbr jsonc jsonl kubectlmsg procnet sshmsg statefile; do \
		mkdir -p build-fuzz/corpus/$$f; \
		build-fuzz/fuzz/fuzz-$$f -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus/$$f \
			fuzz/corpus/$$f || exit 1; done

bench: build
	scripts/install-deps.sh --bench
	bench/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
