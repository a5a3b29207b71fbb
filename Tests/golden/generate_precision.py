#!/usr/bin/env python3
"""Golden vectors for reduced-precision tables (BF16 / F16 / F32), produced by PyTorch.

For every case this writes into Tests/golden/precision/:

  <case>.safetensors  the checkpoint, written with the official safetensors package: the
                      token table `transformer.wte.weight` [V, D] and, for learned positions,
                      `transformer.wpe.weight` [T_max, D] in the case's dtype; with layer norm,
                      `layer_norm.weight` and `layer_norm.bias` in F32 [D].
  <case>.txt          ids, grad_output (as bits of the case's dtype) and what PyTorch computes
                      from them (format `precision-1`, described in precision/README.md).

plus the accumulation case (accumulate_4096: 4096 copies of one id, bf16 grad_output 1e-3)
and a Hugging Face style sharded checkpoint (sharded/ with model.safetensors.index.json,
and sharded.txt).

PyTorch computes in float32 from the tables widened with torch's own `.float()`:
`x = wte.float()[ids] * s + wpe.float()[pos]` (s = float32(sqrt(D)) only when
scale_embeddings is 1), `nn.LayerNorm` in float32 when on, dropout off; the reduced outputs
are torch's `.to(torch.bfloat16)` / `.to(torch.float16)` of that float32 result. Gradients
are autograd's float32 gradients of the widened tables for the widened grad_output.

    pip install torch safetensors numpy && python3 Tests/golden/generate_precision.py

Deterministic: a fixed seed per case, so re-running gives byte-identical files.
Checked without torch by Tests/golden/check_precision.py.
"""
import json
import math
import os
import shutil

import numpy as np

# Reproducible bytes on any machine: torch's vectorised CPU kernels differ between ISA levels in
# the bits of NaNs (float32 -> bf16 of a NaN: 0xFFFF with AVX2/AVX-512, 0x7FC0 in the portable
# kernel) and in layer norm's float32 summation order; the layer norm gradient's reduction also
# depends on the thread count. So: the portable kernels, one thread.
os.environ["ATEN_CPU_CAPABILITY"] = "default"
import torch  # noqa: E402  (after ATEN_CPU_CAPABILITY)
from safetensors.torch import save_file  # noqa: E402

torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "precision")

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
INT_VIEW = {"f32": torch.int32, "bf16": torch.int16, "f16": torch.int16}
MASK = {"f32": 0xFFFFFFFF, "bf16": 0xFFFF, "f16": 0xFFFF}
WTE, WPE, LNW, LNB = "transformer.wte.weight", "transformer.wpe.weight", "layer_norm.weight", "layer_norm.bias"


def bits(t, dtype):
    """The IEEE bit patterns of a tensor of `dtype` as non-negative Python ints, row-major."""
    t = t.detach().contiguous().reshape(-1)
    assert t.dtype == DTYPES[dtype]
    return [v & MASK[dtype] for v in t.view(INT_VIEW[dtype]).tolist()]


def from_bits(values, dtype, shape):
    """A tensor of `dtype` holding the given bit patterns (ints)."""
    np_int = {"f32": np.uint32, "bf16": np.uint16, "f16": np.uint16}[dtype]
    raw = np.asarray(values, dtype=np.uint64).astype(np_int)
    signed = raw.view(np.int32 if dtype == "f32" else np.int16)
    return torch.from_numpy(signed.copy()).view(DTYPES[dtype]).reshape(shape)


def f16_bits_of(x):
    """f16 bit pattern of a float64 value that must be exactly representable in f16."""
    h = np.float16(x)
    assert float(h) == x or (math.isnan(x) and math.isnan(float(h))), x
    return int(np.array(h).view(np.uint16))


# ---------------------------------------------------------------------------------------
# The layer in PyTorch, float32 from the widened tables.

