"""Reads the reduced-precision golden files of Tests/golden/precision (format precision-1:
Tests/golden/precision/README.md) and compares bit patterns by that README's rules."""
import os

import numpy as np

PRECISION_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden", "precision")
#: Cases with a forward (all but accumulate_4096).
FORWARD_CASES = ["bf16_learned", "f16_none_extremes", "bf16_scaled_ln", "f16_learned_rounding", "f32_reference",
                 "sharded"]
#: The file's dtype names -> the package's.
DTYPE = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}
#: Tolerances of the README: |a - b| <= REL * |b| + ABS (float32 outputs and gradients);
#: reduced outputs of the layer-norm case add half an ulp relative to the value.
REL, ABS = 1e-5, 1e-6
HALF_ULP = {"bfloat16": 2.0 ** -8, "float16": 2.0 ** -11}
_INT_SCALARS = ("vocab_size", "embed_dim", "max_seq_len", "scale_embeddings", "layer_norm", "batch", "seq",
                "start_position")


def read(name):
    """(scalars, tensors) of a case: scalars as str (ints converted), tensors as int64 or
    float32 numpy arrays (the reader of the README)."""
    path = os.path.join(PRECISION_DIR, name + ".txt")
    with open(path) as f:
        tokens = [t for line in f if not line.startswith("#") for t in line.split()]
    assert tokens[:2] == ["format", "precision-1"], path
    it, scalars, tensors = iter(tokens[2:]), {}, {}
    for tok in it:
        if tok == "end":
            break
        if tok in ("int", "float"):
            key, n = next(it), int(next(it))
            values = [next(it) for _ in range(n)]
            tensors[key] = np.array([int(v) for v in values], np.int64) if tok == "int" else \
                np.array([float(v) for v in values], np.float64).astype(np.float32)
        else:
            scalars[tok] = next(it)
    for key in _INT_SCALARS:
        scalars[key] = int(scalars[key])
    scalars["layer_norm_eps"] = float(scalars["layer_norm_eps"])
    scalars["checkpoint_path"] = os.path.join(PRECISION_DIR, scalars["checkpoint"])
    return scalars, tensors


def bits(a):
    """The bit patterns of a float32 (uint32), bfloat16 or float16 (uint16) array."""
    return a.view(np.uint32 if a.dtype.itemsize == 4 else np.uint16)


def from_bits(values, dtype_name):
    """An array of `dtype_name` holding the given bit patterns."""
    import ml_dtypes
    if dtype_name == "float32":
        return values.astype(np.uint32).view(np.float32)
    return values.astype(np.uint16).view(ml_dtypes.bfloat16 if dtype_name == "bfloat16" else np.float16)


def is_nan_bits(b, dtype_name):
    exp, man = {"float32": (0x7F800000, 0x007FFFFF), "bfloat16": (0x7F80, 0x007F),
                "float16": (0x7C00, 0x03FF)}[dtype_name]
    b = b.astype(np.int64)
    return ((b & exp) == exp) & ((b & man) != 0)


def assert_same_bits(expected_bits, got, dtype_name, what):
    """Equal bit patterns, except that an expected NaN matches any NaN (the README's rule)."""
    got_bits = bits(np.ascontiguousarray(got)).reshape(-1).astype(np.int64)
    expected_bits = np.asarray(expected_bits, np.int64).reshape(-1)
    assert got_bits.shape == expected_bits.shape, what
    nan = is_nan_bits(expected_bits, dtype_name)
    got_nan = is_nan_bits(got_bits, dtype_name)
    bad = np.flatnonzero((nan != got_nan) | (~nan & (got_bits != expected_bits)))
    assert bad.size == 0, (f"{what}: {bad.size} of {got_bits.size} differ, first at {bad[0]}: "
                           f"expected 0x{expected_bits[bad[0]]:X}, got 0x{got_bits[bad[0]]:X}")


def assert_within(a, b, rel, abs_, what):
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    err, bound = np.abs(a - b), rel * np.abs(b) + abs_
    bad = np.flatnonzero(~(err <= bound))
    assert bad.size == 0, f"{what}: {bad.size} outside tolerance, first at {bad[0]}: {a[bad[0]]} vs {b[bad[0]]}"
