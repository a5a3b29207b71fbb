#!/usr/bin/env python3
"""Quantized GGUF token tables as llama.cpp ships them (issue 19), one run, 2 threads:

    python3 bench/bench_gguf.py [--vocab 128256 --dim 4096] [--types q4_k,q8_0] [--smoke]

Writes a Llama-3-8B-shaped token table (128,256 x 4,096) in Q4_K (295 MB) and in Q8_0
(558 MB) with llama.cpp's own `gguf` package (GGUFWriter; random blocks with finite fp16
scales, as llama.cpp's gguf-py tests feed the dequantizers; without the package a minimal
writer of this script writes the same layout), then measures:
- opening it, mapped and read (each in a fresh process, page cache warm): time, resident
  memory above the process's baseline against the table's bytes;
- an 8 x 1024 eval forward into float32 and into bf16 (alternating rounds with a 2-thread
  memcpy probe), against the floor: the blocks of the rows read + the output written, at
  the best memcpy bandwidth of the same run;
- ggml's own CPU `get_rows` on the same blocks at 2 threads (bench/ggml_get_rows.c, built
  against a ggml built from the llama.cpp sources of the `llama-cpp-python` sdist: pass
  --ggml DIR with include/ and lib/), and `gguf.quants.dequantize` of the same rows (numpy,
  one thread) when the package is installed.
Prints Markdown tables with the targets' MET / MISSED (from medians).
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release")
OUT = os.path.join(ROOT, ".build", "bench")
# ggml type id, elements per block, bytes per block, byte offsets of the fp16 scales
TYPES = {"q4_k": (12, 256, 144, (0, 2)), "q8_0": (8, 32, 34, (0,)), "q6_k": (14, 256, 210, (208,)),
         "q4_0": (2, 32, 18, (0,))}


def build():
    os.makedirs(OUT, exist_ok=True)
    exe = os.path.join(OUT, "bench_open")
    subprocess.run(["cc", "-std=c11", "-O2", "-fopenmp", "-Wall", "-Wextra", "-I" + os.path.join(ROOT, "include"),
                    os.path.join(ROOT, "bench", "bench_open.c"), "-L" + BIN, "-lgpt_embedding", "-Wl,-rpath," + BIN,
                    "-o", exe], check=True)
    return exe


def random_blocks(rng, qtype, rows, dim):
    """Random quants with finite, modest fp16 scales (numpy uint8 [rows, row bytes])."""
    import numpy as np
    tid, block, nbytes, scales = TYPES[qtype]
    blocks = rows * dim // block
    data = rng.integers(0, 256, size=(blocks, nbytes), dtype=np.uint8)
    for off in scales:  # fp16 in [2^-10, 2^-6): exponent bits 5..8, any mantissa
        h = (rng.integers(5, 9, size=blocks, dtype=np.uint16) << 10) | rng.integers(0, 1024, size=blocks, dtype=np.uint16)
        data[:, off:off + 2] = h.astype("<u2").view(np.uint8).reshape(blocks, 2)
    return data.reshape(rows, -1)


def write_minimal(path, qtype, data, dim, vocab):
    """GGUF v3 with general.architecture = llama and one tensor (the gguf package's layout)."""
    tid = TYPES[qtype][0]

    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    kv = s("general.architecture") + struct.pack("<I", 8) + s("llama")
    info = s("token_embd.weight") + struct.pack("<I", 2) + struct.pack("<QQ", dim, vocab) + struct.pack("<IQ", tid, 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + kv + info
    with open(path, "wb") as f:
        f.write(head + b"\0" * (-len(head) % 32))
        data.tofile(f)


def write_file(path, qtype, vocab, dim):
    tid, block, nbytes, _ = TYPES[qtype]
    if os.path.exists(path) and os.path.getsize(path) >= vocab * dim // block * nbytes:
        return "existing"
    import numpy as np
    data = random_blocks(np.random.default_rng(19), qtype, vocab, dim)
    try:
        import gguf
    except ImportError:
        write_minimal(path, qtype, data, dim, vocab)
        return "this script's minimal writer (no gguf package)"
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint32("llama.embedding_length", dim)
    w.add_tensor("token_embd.weight", data, raw_dtype=gguf.GGMLQuantizationType(tid))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return "gguf.GGUFWriter"


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def ggml_rows(ggml_dir, path, qtype, vocab, dim, B, T):
    """ggml's get_rows at 2 threads (bench/ggml_get_rows.c), or None when it cannot be built."""
    if not ggml_dir:
        return None
    exe = os.path.join(OUT, "ggml_get_rows")
    lib = os.path.join(ggml_dir, "lib")
    r = subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-I" + os.path.join(ggml_dir, "include"),
                        os.path.join(ROOT, "bench", "ggml_get_rows.c"), "-L" + lib, "-lggml", "-lggml-base", "-lggml-cpu",
                        "-Wl,-rpath," + lib, "-lm", "-o", exe], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"ggml_get_rows.c did not build: {r.stderr[-400:]}", file=sys.stderr)
        return None
    return run_json([exe, path, str(TYPES[qtype][0]), str(vocab), str(dim), str(B), str(T)])[0]


