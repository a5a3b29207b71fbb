#!/usr/bin/env python3
"""Python call overhead: one decode step (1x1 token, GPT-2 small, eval) through each way of
calling the library from Python, against the same call from C, and the big eval forward
(8x1024) from Python against C. Run by bench/run.py; alone:

    python3 bench/bench_pycall.py [--smoke] [--no-torch]

Every row runs in this one process, on the same layer, ids and output, in alternating rounds
(each round times every row once, so a shared machine's drift hits all rows alike). A sample
is the mean of `calls` consecutive calls; the table gives min / median / max of the samples.
The "C call" row is a loop in C (bench/pycall_timer.c, built here) calling the forward of
the library Python loaded through a function pointer.
"""
import argparse
import ctypes
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, ".build", "bench")
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import numpy as np  # noqa: E402

import gpt_embedding  # noqa: E402
from gpt_embedding import _lib  # noqa: E402
from gpt_embedding._arrays import address  # noqa: E402

#: The targets of issue 18, item 8 (µs above the C call).
TARGET_NUMPY_OUT = 5.0
TARGET_TORCH_MODULE = 15.0
START = 5  # the decode step's position (the past length)


def build_timer():
    os.makedirs(OUT, exist_ok=True)
    so = os.path.join(OUT, "pycall_timer.so")
    subprocess.run(["cc", "-std=c11", "-O2", "-shared", "-fPIC", os.path.join(ROOT, "bench", "pycall_timer.c"),
                    "-o", so], check=True)
    timer = ctypes.CDLL(so)
    timer.pycall_forward_loop.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_int64, ctypes.c_uint32, ctypes.c_void_p,
                                          ctypes.c_int64, ctypes.c_int64]
    timer.pycall_forward_loop.restype = ctypes.c_double
    return timer.pycall_forward_loop


def have_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def python_loop(fn, calls):
    """A sample of a Python callable: seconds for `calls` calls."""
    def run():
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - t0
    return run


def c_loop(loop, forward, layer, ids, start, out, calls):
    fn_address = ctypes.cast(forward, ctypes.c_void_p).value
    B, T = ids.shape

    def run():
        seconds = loop(fn_address, layer._hv, address(ids), B, T, start, 0, address(out), out.size, calls)
        if seconds < 0:
            raise RuntimeError(f"forward failed with status {-seconds:.0f}")
        return seconds
    return run


def measure(rows, rounds, calls, warm=2):
    """rows: name -> (sample function, calls per sample). Alternating rounds; returns
    name -> sorted per-call seconds of every sample."""
    for name, (run, n) in rows.items():
        for _ in range(warm):
            run()
    samples = {name: [] for name in rows}
    for _ in range(rounds):
        for name, (run, n) in rows.items():
            samples[name].append(run() / n)
    return {name: sorted(v) for name, v in samples.items()}


# -- the rows --------------------------------------------------------------------------------

def decode_rows(layer, timer, calls, torch_ok):
    """name -> (sample, calls per sample) for the decode step."""
    ids = np.array([[4242]], dtype=np.int64)
    out = np.empty((1, 1, layer.embed_dim), np.float32)
    rows = {}
    fwd = _lib.lib.gpt_embedding_forward_i64
    rows["C call (gpt_embedding_forward_i64 in a C loop)"] = (c_loop(timer, fwd, layer, ids, START, out, calls), calls)
    h, ia, oa, n = layer._hv, address(ids), address(out), out.size
    rows["bare ctypes call (addresses as ints)"] = (python_loop(lambda: fwd(h, ia, 1, 1, None, START, 0, oa, n), calls),
                                                   calls)
    forward = layer.forward
    rows["numpy API, out="] = (python_loop(lambda: forward(ids, out=out, start_position=START), calls), calls)
    rows["numpy API, allocating"] = (python_loop(lambda: forward(ids, start_position=START), calls), calls)
    W, P = layer.parameter("token_embedding.weight"), layer.parameter("position_embedding.weight")
    rows["numpy fancy indexing W[ids] + P[5]"] = (python_loop(lambda: W[ids] + P[START], calls), calls)
    if torch_ok:
        import torch
        wte = torch.nn.Embedding(layer.vocab_size, layer.embed_dim)
        wpe = torch.nn.Embedding(layer.max_seq_len, layer.embed_dim)
        tids = torch.from_numpy(ids)
        tpos = torch.tensor([START])

        def eager():
            with torch.no_grad():
                return wte(tids) + wpe(tpos)
        rows["PyTorch eager wte(ids) + wpe(pos), no_grad"] = (python_loop(eager, calls), calls)
        rows.update(torch_module_rows(tids, calls))
    return rows


