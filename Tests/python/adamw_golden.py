"""Reads the AdamW golden files of Tests/golden/adamw (format adamw-1: Tests/golden/adamw/README.md).

A reader module, not a test file. Usage:

    from adamw_golden import files, read, step
    for path in files():
        case = read(path)                  # dict: key -> numpy array (int64 / float32 / float64),
                                           #       header scalars -> int, float or str
        case["wte.3"], case["lr.3"][0]     # arrays; scalars are 1-element arrays ...
        scalar(case, "lr.3")               # ... or a Python float / int
        step(case, 3)["exp_avg.wte"]       # the entries of step 3, without the ".3"
        "master.wte.1" in case             # the bf16 case's masters

`python3 Tests/python/adamw_golden.py` reads and validates every file.
"""
import glob
import os

import numpy as np

ADAMW_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden", "adamw")
PARAMS = ("wte", "wpe", "ln_weight", "ln_bias")  # decay-mask bits 1 << 0 .. 1 << 3
_TYPES = {"int": np.int64, "float": np.float32, "double": np.float64}
_INT_HEADERS = ("vocab_size", "embed_dim", "max_seq_len", "padding_idx", "layer_norm", "batch", "seq", "steps")


def files():
    """The case files, sorted by name."""
    return sorted(glob.glob(os.path.join(ADAMW_DIR, "*.txt")))


def names():
    return [os.path.basename(p)[:-4] for p in files()]


def path_of(name):
    return os.path.join(ADAMW_DIR, name + ".txt")


def read(path):
    """key -> numpy array for `int`/`float`/`double` entries (int64, float32, float64); header
    scalars decoded (ints as int, layer_norm_eps as float, the others str)."""
    with open(path) as f:
        tokens = [t for line in f if not line.startswith("#") for t in line.split()]
    if tokens[:2] != ["format", "adamw-1"]:
        raise ValueError(f"{path}: not format adamw-1")
    case, i = {}, 0
    while True:
        if i >= len(tokens):
            raise ValueError(f"{path}: no end token")
        kind = tokens[i]
        if kind == "end":
            break
        if kind in _TYPES:
            key, n = tokens[i + 1], int(tokens[i + 2])
            values = tokens[i + 3:i + 3 + n]
            if len(values) != n:
                raise ValueError(f"{path}: {key}: truncated")
            value = np.array(values, dtype=_TYPES[kind])
            i += 3 + n
        else:
            key, value = kind, tokens[i + 1]
            i += 2
        if key in case:
            raise ValueError(f"{path}: duplicate key {key}")
        case[key] = value
    if i != len(tokens) - 1:
        raise ValueError(f"{path}: tokens after end")
    for key in _INT_HEADERS:
        case[key] = int(case[key])
    case["layer_norm_eps"] = float(case["layer_norm_eps"])
    return case


def scalar(case, key):
    """A one-value entry as a Python int or float."""
    v = case[key]
    if isinstance(v, np.ndarray):
        if v.size != 1:
            raise ValueError(f"{key} has {v.size} values")
        return v.item()
    return v


def step(case, k):
    """The entries of step k (1-based), keyed without their ".k" suffix."""
    suffix = f".{k}"
    return {key[:-len(suffix)]: v for key, v in case.items() if key.endswith(suffix)}


def shapes(case):
    """parameter -> (rows, cols) (LayerNorm parameters: (1, D)); no wpe without positions."""
    V, D, T = case["vocab_size"], case["embed_dim"], case["max_seq_len"]
    out = {"wte": (V, D), "wpe": (T, D), "ln_weight": (1, D), "ln_bias": (1, D)}
    if case["position_encoding"] != "learned":
        del out["wpe"]
    return out


def validate(case):
    """Raises AssertionError unless every entry the format requires is there with its size."""
    D, B, T = case["embed_dim"], case["batch"], case["seq"]
    assert case["weight_dtype"] in ("f32", "bf16") and case["position_encoding"] in ("learned", "none")
    bf16 = case["weight_dtype"] == "bf16"
    sizes = {n: r * c for n, (r, c) in shapes(case).items()}
    if "wpe" not in sizes:
        assert "wpe" not in case and case["max_seq_len"] == 0
    for n, size in sizes.items():
        assert case[n].dtype == np.float32 and case[n].size == size, n
    for k in range(1, case["steps"] + 1):
        s = step(case, k)
        for key in ("lr", "beta1", "beta2", "eps", "weight_decay", "grad_scale", "grad_norm_sq"):
            assert s[key].dtype == np.float64 and s[key].size == 1, (k, key)
        for key in ("decay_mask", "lazy"):
            assert s[key].dtype == np.int64 and s[key].size == 1, (k, key)
        assert s["ids"].dtype == np.int64 and s["ids"].size == B * T
        assert ((s["ids"] >= 0) & (s["ids"] < case["vocab_size"])).all()
        assert s["grad_output"].dtype == np.float32 and s["grad_output"].size == B * T * D
        for n, size in sizes.items():
            for prefix in ("grad.", "", "exp_avg.", "exp_avg_sq."):
                assert s[prefix + n].dtype == np.float32 and s[prefix + n].size == size, (k, prefix + n)
        for n in ("wte", "wpe"):
            assert (f"master.{n}" in s) == (bf16 and n in sizes), (k, n)
            assert (f"touched.{n}" in s) == (bool(s["lazy"][0]) and n in sizes), (k, n)
            if f"touched.{n}" in s:
                t = s[f"touched.{n}"]
                assert ((t >= 0) & (t < shapes(case)[n][0])).all()


if __name__ == "__main__":
    for p in files():
        c = read(p)
        validate(c)
        print(f"ok   {c['name']:20s} {len(c):3d} keys  steps {c['steps']}  lr.1 {scalar(c, 'lr.1'):.17g}"
              f"  {'masters' if 'master.wte.1' in c else ''}")
    print(f"{len(files())} files")