def torch_layer(c):
    """Forward and backward of the case `c` (a dict) in float32; returns a dict of results."""
    V, D, B, T = c["V"], c["D"], c["B"], c["T"]
    ids = c["ids"].reshape(B, T)
    pos = (c["start"] + torch.arange(T)).unsqueeze(0).expand(B, T)
    tok = torch.nn.Embedding(V, D)
    with torch.no_grad():
        tok.weight.copy_(c["wte"].float())          # torch's own widening of the table
    wpe = None
    if c["wpe"] is not None:
        wpe = torch.nn.Embedding(c["wpe"].shape[0], D)
        with torch.no_grad():
            wpe.weight.copy_(c["wpe"].float())
    norm = None
    if c["ln"]:
        norm = torch.nn.LayerNorm(D, eps=c["eps"])
        with torch.no_grad():
            norm.weight.copy_(c["ln_weight"])
            norm.bias.copy_(c["ln_bias"])
    s = torch.tensor(math.sqrt(D) if c["scale"] else 1.0, dtype=torch.float32)  # sqrt(D) rounded to float32
    x = tok(ids) * s if c["scale"] else tok(ids)
    if wpe is not None:
        x = x + wpe(pos)
    out = norm(x) if norm is not None else x
    assert out.dtype == torch.float32
    grad_output = c["grad_output"].reshape(B, T, D).float()   # widened exactly
    out.backward(grad_output)
    r = {"out": out.detach(), "scale": s, "grad_wte": tok.weight.grad}
    if wpe is not None:
        r["grad_wpe"] = wpe.weight.grad
    if norm is not None:
        r["grad_ln_weight"] = norm.weight.grad
        r["grad_ln_bias"] = norm.bias.grad
    return r


# ---------------------------------------------------------------------------------------
# Cases.

def case_base(name, dtype, V, D, maxT, B, T, start, scale=0, ln=0, eps=1e-5):
    return {"name": name, "dtype": dtype, "V": V, "D": D, "maxT": maxT, "B": B, "T": T,
            "start": start, "scale": scale, "ln": ln, "eps": eps, "wpe": None,
            "comments": [], "checkpoint": name + ".safetensors"}


def case_bf16_learned(g):
    c = case_base("bf16_learned", "bf16", V=97, D=24, maxT=32, B=2, T=16, start=0)
    wte = torch.randn(c["V"], c["D"], generator=g) * 0.5
    wpe = torch.randn(c["maxT"], c["D"], generator=g) * 0.5
    # Token row 7 carries magnitudes outside f16's range or in its subnormal range (as bf16
    # values), and wpe's channels 0..7 are zero, so they reach the output unchanged: the f16
    # output must overflow to +-inf, round into f16 subnormals, and flush ties to zero.
    wte[7, :8] = torch.tensor([70000.0, -70000.0, 65520.0, 1e-7, -3e-8, 2.0 ** -25, 3 * 2.0 ** -26, 2.0 ** -26])
    wpe[:, :8] = 0
    c["wte"], c["wpe"] = wte.to(torch.bfloat16), wpe.to(torch.bfloat16)
    ids = torch.randint(0, c["V"], (c["B"], c["T"]), generator=g)
    ids[0, ::3] = 5                      # repeated ids: gradient rows sum many contributions
    ids[1, 1::4] = 5
    ids[0, 4] = ids[1, 6] = ids[1, 15] = 7
    c["ids"] = ids.reshape(-1)
    c["grad_output"] = torch.randn(c["B"] * c["T"] * c["D"], generator=g).to(torch.bfloat16)
    c["comments"] = ["bf16 tables (randn*0.5 rounded to bf16), learned positions, no scale, no layer norm.",
                     "Token 5 repeats 10 times, token 7 (f16 overflow / subnormal / tie-to-zero magnitudes",
                     "in channels 0..7, where wpe is 0) 3 times."]
    return c


F16_SPECIAL_ROW = [0x0001, 0x0030, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
                   0x8000, 0x0000, 0x8001, 0x83FF, 0x3C00, 0x3C01, 0x0200, 0x8030]
F16_NAN_ROW = [0x7E00, 0x3C00, 0xFE00, 0x7C01, 0x7FFF]   # + random finite values


