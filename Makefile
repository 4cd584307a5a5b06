# The README's two commands: `make demo` and `make test`.  Meson does the
# real work; this file only strings the steps together.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PYTEST     ?= /usr/bin/python3 -m pytest

.PHONY: all deps build build-asan demo test unit integration kubesim format-check fuzz bench clean test-k8s-real k8s-real-selfcheck

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

# The whole suite, under ASan+UBSan, warnings as errors; the release build
# (`make demo`'s, gcc -O2 warns of more) is built too, so it cannot rot.
test: deps format-check build build-asan unit integration kubesim k8s-real-selfcheck
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
	@out=$$(clang-format --dry-run src/*.c src/*/*.c src/*/*.h tests/unit/*.c tests/unit/*.h tests/yamux/*.c fuzz/*.c 2>&1); \
	if [ -n "$$out" ]; then echo "$$out" | head -40; echo "clang-format: run 'make format'"; exit 1; fi
	@scripts/check-layers.sh
	@scripts/check-json-pack.py

format:
	clang-format -i src/*.c src/*/*.c src/*/*.h tests/unit/*.c tests/unit/*.h tests/yamux/*.c fuzz/*.c

# libFuzzer runs (clang); FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz: deps
	CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false 2>/dev/null || true
	ninja -C build-fuzz
	# New inputs go to a scratch dir: the checked-in corpus stays small.
	for f in catalog config dbr jsonc jsonl jsonrpc k8sendpoints k8starget kubectlmsg num procnet procpid sshmsg statefile yamuxhdr yamuxsession; do \
		mkdir -p build-fuzz/corpus/$$f; \
		build-fuzz/fuzz/fuzz-$$f -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus/$$f \
			fuzz/corpus/$$f || exit 1; done

bench: build
	scripts/install-deps.sh --bench
	bench/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz

# The Kubernetes connect tests against a real cluster instead of kubesim
# (a throwaway one: kind, minikube; see README "Kubernetes"):
#   make test-k8s-real KUBECONFIG=$HOME/.kube/config
test-k8s-real: build-asan
	@test -n "$(KUBECONFIG)" || { echo "make test-k8s-real: set KUBECONFIG=FILE (a throwaway cluster)"; exit 2; }
	DEVBRIDGE_TEST_KUBECONFIG="$(KUBECONFIG)" DEVBRIDGE_BIN=$(CURDIR)/$(ASAN_BUILD)/devbridge \
	ASAN_OPTIONS=detect_leaks=1:exitcode=86 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87 \
		$(PYTEST) -q tests/integration/test_k8s_connect.py

# Keeps that path working without a cluster: a kubesim that maps the
# real-cluster echo image to socat plays the "real cluster".
k8s-real-selfcheck: build-asan
	PYTEST="$(PYTEST)" scripts/k8s-real-selfcheck.sh
