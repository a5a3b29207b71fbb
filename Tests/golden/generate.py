#!/usr/bin/env python3
"""Golden vectors for gpt-embedding, produced by PyTorch.

Each case builds the layer from real torch modules (nn.Embedding for the token and
learned position tables, a fixed float64-computed sinusoidal table, nn.LayerNorm), runs
the forward with dropout 0, runs autograd backward with a random grad_output, and writes
the inputs, parameters, output and every gradient to Tests/golden/<case>.txt (format in
Tests/golden/README.md). The Swift, C and Python tests all check these files.

    pip install torch==2.13.0+cpu && python3 Tests/golden/generate.py   (or: make golden)

Deterministic: a fixed seed per case, so re-running gives byte-identical files.
"""
import math
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

# name, V, D, max_seq_len, positions, scale, layer_norm, eps, padding_idx, B, T, start, explicit
CASES = [
    ("learned_basic", 37, 16, 12, "learned", 0, 0, 1e-5, -1, 2, 5, 0, None),
    ("learned_scaled_ln", 41, 16, 10, "learned", 1, 1, 1e-5, -1, 2, 6, 0, None),
    ("sinusoidal_even", 29, 12, 16, "sinusoidal", 1, 0, 1e-5, -1, 2, 7, 0, None),
    ("sinusoidal_odd_ln_past_max", 23, 13, 8, "sinusoidal", 0, 1, 1e-5, -1, 2, 5, 6, None),
    ("repeated_ids", 19, 16, 16, "learned", 0, 1, 1e-5, -1, 3, 8, 0, None),
    ("padding_idx", 31, 8, 12, "learned", 1, 1, 1e-5, 0, 2, 6, 0, None),
    ("position_offset_odd_d", 27, 15, 20, "learned", 0, 0, 1e-5, -1, 2, 6, 9, None),
    ("explicit_positions", 33, 16, 12, "learned", 0, 1, 1e-5, -1, 3, 6, 0,
     [[0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 2, 3], [0, 0, 0, 0, 0, 1]]),
    ("no_position", 17, 8, 8, "none", 1, 0, 1e-5, -1, 2, 4, 0, None),
    ("gpt2_like", 53, 24, 16, "learned", 0, 0, 1e-5, -1, 3, 7, 0, None),
    ("layer_norm_eps_1e-12_odd_d", 21, 9, 8, "learned", 1, 1, 1e-12, -1, 2, 4, 0, None),
    ("single_token", 11, 8, 4, "learned", 0, 1, 1e-5, -1, 1, 1, 3, None),
]


