#!/usr/bin/env python3
"""PyTorch's side of bench/bench_adamw.py: GPT-2 small's token and position tables
(nn.Embedding, dropout 0.1, one 1x1024 batch) trained with each of PyTorch's AdamW paths:

    adamw_default   torch.optim.AdamW (what a CPU model gets by default)
    adamw_fused     torch.optim.AdamW(fused=True)
    sparse_adam     nn.Embedding(sparse=True) + torch.optim.SparseAdam

For each: the full step (zero_grad + forward + backward + step) and the step alone, in
alternating rounds, medians. Prints one JSON object per line.
"""
import argparse
import json
import statistics
import time

import torch


def make(kind, vocab, dim, seq):
    sparse = kind == "sparse_adam"
    wte = torch.nn.Embedding(vocab, dim, sparse=sparse)
    wpe = torch.nn.Embedding(seq, dim, sparse=sparse)
    params = list(wte.parameters()) + list(wpe.parameters())
    if kind == "adamw_default":
        opt = torch.optim.AdamW(params, lr=1e-3)
    elif kind == "adamw_fused":
        opt = torch.optim.AdamW(params, lr=1e-3, fused=True)
    else:
        opt = torch.optim.SparseAdam(params, lr=1e-3)
    drop = torch.nn.Dropout(0.1)
    return wte, wpe, drop, opt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocab, dim, seq = (1000, 64, 128) if args.smoke else (50257, 768, 1024)
    ids = torch.randint(0, vocab, (1, seq))
    pos = torch.arange(seq).unsqueeze(0)
    dy = torch.randn(1, seq, dim) * 1e-2
    kinds = ["adamw_default", "adamw_fused", "sparse_adam"]
    models = {k: make(k, vocab, dim, seq) for k in kinds}

    def fwd_bwd(k):
        wte, wpe, drop, opt = models[k]
        opt.zero_grad()
        out = drop(wte(ids) + wpe(pos))
        out.backward(dy)

    def full(k):
        fwd_bwd(k)
        models[k][3].step()

    def step_only(k):
        models[k][3].step()

    times = {(k, w): [] for k in kinds for w in ("full", "step")}
    for k in kinds:  # state allocated, caches warm
        full(k)
    rounds, per = (1, 1) if args.smoke else (5, 3)
    for _ in range(rounds):
        for k in kinds:
            for what, fn in (("full", full), ("step", step_only)):
                fn(k)
                for _ in range(per):
                    t0 = time.perf_counter()
                    fn(k)
                    times[(k, what)].append((time.perf_counter() - t0) * 1e3)
    for (k, what), t in times.items():
        print(json.dumps({"impl": "torch", "op": f"{k}_{what}", "threads": args.threads,
                          "ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
