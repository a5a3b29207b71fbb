#!/usr/bin/env python3
"""Check Tests/golden/precision/ without PyTorch: numpy, ml_dtypes and safetensors only.

Re-derives every expectation of the reduced-precision golden files from the checkpoints
and the ids, independently of the generator:

  * reads each checkpoint twice, with a few lines of its own (header length, JSON header,
    raw little-endian bytes) and with the official safetensors package (numpy), and requires
    the same bits; for the sharded folder, follows model.safetensors.index.json;
  * widens the tables (bf16: bits << 16; f16: numpy's IEEE half, cross-checked against an
    integer decoding) and computes `s * wte[ids] + wpe[pos]` in numpy float32: the bits must
    equal out_f32_bits exactly when layer norm is off (a NaN matches any NaN);
  * rounds the recorded float32 output to bf16 (ml_dtypes and an integer implementation of
    round-to-nearest-even) and to f16 (numpy): the bits must equal out_bf16_bits/out_f16_bits;
  * layer norm cases: float64 and float32 re-computations against out_f32 with the README's
    tolerances, and the reduced outputs of the float32 re-computation against out_f32;
  * gradients re-computed in float32 (np.add.at, sequential) and float64 against the stored
    values with the README's tolerance; the accumulation case exactly.

    pip install numpy ml_dtypes safetensors && python3 Tests/golden/check_precision.py
"""
import json
import math
import os
import struct
import sys

import ml_dtypes
import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
DIR = os.path.join(HERE, "precision")
CASES = ["bf16_learned", "f16_none_extremes", "bf16_scaled_ln", "f16_learned_rounding", "f32_reference",
         "sharded", "accumulate_4096"]
ST_DTYPE = {"F32": ("f32", np.uint32, 4), "BF16": ("bf16", np.uint16, 2), "F16": ("f16", np.uint16, 2)}
WTE, WPE, LNW, LNB = "transformer.wte.weight", "transformer.wpe.weight", "layer_norm.weight", "layer_norm.bias"

# The tolerances recommended in precision/README.md.
TOL_REL, TOL_ABS = 1e-5, 1e-6            # float32 results that depend on the summation order
HALF_ULP_REL = {"bf16": 2.0 ** -8, "f16": 2.0 ** -11}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("  FAIL:", what)


# ---------------------------------------------------------------------------------------
# Reading.

def read_text(path):
    tokens = [t for line in open(path) if not line.startswith("#") for t in line.split()]
    assert tokens[:2] == ["format", "precision-1"], path
    it = iter(tokens[2:])
    scalars, tensors = {}, {}
    for tok in it:
        if tok == "end":
            break
        if tok in ("int", "float"):
            name, count = next(it), int(next(it))
            vals = [next(it) for _ in range(count)]
            tensors[name] = (np.array([int(v) for v in vals], dtype=np.int64) if tok == "int"
                             else np.array([float(v) for v in vals], dtype=np.float64).astype(np.float32))
        else:
            scalars[tok] = next(it)
    assert next(it, None) is None, "tokens after end"
    return scalars, tensors


