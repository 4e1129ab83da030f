# heterollm: `make run` generates a story, `make test` builds and runs every test.
MODEL ?= ../shared/models/stories260K.gguf
PROMPT ?= Once upon a time
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all build run test unit cli asan peer arm bench fuzz clean

all: build

build:
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

run: build
	@if [ ! -f "$(MODEL)" ]; then \
	  echo "error: model $(MODEL) not found. Get a GGUF (e.g. stories260K.gguf from the Hugging Face repo ggml-org/models, tinyllamas/) and run: make run MODEL=path/to/model.gguf" >&2; \
	  exit 1; fi
	./build/hllm run -m "$(MODEL)" -p "$(PROMPT)" -n 200 --temp 0

unit: build
	@cd build && ctest --output-on-failure -j $(JOBS)

asan:
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHLLM_SANITIZE=ON -DHLLM_CUDA=off >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer targets (clang): build-fuzz/fuzz_{gguf,tokenizer,vocab}; see tests/fuzz/README.md
fuzz:
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHLLM_FUZZ=ON -DHLLM_CUDA=off >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_gguf fuzz_tokenizer fuzz_vocab

cli: build
	@bash tests/cli/test_cli.sh

peer: build
	@bash tests/peer/run.sh

# aarch64 cross build under qemu-user (apt-gets the toolchain when missing; skips without it)
arm: build
	@JOBS=$(JOBS) bash tests/arm/run.sh

test: unit cli asan peer arm
	@echo "all test suites passed"

bench: build
	@bash bench/run.sh

clean:
	rm -rf build build-asan build-arm build-fuzz
