#!/usr/bin/env python3
"""Fails when an instruction that a baseline x86-64 CPU lacks stands outside the x86-64-v3 kernels.

    python3 Tests/isa/check_isa.py .build/release/libgpt_embedding.so [more ELF files]

The library runs on every x86-64 CPU only if every instruction beyond the baseline (SSE2)
sits in code that the dispatch reaches after CPUID said yes: the functions of the
GPTEmbeddingKernelsV3 module (Swift symbols `$s21GPTEmbeddingKernelsV3...`) and its C
entry `gpte_kernels_x86_64_v3`. This disassembles every executable section with objdump
and attributes each instruction to the function symbol it follows. It flags:

- VEX- and EVEX-encoded instructions (AVX, AVX2, FMA, F16C, BMI1/2, AVX-512), found by their
  encoding: in 64-bit mode a C4/C5 byte (VEX) or 62 (EVEX) can only start such an
  instruction, after optional segment or address-size prefixes;
- non-VEX instructions of x86-64-v2/v3 that the baseline lacks (POPCNT, LZCNT, MOVBE,
  CRC32) and the SSE3 / SSSE3 / SSE4 mnemonics. (LZCNT is worse than a crash on an old
  CPU: it decodes there as BSR and silently computes something else.) TZCNT is allowed:
  LLVM emits it (`rep bsf`) for baseline code only where the input is non-zero, where old
  CPUs run it as BSF with the same result.

A function is inside the v3 kernels when its name says so, or when it is a local copy
(clang emits one per module for `static inline` helpers such as the Swift shims'
`_stdlib_squareRoot`) that only v3 kernel code refers to: the check follows every call,
jump and address reference in the file, so a copy the linker shared with baseline code
(the trap of compiling the same code twice) is caught.

It also fails when it finds no v3 kernel at all (a library built without dispatch) unless
--no-v3 is given, and it prints a summary: functions and instructions on each side.

    python3 Tests/isa/check_isa.py --shared BASELINE_OBJECT_DIR V3_OBJECT_DIR

fails when the two kernel modules' object files define the same mergeable (weak or
linkonce) function: the linker keeps one copy of such a symbol for both paths, so the v3
copy could run on the baseline path. Generic specialisations of the standard library are
the usual source. This catches the trap whichever copy a particular link happens to keep.
"""
import argparse
import os
import re
import subprocess
import sys

V3_SYMBOL = re.compile(r"^(\$s21GPTEmbeddingKernelsV3|gpte_kernels_x86_64_v3$)")
PREFIXES = {"26", "2e", "36", "3e", "64", "65", "67"}
BEYOND_SSE2 = {
    # x86-64-v2 / v3 integer instructions without VEX
    "popcnt", "lzcnt", "movbe", "crc32",
    # SSE3
    "addsubps", "addsubpd", "haddps", "haddpd", "hsubps", "hsubpd", "lddqu", "movddup", "movshdup",
    "movsldup", "fisttp", "fisttps", "fisttpl", "fisttpll", "monitor", "mwait",
    # SSSE3
    "pabsb", "pabsw", "pabsd", "palignr", "phaddw", "phaddd", "phaddsw", "phsubw", "phsubd", "phsubsw",
    "pmaddubsw", "pmulhrsw", "pshufb", "psignb", "psignw", "psignd",
    # SSE4.1
    "blendps", "blendpd", "blendvps", "blendvpd", "dpps", "dppd", "extractps", "insertps", "movntdqa",
    "mpsadbw", "packusdw", "pblendvb", "pblendw", "pcmpeqq", "pextrb", "pextrd", "pextrq", "phminposuw",
    "pinsrb", "pinsrd", "pinsrq", "pmaxsb", "pmaxsd", "pmaxud", "pmaxuw", "pminsb", "pminsd", "pminud",
    "pminuw", "pmovsxbw", "pmovsxbd", "pmovsxbq", "pmovsxwd", "pmovsxwq", "pmovsxdq", "pmovzxbw",
    "pmovzxbd", "pmovzxbq", "pmovzxwd", "pmovzxwq", "pmovzxdq", "pmuldq", "pmulld", "ptest", "roundps",
    "roundpd", "roundss", "roundsd",
    # SSE4.2
    "pcmpestri", "pcmpestrm", "pcmpistri", "pcmpistrm", "pcmpgtq",
}
HEADER = re.compile(r"^([0-9a-f]+) <(.+)>:$")
LINE = re.compile(r"^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(\S*)(.*)$")
# A reference to an address: a call/jump target or a RIP-relative operand's comment.
REFERENCE = re.compile(r"(?:^\s+|# )([0-9a-f]+) <")


