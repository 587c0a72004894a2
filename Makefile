# picos — front end to CMake/CTest. `make help` lists the targets.
#
# Everything is overridable: `make test BUILD_DIR=out JOBS=8`,
# `make build CMAKE_ARGS=-DPICOS_CONTEXT=ucontext`, `make asan WERROR=ON`.

SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
.SHELLFLAGS := -eo pipefail -c

BUILD_DIR   ?= build
ASAN_DIR    ?= build-asan
TSAN_DIR    ?= build-tsan
UCTX_DIR    ?= build-ucontext
BUILD_TYPE  ?= RelWithDebInfo
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS  ?= 2
# Fallback per-test timeout (seconds) for tests that set no TIMEOUT.
CTEST_TIMEOUT ?= 300
CMAKE       ?= cmake
CTEST       ?= ctest
CLANG_FORMAT ?= clang-format
# Extra arguments for every CMake configure step.
CMAKE_ARGS  ?=
# Warnings are errors in CI ($CI set), not by default on a desk.
WERROR      ?= $(if $(CI),ON,OFF)
PREFIX      ?= /usr/local

RUN_CLUSTER ?= apps/examples/run-cluster.sh
BENCH       ?= $(BUILD_DIR)/apps/bench/picos-bench

# (python3-zmq, python3-protobuf and protobuf-compiler are for the Python
# client, clients/python/, and its test; the C build does not use them.
# libhttp-parser-dev and libjs-chart.js (embedded) build the registry's
# HTTP API and dashboard, libncurses-dev `picos top`, libseccomp-dev
# picos-worker's syscall filter (docs/computations.md); chromium,
# python3-websocket and python3-prometheus-client are for the tests of the
# dashboard and /metrics.)
DEB_PACKAGES ?= build-essential cmake pkg-config libev-dev libprotobuf-c-dev \
                protobuf-c-compiler libcunit1-dev clang-format \
                libwolfssl-dev openssl wrk clang \
                libzmq3-dev libsodium-dev libinih-dev libjansson-dev zlib1g-dev \
                python3-zmq python3-protobuf protobuf-compiler \
                libhttp-parser-dev libjs-chart.js libncurses-dev libseccomp-dev \
                chromium python3-websocket python3-prometheus-client
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

