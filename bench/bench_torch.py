"""PyTorch CPU timings of the same cases as bench.c, printed as JSON lines.

Run by bench/run.py when torch is installed: python3 bench/bench_torch.py --threads 2
"""
import argparse
import json
import time

import torch


def median_ms(run, prep=None, warm=2, reps=9):
    for _ in range(warm):
        if prep:
            prep()
        run()
    times = []
    for _ in range(reps):
        if prep:
            prep()
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def emit(model, B, T, D, threads, op, ms, all_same=0):
    print(json.dumps({"impl": "torch", "model": model, "B": B, "T": T, "D": D, "threads": threads,
                      "op": op, "ms": ms, "bytes": 0, "all_same": all_same}), flush=True)


def run_case(model, V, D, B, T, threads, smoke, all_same=0):
    g = torch.Generator().manual_seed(B * T * 31 + D)
    wte = torch.nn.Embedding(V, D)
    wpe = torch.nn.Embedding(1024, D)
    ln = torch.nn.LayerNorm(D)
    drop = torch.nn.Dropout(0.1)
    params = list(wte.parameters()) + list(wpe.parameters()) + list(ln.parameters())
    ids = torch.full((B, T), 4242) if all_same else torch.randint(0, V, (B, T), generator=g)
    pos = torch.arange(T).unsqueeze(0)
    dout = torch.randn(B, T, D, generator=g)
    reps = 3 if smoke else 9
    for p in params:
        p.grad = torch.zeros_like(p)

    def fwd_eval():
        with torch.no_grad():
            return wte(ids) + wpe(pos)

    emit(model, B, T, D, threads, "forward_eval", median_ms(fwd_eval, reps=reps), all_same)
    emit(model, B, T, D, threads, "forward_train", median_ms(lambda: drop(ln(wte(ids) + wpe(pos))), reps=reps), all_same)

    state = {}

    def prep_plain():
        state["out"] = wte(ids) + wpe(pos)

    def prep_ln():
        state["out"] = drop(ln(wte(ids) + wpe(pos)))

    def backward():
        state["out"].backward(dout)

    def zero_grad():
        for p in params:
            p.grad.zero_()

    emit(model, B, T, D, threads, "backward", median_ms(backward, prep_plain, reps=reps), all_same)
    emit(model, B, T, D, threads, "backward_ln_dropout", median_ms(backward, prep_ln, reps=reps), all_same)
    emit(model, B, T, D, threads, "zero_grad", median_ms(zero_grad, reps=reps), all_same)


def run_create(threads, smoke):
    """Constructing the embedding tables (nn.Embedding's N(0, 1) init), as the library's
    create does with its seeded N(0, std) init: GPT-2 small and XL."""
    for model, D in (("gpt2", 768), ("gpt2-xl", 1600)):
        if smoke and model == "gpt2-xl":
            continue
        keep = []

        def create():
            keep.append((torch.nn.Embedding(50257, D), torch.nn.Embedding(1024, D)))

        def release():
            keep.clear()

        emit(model, 0, 0, D, threads, "create", median_ms(create, release, warm=1, reps=3 if smoke else 7))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.smoke:
        run_case("gpt2-small", 1000, 64, 2, 16, args.threads, True)
        return
    run_create(args.threads, args.smoke)
    V = 50257
    run_case("gpt2-small", V, 768, 1, 1, args.threads, False)
    run_case("gpt2-small", V, 768, 1, 1024, args.threads, False)
    run_case("gpt2-small", V, 768, 8, 1024, args.threads, False)
    run_case("gpt2-small", V, 768, 8, 1024, args.threads, False, all_same=1)
    run_case("gpt2-small", V, 768, 64, 128, args.threads, False)
    run_case("gpt2-xl", V, 1600, 4, 1024, args.threads, False)


if __name__ == "__main__":
    main()
