#!/usr/bin/env python3
"""A real checkpoint at its own precision (issue 11), side by side with PyTorch, one run:

    python3 bench/bench_checkpoint.py [--vocab 128256 --dim 4096] [--smoke]

Writes a Llama-3-8B-shaped bf16 token table (128,256 x 4,096: 1.05 GB) with the official
`safetensors` package, then measures, with 2 threads:
- opening it, read mode and mapped mode (each in a fresh process: time, resident memory
  above the process's baseline, peak), against PyTorch's `safetensors.torch.load_file` +
  `nn.Embedding.from_pretrained` (when torch is installed);
- an 8 x 1024 eval forward from the bf16 table into float32 and into bf16, against the
  floor (bf16 rows read + output written, at the best memcpy bandwidth of the same run) and
  against PyTorch's `emb(ids).float()` and `emb(ids)` on the same bf16 table.
Prints a Markdown table. Run by `make bench` after bench/run.py.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release")
OUT = os.path.join(ROOT, ".build", "bench")

TORCH = r'''
import json, resource, sys, time
import torch
from safetensors.torch import load_file
torch.set_num_threads(2)
path, name, B, T = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
r0 = rss_kb()
t0 = time.perf_counter()
emb = torch.nn.Embedding.from_pretrained(load_file(path)[name])
open_ms = (time.perf_counter() - t0) * 1e3
r1 = rss_kb()
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, emb.num_embeddings, (B, T), generator=g)
def med(f, reps=15):
    for _ in range(2): f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append((time.perf_counter() - t) * 1e3)
    ts.sort(); return ts[len(ts) // 2]
with torch.no_grad():
    f32 = med(lambda: emb(ids).float())
    bf16 = med(lambda: emb(ids))
print(json.dumps({"open_ms": open_ms, "rss_before_kb": r0, "rss_after_kb": r1, "forward_f32_ms": f32, "forward_bf16_ms": bf16}))
'''


def build():
    os.makedirs(OUT, exist_ok=True)
    exe = os.path.join(OUT, "bench_open")
    subprocess.run(["cc", "-std=c11", "-O2", "-fopenmp", "-Wall", "-Wextra", "-I" + os.path.join(ROOT, "include"),
                    os.path.join(ROOT, "bench", "bench_open.c"), "-L" + BIN, "-lgpt_embedding", "-Wl,-rpath," + BIN,
                    "-o", exe], check=True)
    return exe


def write_file(path, vocab, dim):
    if os.path.exists(path) and os.path.getsize(path) > vocab * dim * 2:
        return
    import ml_dtypes
    import numpy as np
    from safetensors.numpy import save_file
    rng = np.random.default_rng(0)
    table = np.empty((vocab, dim), dtype=ml_dtypes.bfloat16)
    step = 8192
    for r in range(0, vocab, step):  # a part at a time: the float32 draw is twice the size
        table[r:r + step] = (rng.standard_normal((min(step, vocab - r), dim), dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)
    save_file({"token_embedding.weight": table}, path)


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--smoke", action="store_true", help="a small table, one round: checks the harness")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.vocab, args.dim = 1000, 64
    exe = build()
    path = os.path.join(OUT, f"bf16-{args.vocab}x{args.dim}.safetensors")
    print(f"writing {os.path.relpath(path, ROOT)} with safetensors ...", file=sys.stderr)
    write_file(path, args.vocab, args.dim)
    file_bytes = os.path.getsize(path)
    reps = 1 if args.smoke else 5
    # Warm the page cache once (the measurement is of a warm open, as a second process sees it).
    run_json([exe, "open", path, "mmap"])
    opens = {m: [run_json([exe, "open", path, m])[0] for _ in range(reps)] for m in ("read", "mmap")}
    B, T = (2, 64) if args.smoke else (8, 1024)
    fwd = {r["op"]: r for r in run_json([exe, "forward", path, str(B), str(T)])}
    torch_row = None
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            torch_rows = [run_json([sys.executable, "-c", TORCH, path, "token_embedding.weight", str(B), str(T)])[0]
                          for _ in range(reps)]
            torch_row = {k: statistics.median(r[k] for r in torch_rows) for k in torch_rows[0]}
        except ImportError:
            pass

    mib = lambda kb: kb / 1024
    print(f"## A bf16 checkpoint ({args.vocab:,} × {args.dim:,}, {file_bytes / 1e9:.2f} GB, written by safetensors; 2 threads)\n")
    print("| open | ms (median) | resident above baseline, MiB | × file bytes | peak above baseline, MiB | tables mapped |")
    print("|---|---:|---:|---:|---:|---|")
    for m, rows in opens.items():
        ms = statistics.median(r["ms"] for r in rows)
        extra = statistics.median(r["rss_after_kb"] - r["rss_before_kb"] for r in rows)
        peak = statistics.median(r["hwm_kb"] - r["rss_before_kb"] for r in rows)
        print(f"| library, {'read' if m == 'read' else 'mapped'} | {ms:.2f} | {mib(extra):.0f} | {extra * 1024 / file_bytes:.2f} | "
              f"{mib(peak):.0f} | {'yes' if rows[0]['mapped'] else 'no'} |")
    if torch_row:
        extra = torch_row["rss_after_kb"] - torch_row["rss_before_kb"]
        print(f"| PyTorch load_file + from_pretrained | {torch_row['open_ms']:.2f} | {mib(extra):.0f} | "
              f"{extra * 1024 / file_bytes:.2f} | - | mapped by safetensors |")
    best_bw = fwd["memcpy"]["bytes"] / fwd["memcpy"]["best_ms"] / 1e6
    print(f"\n## Eval forward {B}×{T} from the bf16 table (floor = bf16 rows read + output written at {best_bw:.1f} GB/s, "
          "the best 2-thread memcpy of this run; medians and bests of alternating rounds)\n")
    print("| output | lib ms (median) | × floor | lib ms (best) | × floor | torch ms | torch / lib |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for op, label, tkey in (("forward_f32", "float32 (torch: emb(ids).float())", "forward_f32_ms"),
                            ("forward_bf16", "bfloat16 (torch: emb(ids))", "forward_bf16_ms")):
        r = fwd[op]
        floor = r["bytes"] / best_bw / 1e6
        t = torch_row[tkey] if torch_row else None
        torch_ms = "-" if t is None else f"{t:.3f}"
        ratio = "-" if t is None else f"{t / r['ms']:.2f}"
        print(f"| {label} | {r['ms']:.3f} | {r['ms'] / floor:.2f} | {r['best_ms']:.3f} | {r['best_ms'] / floor:.2f} | "
              f"{torch_ms} | {ratio} |")


if __name__ == "__main__":
    main()
