# gpt-embedding: build, run and test.
#
#   make demo     build the command-line tool and run the built-in demonstration
#   make test     build everything and run every test suite (Swift, C, Python)
#   make lib      build .build/release/libgpt_embedding.so (+ its SONAME link)
#   make bench    the benchmark table (bench/run.py); make bench-smoke: a quick check
#   make golden   regenerate Tests/golden from PyTorch (needs torch; CI does not)

SWIFT   ?= swift
# The shipped library and tool are built for x86-64-v3 (AVX2, FMA: 2013 and newer CPUs);
# `make CPU=` builds for the baseline instead. Swift package users get the baseline.
ARCH    := $(shell uname -m)
CPU     ?= $(if $(filter x86_64,$(ARCH)),haswell,)
RELEASE := -c release $(if $(CPU),-Xswiftc -target-cpu -Xswiftc $(CPU),)
PYTHON  ?= python3
BIN     := .build/release
LIB     := $(BIN)/libgpt_embedding.so
SONAME  := libgpt_embedding.so.$(shell sed -n 's/^\#define GPT_EMBEDDING_VERSION_MAJOR \([0-9]*\).*/\1/p' include/gpt_embedding.h)

.PHONY: all lib cli demo test test-swift test-c test-python test-examples bench bench-smoke golden clean

all: lib cli

lib:
	$(SWIFT) build $(RELEASE) --product gpt_embedding
	ln -sf libgpt_embedding.so $(BIN)/$(SONAME)

cli:
	$(SWIFT) build $(RELEASE) --product gpt-embedding

demo: cli
	$(BIN)/gpt-embedding demo

test: test-swift test-c test-python test-examples bench-smoke

test-swift:
	$(SWIFT) test

test-c: lib
	Tests/c/run.sh

test-python: lib
	$(PYTHON) -m pytest -q Tests/python

test-examples: lib
	Tests/examples/run.sh

bench: lib
	$(PYTHON) bench/run.py

bench-smoke: lib
	$(PYTHON) bench/run.py --smoke --no-torch

golden:
	$(PYTHON) Tests/golden/generate.py

clean:
	rm -rf .build
