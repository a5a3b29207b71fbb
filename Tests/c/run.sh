#!/usr/bin/env bash
# Builds the C test programs against the header and the built libgpt_embedding.so and
# runs them. SANITIZE=1 builds them with -fsanitize=address,undefined; VALGRIND=1 runs
# them under valgrind memcheck; QEMU_CPU=Nehalem (any qemu CPU model) runs them under
# qemu-x86_64 -cpu $QEMU_CPU. Exits non-zero if anything fails.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
bin="$root/.build/release"
out="$root/.build/c-tests"
mkdir -p "$out"
[ -f "$bin/libgpt_embedding.so" ] || { echo "build the library first: make lib"; exit 1; }

cflags=(-std=c11 -O2 -g -Wall -Wextra -Werror -Iinclude -ITests/c)
[ "${SANITIZE:-0}" = 1 ] && cflags+=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
link=(-L"$bin" -lgpt_embedding -Wl,-rpath,"$bin" -lm -lpthread)
runner=()
[ -n "${QEMU_CPU:-}" ] && runner=(qemu-x86_64 -cpu "$QEMU_CPU")
[ "${VALGRIND:-0}" = 1 ] && runner=(valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite -q)

failed=0
run() {  # name, command...
    local name="$1"; shift
    echo "== $name"
    if ! "$@"; then echo "FAIL $name"; failed=$((failed + 1)); fi
}

run "build test_golden" cc "${cflags[@]}" Tests/c/test_golden.c Tests/c/golden.c -o "$out/test_golden" "${link[@]}"
run "build test_errors" cc "${cflags[@]}" Tests/c/test_errors.c -o "$out/test_errors" "${link[@]}"
run "build test_api" cc "${cflags[@]}" Tests/c/test_api.c -o "$out/test_api" "${link[@]}"
run "build the header as C++" c++ -std=c++17 -Wall -Wextra -Werror -Iinclude examples/cpp/quickstart.cpp -o "$out/test_cxx" "${link[@]}"

run test_golden "${runner[@]}" "$out/test_golden" Tests/golden
run test_errors "${runner[@]}" "$out/test_errors"
run test_api "${runner[@]}" "$out/test_api"
run test_cxx "${runner[@]}" "$out/test_cxx"
for extra in Tests/c/test_safetensors.c; do
    [ -f "$extra" ] || continue
    name=$(basename "$extra" .c)
    run "build $name" cc "${cflags[@]}" "$extra" -o "$out/$name" "${link[@]}"
    run "$name" "${runner[@]}" "$out/$name" Tests/fuzz/corpus/safetensors
done
for extra in Tests/c/test_precision.c; do
    [ -f "$extra" ] || continue
    name=$(basename "$extra" .c)
    run "build $name" cc "${cflags[@]}" "$extra" -o "$out/$name" "${link[@]}"
    run "$name" "${runner[@]}" "$out/$name"
done
for extra in Tests/c/test_families.c; do
    [ -f "$extra" ] || continue
    name=$(basename "$extra" .c)
    run "build $name" cc "${cflags[@]}" "$extra" -o "$out/$name" "${link[@]}"
    run "$name" "${runner[@]}" "$out/$name"
done

run "exports" Tests/c/check_exports.sh "$bin/libgpt_embedding.so" include/gpt_embedding.h

if [ "$failed" -ne 0 ]; then echo "C tests: $failed step(s) failed"; exit 1; fi
echo "C tests: all passed"
