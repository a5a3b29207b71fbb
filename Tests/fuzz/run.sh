#!/usr/bin/env bash
# Runs the libFuzzer targets. Usage: Tests/fuzz/run.sh [target...] [-t seconds]
#   targets: api, safetensors (default: every target that exists)
# Builds them with --sanitize fuzzer,address into .build/fuzz, starts each from its
# committed seed corpus (Tests/fuzz/corpus/<target>), runs for the given time (default 60 s)
# and prints executions and crashes per target. A crash input is saved under
# .build/fuzz/crashes/<target>/ and the script exits 1.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
seconds=60
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        -t) seconds="$2"; shift 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    for d in Tests/fuzz/*/; do
        name=$(basename "$d")
        [ "$name" = support ] || [ "$name" = corpus ] || targets+=("$name")
    done
fi

build=.build/fuzz
# One build folder for every target: the second target reuses every module of the first
# (one instrumented build, not one per target). SwiftPM keeps --sanitize values in a set and
# emits them in a per-process random order; with two values (address, fuzzer) the order
# changes from one invocation to the next, which recompiles everything, and when
# -sanitize=fuzzer comes first swiftc drops the coverage instrumentation of the Swift
# modules (libFuzzer then runs blind). So SwiftPM gets one value, fuzzer (its link
# handling), and the compilers get both explicitly, in a fixed order: -Xswiftc for Swift,
# -Xcc for the C modules. The build is checked: a target with fewer than 1000 coverage
# counters, or without AddressSanitizer, fails the run.
rm -rf "$build/corpus" "$build/crashes" "$build"/*.log
mkdir -p "$build"
for t in "${targets[@]}"; do
    if ! swift build -c release --product "fuzz-$t" --sanitize fuzzer \
            -Xswiftc -sanitize=address,fuzzer -Xcc -fsanitize=address \
            -Xswiftc -DGPT_EMBEDDING_FUZZING --build-path "$build/build" >"$build/build-$t.log" 2>&1; then
        grep -E "error" "$build/build-$t.log"; echo "fuzz-$t: build failed"; exit 1
    fi
    exe="$build/build/release/fuzz-$t"
    counters=$(ASAN_OPTIONS=allocator_may_return_null=1 "$exe" -runs=0 2>&1 |
        sed -n 's/^INFO: Loaded 1 modules *(\([0-9]*\) inline 8-bit counters).*/\1/p')
    if [ "${counters:-0}" -lt 1000 ]; then
        echo "fuzz-$t: built without coverage instrumentation (${counters:-0} counters)"; exit 1
    fi
    asan=$(ASAN_OPTIONS=help=1 "$exe" -runs=0 2>&1)
    if ! grep -q "flags for AddressSanitizer" <<<"$asan"; then
        echo "fuzz-$t: built without AddressSanitizer"; exit 1
    fi
done

status=0
export SWIFT_BACKTRACE=enable=no            # a crashing run must not hang in the backtracer
export ASAN_OPTIONS=allocator_may_return_null=1  # huge allocations are errors, not aborts
for t in "${targets[@]}"; do
    work="$build/corpus/$t" crashes="$build/crashes/$t"
    mkdir -p "$work" "$crashes"
    [ -d "Tests/fuzz/corpus/$t" ] && cp -r "Tests/fuzz/corpus/$t/." "$work/"
    log="$build/$t.log"
    "$build/build/release/fuzz-$t" "$work" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$crashes/" -max_len=4096 >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    ncrash=$(find "$crashes" -type f | wc -l)
    echo "fuzz-$t: ${execs:-0} executions in ${seconds} s (${speed:-0}/s), $ncrash crash(es), exit $rc"
    if [ "$rc" -ne 0 ] || [ "$ncrash" -ne 0 ]; then status=1; tail -40 "$log"; fi
done
exit $status
