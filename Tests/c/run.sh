#!/usr/bin/env bash
# Builds the C test programs against the header and the built libgpt_embedding.so and
# runs them. SANITIZE=1 builds them with -fsanitize=address,undefined; VALGRIND=1 runs
# them under valgrind memcheck; QEMU_CPU=Nehalem (any qemu CPU model) runs them under
# qemu-x86_64 -cpu $QEMU_CPU. Exits non-zero if anything fails.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
bin="$root/.build/release"
out="${C_TESTS_OUT:-$root/.build/c-tests}"  # its own folder per concurrent run (Tests/isa/run.sh)
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
for extra in Tests/c/test_precision.c Tests/c/test_shard.c Tests/c/test_call.c; do
    [ -f "$extra" ] || continue
    name=$(basename "$extra" .c)
    run "build $name" cc "${cflags[@]}" "$extra" -o "$out/$name" "${link[@]}"
    run "$name" "${runner[@]}" "$out/$name"
done
run "build test_adamw" cc "${cflags[@]}" Tests/c/test_adamw.c Tests/c/adamw_golden.c -o "$out/test_adamw" "${link[@]}"
run test_adamw "${runner[@]}" "$out/test_adamw" Tests/golden/adamw
for extra in Tests/c/test_families.c Tests/c/test_gguf.c; do
    [ -f "$extra" ] || continue
    name=$(basename "$extra" .c)
    run "build $name" cc "${cflags[@]}" "$extra" -o "$out/$name" "${link[@]}"
    run "$name" "${runner[@]}" "$out/$name"
done

# ABI compatibility (issue 12): a program compiled against the 0.2 header, linked to this
# library, also built with AddressSanitizer (run natively: ASan runs neither under valgrind
# nor under qemu-user); the same source rebuilt against the current header must print the
# same digests.
compat() {
    local old="$out/compat.old.txt" new="$out/compat.new.txt"
    "${runner[@]}" "$out/old_program" "$out" > "$old" || { cat "$old"; return 1; }
    "${runner[@]}" "$out/old_program_rebuilt" "$out" > "$new" || { cat "$new"; return 1; }
    grep -v '^digest' "$old"
    local n; n=$(grep -c '^digest' "$old")
    if ! diff <(grep '^digest' "$old") <(grep '^digest' "$new"); then
        echo "the 0.2 binary and the rebuilt program disagree (< 0.2 header, > current header)"; return 1
    fi
    echo "ok   $n digests agree between the 0.2 binary and the program rebuilt against the current header"
}
compat_asan() {
    ASAN_OPTIONS=detect_leaks=1 "$out/old_program_asan" "$out" | grep -v '^digest'
    return "${PIPESTATUS[0]}"
}
run "build compat/old_program (0.2 header)" cc "${cflags[@]}" Tests/c/compat/old_program.c -o "$out/old_program" "${link[@]}"
run "build compat/old_program (0.2 header, ASan)" cc "${cflags[@]}" -fsanitize=address -fno-omit-frame-pointer \
    Tests/c/compat/old_program.c -o "$out/old_program_asan" "${link[@]}"
run "build compat/old_program (current header)" cc "${cflags[@]}" -DNEW_HEADER Tests/c/compat/old_program.c \
    -o "$out/old_program_rebuilt" "${link[@]}"
run "compat: 0.2 binary against this library" compat
run "compat: 0.2 binary with ASan" compat_asan
for std in c++11 c++17; do
    run "build compat/macros.cpp ($std)" c++ -std=$std -O2 -Wall -Wextra -Werror -Iinclude Tests/c/compat/macros.cpp \
        -o "$out/macros_$std" "${link[@]}"
    run "compat: the 0.1 spellings from C++ ($std)" "${runner[@]}" "$out/macros_$std"
done

run "exports" Tests/c/check_exports.sh "$bin/libgpt_embedding.so" include/gpt_embedding.h

if [ "$failed" -ne 0 ]; then echo "C tests: $failed step(s) failed"; exit 1; fi
echo "C tests: all passed"
