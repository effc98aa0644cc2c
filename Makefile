# Thin front end over CMake: `make` builds build/whatstyle, `make test` runs every test,
# `make asan` runs them again under ASan+UBSan, `make fuzz` runs each fuzz target briefly.
BUILD ?= build
JOBS  ?= $(shell nproc)
FUZZ_SECONDS ?= 60
# A test that fails is run once more before it counts as failed (2 busy cores make the
# service tests' timing vary); the first failure stays in the log.
CTEST_FLAGS ?= --output-on-failure --repeat until-pass:2
CMAKE_FLAGS ?=

.PHONY: web all test asan fuzz-build fuzz bench clean deps format format-check

all: web
	@cmake -S . -B $(BUILD) -G Ninja -DWS_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: all
	cd $(BUILD) && ctest $(CTEST_FLAGS) -j $(JOBS)

# The dashboard (web/): built into web/dist when Node is present, then embedded by CMake.
web:
	@if command -v npm >/dev/null 2>&1; then \
	  bash web/install.sh; \
	  if [ ! -f web/dist/index.html ] || [ -n "$$(find web/src web/index.html web/vite.config.ts web/package-lock.json -newer web/dist/index.html 2>/dev/null | head -1)" ]; then \
	    npm --prefix web run build --silent >/dev/null; fi; fi

asan: web
	@cmake -S . -B build-asan -G Ninja -DWS_WERROR=ON -DWS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest $(CTEST_FLAGS) -j $(JOBS)

fuzz-build:
	@CC=clang-14 cmake -S . -B build-fuzz -G Ninja -DWS_FUZZ=ON -DWS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

fuzz: fuzz-build
	@bash tools/run-fuzz.sh build-fuzz $(FUZZ_SECONDS)

bench: all
	@for b in bench/*.sh; do bash $$b; done

deps:
	bash tools/install-deps.sh

# clang-format the given files in place: make format FILES="src/chat/reader.c ..."
format:
	clang-format-14 -i $(FILES)

# which files clang-format would change (report only, exit 0; tools/check-format.sh without
# --report fails on any, the ctest test check_format with -DWS_CHECK_FORMAT=ON)
format-check:
	@bash tools/check-format.sh --report

clean:
	rm -rf build build-asan build-fuzz
