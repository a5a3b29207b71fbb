# gpt-embedding: build, run and test.
#
#   make demo     build the command-line tool and run the built-in demonstration
#   make test     build everything and run every test suite (Swift, C, Python, MPI)
#   make lib      build .build/release/libgpt_embedding.so (+ its SONAME link)
#   make reliability  sanitizers, valgrind, 100k create/free, 10k open/free, fuzzing (FUZZ_SECONDS=300 per target)
#   make bench    the benchmark tables (bench/run.py, bench/bench_checkpoint.py, bench/bench_mpi.py, bench/bench_adamw.py, bench/bench_nn.py, bench/bench_gguf.py); make bench-smoke: a quick check
#   make golden   regenerate Tests/golden from PyTorch (needs torch; CI does not)
#   make docs     the DocC documentation of the Swift module; fails on any DocC warning
#   make test-docs  run every code block of README.md, docs/ and the DocC articles, then make docs

SWIFT   ?= swift
# The library and the tool run on every x86-64 CPU: their kernels exist for the baseline and
# for x86-64-v3 and are picked at run time (GPT_EMBEDDING_ISA overrides). `make CPU=haswell`
# compiles everything for one CPU instead (the benchmark's "v3-only" comparison builds
# that in its own folder); such a build dies on older CPUs.
ARCH    := $(shell uname -m)
CPU     ?=
RELEASE := -c release $(if $(CPU),-Xswiftc -target-cpu -Xswiftc $(CPU),)
PYTHON  ?= python3
BIN     := .build/release
LIB     := $(BIN)/libgpt_embedding.so
# The version lives in one place: the header's macros.
version_part = $(shell sed -n 's/^\#define GPT_EMBEDDING_VERSION_$(1) \([0-9]*\).*/\1/p' include/gpt_embedding.h)
MAJOR   := $(call version_part,MAJOR)
VERSION := $(MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)
SONAME  := libgpt_embedding.so.$(MAJOR)

# make install PREFIX=... (DESTDIR for staging), as zstd and SQLite do.
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

.PHONY: all lib cli demo install uninstall test-install test-isa test-mpi reliability reliability-short reliability-checks reliability-asan $(RELIABILITY_STAGES) test-fuzz-replay test test-swift test-c test-python test-cli test-examples test-docs docs bench bench-smoke golden clean

all: lib cli

lib:
	$(SWIFT) build $(RELEASE) --product gpt_embedding
	ln -sf libgpt_embedding.so $(BIN)/$(SONAME)

cli:
	$(SWIFT) build $(RELEASE) --product gpt-embedding

demo: cli
	$(BIN)/gpt-embedding demo

# Every suite, one after another, each one's wall time printed at the end (Tests/stages.sh);
# the run goes on past a failing suite and fails at the end.
TEST_STAGES = lib cli test-swift test-c test-python test-cli test-examples test-docs test-isa test-install test-fuzz-replay \
               test-mpi bench-smoke $(RELIABILITY_STAGES)
test:
	MAKE="$(MAKE)" Tests/stages.sh $(TEST_STAGES)

# Reliability (issue 6). `make reliability` runs the long versions; `make test` the short ones.
FUZZ_SECONDS ?= 300
LAYERS       ?= 100000
OPENS        ?= 10000
LSAN         := LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/reliability/lsan.supp

# Each check is its own target, so `make test` can time it. The Swift suite runs once, under
# AddressSanitizer (test-swift; reliability-asan is the same run for `make reliability`):
# a plain run besides it would only repeat it without the checks.
RELIABILITY_STAGES := reliability-tsan reliability-c \
                      reliability-cycles reliability-fuzz
# ThreadSanitizer watches the suites that run the worker team's parallel regions (forward,
# backward with and without the layer norm, zero_grad, the optimizer, initialisation,
# streaming outputs, sharded calls) and the layer used from many threads at once; the rest
# of the suite is single-threaded or too small to split, and runs under ASan in test-swift.
TSAN_SUITES := ConcurrencyTests|ReproducibilityTests|CallTests|AdamWTests|NormalFillTests|VocabShardTests|OutputStoreTests|GGUFQuantizedTests|ScatterOwnershipTests
FUZZ_SECONDS_RUN ?= 15

reliability: FUZZ_SECONDS_RUN = $(FUZZ_SECONDS)
reliability: reliability-checks

reliability-short: reliability-checks

reliability-checks: reliability-asan $(RELIABILITY_STAGES)

reliability-asan: test-swift

reliability-tsan:
	$(SWIFT) test --sanitize=thread --filter '$(TSAN_SUITES)'

