#!/usr/bin/env bash
# Checks that the README's quick starts are exactly the example programs, then builds and
# runs each example against the freshly built library. Prints "N passed, M failed".
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
bin="$root/.build/release"
work="$root/.build/examples"
mkdir -p "$work"
passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

# The first fenced block of a language in README.md.
readme_block() {
    awk -v lang="$1" '$0 == "```" lang {inside = 1; next} inside && $0 == "```" {exit} inside {print}' README.md
}

check_same() {  # language, example file
    if diff <(readme_block "$1") "$2" >/dev/null; then ok "README $1 quick start is $2"
    else fail "README $1 quick start differs from $2"; diff <(readme_block "$1") "$2" | head -20; fi
}

check_same c examples/c/quickstart.c
check_same swift examples/swift/Sources/quickstart/main.swift
if [ -f bindings/python/examples/quickstart.py ] || [ -f examples/python/quickstart.py ]; then
    check_same python examples/python/quickstart.py
fi

# C: compile against the header, link the built library, run.
if cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/c/quickstart.c -L"$bin" -lgpt_embedding \
      -Wl,-rpath,"$bin" -o "$work/quickstart_c" && out=$("$work/quickstart_c") \
   && grep -q "token id 50300 at \[1, 1\] is out of range \[0, 50257)" <<<"$out"; then
    ok "examples/c/quickstart.c builds and runs"
else fail "examples/c/quickstart.c"; fi

# The training example (issue 13): a character-level model whose output head is tied to the
# token table, trained with the library's AdamW; it exits non-zero unless the loss falls.
out=""
if cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude examples/c/train.c -L"$bin" -lgpt_embedding \
      -Wl,-rpath,"$bin" -lm -o "$work/train_c" && out=$("$work/train_c" examples/data/shakespeare.txt 2>&1); then
    ok "examples/c/train.c trains: $(grep '^val loss' <<<"$out" | tail -1)"
else fail "examples/c/train.c"; echo "$out" | tail -20; fi

# Swift: a client package that depends on this one. Both Swift clients build in debug: the
# check is that they build and run; a release build of the library's kernels would add
# about a minute each (the release library is built and tested elsewhere).
if out=$(cd examples/swift && swift run quickstart 2>&1) \
   && grep -q "parameters: 39385344" <<<"$out"; then
    ok "examples/swift builds and runs"
else fail "examples/swift"; echo "$out" | tail -20; fi

# Swift by URL and version: a client of a tagged copy of this repository (file:// URL), the
# way Swift users depend on it. Fails if the GPTEmbedding product had unsafe flags.
url_test() {
    local tmp; tmp=$(mktemp -d)
    git clone -q "$root" "$tmp/gpt-embedding" && (cd "$tmp/gpt-embedding" && git tag -f 0.4.0 >/dev/null)
    mkdir -p "$tmp/client/Sources/client"
    cat > "$tmp/client/Package.swift" <<PKG
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "client",
    dependencies: [.package(url: "file://$tmp/gpt-embedding", from: "0.4.0")],
    targets: [.executableTarget(name: "client", dependencies: [.product(name: "GPTEmbedding", package: "gpt-embedding")])]
)
PKG
    cp examples/swift/Sources/quickstart/main.swift "$tmp/client/Sources/client/main.swift"
    (cd "$tmp/client" && swift run client 2>&1) | tee "$tmp/log" | grep -q "parameters: 39385344"
    local rc=$?
    [ $rc -ne 0 ] && tail -20 "$tmp/log"
    rm -rf "$tmp"
    return $rc
}
if url_test; then ok "a Swift package depends on GPTEmbedding by URL and version"; else fail "Swift dependency by URL"; fi

# Python: the quick start, run as written.
if [ -f examples/python/quickstart.py ]; then
    if out=$(PYTHONPATH="$root/bindings/python" python3 examples/python/quickstart.py 2>&1); then
        ok "examples/python/quickstart.py runs"
    else fail "examples/python/quickstart.py"; echo "$out" | tail -20; fi
fi

# Python: the training example's twin (the same model and steps, numpy and the package).
out=""
if out=$(PYTHONPATH="$root/bindings/python" python3 examples/python/train.py 2>&1); then
    ok "examples/python/train.py trains: $(grep '^val loss' <<<"$out" | tail -1)"
else fail "examples/python/train.py"; echo "$out" | tail -20; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
