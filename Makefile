# Thin front end over CMake: `make` builds build/whatstyle, `make test` runs every test,
# `make asan` runs them again under ASan+UBSan, `make fuzz` runs each fuzz target briefly.
BUILD ?= build
JOBS  ?= $(shell nproc)
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=

.PHONY: all test asan fuzz-build fuzz bench clean deps format

all:
	@cmake -S . -B $(BUILD) -G Ninja -DWS_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan:
	@cmake -S . -B build-asan -G Ninja -DWS_WERROR=ON -DWS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

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

clean:
	rm -rf build build-asan build-fuzz