# The C suite built with ASan + UBSan and the C suite under valgrind, side by side (each is
# mostly one thread), each in its own build folder; both logs are printed.
reliability-c: lib
	SANITIZE=1 C_TESTS_OUT=.build/c-tests-sanitize Tests/c/run.sh > .build/c-tests-sanitize.log 2>&1 & s=$$!; \
	VALGRIND=1 C_TESTS_OUT=.build/c-tests-valgrind Tests/c/run.sh > .build/c-tests-valgrind.log 2>&1; v=$$?; \
	wait $$s; s=$$?; \
	echo "--- ASan + UBSan:"; cat .build/c-tests-sanitize.log; echo "--- valgrind:"; cat .build/c-tests-valgrind.log; \
	echo "C suite with ASan + UBSan: exit $$s; under valgrind: exit $$v"; [ $$s = 0 ] && [ $$v = 0 ]

reliability-cycles: lib
	cc -std=c11 -O2 -Wall -Werror -Iinclude Tests/reliability/create_free.c -L$(BIN) -lgpt_embedding \
	   -Wl,-rpath,$(CURDIR)/$(BIN) -o .build/create_free && .build/create_free $(LAYERS)
	cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude Tests/reliability/open_free.c -L$(BIN) -lgpt_embedding \
	   -Wl,-rpath,$(CURDIR)/$(BIN) -o .build/open_free && .build/open_free $(OPENS) && \
	   .build/open_free $(OPENS) Tests/fixtures/gguf/llama_q4_k.gguf

reliability-fuzz:
	Tests/fuzz/run.sh -t $(FUZZ_SECONDS_RUN)

test-fuzz-replay:
	Tests/fuzz/replay.sh

test-swift:
	$(LSAN) $(SWIFT) test --sanitize=address

test-c: lib
	Tests/c/run.sh

test-cli: lib cli
	bash Tests/cli/run.sh

test-python: lib
	$(PYTHON) -m pytest -q Tests/python

test-examples: lib
	Tests/examples/run.sh

# Documentation (issue 21). Every fenced block of README.md, docs/*.md and the DocC articles
# runs and its "-> " comments are checked (the convention: Tests/docs/run_snippets.py,
# docs/architecture.md); then the DocC catalog must build without a warning.
test-docs: lib cli
	$(PYTHON) Tests/docs/run_snippets.py
	$(MAKE) docs

# DocC of the GPTEmbedding module (swift-docc-plugin). The archive lands in
# .build/plugins/Swift-DocC/outputs/GPTEmbedding.doccarchive; any warning (a broken symbol
# link, an undocumented parameter of a documented function) fails the target.
docs:
	@mkdir -p .build
	$(SWIFT) package generate-documentation --target GPTEmbedding > .build/docs.log 2>&1 || { cat .build/docs.log; exit 1; }
	@if grep -E "(warning|error):" .build/docs.log; then echo "make docs: DocC reported the warnings above (.build/docs.log)"; exit 1; fi
	@grep -A1 "Generated documentation archive" .build/docs.log

# Vocabulary-parallel shards with a real MPI (issue 14): OpenMPI's mpicc / mpirun and mpi4py,
# 2 and 3 ranks, every run under a timeout.
test-mpi: lib
	PYTHON=$(PYTHON) Tests/mpi/run.sh

# One binary for every x86-64 CPU: disassembly check, paths compared, qemu-user runs.
test-isa: lib cli
	Tests/isa/run.sh

bench: lib
	$(PYTHON) bench/run.py
	$(PYTHON) bench/bench_checkpoint.py
	$(PYTHON) bench/bench_mpi.py
	$(PYTHON) bench/bench_adamw.py
	$(PYTHON) bench/bench_nn.py
	$(PYTHON) bench/bench_gguf.py $(if $(wildcard .build/ggml/lib),--ggml .build/ggml,)

bench-smoke: lib
	$(PYTHON) bench/run.py --smoke --no-torch
	$(PYTHON) bench/bench_checkpoint.py --smoke --no-torch
	$(PYTHON) bench/bench_adamw.py --smoke --no-torch
	$(PYTHON) bench/bench_mpi.py --smoke
	$(PYTHON) bench/bench_gguf.py --smoke
	if $(PYTHON) -c "import torch" 2>/dev/null; then $(PYTHON) bench/bench_nn.py --smoke; fi

install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(LIB) $(DESTDIR)$(LIBDIR)/libgpt_embedding.so.$(VERSION)
	ln -sf libgpt_embedding.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libgpt_embedding.so
	install -m 644 include/gpt_embedding.h $(DESTDIR)$(INCLUDEDIR)/gpt_embedding.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' gpt_embedding.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/gpt_embedding.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libgpt_embedding.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libgpt_embedding.so $(DESTDIR)$(INCLUDEDIR)/gpt_embedding.h \
	      $(DESTDIR)$(PKGCONFIGDIR)/gpt_embedding.pc

test-install: lib
	Tests/install/run.sh

golden:
	$(PYTHON) Tests/golden/generate.py
	$(PYTHON) Tests/golden/adamw/generate_adamw.py

clean:
	rm -rf .build