def case_f16_none_extremes(g):
    c = case_base("f16_none_extremes", "f16", V=64, D=16, maxT=0, B=2, T=12, start=0)
    V, D = c["V"], c["D"]
    # Random finite f16 bit patterns (every exponent, subnormals included), no NaN/inf.
    raw = torch.randint(0, 1 << 16, (V, D), generator=g)
    exp_all_ones = (raw & 0x7C00) == 0x7C00
    raw = torch.where(exp_all_ones, raw & 0x83FF, raw)          # clear the exponent: a subnormal/zero
    raw[0] = torch.tensor(F16_SPECIAL_ROW)                       # 2^-24, 3*2^-20, max subnormal, min normal,
                                                                 # +-65504, +-inf, -0, 0, -2^-24, ...
    raw[1, :len(F16_NAN_ROW)] = torch.tensor(F16_NAN_ROW)        # NaNs (quiet, negative, signalling, all-ones)
    raw[2] = torch.randint(0, 0x400, (D,), generator=g) | (torch.randint(0, 2, (D,), generator=g) << 15)  # subnormals
    raw[V - 1, 5] = 0x7E00                                       # a NaN in a row that is never looked up
    c["wte"] = from_bits(raw.reshape(-1).tolist(), "f16", (V, D))
    ids = torch.randint(3, V - 1, (c["B"], c["T"]), generator=g)
    ids[0, 0] = 0
    ids[0, 5] = 1
    ids[1, 3] = 2
    ids[1, 7] = 0
    ids[1, 11] = 1
    c["ids"] = ids.reshape(-1)
    go = torch.randn(c["B"] * c["T"] * D, generator=g).to(torch.float16)
    # grad_output also carries f16 subnormals, the largest finite f16 and -0 (widened exactly).
    go[:8] = from_bits([0x0001, 0x8001, 0x03FF, 0x0030, 0x7BFF, 0x8000, 0x0400, 0xFBFF], "f16", (8,))
    c["grad_output"] = go
    c["comments"] = ["f16 token table, no positions, no scale, no layer norm: out = widened wte[ids].",
                     "Row 0: f16 specials (subnormals 2^-24 and 3*2^-20, +-65504, +-inf, -0.0, ...);",
                     "row 1 starts with NaNs 0x7E00, 0xFE00, 0x7C01 (signalling), 0x7FFF and is looked up",
                     "(ids[5] and ids[23]): those outputs must be NaN in every dtype (any NaN bits);",
                     "row 2: random f16 subnormals; other rows: random finite f16 bit patterns;",
                     "row 63 has a NaN and is never looked up (no NaN may leak from it)."]
    return c


def case_bf16_scaled_ln(g):
    c = case_base("bf16_scaled_ln", "bf16", V=83, D=32, maxT=40, B=2, T=12, start=21, scale=1, ln=1, eps=1e-5)
    c["wte"] = (torch.randn(c["V"], c["D"], generator=g) * 0.5).to(torch.bfloat16)
    c["wpe"] = (torch.randn(c["maxT"], c["D"], generator=g) * 0.5).to(torch.bfloat16)
    c["ln_weight"] = 1 + 0.1 * torch.randn(c["D"], generator=g)
    c["ln_bias"] = 0.1 * torch.randn(c["D"], generator=g)
    ids = torch.randint(0, c["V"], (c["B"], c["T"]), generator=g)
    ids[0, 2] = ids[0, 9] = ids[1, 4] = ids[1, 5] = 11
    c["ids"] = ids.reshape(-1)
    c["grad_output"] = torch.randn(c["B"] * c["T"] * c["D"], generator=g).to(torch.bfloat16)
    c["comments"] = ["bf16 tables, learned positions from start_position 21, token rows times float32(sqrt(32)),",
                     "LayerNorm with F32 weight/bias (not 1/0). Forward outputs: tolerance, see README."]
    return c


# Offsets relative to 2^E (E = the channel's exponent) that make base + offset, base in
# [1, 2) * 2^E with 10 fraction bits, land on or next to a rounding tie.
H16 = 2.0 ** -11          # half an f16 ulp at 1.0
H_BF = 2.0 ** -8          # half a bf16 ulp at 1.0
ROUNDING_OFFSETS = [0.0, H16, -H16, H16 + 2.0 ** -21, H16 - 2.0 ** -22, -(H16 + 2.0 ** -21), -(H16 - 2.0 ** -22),
                    H_BF, -H_BF, H_BF + 2.0 ** -18, H_BF - 2.0 ** -19, 3 * H16, -3 * H16, 2.0 ** -9, 2.0 ** -10,
                    H_BF + H16, H_BF - H16]


