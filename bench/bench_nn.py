#!/usr/bin/env python3
"""gpt_embedding.nn against PyTorch's own modules (issue 18), side by side in one process.

    python3 bench/bench_nn.py [--threads 2] [--smoke]

GPT-2 small tables (50257 x 768, 1024 positions). Each row times both sides in alternating
rounds (library, PyTorch, library, ...) and prints min / median / max of the per-round
medians, then the issue's targets as MET / MISSED (from the medians).

  * forward + backward through ``loss.backward()``, 8 x 1024, dropout 0.1, dense gradients
    (``zero_grad(set_to_none=True)`` each step, so each backward makes fresh ``.grad``s, as a
    training loop does): the library's module against ``nn.Embedding`` x 2 + ``nn.Dropout``.
  * the same with ``sparse=True`` against ``nn.Embedding(sparse=True)``.
  * a full training step 1 x 1024 (zero_grad + forward + backward + step): the library's
    module with ``gpt_embedding.nn.AdamW(lazy=True)`` against plain ``nn.Embedding``s with
    ``torch.optim.AdamW(fused=True)``.

The decode step (1 x 1, eval, ``torch.no_grad()``) is in bench/bench_pycall.py, next to the
C call and the numpy API.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from gpt_embedding.nn import AdamW, GPTEmbedding  # noqa: E402

V, D, T = 50257, 768, 1024


def rounds(fns, n_rounds, iters, warmup=2):
    """{name: [per-round median seconds]}, the functions alternating round by round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {k: [] for k in fns}
    for _ in range(n_rounds):
        for name, fn in fns.items():
            times = []
            for _ in range(iters):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out[name].append(statistics.median(times))
    return out


def fmt(ts, unit=1e3):
    ts = sorted(ts)
    return f"{ts[0] * unit:.2f} / {statistics.median(ts) * unit:.2f} / {ts[-1] * unit:.2f}"


def med(ts):
    return statistics.median(ts)


class TorchEmbedding(nn.Module):
    """The PyTorch side: the seed's layer in plain modules (GPT-2: no scale)."""

    def __init__(self, sparse=False, p=0.1):
        super().__init__()
        self.wte = nn.Embedding(V, D, sparse=sparse)
        self.wpe = nn.Embedding(T, D)
        self.drop = nn.Dropout(p)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1])
        return self.drop(self.wte(ids) + self.wpe(pos))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="few rounds, small batches: checks the script runs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batch = 1 if args.smoke else 8
    n_rounds, iters = (2, 2) if args.smoke else (5, 5)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (batch, T), generator=g)
    grad = torch.randn(batch, T, D, generator=g)
    results = {}

    print(f"## gpt_embedding.nn vs PyTorch {torch.__version__} (GPT-2 small tables, {args.threads} threads, "
          f"{batch}×{T} tokens; min / median / max of {n_rounds} alternating rounds of {iters})\n")
    print("| op | library ms | PyTorch ms | PyTorch / library (median) |")
    print("|---|---:|---:|---:|")

    # The library alone through the numpy API (gradients stay in the library: no [vocab, D]
    # tensor handed to torch), for what the torch module adds.
    import gpt_embedding
    np_layer = gpt_embedding.GPTEmbedding.from_preset("gpt2", num_threads=args.threads).train()
    ids_np, grad_np = ids.numpy(), grad.numpy()

    def numpy_step():
        np_layer.zero_grad()
        np_layer(ids_np)
        np_layer.backward(grad_np)

    r = rounds({"np": numpy_step}, n_rounds, iters)
    print(f"| forward + backward, {batch}×{T}, dropout 0.1, through the numpy API (gradients kept in the library) | "
          f"{fmt(r['np'])} | - | - |")
    del np_layer

    for sparse in (False, True):
        lib_m = GPTEmbedding.from_preset("gpt2", num_threads=args.threads, sparse=sparse).train()
        ref_m = TorchEmbedding(sparse=sparse).train()

        def lib_step():
            lib_m.zero_grad(set_to_none=True)
            lib_m(ids).backward(grad)

        def ref_step():
            ref_m.zero_grad(set_to_none=True)
            ref_m(ids).backward(grad)

        r = rounds({"lib": lib_step, "ref": ref_step}, n_rounds, iters)
        ratio = med(r["ref"]) / med(r["lib"])
        name = "sparse" if sparse else "dense"
        results[name] = ratio
        print(f"| forward + backward, {batch}×{T}, dropout 0.1, {name} gradients | {fmt(r['lib'])} | "
              f"{fmt(r['ref'])} | {ratio:.1f}× |")
        del lib_m, ref_m

    # A full training step, one 1 x 1024 sequence.
    ids1 = ids[:1]
    grad1 = grad[:1]
    lib_m = GPTEmbedding.from_preset("gpt2", num_threads=args.threads).train()
    lib_opt = AdamW(lib_m.parameters(), lr=1e-4, weight_decay=0.0, lazy=True)
    ref_m = TorchEmbedding().train()
    ref_opt = torch.optim.AdamW(ref_m.parameters(), lr=1e-4, weight_decay=0.0, fused=True)

    def lib_train():
        lib_opt.zero_grad()
        lib_m(ids1).backward(grad1)
        lib_opt.step()

    def ref_train():
        ref_opt.zero_grad()
        ref_m(ids1).backward(grad1)
        ref_opt.step()

    dense_m = GPTEmbedding.from_preset("gpt2", num_threads=args.threads).train()
    dense_opt = AdamW(dense_m.parameters(), lr=1e-4, weight_decay=0.0, lazy=False)

    def dense_train():
        dense_opt.zero_grad()
        dense_m(ids1).backward(grad1)
        dense_opt.step()

    r = rounds({"lib": lib_train, "dense": dense_train, "ref": ref_train}, n_rounds, iters)
    results["step"] = med(r["ref"]) / med(r["lib"])
    print(f"| full training step 1×{T} (zero_grad + forward + backward + AdamW; library lazy, PyTorch fused=True) | "
          f"{fmt(r['lib'])} | {fmt(r['ref'])} | {results['step']:.1f}× |")
    print(f"| the same with the library's dense AdamW (every row, as torch.optim.AdamW) | "
          f"{fmt(r['dense'])} | {fmt(r['ref'])} | {med(r['ref']) / med(r['dense']):.1f}× |")
    del lib_m, lib_opt, ref_m, ref_opt, dense_m, dense_opt

    print("\n### Targets (issue 18)\n")

    def target(name, value, goal, ok):
        print(f"- {name}: {value} (target {goal}) {'MET' if ok else 'MISSED'}")

    target("forward + backward, dense gradients, vs nn.Embedding + nn.Dropout", f"{results['dense']:.1f}×", "≥ 4×",
           results["dense"] >= 4)
    target("forward + backward, sparse=True, vs PyTorch's sparse path", f"{results['sparse']:.1f}×", "≥ 2×",
           results["sparse"] >= 2)
    target("full training step 1×1024 vs torch.optim.AdamW(fused=True)", f"{results['step']:.1f}×", "≥ 10×",
           results["step"] >= 10)



if __name__ == "__main__":
    main()