ASAN_OPTIONS  ?= halt_on_error=1:print_stacktrace=1
UBSAN_OPTIONS ?= halt_on_error=1:print_stacktrace=1
TSAN_OPTIONS  ?= halt_on_error=1:second_deadlock_stack=1
# ThreadSanitizer (GCC 12) can't map its shadow when the kernel randomizes
# more than 28 bits of mmap addresses; run without ASLR there.
TSAN_RUN ?= $(shell [ "$$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ] \
              && echo "setarch $$(uname -m) -R")

FORMAT_DIRS ?= actors transport registry services apps tests include
FORMAT_FILES = $(shell find $(FORMAT_DIRS) \( -name '*.c' -o -name '*.h' \) \
                 ! -name '*.pb-c.*' -type f 2>/dev/null | sort)

CTEST_FLAGS = --output-on-failure -j$(CTEST_JOBS) --timeout $(CTEST_TIMEOUT) \
              --no-tests=error

.PHONY: all help deps configure build test run bench asan tsan ucontext \
        asan-build tsan-build ucontext-build \
        format format-check install clean

all: build

help:
	@echo "make deps          install missing Debian packages (apt-get)"
	@echo "make build         configure and build into $(BUILD_DIR)/ ($(BUILD_TYPE))"
	@echo "make test          build, then run every test with ctest"
	@echo "make run           build, then run a small cluster ($(RUN_CLUSTER))"
	@echo "make bench         build, then run $(BENCH)"
	@echo "make asan          Debug + address,undefined build in $(ASAN_DIR)/, unit and net tests"
	@echo "make tsan          Debug + thread build in $(TSAN_DIR)/, unit and net tests (not fuzz)"
	@echo "make ucontext      the runtime tests with the portable context switch, $(UCTX_DIR)/"
	@echo "make asan-build, tsan-build, ucontext-build: only build those"
	@echo "make format        clang-format -i the sources"
	@echo "make format-check  fail when a source isn't clang-formatted"
	@echo "make install       install into PREFIX=$(PREFIX)"
	@echo "make clean         remove the build directories"

deps:
	@if ! command -v dpkg-query >/dev/null; then \
	    echo "deps: not a Debian system; install yourself: $(DEB_PACKAGES)"; \
	    exit 0; \
	fi; \
	missing=""; \
	for p in $(DEB_PACKAGES); do \
	    s=$$(dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null || true); \
	    [ "$$s" = "install ok installed" ] || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then \
	    echo "deps: all packages present"; \
	else \
	    echo "deps: installing$$missing"; \
	    $(SUDO) apt-get update; \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y --no-install-recommends $$missing; \
	fi

configure: deps
	$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	    -DPICOS_WERROR=$(WERROR) $(CMAKE_ARGS)

build: configure
	$(CMAKE) --build $(BUILD_DIR) -j$(JOBS)

test: build
	$(CTEST) --test-dir $(BUILD_DIR) $(CTEST_FLAGS)

run: build
	$(RUN_CLUSTER) $(BUILD_DIR)

bench: build
	$(abspath $(BENCH))

asan-build: deps
	$(CMAKE) -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug \
	    -DPICOS_SANITIZE=address,undefined -DPICOS_WERROR=$(WERROR) $(CMAKE_ARGS)
	$(CMAKE) --build $(ASAN_DIR) -j$(JOBS)

asan: asan-build
	ASAN_OPTIONS=$(ASAN_OPTIONS) UBSAN_OPTIONS=$(UBSAN_OPTIONS) \
	    $(CTEST) --test-dir $(ASAN_DIR) -L 'unit|net' $(CTEST_FLAGS)

tsan-build: deps
	$(CMAKE) -S . -B $(TSAN_DIR) -DCMAKE_BUILD_TYPE=Debug \
	    -DPICOS_SANITIZE=thread -DPICOS_WERROR=$(WERROR) $(CMAKE_ARGS)
	$(CMAKE) --build $(TSAN_DIR) -j$(JOBS)

tsan: tsan-build
	TSAN_OPTIONS=$(TSAN_OPTIONS) $(TSAN_RUN) \
	    $(CTEST) --test-dir $(TSAN_DIR) -L 'unit|net' -LE 'linkworker|fuzz' $(CTEST_FLAGS)

# The portable context switch (swapcontext; what `auto` picks off x86-64
# and aarch64): the runtime's own tests, built only as far as they need.
UCTX_TESTS ?= test_task test_spawn test_actor test_msg test_sync test_mailbox \
              test_select test_exit test_supervisor
ucontext-build: deps
	$(CMAKE) -S . -B $(UCTX_DIR) -DPICOS_CONTEXT=ucontext \
	    -DPICOS_WERROR=$(WERROR) $(CMAKE_ARGS)
	$(CMAKE) --build $(UCTX_DIR) -j$(JOBS) --target $(UCTX_TESTS)

ucontext: ucontext-build
	$(CTEST) --test-dir $(UCTX_DIR) -R '^($(shell echo $(UCTX_TESTS) | tr ' ' '|'))$$' \
	    $(CTEST_FLAGS)

format:
	@files="$(FORMAT_FILES)"; \
	if [ -n "$$files" ]; then $(CLANG_FORMAT) -i $$files; fi

format-check:
	@files="$(FORMAT_FILES)"; \
	if [ -z "$$files" ]; then echo "format-check: no sources"; exit 0; fi; \
	$(CLANG_FORMAT) --dry-run --Werror $$files; \
	echo "format-check: $$(wc -w <<< "$$files") files clean"

install: build
	$(CMAKE) --install $(BUILD_DIR) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TSAN_DIR) $(UCTX_DIR)