def torch_module_rows(tids, calls):
    """THE HOOK for gpt_embedding.nn (issue 18): the torch module's decode step, measured
    like the other rows (target: at most TARGET_TORCH_MODULE µs above the C call). Empty
    while the module does not exist; add further torch rows here."""
    try:
        import torch
        from gpt_embedding.nn import GPTEmbedding as TorchGPTEmbedding
    except ImportError:
        return {}
    module = TorchGPTEmbedding.from_preset("gpt2") if hasattr(TorchGPTEmbedding, "from_preset") else \
        TorchGPTEmbedding(vocab_size=50257, embed_dim=768, max_seq_len=1024, dropout=0.1)
    module.eval()

    def step():
        with torch.no_grad():
            return module(tids, start_position=START)
    try:
        step()
    except Exception as e:  # noqa: BLE001 - a module still being written must not break the bench
        print(f"gpt_embedding.nn row skipped: {type(e).__name__}: {e}", file=sys.stderr)
        return {}
    return {"gpt_embedding.nn.GPTEmbedding under torch.no_grad()": (python_loop(step, calls), calls)}


def big_rows(layer, timer, smoke):
    """The big eval forward, [B, T] = [8, 1024] (smoke: [2, 64]), int32 ids; one call per sample."""
    B, T = (2, 64) if smoke else (8, 1024)
    ids = np.random.default_rng(0).integers(0, layer.vocab_size, (B, T)).astype(np.int32)
    out = gpt_embedding._arrays.aligned_empty((B, T, layer.embed_dim))
    out16 = np.empty((B, T, layer.embed_dim), np.float32)
    if address(out16) % 64 == 0:  # want numpy's usual 16-byte (not 64) alignment here
        out16 = np.empty(out16.size + 4, np.float32)[4:].reshape(out16.shape)
    forward = layer.forward
    rows = {
        "C call (gpt_embedding_forward in a C loop), 64-byte aligned out": (
            c_loop(timer, _lib.lib.gpt_embedding_forward, layer, ids, 0, out, 1), 1),
        "numpy API, out= (64-byte aligned)": (python_loop(lambda: forward(ids, out=out), 1), 1),
        "numpy API, out= (16-byte aligned)": (python_loop(lambda: forward(ids, out=out16), 1), 1),
        "numpy API, allocating": (python_loop(lambda: forward(ids), 1), 1),
    }
    return rows, (B, T)


def page_faults(fn, calls=10):
    fn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


# -- the report -------------------------------------------------------------------------------

def stats(v, scale):
    return v[0] * scale, v[len(v) // 2] * scale, v[-1] * scale


def report(decode, big, BT, faults, rounds, calls, smoke):
    c_name = next(iter(decode))
    c_med = stats(decode[c_name], 1e6)[1]
    print(f"\n## Python call overhead (decode step 1x1, GPT-2 small, eval)\n")
    print(f"{rounds} alternating rounds of {calls} calls per row in one process; µs per call. "
          f"ids int64 [1, 1], start_position {START}, {gpt_embedding.isa} kernels.\n")
    print("| call | min µs | median µs | max µs | median − C µs |")
    print("|---|---:|---:|---:|---:|")
    for name, v in decode.items():
        lo, med, hi = stats(v, 1e6)
        print(f"| {name} | {lo:.2f} | {med:.2f} | {hi:.2f} | {med - c_med:+.2f} |")

    c_big = next(iter(big))
    cb = stats(big[c_big], 1e3)[1]
    print(f"\n## Big eval forward from Python ({BT[0]}x{BT[1]}, GPT-2 small, int32 ids)\n")
    print("| call | min ms | median ms | max ms | median / C | minor page faults per call |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, v in big.items():
        lo, med, hi = stats(v, 1e3)
        print(f"| {name} | {lo:.3f} | {med:.3f} | {hi:.3f} | {med / cb:.3f} | {faults.get(name, '-')} |")

    print("\n## Targets (Python call overhead, medians)\n")
    print("| target | measured | limit | |")
    print("|---|---:|---:|---|")

    def line(name, row, limit):
        if row not in decode:
            print(f"| {name} | - | ≤ C + {limit:g} µs | not measured |")
            return
        over = stats(decode[row], 1e6)[1] - c_med
        print(f"| {name} | C {over:+.2f} µs | ≤ C + {limit:g} µs | {'MET' if over <= limit else 'MISSED'} |")
    line("numpy API with out= ≤ C + 5 µs", "numpy API, out=", TARGET_NUMPY_OUT)
    line("numpy API allocating ≤ C + 5 µs", "numpy API, allocating", TARGET_NUMPY_OUT)
    line("gpt_embedding.nn under no_grad ≤ C + 15 µs", "gpt_embedding.nn.GPTEmbedding under torch.no_grad()",
         TARGET_TORCH_MODULE)
    if smoke:
        print("\n(smoke run: few samples, small big forward; the figures check the harness only)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="few rounds: checks the harness only")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    rounds, calls = (3, 200) if args.smoke else (15, 2000)
    timer = build_timer()
    torch_ok = not args.no_torch and have_torch()
    layer = gpt_embedding.GPTEmbedding.from_preset("gpt2").eval()
    print("running the Python call overhead rows ...", file=sys.stderr)
    decode = measure(decode_rows(layer, timer, calls, torch_ok), rounds, calls)
    rows, BT = big_rows(layer, timer, args.smoke)
    big = measure(rows, 3 if args.smoke else 15, 1)
    faults = {name: f"{page_faults(run):.0f}" for name, (run, _) in rows.items()}
    report(decode, big, BT, faults, rounds, calls, args.smoke)


if __name__ == "__main__":
    main()