def case_f16_learned_rounding(g):
    c = case_base("f16_learned_rounding", "f16", V=64, D=32, maxT=16, B=3, T=16, start=0)
    V, D, maxT = c["V"], c["D"], c["maxT"]
    # Every channel d works at one exponent E[d] (both tables), from -2 (offsets of 2^(E-22)
    # are still f16 subnormals) to 15 (f16's top binade: ties there round up to +-inf).
    E = [0, 0, 0, 0, 1, -1, -2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 15, 15, -2, -1, 0, 1, 2, 3, 0, 15, 5]
    assert len(E) == D
    # Token bases 1 + k/1024 (10 fraction bits, exact in f16); a third of them end in binary
    # 100 (a bf16 tie by themselves), 011 or 101 (next to one), 1111111111 (carry on rounding up).
    k = torch.randint(0, 1024, (V, D), generator=g)
    kind = torch.randint(0, 6, (V, D), generator=g)
    k = torch.where(kind == 0, (k & ~7) | 4, k)
    k = torch.where(kind == 1, (k & ~7) | 3, k)
    k = torch.where(kind == 2, (k & ~7) | 5, k)
    k[0] = 1023                                             # rows 0 and 1: the largest mantissa
    k[1] = 1023
    sign = torch.where(torch.randint(0, 2, (V, D), generator=g) == 1, -1.0, 1.0)
    sign[0], sign[1] = 1.0, -1.0
    choice = torch.randint(0, len(ROUNDING_OFFSETS), (maxT, D), generator=g)
    choice[0] = ROUNDING_OFFSETS.index(H16)                 # position 0: exact f16 ties
    choice[1] = ROUNDING_OFFSETS.index(H16 - 2.0 ** -22)    # position 1: just below them
    choice[2] = ROUNDING_OFFSETS.index(H16 + 2.0 ** -21)    # position 2: just above them
    choice[3] = ROUNDING_OFFSETS.index(H_BF)                # position 3: bf16 half ulp
    choice[4] = 0                                           # position 4: nothing (wte itself)
    choice[5] = 0
    choice[6] = ROUNDING_OFFSETS.index(2.0 ** -10)          # one f16 ulp: base ..011 -> bf16 tie
    choice[7] = ROUNDING_OFFSETS.index(-H16)                # position 7: exact f16 ties, negative offset
    wte_bits, wpe_bits = [], []
    for r in range(V):
        for d in range(D):
            wte_bits.append(f16_bits_of(float(sign[r, d]) * (1 + int(k[r, d]) / 1024) * 2.0 ** E[d]))
    for t in range(maxT):
        for d in range(D):
            wpe_bits.append(f16_bits_of(ROUNDING_OFFSETS[int(choice[t, d])] * 2.0 ** E[d]))
    c["wte"] = from_bits(wte_bits, "f16", (V, D))
    c["wpe"] = from_bits(wpe_bits, "f16", (maxT, D))
    ids = torch.randint(2, V, (c["B"], c["T"]), generator=g)
    # Rows 0 / 1 are +-2^E(2 - 2^-10) (odd f16 mantissa) in every channel. Positions 0 and 7
    # add +-2^(E-11): f16 ties that round away from zero to +-2^(E+1) (+inf / -inf at E = 15)
    # when the signs agree, and toward zero to the even +-2^E(2 - 2^-9) when they differ.
    ids[0, :8] = 0
    ids[1, :8] = 1
    ids[2, 3] = ids[2, 9] = 17
    c["ids"] = ids.reshape(-1)
    c["grad_output"] = torch.randn(c["B"] * c["T"] * D, generator=g).to(torch.float16)
    c["comments"] = ["f16 tables built so that the (exact) float32 sums wte[id] + wpe[t] land on, or a few",
                     "float32 ulps next to, round-to-nearest-even ties of bf16 and of f16 (see the counts",
                     "below); channels 20-22 and 30 sit in f16's top binade, so some f16 ties round to +-inf.",
                     "No scale, no layer norm: every output bit pattern is exact."]
    return c


