#!/usr/bin/env bash
# One binary for every x86-64 CPU (issue 10): checks the built library's instructions, then
# runs it on emulated CPUs with qemu-user and compares the kernel paths bit for bit.
#   1. Tests/isa/check_isa.py: no instruction beyond the x86-64 baseline outside the
#      x86-64-v3 kernels, in the library and the tool; the check itself fails on a library
#      compiled with -mavx2 (so it can fail); and the two kernel modules define no
#      function the linker could merge between them (whichever copy a link keeps).
#   2. Tests/isa/digest.c (init, forward, backward, every option, 1 and 2 threads) prints
#      the same hash natively on each path, under qemu -cpu Nehalem (no AVX: the baseline
#      path must be chosen) and under qemu -cpu Haswell (the v3 path must be chosen).
#   3. A bad GPT_EMBEDDING_ISA is an error naming the value, never a crash, also when it
#      asks for x86-64-v3 on a CPU without it.
#   4. The C test suite and the Python quick start under qemu -cpu Nehalem; the C suite
#      under qemu -cpu Haswell.
# Prints "N passed, M failed"; exits non-zero if anything failed.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
bin="$root/.build/release"
work="$root/.build/isa-tests"
mkdir -p "$work"
passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
python=$(python3 -c 'import sys; print(sys.executable)')  # the interpreter itself, not a shim
qemu() { qemu-x86_64 -cpu "$@" 2>"$work/qemu.err"; }         # qemu's TCG feature warnings aside

if [ "$(uname -m)" != x86_64 ]; then echo "not x86-64: nothing to check"; echo "0 passed, 0 failed"; exit 0; fi
command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 is missing (Debian: apt-get install qemu-user)"; exit 1; }

# 1. The instructions.
for f in "$bin/libgpt_embedding.so" "$bin/gpt-embedding"; do
    if out=$(python3 Tests/isa/check_isa.py "$f"); then ok "$(basename "$f"): $(tail -1 <<<"$out")"
    else fail "$(basename "$f")"; echo "$out" | head -20; fi
done
objects="$root/.build/release"
if out=$(python3 Tests/isa/check_isa.py --shared "$objects/GPTEmbeddingKernels.build" "$objects/GPTEmbeddingKernelsV3.build"); then
    ok "$(tail -1 <<<"$out")"
else fail "kernel modules share mergeable functions"; echo "$out" | head -20; fi
printf 'void add(float *a, const float *b) { for (int i = 0; i < 64; i++) a[i] += b[i]; }\n' > "$work/avx2.c"
cc -O3 -mavx2 -shared -fPIC "$work/avx2.c" -o "$work/libavx2.so"
if python3 Tests/isa/check_isa.py --no-v3 "$work/libavx2.so" >/dev/null; then fail "the check accepts AVX2 code outside the kernels"
else ok "the check rejects AVX2 code outside the kernels"; fi

# 2. The same bits on every path and CPU.
cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude Tests/isa/digest.c -L"$bin" -lgpt_embedding -Wl,-rpath,"$bin" \
   -o "$work/digest" || { fail "build digest"; echo "$passed passed, $failed failed"; exit 1; }
reference=$(GPT_EMBEDDING_ISA=baseline "$work/digest") || fail "digest, native baseline"
echo "     $reference (native, GPT_EMBEDDING_ISA=baseline)"
check_digest() {  # label, expected isa, command...
    local label="$1" want="$2"; shift 2
    local got
    if got=$("$@") && [ "${got#isa $want }" != "$got" ] && [ "${got##* }" = "${reference##* }" ]; then
        ok "$label: $got"
    else fail "$label: got '$got', want isa $want and digest ${reference##* }"; fi
}
native=$(python3 -c 'import sys; f=open("/proc/cpuinfo").read(); print("x86-64-v3" if all(w in f.split() for w in ("avx2","fma","bmi2","f16c","movbe")) else "baseline")')
check_digest "native, auto" "$native" "$work/digest"
[ "$native" = x86-64-v3 ] && check_digest "native, GPT_EMBEDDING_ISA=x86-64-v3" x86-64-v3 env GPT_EMBEDDING_ISA=x86-64-v3 "$work/digest"
check_digest "qemu -cpu Nehalem" baseline qemu Nehalem "$work/digest"
check_digest "qemu -cpu Haswell" x86-64-v3 qemu Haswell "$work/digest"

# 3. Bad values: an error naming the value and the supported paths; exit 1, not SIGILL.
expect_refusal() {  # label, message part, command...
    local label="$1" part="$2"; shift 2
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = 1 ] && grep -q -- "$part" <<<"$out"; then ok "$label: $(tail -1 <<<"$out")"
    else fail "$label: exit $rc: $out"; fi
}
expect_refusal "GPT_EMBEDDING_ISA=avx512" "GPT_EMBEDDING_ISA=avx512 is not a kernel path.*this CPU supports" \
    env GPT_EMBEDDING_ISA=avx512 "$work/digest"
expect_refusal "GPT_EMBEDDING_ISA=x86-64-v3 on Nehalem" "cannot run here.*this CPU supports baseline" \
    env GPT_EMBEDDING_ISA=x86-64-v3 qemu-x86_64 -cpu Nehalem "$work/digest"

# 4. The test suites on emulated CPUs.
# The two emulated runs side by side (each is mostly one emulated thread), each in its own
# build folder.
for cpu in Nehalem Haswell; do
    QEMU_CPU=$cpu C_TESTS_OUT="$work/c-tests-$cpu" Tests/c/run.sh > "$work/c-tests-$cpu.log" 2>&1 &
    eval "pid_$cpu=$!"
done
for cpu in Nehalem Haswell; do
    pid_var="pid_$cpu"
    if wait "${!pid_var}"; then ok "C tests under qemu -cpu $cpu"
    else fail "C tests under qemu -cpu $cpu"; grep -v "^ok\|^==" "$work/c-tests-$cpu.log" | tail -20; fi
done
if out=$(PYTHONPATH="$root/bindings/python" qemu Nehalem "$python" examples/python/quickstart.py) \
   && grep -q "out of range \[0, 50257)" <<<"$out"; then ok "Python quick start under qemu -cpu Nehalem"
else fail "Python quick start under qemu -cpu Nehalem"; echo "$out" | tail -10; cat "$work/qemu.err" | tail -5; fi
if out=$(PYTHONPATH="$root/bindings/python" qemu Nehalem "$python" -c 'import gpt_embedding; print(gpt_embedding.isa)') \
   && [ "$out" = baseline ]; then ok "gpt_embedding.isa is baseline under qemu -cpu Nehalem"
else fail "gpt_embedding.isa under qemu -cpu Nehalem: $out"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