def sinusoidal_table(rows, d):
    """Channel c: sin(pos * 10000^(-c/D)) for even c, cos(pos * 10000^(-(c-1)/D)) for odd c."""
    pos = torch.arange(rows, dtype=torch.float64).unsqueeze(1)
    c = torch.arange(d, dtype=torch.float64)
    freq = torch.pow(torch.tensor(10000.0, dtype=torch.float64), -(c - c % 2) / d)
    angle = pos * freq
    table = torch.where(c % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.to(torch.float32)


def make_case(index, name, V, D, maxT, positions, scale, ln, eps, pad, B, T, start, explicit):
    g = torch.Generator().manual_seed(1000 + index)
    if name == "repeated_ids":
        ids = torch.randint(0, V, (B, T), generator=g)
        ids[0, :] = 5
        ids[1, ::2] = 3
        ids[2, 1::3] = 5
    else:
        ids = torch.randint(0, V, (B, T), generator=g)
    if name == "padding_idx":
        ids[0, 1] = ids[0, 4] = ids[1, 0] = ids[1, 5] = pad
    if explicit is not None:
        pos = torch.tensor(explicit)
    else:
        pos = (start + torch.arange(T)).unsqueeze(0).expand(B, T)

    tok = torch.nn.Embedding(V, D, padding_idx=pad if pad >= 0 else None)
    with torch.no_grad():
        tok.weight.copy_(torch.randn(V, D, generator=g) * 0.5)  # after construction: the pad row is random too
    wpe = None
    if positions == "learned":
        wpe = torch.nn.Embedding(maxT, D)
        with torch.no_grad():
            wpe.weight.copy_(torch.randn(maxT, D, generator=g) * 0.5)
    norm = torch.nn.LayerNorm(D, eps=eps)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.1 * torch.randn(D, generator=g))
        norm.bias.copy_(0.1 * torch.randn(D, generator=g))
    rows = max(maxT, int(pos.max()) + 1)
    table = sinusoidal_table(rows, D) if positions == "sinusoidal" else None

    x = tok(ids) * math.sqrt(D) if scale else tok(ids)
    if positions == "learned":
        x = x + wpe(pos)
    elif positions == "sinusoidal":
        x = x + table[pos]
    out = norm(x) if ln else x
    grad_output = torch.randn(B, T, D, generator=g)
    out.backward(grad_output)

    tensors = [("int", "ids", ids), ("int", "positions", pos), ("float", "wte", tok.weight)]
    if wpe is not None:
        tensors.append(("float", "wpe", wpe.weight))
    if table is not None:
        tensors.append(("float", "pos_table", table))
    zeros = torch.zeros(D)
    tensors += [("float", "ln_weight", norm.weight), ("float", "ln_bias", norm.bias),
                ("float", "grad_output", grad_output), ("float", "out", out),
                ("float", "grad_wte", tok.weight.grad)]
    if wpe is not None:
        tensors.append(("float", "grad_wpe", wpe.weight.grad))
    tensors += [("float", "grad_ln_weight", norm.weight.grad if ln else zeros),
                ("float", "grad_ln_bias", norm.bias.grad if ln else zeros)]
    scalars = [("format", 1), ("name", name), ("vocab_size", V), ("embed_dim", D), ("max_seq_len", maxT),
               ("position_encoding", positions), ("scale_embeddings", scale), ("padding_idx", pad),
               ("layer_norm", ln), ("layer_norm_eps", "%.9g" % eps), ("batch", B), ("seq", T),
               ("start_position", start if explicit is None else 0),
               ("explicit_positions", 1 if explicit is not None else 0)]
    return scalars, tensors


def write(path, scalars, tensors):
    lines = ["# gpt-embedding golden vectors (format 1). Generated by Tests/golden/generate.py "
             f"with torch {torch.__version__}. Do not edit."]
    lines += [f"{k} {v}" for k, v in scalars]
    for kind, name, t in tensors:
        values = t.detach().reshape(-1).tolist()
        lines.append(f"{kind} {name} {len(values)}")
        fmt = (lambda v: str(int(v))) if kind == "int" else (lambda v: "%.9g" % v)
        for i in range(0, len(values), 16):
            lines.append(" ".join(fmt(v) for v in values[i:i + 16]))
    lines.append("end")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read(path):
    """A tiny reader, used to check what was written."""
    tokens = [t for line in open(path) if not line.startswith("#") for t in line.split()]
    it = iter(tokens)
    scalars, tensors = {}, {}
    for key in ["format", "name", "vocab_size", "embed_dim", "max_seq_len", "position_encoding",
                "scale_embeddings", "padding_idx", "layer_norm", "layer_norm_eps", "batch", "seq",
                "start_position", "explicit_positions"]:
        assert next(it) == key
        scalars[key] = next(it)
    for kind in it:
        if kind == "end":
            break
        name, count = next(it), int(next(it))
        tensors[name] = [next(it) for _ in range(count)]
    return scalars, tensors


def main():
    torch.use_deterministic_algorithms(True)
    for i, case in enumerate(CASES):
        path = os.path.join(HERE, case[0] + ".txt")
        scalars, tensors = make_case(i, *case)
        write(path, scalars, tensors)
        s, t = read(path)
        B, T, D = int(s["batch"]), int(s["seq"]), int(s["embed_dim"])
        assert len(t["out"]) == B * T * D and len(t["ids"]) == B * T
        print(f"{case[0]:32s} {os.path.getsize(path):7d} bytes  {len(t)} tensors")


if __name__ == "__main__":
    main()
