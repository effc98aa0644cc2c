# Thin front end over CMake: `make` builds build/whatstyle, `make test` runs every test,
# `make asan` runs them again under ASan+UBSan, `make fuzz` runs each fuzz target briefly.
BUILD ?= build
JOBS  ?= $(shell nproc)
FUZZ_SECONDS ?= 60
# A test runs once: a flaky test is a bug to fix, not a run to repeat.
CTEST_FLAGS ?= --output-on-failure
CMAKE_FLAGS ?=

.PHONY: web all test asan coverage fuzz-build fuzz bench clean deps format format-check

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

# Line and branch coverage of src/ by the whole ctest suite: GCC --coverage build in
# build-cov/, then gcovr (tools/install-deps.sh installs it): a summary on stdout, the HTML
# report in build-cov/coverage/index.html. The figure is quoted in the README's test section.
coverage: web
	@cmake -S . -B build-cov -G Ninja -DWS_COVERAGE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build-cov -j $(JOBS)
	@find build-cov -name '*.gcda' -delete
	-cd build-cov && ctest $(CTEST_FLAGS) -j $(JOBS)
	@mkdir -p build-cov/coverage
	gcovr -r . --object-directory build-cov --filter 'src/' --exclude-unreachable-branches \
	  --gcov-ignore-parse-errors --print-summary --html-details build-cov/coverage/index.html \
	  --txt build-cov/coverage/summary.txt -j $(JOBS)

fuzz-build:
	@CC=clang-14 cmake -S . -B build-fuzz -G Ninja -DWS_FUZZ=ON -DWS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

fuzz: fuzz-build
	@bash tools/run-fuzz.sh build-fuzz $(FUZZ_SECONDS)

bench: all
	@for b in bench/*.sh; do bash $$b; done

deps:
	bash tools/install-deps.sh

# clang-format files in place: make format FILES="src/chat/reader.c ..." (default: the whole tree)
format:
	@if [ -n "$(FILES)" ]; then clang-format-14 -i --style=file $(FILES); else bash tools/check-format.sh --fix; fi

# which files clang-format would change (report only, exit 0; tools/check-format.sh without
# --report fails on any, as the ctest test check_format does)
format-check:
	@bash tools/check-format.sh --report

clean:
	rm -rf build build-asan build-fuzz build-cov
