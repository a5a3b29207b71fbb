#!/usr/bin/env bash
# Installs the library into a temporary prefix and uses it the way C and C++ users do:
# pkg-config, the SONAME links, a self-contained .so that runs with an empty environment,
# Python loading it the same way; then uninstalls. Prints "N passed, M failed".
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
expect() { local what="$1"; shift; if "$@" >"$work/log" 2>&1; then ok "$what"; else fail "$what"; tail -20 "$work/log"; fi; }

version=$(sed -n 's/^#define GPT_EMBEDDING_VERSION_STRING "\(.*\)"/\1/p' include/gpt_embedding.h)
major=${version%%.*}

expect "make install PREFIX=<tmp>" make -s install PREFIX="$prefix"
lib="$prefix/lib"
expect "library, SONAME link and dev link installed" test -f "$lib/libgpt_embedding.so.$version" \
    -a -L "$lib/libgpt_embedding.so.$major" -a -L "$lib/libgpt_embedding.so" -a -f "$prefix/include/gpt_embedding.h"
expect "SONAME is libgpt_embedding.so.$major" bash -c "readelf -d '$lib/libgpt_embedding.so.$version' | grep -q 'SONAME.*\[libgpt_embedding.so.$major\]'"
expect "no Swift runtime in ldd" bash -c "! ldd '$lib/libgpt_embedding.so.$version' | grep -q libswift"
expect "no RUNPATH into a toolchain" bash -c "! readelf -d '$lib/libgpt_embedding.so.$version' | grep -E 'RUNPATH|RPATH' | grep -v '\\\$ORIGIN' | grep -q ."
expect "no Foundation linked" bash -c "! nm -D '$lib/libgpt_embedding.so.$version' | grep -qi foundation"

export PKG_CONFIG_PATH="$lib/pkgconfig"
expect "pkg-config --modversion" bash -c "[ \"\$(pkg-config --modversion gpt_embedding)\" = '$version' ]"
expect "C program built with pkg-config" bash -c "cc -std=c11 -Wall -Werror examples/c/quickstart.c \$(pkg-config --cflags --libs gpt_embedding) -Wl,-rpath,'$lib' -o '$work/c_quickstart'"
expect "C program runs" bash -c "'$work/c_quickstart' | grep -q 'token id 50300 at \[1, 1\]'"
expect "C++ program built with pkg-config" bash -c "c++ -std=c++17 -Wall -Wextra -Werror examples/cpp/quickstart.cpp \$(pkg-config --cflags --libs gpt_embedding) -Wl,-rpath,'$lib' -o '$work/cpp_quickstart'"
expect "C++ program runs" bash -c "'$work/cpp_quickstart' | grep -q 'caught: gpt_embedding_forward_i64: token id 5000 at \[0, 0\]'"

# Self-contained: the .so and a program in a fresh folder, run with an empty environment.
mkdir -p "$work/fresh"
cp "$lib/libgpt_embedding.so.$version" "$work/fresh/libgpt_embedding.so.$major"
expect "relocatable C program" cc -std=c11 -Iinclude examples/c/quickstart.c "$work/fresh/libgpt_embedding.so.$major" \
    -Wl,-rpath,'$ORIGIN' -o "$work/fresh/quickstart"
expect "runs with env -i from a fresh folder" bash -c "cd '$work/fresh' && env -i ./quickstart | grep -q 'status 4'"
py=$(command -v python3)
expect "Python loads it with env -i" env -i "$py" -c "
import ctypes
lib = ctypes.CDLL('$work/fresh/libgpt_embedding.so.$major')
lib.gpt_embedding_version_string.restype = ctypes.c_char_p
assert lib.gpt_embedding_version_string().decode() == '$version'
"

expect "make uninstall" make -s uninstall PREFIX="$prefix"
expect "uninstall removed every file" bash -c "[ -z \"\$(find '$prefix' -type f -o -type l)\" ]"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
