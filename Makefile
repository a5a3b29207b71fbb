# gpt-embedding: build, run and test.
#
#   make demo     build the command-line tool and run the built-in demonstration
#   make test     build everything and run every test suite (Swift, C, Python)
#   make lib      build .build/release/libgpt_embedding.so (+ its SONAME link)
#   make golden   regenerate Tests/golden from PyTorch (needs torch; CI does not)

SWIFT   ?= swift
PYTHON  ?= python3
BIN     := .build/release
LIB     := $(BIN)/libgpt_embedding.so
SONAME  := libgpt_embedding.so.$(shell sed -n 's/^\#define GPT_EMBEDDING_VERSION_MAJOR \([0-9]*\).*/\1/p' include/gpt_embedding.h)

.PHONY: all lib cli demo test test-swift test-c test-python test-examples golden clean

all: lib cli

lib:
	$(SWIFT) build -c release --product gpt_embedding
	ln -sf libgpt_embedding.so $(BIN)/$(SONAME)

cli:
	$(SWIFT) build -c release --product gpt-embedding

demo: cli
	$(BIN)/gpt-embedding demo

test: test-swift test-c test-python test-examples

test-swift:
	$(SWIFT) test

test-c: lib
	Tests/c/run.sh

test-python: lib
	$(PYTHON) -m pytest -q Tests/python

test-examples: lib
	Tests/examples/run.sh

golden:
	$(PYTHON) Tests/golden/generate.py

clean:
	rm -rf .build