def case_f32_reference(g):
    c = case_base("f32_reference", "f32", V=71, D=20, maxT=24, B=2, T=10, start=4)
    c["wte"] = torch.randn(c["V"], c["D"], generator=g) * 0.5
    c["wpe"] = torch.randn(c["maxT"], c["D"], generator=g) * 0.5
    ids = torch.randint(0, c["V"], (c["B"], c["T"]), generator=g)
    ids[0, 1] = ids[0, 7] = ids[1, 2] = 9
    c["ids"] = ids.reshape(-1)
    c["grad_output"] = torch.randn(c["B"] * c["T"] * c["D"], generator=g)
    c["comments"] = ["Control: f32 tables (randn*0.5), learned positions from start_position 4, no scale,",
                     "no layer norm."]
    return c


def case_sharded(g):
    c = case_base("sharded", "bf16", V=96, D=16, maxT=24, B=2, T=8, start=2)
    c["checkpoint"] = "sharded"
    c["wte"] = (torch.randn(c["V"], c["D"], generator=g) * 0.5).to(torch.bfloat16)
    c["wpe"] = (torch.randn(c["maxT"], c["D"], generator=g) * 0.5).to(torch.bfloat16)
    ids = torch.randint(0, c["V"], (c["B"], c["T"]), generator=g)
    ids[1, 0] = ids[1, 7] = ids[0, 3]
    c["ids"] = ids.reshape(-1)
    c["grad_output"] = torch.randn(c["B"] * c["T"] * c["D"], generator=g).to(torch.bfloat16)
    c["comments"] = ["The checkpoint is the folder sharded/ (Hugging Face layout: model.safetensors.index.json,",
                     "wte in model-00001-of-00002.safetensors, wpe in model-00002-of-00002.safetensors), bf16,",
                     "learned positions from start_position 2, no scale, no layer norm (an eval forward)."]
    return c


CASES = [case_bf16_learned, case_f16_none_extremes, case_bf16_scaled_ln, case_f16_learned_rounding,
         case_f32_reference, case_sharded]


# ---------------------------------------------------------------------------------------
# Rounding statistics (documentation in the files: how many outputs are ties).

def tie_counts(x32, dtype):
    """(ties, near ties) of float32 values for rounding to `dtype`; near = within 1/1024 of a
    half ulp of the tie but not on it. Values are exact float32, compared in float64."""
    x = x32.astype(np.float64)
    x = x[np.isfinite(x)]
    if dtype == "f16":
        emin, frac, top = -14, 10, 65504.0
    else:
        emin, frac, top = -126, 7, None
    ax = np.abs(x)
    e = np.maximum(np.frexp(ax)[1] - 1, emin)     # exponent of the binade (exact)
    ulp = 2.0 ** (e - frac)
    rem = ax / ulp - np.floor(ax / ulp)          # exact: power-of-two scaling
    if top is not None:
        ok = ax <= top + 16                      # f16: 65520 is the last tie (to +-inf)
        rem = np.where(ok, rem, 0.0)
    ties = int(np.sum((rem == 0.5) & (ax > 0)))
    near = int(np.sum((rem != 0.5) & (np.abs(rem - 0.5) <= 1.0 / 1024)))
    return ties, near


# ---------------------------------------------------------------------------------------
# Writing.

def checkpoint_tensors(c):
    t = {WTE: c["wte"].contiguous()}
    if c["wpe"] is not None:
        t[WPE] = c["wpe"].contiguous()
    if c["ln"]:
        t[LNW] = c["ln_weight"].float().contiguous()
        t[LNB] = c["ln_bias"].float().contiguous()
    return t


def write_checkpoint(c):
    tensors = checkpoint_tensors(c)
    if c["checkpoint"] != "sharded":
        save_file(tensors, os.path.join(OUT, c["checkpoint"]), metadata={"format": "pt"})
        return
    folder = os.path.join(OUT, "sharded")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    shards = {WTE: "model-00001-of-00002.safetensors", WPE: "model-00002-of-00002.safetensors"}
    for name, shard in shards.items():
        save_file({name: tensors[name]}, os.path.join(folder, shard), metadata={"format": "pt"})
    total = sum(t.numel() * t.element_size() for t in tensors.values())   # as transformers computes it
    index = {"metadata": {"total_size": total}, "weight_map": shards}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


def fmt_float(v):
    return "%.9g" % v


