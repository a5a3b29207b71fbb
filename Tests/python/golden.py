"""Reads the golden-vector files of Tests/golden (format: Tests/golden/README.md)."""
import glob
import os

import numpy as np

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden")
KEYS = ["format", "name", "vocab_size", "embed_dim", "max_seq_len", "position_encoding", "scale_embeddings",
        "padding_idx", "layer_norm", "layer_norm_eps", "batch", "seq", "start_position", "explicit_positions"]


def read(path):
    tokens = [t for line in open(path) if not line.startswith("#") for t in line.split()]
    it = iter(tokens)
    case = {}
    for key in KEYS:
        assert next(it) == key, f"{path}: expected {key}"
        case[key] = next(it)
    for kind in it:
        if kind == "end":
            break
        name, count = next(it), int(next(it))
        values = [next(it) for _ in range(count)]
        case[name] = np.array(values, dtype=np.int64 if kind == "int" else np.float32)
    for key in ("vocab_size", "embed_dim", "max_seq_len", "scale_embeddings", "padding_idx", "layer_norm",
                "batch", "seq", "start_position", "explicit_positions"):
        case[key] = int(case[key])
    case["layer_norm_eps"] = float(case["layer_norm_eps"])
    return case


def files():
    return sorted(glob.glob(os.path.join(GOLDEN_DIR, "*.txt")))
