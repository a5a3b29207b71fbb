#!/usr/bin/env python3
"""Vocabulary parallelism on this machine: N MPI ranks, each holding 1/N of the token
table, against one rank holding all of it (issue 14).

    python3 bench/bench_mpi.py [--ranks 2] [--vocab 50257 --dim 768 --batch 8 --seq 1024]
    python3 bench/bench_mpi.py --smoke      tiny sizes, one round (checks the harness)

Each configuration runs under `mpirun -n K` (K = 1 and --ranks) with mpi4py: every rank
builds its shard (balanced split) from the same seed and times training steps of the
two-phase forward -- phase one, MPI_Allreduce of batch * seq * D floats, phase two with
the layer norm and dropout -- and the backward. The one-rank row also times the ordinary
single-call forward. Worker threads per rank = cores / K, so both rows use the whole
machine. Prints a Markdown table: median milliseconds per phase, the all-reduce's share,
the token table per rank, and the step time relative to one rank.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args):
    import numpy as np
    from mpi4py import MPI

    import gpt_embedding as ge
    comm = MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    start, end = ge.shard_range(args.vocab, rank, world)
    cfg = ge.GPTEmbeddingConfig(vocab_size=args.vocab, embed_dim=args.dim, max_seq_len=args.seq, dropout=0.1,
                                scale_embeddings=False, seed=1, num_threads=args.threads,
                                shard_start=start, shard_end=end)
    layer = ge.GPTEmbedding(config=cfg)
    # The one-rank single call runs on a layer of its own: a training single call replaces
    # the saved state, copy of the summed part included, so on the same layer every phase
    # two would allocate that copy anew (25 MB of fresh pages at 8 x 1024: 3.4 ms, and up
    # to 37 ms when the kernel compacts memory for huge pages), which no sharded trainer sees.
    single = ge.GPTEmbedding(config=cfg) if world == 1 else None
    rng = np.random.default_rng(0)
    ids = rng.integers(0, args.vocab, size=(args.batch, args.seq), dtype=np.int64)
    dy = rng.standard_normal((args.batch, args.seq, args.dim)).astype(np.float32)
    x = np.empty((args.batch, args.seq, args.dim), dtype=np.float32)
    times = {"partial": [], "allreduce": [], "finish": [], "backward": [], "step": [], "single": []}
    for it in range(args.warmup + args.reps):
        comm.Barrier()
        t0 = time.perf_counter()
        layer.forward_partial(ids, use_layer_norm=True, out=x)
        t1 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, x, op=MPI.SUM)
        t2 = time.perf_counter()
        layer.forward_finish(x)
        t3 = time.perf_counter()
        layer.zero_grad()
        layer.backward(dy)
        t4 = time.perf_counter()
        # The slowest rank decides the step.
        step = comm.allreduce(t4 - t0, op=MPI.MAX)
        if it >= args.warmup:
            for k, v in zip(("partial", "allreduce", "finish", "backward", "step"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, step)):
                times[k].append(v * 1e3)
        if single is not None:
            t5 = time.perf_counter()
            single.forward(ids, use_layer_norm=True, out=x)
            single.zero_grad()
            single.backward(dy)
            if it >= args.warmup:
                times["single"].append((time.perf_counter() - t5) * 1e3)
    if rank == 0:
        result = {k: statistics.median(v) for k, v in times.items() if v}
        result.update(ranks=world, rows=end - start, threads=args.threads)
        print("RESULT " + json.dumps(result), flush=True)


def run(args, ranks, threads):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python") + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpirun", "--mca", "btl", "self,vader", "--mca", "btl_vader_single_copy_mechanism", "none",
           "--bind-to", "none", "-n", str(ranks)]
    if ranks > (os.cpu_count() or 1):
        cmd.append("--oversubscribe")
    cmd += [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(threads)]
    for k in ("vocab", "dim", "batch", "seq", "reps", "warmup"):
        cmd += [f"--{k}", str(getattr(args, k))]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=900).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.smoke:
        args.vocab, args.dim, args.batch, args.seq, args.reps, args.warmup = 1001, 64, 2, 64, 1, 0
    if not shutil.which("mpirun"):
        sys.exit("bench_mpi: mpirun not found (apt-get install openmpi-bin libopenmpi-dev; pip install mpi4py)")
    cores = os.cpu_count() or 1
    rows = [run(args, 1, cores), run(args, args.ranks, max(1, cores // args.ranks))]
    n = args.batch * args.seq
    print(f"\n### Vocabulary-parallel shards: {args.ranks} MPI ranks vs one, on this machine ({cores} cores)\n")
    print(f"{'GPT-2 small-sized: ' if args.vocab == 50257 and args.dim == 768 else ''}vocabulary {args.vocab}, D {args.dim}, batch {args.batch} x {args.seq} tokens, "
          f"layer norm + dropout 0.1, training step = two-phase forward + backward; "
          f"all-reduce of {n * args.dim * 4 / 2**20:.1f} MiB per forward. Median ms.\n")
    print("| ranks | token rows per rank (MiB) | threads per rank | phase one | all-reduce | phase two | backward | step (slowest rank) | vs one rank |")
    print("|------:|--------------------------:|-----------------:|----------:|-----------:|----------:|---------:|--------------------:|------------:|")
    for r in rows:
        print(f"| {r['ranks']} | {r['rows']} ({r['rows'] * args.dim * 4 / 2**20:.1f}) | {r['threads']} | {r['partial']:.2f} | "
              f"{r['allreduce']:.2f} | {r['finish']:.2f} | {r['backward']:.2f} | {r['step']:.2f} | "
              f"{r['step'] / rows[0]['step']:.2f}x |")
    print(f"\nOne rank's single-call forward + backward: {rows[0]['single']:.2f} ms "
          f"(the two phases on one rank: {rows[0]['step']:.2f} ms).")


if __name__ == "__main__":
    main()