def write_text(path, comments, scalars, tensors):
    lines = ["# gpt-embedding reduced-precision golden vectors (format precision-1).",
             f"# Generated by Tests/golden/generate_precision.py with torch {torch.__version__} "
             f"(CPU kernels: {torch.backends.cpu.get_cpu_capability()}, 1 thread). Do not edit."]
    lines += ["# " + s for s in comments]
    lines.append("format precision-1")
    lines += [f"{k} {v}" for k, v in scalars]
    for kind, name, values in tensors:
        lines.append(f"{kind} {name} {len(values)}")
        f = str if kind == "int" else fmt_float
        for i in range(0, len(values), 16):
            lines.append(" ".join(f(v) for v in values[i:i + 16]))
    lines.append("end")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def scalars_of(c, scale):
    return [("name", c["name"]), ("checkpoint", c["checkpoint"]), ("weight_dtype", c["dtype"]),
            ("vocab_size", c["V"]), ("embed_dim", c["D"]), ("max_seq_len", c["maxT"]),
            ("position_encoding", "learned" if c["wpe"] is not None else "none"),
            ("scale_embeddings", c["scale"]), ("scale", fmt_float(float(scale))),
            ("scale_f32_bits", bits(scale.reshape(1), "f32")[0]),
            ("layer_norm", c["ln"]), ("layer_norm_eps", fmt_float(c["eps"])),
            ("batch", c["B"]), ("seq", c["T"]), ("start_position", c["start"]),
            ("grad_output_dtype", c["dtype"])]


def make(c):
    r = torch_layer(c)
    out = r["out"].reshape(-1)
    out_bf16, out_f16 = out.to(torch.bfloat16), out.to(torch.float16)
    comments = list(c["comments"])
    o32 = out.numpy()
    n_nan = int(np.isnan(o32).sum())
    if not c["ln"]:
        for dt in ("bf16", "f16"):
            ties, near = tie_counts(o32, dt)
            comments.append(f"out_f32 -> {dt}: {ties} exact ties, {near} near ties (within 2^-10 ulp of a tie) "
                            f"of {o32.size} values.")
    if n_nan:
        nan_idx = np.flatnonzero(np.isnan(o32))
        comments.append(f"NaN outputs at flat indices {' '.join(map(str, nan_idx))}; torch's bits there: "
                        f"f32 {' '.join('0x%08X' % bits(out, 'f32')[i] for i in nan_idx)}; "
                        f"bf16 {' '.join('0x%04X' % bits(out_bf16, 'bf16')[i] for i in nan_idx)}; "
                        f"f16 {' '.join('0x%04X' % bits(out_f16, 'f16')[i] for i in nan_idx)}.")
    comments.append("Bit-exact: " + ("out_f32_bits, out_bf16_bits, out_f16_bits (NaN matches any NaN)."
                                     if not c["ln"] else
                                     "nothing in the forward (layer norm: compare out_f32 with a tolerance)."))
    tensors = [("int", "ids", [int(v) for v in c["ids"].tolist()]),
               ("int", f"grad_output_{c['dtype']}_bits", bits(c["grad_output"], c["dtype"])),
               ("int", "out_f32_bits", bits(out, "f32"))]
    if c["ln"]:
        tensors.append(("float", "out_f32", out.tolist()))
    tensors += [("int", "out_bf16_bits", bits(out_bf16, "bf16")),
                ("int", "out_f16_bits", bits(out_f16, "f16")),
                ("float", "grad_wte", r["grad_wte"].reshape(-1).tolist())]
    if "grad_wpe" in r:
        tensors.append(("float", "grad_wpe", r["grad_wpe"].reshape(-1).tolist()))
    if c["ln"]:
        tensors += [("float", "grad_ln_weight", r["grad_ln_weight"].tolist()),
                    ("float", "grad_ln_bias", r["grad_ln_bias"].tolist())]
    write_checkpoint(c)
    path = os.path.join(OUT, c["name"] + ".txt")
    write_text(path, comments, scalars_of(c, r["scale"]), tensors)
    return path