def read_safetensors(path):
    """{name: (dtype, shape, bits as uint16/uint32)} from the raw file."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, np_int, size = ST_DTYPE[info["dtype"]]
        begin, end = info["data_offsets"]
        assert end - begin == size * math.prod(info["shape"]), name
        spans.append((begin, end))
        out[name] = (dt, tuple(info["shape"]),
                     np.frombuffer(body[begin:end], dtype=np.dtype(np_int).newbyteorder("<")).astype(np_int))
    spans.sort()
    assert spans[0][0] == 0 and spans[-1][1] == len(body) and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    # The official package must read the same bits.
    for name, arr in load_file(path).items():
        view = arr.view(np.uint32 if arr.dtype.itemsize == 4 else np.uint16).reshape(-1)
        assert np.array_equal(view, out[name][2]), name
    return out


def load_checkpoint(s):
    path = os.path.join(DIR, s["checkpoint"])
    if os.path.isdir(path):
        index = json.load(open(os.path.join(path, "model.safetensors.index.json")))
        tensors = {}
        for shard in sorted(set(index["weight_map"].values())):
            part = read_safetensors(os.path.join(path, shard))
            for name in part:
                assert index["weight_map"][name] == shard, name
            tensors.update(part)
        assert set(tensors) == set(index["weight_map"])
        total = sum(b.size * b.itemsize for _, _, b in tensors.values())
        assert index["metadata"]["total_size"] == total, (index["metadata"], total)
        print(f"  sharded: {len(index['weight_map'])} tensors in {len(set(index['weight_map'].values()))} shards, "
              f"total_size {total}")
        return tensors
    return read_safetensors(path)


# ---------------------------------------------------------------------------------------
# Conversions.

def widen(dt, b):
    if dt == "f32":
        return b.astype(np.uint32).view(np.float32)
    if dt == "bf16":
        return (b.astype(np.uint32) << 16).view(np.float32)
    w = b.astype(np.uint16).view(np.float16).astype(np.float32)
    # integer decoding of IEEE half, for the finite values
    b = b.astype(np.int64)
    sign = np.where(b & 0x8000, -1.0, 1.0)
    e, m = (b >> 10) & 0x1F, b & 0x3FF
    ref = np.where(e == 0, m * 2.0 ** -24, (1024 + m) * 2.0 ** (e - 25)) * sign
    finite = e != 0x1F
    assert np.array_equal(w[finite].astype(np.float64), ref[finite])
    assert np.array_equal(np.isnan(w), (e == 0x1F) & (m != 0)) and np.all(np.isinf(w[(e == 0x1F) & (m == 0)]))
    return w


def bf16_rne_int(f):
    """float32 -> bf16 bits, round to nearest even, integer arithmetic (NaN -> 0x7FC0)."""
    u = f.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(f), np.uint16(0x7FC0), r)


def same_bits(expected, got, dt):
    """Equal bit patterns, except that an expected NaN matches any NaN."""
    e = widen(dt, expected) if dt != "f32" else expected.astype(np.uint32).view(np.float32)
    g = widen(dt, got) if dt != "f32" else got.astype(np.uint32).view(np.float32)
    nan = np.isnan(e)
    return bool(np.array_equal(np.isnan(g), nan) and np.array_equal(expected[~nan], got[~nan]))


def within(a, b, rel, abs_):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    err = np.abs(a - b)
    bound = rel * np.abs(b) + abs_
    return bool(np.all(err <= bound)), float(np.max(err / bound)) if err.size else 0.0


# ---------------------------------------------------------------------------------------
# The layer, re-computed.

def layer_norm_f64(x, w, b, eps):
    x = x.astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    return xhat * w + b, xhat, np.sqrt(var + eps)


def layer_norm_f32_sequential(x, w, b, eps):
    """float32, left-to-right sums (a different order than torch's)."""
    D = x.shape[-1]
    rows = x.reshape(-1, D)
    out = np.empty_like(rows)
    for i, r in enumerate(rows):
        s = np.float32(0)
        for v in r:
            s = np.float32(s + v)
        mean = np.float32(s / np.float32(D))
        q = np.float32(0)
        for v in r:
            d = np.float32(v - mean)
            q = np.float32(q + d * d)
        rstd = np.float32(1) / np.sqrt(np.float32(q / np.float32(D)) + np.float32(eps))
        out[i] = (r - mean) * rstd * w + b
    return out.reshape(x.shape)


def check_case(name):
    path = os.path.join(DIR, name + ".txt")
    size = os.path.getsize(path)
    print(f"{name}: {size} bytes")
    check(size < 200_000, f"{name}: text file under 200 KB")
    s, t = read_text(path)
    ck = load_checkpoint(s)
    V, D, B, T = (int(s[k]) for k in ("vocab_size", "embed_dim", "batch", "seq"))
    maxT, start = int(s["max_seq_len"]), int(s["start_position"])
    dt = s["weight_dtype"]
    learned, ln = s["position_encoding"] == "learned", s["layer_norm"] == "1"
    check(s["name"] == name, "name")
    check(ck[WTE][0] == dt and ck[WTE][1] == (V, D), "wte dtype/shape")
    check((WPE in ck) == learned and (maxT == 0) == (not learned), "wpe present iff learned")
    if learned:
        check(ck[WPE][0] == dt and ck[WPE][1] == (maxT, D), "wpe dtype/shape")
    check((LNW in ck) == ln and (LNB in ck) == ln, "layer norm tensors iff layer_norm 1")
    if ln:
        check(ck[LNW][0] == "f32" and ck[LNW][1] == (D,) and ck[LNB][1] == (D,), "layer norm F32 [D]")
    s32 = np.float32(math.sqrt(D)) if s["scale_embeddings"] == "1" else np.float32(1)
    check(int(s["scale_f32_bits"]) == int(np.array(s32).view(np.uint32)), "scale_f32_bits")
    check(np.float32(float(s["scale"])) == s32, "scale")
    check(s["grad_output_dtype"] == dt, "grad_output_dtype")

    ids = t["ids"]
    check(len(ids) == B * T and ids.min() >= 0 and ids.max() < V, "ids in range")
    pos = np.tile(start + np.arange(T), B)
    if learned:
        check(pos.max() < maxT, "positions < max_seq_len")
    wte = widen(dt, ck[WTE][2]).reshape(V, D)
    wpe = widen(dt, ck[WPE][2]).reshape(maxT, D) if learned else None
    go = widen(dt, t[f"grad_output_{dt}_bits"].astype(np.uint32 if dt == "f32" else np.uint16)).reshape(B * T, D)

    if name == "accumulate_4096":
        return check_accumulate(s, t, ids, go, V, D)

    x = wte[ids] * s32 if s["scale_embeddings"] == "1" else wte[ids].copy()
    if learned:
        x = x + wpe[pos]
    x = x.astype(np.float32)
    out_bits = t["out_f32_bits"].astype(np.uint32)
    out = out_bits.view(np.float32).reshape(B * T, D)
    if not ln:
        mine = x.reshape(-1).view(np.uint32)
        check(same_bits(out_bits, mine, "f32"), "out_f32_bits == numpy float32 s*wte[ids] + wpe[pos]")
        if learned and s["scale_embeddings"] == "0":
            exact = np.array_equal(wte[ids].astype(np.float64) + wpe[pos].astype(np.float64), x.astype(np.float64))
            print(f"  float32 sums exact (equal to float64): {exact}")
            if name == "f16_learned_rounding":
                check(exact, "rounding case: every float32 sum is exact")
        nan = int(np.isnan(out).sum())
        if nan:
            print(f"  {nan} NaN outputs (compared as NaN)")
    else:
        check(np.array_equal(t["out_f32"].view(np.uint32), out_bits), "out_f32 floats == out_f32_bits")
        lw, lb = widen("f32", ck[LNW][2]), widen("f32", ck[LNB][2])
        eps = float(s["layer_norm_eps"])
        y64, xhat, sigma = layer_norm_f64(x, lw.astype(np.float64), lb.astype(np.float64), eps)
        y32 = layer_norm_f32_sequential(x, lw, lb, eps)
        ok64, r64 = within(out, y64, TOL_REL, TOL_ABS)
        ok32, r32 = within(y32, out, TOL_REL, TOL_ABS)
        check(ok64 and ok32, "layer norm forward within 1e-5*|b| + 1e-6")
        print(f"  out_f32 vs float64 LN: max err/tol {r64:.3f}; float32 sequential LN vs out_f32: {r32:.3f}; "
              f"differing bits {int(np.sum(y32.view(np.uint32) != out.view(np.uint32)))} of {out.size}")
        for rdt, conv in (("bf16", lambda v: v.astype(ml_dtypes.bfloat16).view(np.uint16)),
                          ("f16", lambda v: v.astype(np.float16).view(np.uint16))):
            red = widen(rdt, conv(y32.reshape(-1)))
            ok, r = within(red, out.reshape(-1), HALF_ULP_REL[rdt] + TOL_REL, TOL_ABS)
            check(ok, f"layer norm {rdt} output of a float32 re-computation within tolerance")
            print(f"  {rdt} of float32 sequential LN vs out_f32: max err/tol {r:.3f}")

    # The reduced outputs are round-to-nearest-even of the recorded float32 output.
    flat = out.reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        bf_ml = flat.astype(ml_dtypes.bfloat16).view(np.uint16)
        f16_np = flat.astype(np.float16).view(np.uint16)
    check(same_bits(t["out_bf16_bits"].astype(np.uint16), bf_ml, "bf16"), "out_bf16_bits == RNE(out_f32) (ml_dtypes)")
    check(same_bits(t["out_bf16_bits"].astype(np.uint16), bf16_rne_int(flat), "bf16"),
          "out_bf16_bits == RNE(out_f32) (integer)")
    check(same_bits(t["out_f16_bits"].astype(np.uint16), f16_np, "f16"), "out_f16_bits == RNE(out_f32) (numpy)")
    if not ln:
        report_rounding(flat, t)

    # Gradients.
    if ln:
        lw64 = widen("f32", ck[LNW][2]).astype(np.float64)
        g64 = go.astype(np.float64)
        gw = (g64 * xhat).sum(0)
        gb = g64.sum(0)
        dxhat = g64 * lw64
        dx = (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True)) / sigma
        for k, ref in (("grad_ln_weight", gw), ("grad_ln_bias", gb)):
            ok, r = within(t[k], ref, TOL_REL, TOL_ABS)
            check(ok, f"{k} within tolerance of float64")
            print(f"  {k} vs float64: max err/tol {r:.3f}")
        gx64 = dx
    else:
        gx64 = go.astype(np.float64)
    sc = float(s32)
    ref_wte = np.zeros((V, D))
    np.add.at(ref_wte, ids, gx64 * sc)
    seq_wte = np.zeros((V, D), np.float32)
    np.add.at(seq_wte, ids, (gx64.astype(np.float32) * s32).astype(np.float32))
    pairs = [("grad_wte", ref_wte, seq_wte)]
    if learned:
        ref_wpe = np.zeros((maxT, D))
        np.add.at(ref_wpe, pos, gx64)
        seq_wpe = np.zeros((maxT, D), np.float32)
        np.add.at(seq_wpe, pos, gx64.astype(np.float32))
        pairs.append(("grad_wpe", ref_wpe, seq_wpe))
    for k, ref, seq in pairs:
        ok1, r1 = within(t[k], ref.reshape(-1), TOL_REL, TOL_ABS)
        ok2, r2 = within(seq.reshape(-1), t[k], TOL_REL, TOL_ABS)
        check(ok1 and ok2, f"{k} within tolerance (float64 and sequential float32 re-computations)")
        same = int(np.sum(seq.reshape(-1).view(np.uint32) == t[k].view(np.uint32)))
        print(f"  {k}: vs float64 max err/tol {r1:.3f}; sequential float32 vs stored {r2:.3f} "
              f"({same}/{t[k].size} identical bits)")
    if not ln and s["scale_embeddings"] == "0":
        # without layer norm, an id/position used once gets grad_output's widened value exactly
        counts = np.bincount(ids, minlength=V)
        once = np.flatnonzero(counts == 1)
        rows = {int(i): j for j, i in enumerate(ids) if counts[i] == 1}
        exact = all(np.array_equal(t["grad_wte"].reshape(V, D)[i].view(np.uint32), go[rows[i]].view(np.uint32))
                    for i in once)
        check(exact, "grad_wte rows of ids used once equal the widened grad_output bits")


