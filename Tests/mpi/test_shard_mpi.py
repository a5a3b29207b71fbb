"""Vocabulary parallelism from Python with a real MPI (mpi4py; run by Tests/mpi/run.sh
under mpirun -n 2 and -n 3): every rank opens its shard of one checkpoint with
``from_pretrained(path, shard=(rank, world))`` -- read and mapped -- and compares the
two-phase forward (phase one, ``Allreduce``, phase two), the backward and three AdamW
steps (dense with the read tables, lazy with the mapped ones) with a layer holding the
whole table, bit for bit: learned and sinusoidal positions, with and without
the layer norm, dropout, a vocabulary that no world divides. A failure on any rank
aborts the whole job (``comm.Abort``), so no rank waits forever in a collective."""
import os
import sys
import tempfile
import traceback

import numpy as np
from mpi4py import MPI

import gpt_embedding as ge

comm = MPI.COMM_WORLD
rank, world = comm.Get_rank(), comm.Get_size()
V, D, B, T = 1001, 48, 3, 40


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def check_equal(a, b, what):
    if not np.array_equal(bits(a), bits(b)):
        raise AssertionError(f"rank {rank}: {what}: differs from the whole layer "
                             f"(max |diff| {np.max(np.abs(a.astype(np.float64) - b)):.3g})")


def main():
    # One checkpoint, written by rank 0, read by every rank (one machine, one folder).
    folder = comm.bcast(tempfile.mkdtemp(prefix="gpte_mpi_") if rank == 0 else None, root=0)
    path = os.path.join(folder, "model.safetensors")
    if rank == 0:
        source = ge.GPTEmbedding(vocab_size=V, embed_dim=D, max_seq_len=64, dropout=0.0, seed=5)
        source.save_safetensors(path)
    comm.Barrier()
    checks = 0
    for positions in ("learned", "sinusoidal"):
        for mmap in (False, True):
            options = dict(dropout=0.15, seed=9, num_threads=1, padding_idx=2)
            if positions == "sinusoidal":
                options["position_encoding"] = "sinusoidal"
            whole = ge.GPTEmbedding.from_pretrained(path, mmap=mmap, **options).train()
            shard = ge.GPTEmbedding.from_pretrained(path, mmap=mmap, shard=(rank, world), **options).train()
            start, end = ge.shard_range(V, rank, world)
            assert (shard.config.shard_start, shard.config.shard_end) == (start, end), shard.config
            assert shard.parameter("token_embedding.weight").shape == (end - start, D)
            check_equal(shard.parameter("token_embedding.weight"), whole.parameter("token_embedding.weight")[start:end],
                        "opened rows")
            # Dense steps on the read layers, lazy ones on the mapped layers.
            opt_whole = ge.AdamW(whole, lr=1e-2, lazy=mmap)
            opt_shard = ge.AdamW(shard, lr=1e-2, lazy=mmap)
            rng = np.random.default_rng(77)  # the same batch on every rank
            for step, layer_norm in enumerate((True, False, True)):
                ids = rng.integers(0, V, size=(B, T), dtype=np.int64)
                ids[0, 0] = 2
                dy = rng.standard_normal((B, T, D)).astype(np.float32)
                ref = whole.forward(ids, use_layer_norm=layer_norm, start_position=step)
                x = shard.forward_partial(ids, use_layer_norm=layer_norm, start_position=step)
                comm.Allreduce(MPI.IN_PLACE, x, op=MPI.SUM)
                y = shard.forward_finish(x)
                check_equal(y, ref, f"{positions} mmap={mmap} step {step} output")
                whole.zero_grad()
                shard.zero_grad()
                whole.backward(dy)
                shard.backward(dy)
                for name in shard.parameter_names():
                    g, w = shard.gradient(name), whole.gradient(name)
                    check_equal(g, w[start:end] if name == "token_embedding.weight" else w,
                                f"{positions} mmap={mmap} step {step} gradient of {name}")
                    checks += 1
                opt_whole.step()
                opt_shard.step()
                for name in shard.parameter_names():
                    p, w = shard.parameter(name), whole.parameter(name)
                    check_equal(p, w[start:end] if name == "token_embedding.weight" else w,
                                f"{positions} {'lazy' if mmap else 'dense'} AdamW step {step}: {name}")
                    checks += 1
                # The replicated gradients are identical on every rank.
                gb = shard.gradient("layer_norm.bias") if layer_norm else shard.gradient("token_embedding.weight")[:0]
                everyone = comm.allgather(bits(gb).tobytes())
                assert all(e == everyone[0] for e in everyone), "replicated gradients differ between ranks"
                checks += 1
            # (Not closed: parameter() and gradient() views of them may still be alive; the
            # garbage collector frees them.)
    comm.Barrier()
    if rank == 0:
        os.unlink(path)
        os.rmdir(folder)
    total = comm.reduce(checks, op=MPI.SUM, root=0)
    if rank == 0:
        print(f"test_shard_mpi.py, {world} ranks: {total} checks passed")


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        comm.Abort(1)