def make_accumulate():
    """4096 copies of token 3; grad_output bf16(1e-3) everywhere; the F32 gradient of row 3."""
    V, D, N = 8, 4, 4096
    g = torch.Generator().manual_seed(2100)
    c = case_base("accumulate_4096", "bf16", V=V, D=D, maxT=0, B=1, T=N, start=0)
    c["wte"] = (torch.randn(V, D, generator=g) * 0.5).to(torch.bfloat16)
    ids = torch.full((1, N), 3)
    grad_output = torch.full((1, N, D), 1e-3).to(torch.bfloat16)
    v = grad_output.reshape(-1)[0].float().item()            # bf16(1e-3), exactly
    assert v == 0.00099945068359375
    expected = np.zeros((V, D), dtype=np.float64)
    expected[3, :] = N * v                                    # float64, exact
    expected = expected.astype(np.float32)
    # What PyTorch's own bf16 nn.Embedding accumulates (bf16 gradient, summed in bf16).
    emb = torch.nn.Embedding(V, D, dtype=torch.bfloat16)
    with torch.no_grad():
        emb.weight.copy_(c["wte"])
    emb(ids).backward(grad_output)
    torch_bf16 = emb.weight.grad[3].float()
    # And float32 autograd from the widened table/grad_output (what the library must match).
    r = torch_layer(dict(c, ids=ids.reshape(-1), grad_output=grad_output.reshape(-1)))
    torch_f32 = r["grad_wte"]
    assert np.array_equal(torch_f32.numpy(), expected), (torch_f32[3], expected[3])
    write_checkpoint(c)
    comments = ["4096 copies of token 3 (batch 1, seq 4096), bf16 table (vocab 8, D 4), no positions, no layer",
                "norm. grad_output is bf16(1e-3) = 0x3A83 = 0.00099945068359375 everywhere (not 1e-3).",
                f"grad_wte: row 3 = float32(4096 * bf16(1e-3)) computed in float64 = {float(expected[3, 0])!r}; every",
                "partial sum k * bf16(1e-3) (k <= 4096) is exact in float32, so any summation order gives",
                "these bits: grad_wte_f32_bits is bit-exact. No forward fields in this case.",
                f"torch_bf16_grad: row 3 of torch {torch.__version__}'s bf16 nn.Embedding gradient (bf16 accumulation",
                f"stalls where 1e-3 is below half an ulp), widened to float: {torch_bf16[0].item()!r}, documentation only.",
                f"torch_f32_grad: row 3 of torch's float32 autograd from the widened tensors: {torch_f32[3, 0].item()!r}."]
    tensors = [("int", "ids", [int(x) for x in ids.reshape(-1).tolist()]),
               ("int", "grad_output_bf16_bits", bits(grad_output, "bf16")),
               ("float", "grad_output_value", [v]),
               ("float", "grad_wte", expected.reshape(-1).tolist()),
               ("int", "grad_wte_f32_bits", [int(x) for x in expected.reshape(-1).view(np.uint32)]),
               ("float", "torch_bf16_grad", torch_bf16.tolist()),
               ("float", "torch_f32_grad", torch_f32[3].tolist())]
    path = os.path.join(OUT, c["name"] + ".txt")
    write_text(path, comments, scalars_of(c, r["scale"]), tensors)
    return path


def read(path):
    """A tiny reader (the format's whole grammar), used to check what was written."""
    tokens = [t for line in open(path) if not line.startswith("#") for t in line.split()]
    assert tokens[:2] == ["format", "precision-1"]
    it = iter(tokens[2:])
    scalars, tensors = {}, {}
    for tok in it:
        if tok == "end":
            break
        if tok in ("int", "float"):
            name, count = next(it), int(next(it))
            tensors[name] = [next(it) for _ in range(count)]
        else:
            scalars[tok] = next(it)
    assert next(it, None) is None
    return scalars, tensors


def main():
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT, exist_ok=True)
    paths = []
    for i, make_case in enumerate(CASES):
        g = torch.Generator().manual_seed(2000 + i)
        paths.append(make(make_case(g)))
    paths.append(make_accumulate())
    for path in paths:
        s, t = read(path)
        assert s["checkpoint"] and len(t["ids"]) == int(s["batch"]) * int(s["seq"])
        print(f"{os.path.basename(path):28s} {os.path.getsize(path):7d} bytes  {len(t)} tensors")


if __name__ == "__main__":
    main()