def report_rounding(flat, t):
    x = flat.astype(np.float64)
    for rdt, key, emin, frac in (("bf16", "out_bf16_bits", -126, 7), ("f16", "out_f16_bits", -14, 10)):
        fin = np.isfinite(x) & (x != 0)
        ax = np.abs(x[fin])
        e = np.maximum(np.frexp(ax)[1] - 1, emin)
        q = ax / 2.0 ** (e - frac)
        tie = (q - np.floor(q)) == 0.5
        if rdt == "f16":
            tie &= ax <= 65520
        red_bits = t[key].astype(np.uint16)[fin]
        check(np.all(red_bits[tie] & 1 == 0), f"{rdt} ties rounded to an even bit pattern")
        red = np.abs(widen(rdt, t[key].astype(np.uint16))[fin].astype(np.float64))
        up = int(np.sum(tie & (red > ax)))
        down = int(np.sum(tie & (red < ax)))
        inf = int(np.sum(tie & np.isinf(red)))
        print(f"  {rdt} ties: {int(tie.sum())} ({up} away from zero, of which {inf} to inf; {down} toward zero)")


def check_accumulate(s, t, ids, go, V, D):
    check(np.all(ids == 3) and len(ids) == 4096, "4096 copies of token 3")
    check(np.all(t["grad_output_bf16_bits"] == 0x3A83), "grad_output bf16(1e-3) = 0x3A83")
    v = float(go[0, 0])
    check(v == float(np.float32(1e-3).astype(ml_dtypes.bfloat16)) == float(t["grad_output_value"][0]),
          "grad_output_value == bf16(1e-3)")
    expected = np.zeros((V, D), np.float32)
    expected[3] = np.float32(4096 * v)
    check(np.array_equal(t["grad_wte_f32_bits"].astype(np.uint32), expected.reshape(-1).view(np.uint32)),
          "grad_wte_f32_bits == float32(4096 * bf16(1e-3))")
    check(np.array_equal(t["grad_wte"], expected.reshape(-1)), "grad_wte floats")
    seq = np.cumsum(go[:, 0].astype(np.float32), dtype=np.float32)[-1]   # sequential float32
    check(seq == expected[3, 0], "sequential float32 sum is exact")
    acc = ml_dtypes.bfloat16(0)
    bv = ml_dtypes.bfloat16(v)
    for _ in range(4096):
        acc = ml_dtypes.bfloat16(float(acc) + float(bv))             # bf16 accumulation, rounded each step
    print(f"  float32 gradient {expected[3, 0]}; sequential bf16 accumulation gives {float(acc)}; "
          f"torch_bf16_grad {t['torch_bf16_grad'].tolist()}")
    check(np.all(t["torch_bf16_grad"] == np.float32(float(acc))), "torch_bf16_grad equals bf16 accumulation")
    check(np.all(t["torch_f32_grad"] == expected[3]), "torch_f32_grad")


def main():
    for name in CASES:
        check_case(name)
    print("FAILED:" if failures else "all precision golden files agree with their checkpoints")
    for f in failures:
        print("  ", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