def numpy_rows(path, qtype, vocab, dim, B, T):
    try:
        import gguf
        import numpy as np
    except ImportError:
        return None
    r = gguf.GGUFReader(path)
    t = next(t for t in r.tensors if t.name == "token_embd.weight")
    blocks = np.asarray(t.data).reshape(vocab, -1)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, size=B * T)
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        gguf.quants.dequantize(blocks[ids], gguf.GGMLQuantizationType(TYPES[qtype][0]))
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def verdict(ok):
    return "MET" if ok else "MISSED"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--types", default="q4_k,q8_0")
    ap.add_argument("--ggml", default=os.environ.get("GGML_DIR"), help="a ggml build: DIR/include, DIR/lib")
    ap.add_argument("--smoke", action="store_true", help="a small table, one round: checks the harness")
    args = ap.parse_args()
    if args.smoke:
        args.vocab, args.dim = 1000, 256
    exe = build()
    B, T = (2, 64) if args.smoke else (8, 1024)
    reps = 1 if args.smoke else 5
    targets = []
    print(f"## Quantized GGUF token tables ({args.vocab:,} × {args.dim:,}), 2 threads\n")
    print("| type | file | table MB | mapped open ms (median) | read open ms | read: resident MiB | × table bytes |")
    print("|---|---|---:|---:|---:|---:|---:|")
    forwards = {}
    for qtype in args.types.split(","):
        tid, block, nbytes, _ = TYPES[qtype]
        path = os.path.join(OUT, f"{qtype}-{args.vocab}x{args.dim}.gguf")
        how = write_file(path, qtype, args.vocab, args.dim)
        table = args.vocab * args.dim // block * nbytes
        run_json([exe, "open", path, "mmap"])  # warm the page cache
        opens = {m: [run_json([exe, "open", path, m])[0] for _ in range(reps)] for m in ("mmap", "read")}
        mapped_ms = statistics.median(r["ms"] for r in opens["mmap"])
        read_ms = statistics.median(r["ms"] for r in opens["read"])
        extra = statistics.median(r["rss_after_kb"] - r["rss_before_kb"] for r in opens["read"]) * 1024
        print(f"| {qtype} | {how} | {table / 1e6:.0f} | {mapped_ms:.2f} | {read_ms:.1f} | {extra / 2**20:.0f} | {extra / table:.2f} |")
        targets.append((f"{qtype} mapped open ≤ 10 ms", f"{mapped_ms:.2f} ms", mapped_ms <= 10))
        targets.append((f"{qtype} read open resident ≤ 1.1× table", f"{extra / table:.2f}×", extra <= 1.1 * table))
        fwd = {r["op"]: r for r in run_json([exe, "forward", path, str(B), str(T)])}
        forwards[qtype] = (path, fwd, nbytes * args.dim // block)
    print(f"\n## Eval forward {B}×{T} from the quantized table (floor = blocks of the rows read + output written, "
          f"at the run's best memcpy bandwidth)\n")
    print("| type | output | lib ms (median) | min | max | × floor | ggml get_rows ms | ggml / lib | gguf.quants.dequantize ms (numpy) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for qtype, (path, fwd, row_bytes) in forwards.items():
        bw = fwd["memcpy"]["bytes"] / fwd["memcpy"]["best_ms"] / 1e6
        ggml = ggml_rows(args.ggml, path, qtype, args.vocab, args.dim, B, T)
        npy = None if args.smoke else numpy_rows(path, qtype, args.vocab, args.dim, B, T)
        for op, out_bytes, limit in (("forward_f32", 4, 1.3), ("forward_bf16", 2, 1.4)):
            r = fwd[op]
            floor = (B * T * row_bytes + B * T * args.dim * out_bytes) / bw / 1e6
            x = r["ms"] / floor
            g = ggml["ms"] if ggml and op == "forward_f32" else None
            ms = r["ms"]
            gs = "-" if g is None else f"{g:.3f}"
            ratio = "-" if g is None else f"{g / ms:.2f}"
            ns = "-" if npy is None or out_bytes == 2 else f"{npy:.1f}"
            out_name = "float32" if out_bytes == 4 else "bf16"
            print(f"| {qtype} | {out_name} | {ms:.3f} | {r['best_ms']:.3f} | {r['max_ms']:.3f} | {x:.2f} | {gs} | {ratio} | {ns} |")
            targets.append((f"{qtype} forward into {out_name} ≤ {limit}× floor", f"{x:.2f}×", x <= limit))
            if g is not None:
                targets.append((f"{qtype} forward at least as fast as ggml get_rows", f"{ratio}×", ms <= g))
    print(f"\n(memcpy probe: best {bw:.1f} GB/s in the last run)\n")
    if args.smoke:
        print("(smoke run: a small table checks the harness; the targets apply to the full-size run)")
        return
    print("| target | measured | |")
    print("|---|---:|---|")
    for name, value, ok in targets:
        print(f"| {name} | {value} | {verdict(ok)} |")


if __name__ == "__main__":
    main()