def is_vex(raw):
    i = 0
    while i < len(raw) and raw[i] in PREFIXES:
        i += 1
    return i < len(raw) and raw[i] in ("c4", "c5", "62")


def beyond_baseline(raw, mnemonic):
    base = mnemonic.split(".")[0]
    if base[:-1] in BEYOND_SSE2 and base[-1] in "lqw":  # AT&T size suffixes: popcntl...
        base = base[:-1]
    return is_vex(raw) or base in BEYOND_SSE2


def exported(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True).stdout
    return {int(line.split()[0], 16) for line in out.splitlines() if len(line.split()) == 3}


def analyse(path):
    """Functions (by start address) with their name, the instructions beyond the baseline
    in each, and who refers to whom."""
    out = subprocess.run(["objdump", "-d", "-w", path], check=True, capture_output=True, text=True).stdout
    names, beyond, refs, starts = {}, {}, [], []
    current, total = None, 0
    for line in out.splitlines():
        h = HEADER.match(line)
        if h:
            current = int(h.group(1), 16)
            names[current] = h.group(2)
            starts.append(current)
            continue
        m = LINE.match(line)
        if not m or current is None:
            continue
        total += 1
        raw, mnemonic, rest = m.group(2).split(), m.group(3), m.group(4)
        if beyond_baseline(raw, mnemonic):
            beyond.setdefault(current, []).append(f"{m.group(1)}: {mnemonic}")
        r = REFERENCE.search(rest)
        if r:
            refs.append((current, int(r.group(1), 16)))
    starts.sort()
    referrers = {}
    import bisect
    for source, target in refs:
        i = bisect.bisect_right(starts, target) - 1
        if i >= 0 and starts[i] != source:
            referrers.setdefault(starts[i], set()).add(source)
    return names, beyond, referrers, total


def mergeable_functions(folder):
    """Weak and unique-global symbols defined in the text of the object files in `folder`."""
    import glob
    names = set()
    for obj in glob.glob(os.path.join(folder, "*.o")):
        out = subprocess.run(["nm", "--defined-only", obj], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("W", "u"):
                names.add(parts[2])
    return names


def check_shared(baseline_dir, v3_dir):
    a, b = mergeable_functions(baseline_dir), mergeable_functions(v3_dir)
    shared = sorted(a & b)
    print(f"{len(a)} mergeable functions in {baseline_dir}, {len(b)} in {v3_dir}, {len(shared)} in both")
    for name in shared:
        print(f"  FAIL defined in both kernel modules (the linker keeps one copy for both paths): {name}")
    if shared:
        sys.exit(1)
    print("ok: no function the linker could merge between the two kernel paths")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--shared":
        check_shared(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--no-v3", action="store_true", help="the file has no v3 kernels (do not require them)")
    args = ap.parse_args()
    failed = False
    for path in args.files:
        names, beyond, referrers, total = analyse(path)
        exports = exported(path)
        inside = {a for a, n in names.items() if V3_SYMBOL.match(n)}
        # Local helpers referred to only from inside are inside too (to a fixed point).
        changed = True
        while changed:
            changed = False
            for a in names:
                if a in inside or a in exports:
                    continue
                who = referrers.get(a)
                if who and who <= inside:
                    inside.add(a)
                    changed = True
        v3_beyond = sum(len(beyond.get(a, [])) for a in inside)
        bad = {a: w for a, w in beyond.items() if a not in inside}
        print(f"{path}: {total} instructions; {len(inside)} functions in the x86-64-v3 kernels "
              f"({v3_beyond} instructions beyond the baseline there); {len(names) - len(inside)} other functions, "
              f"{sum(len(v) for v in bad.values())} instructions beyond the baseline outside the v3 kernels")
        for a, where in sorted(bad.items(), key=lambda kv: names[kv[0]]):
            failed = True
            callers = sorted(names[c] for c in referrers.get(a, ()))[:3]
            print(f"  FAIL {names[a]} at {a:x}: {len(where)} instruction(s) beyond the baseline, "
                  f"e.g. {', '.join(where[:4])}; referred to by {callers or 'nothing found'}")
        if not args.no_v3 and v3_beyond == 0:
            failed = True
            print("  FAIL no x86-64-v3 kernel code found: is this a build without run-time dispatch?")
    if failed:
        sys.exit(1)
    print("ok: every instruction beyond the x86-64 baseline is inside the x86-64-v3 kernels")


if __name__ == "__main__":
    main()
