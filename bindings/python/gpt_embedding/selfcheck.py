"""The seed's built-in checks, run against the loaded library through the numpy API:
``python -m gpt_embedding`` (see :mod:`gpt_embedding.__main__`).

The seed (a PyTorch module) ships "built-in testing and validation": forward pass, gradient
flow, shape consistency, device compatibility, parameter counting, statistical properties and
both kinds of position embedding. Each check below asserts a real property of what the library
computes, against an independent computation in numpy (float64 where it matters) from the
layer's own parameter views -- not merely that a call returns. No torch is needed; the device
check uses it when it is installed.

Every check is a function ``check_*(rng) -> str`` that returns a one-line detail on success and
raises (``CheckFailed`` or anything else) on failure; :func:`run` runs them all and reports.
"""
from __future__ import annotations

import math
import time
from typing import Callable, List, Optional, TextIO, Tuple

import numpy as np

from .components import SinusoidalPositionalEmbedding
from .config import GPTEmbeddingConfig
from .layer import GPTEmbedding


class CheckFailed(AssertionError):
    """A property the library should have and does not."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0


def sinusoidal_closed_form(positions: np.ndarray, dim: int) -> np.ndarray:
    """The header's sinusoidal table in float64: channel c even sin(pos * 10000^(-c/D)), c odd
    cos(pos * 10000^(-(c-1)/D))."""
    c = np.arange(dim)
    freq = np.power(10000.0, -(c - (c % 2)) / dim)
    angle = np.asarray(positions, np.float64)[:, None] * freq[None, :]
    return np.where(c % 2 == 0, np.sin(angle), np.cos(angle))


def _token_scale(config: GPTEmbeddingConfig) -> float:
    """s of the header's formula: token_scale when set, else sqrt(D) (rounded to float32)
    with scale_embeddings, else 1."""
    if config.token_scale is not None:
        return float(np.float32(config.token_scale))
    return float(np.float32(math.sqrt(config.embed_dim))) if config.scale_embeddings else 1.0


# -- the checks ------------------------------------------------------------------------------

def check_forward(rng: np.random.Generator) -> str:
    """out = s * wte[ids] + P[start + t], from the parameter views, for the seed's GPT-2 setting
    (s = 1), its TokenEmbedding scaling (s = sqrt(D)), explicit positions and the layer norm."""
    V, D, T = 97, 48, 32
    worst = 0.0
    for scale in (False, True):
        layer = GPTEmbedding(V, D, T, dropout=0.1, scale_embeddings=scale, seed=int(rng.integers(1 << 31))).eval()
        W = layer.parameter("token_embedding.weight").astype(np.float64)
        P = layer.parameter("position_embedding.weight").astype(np.float64)
        s = _token_scale(layer.config)
        _require(s == (float(np.float32(math.sqrt(D))) if scale else 1.0), f"token scale {s} for scale={scale}")
        ids = rng.integers(0, V, (3, 10))
        for start in (0, 7):
            got = layer(ids, start_position=start)
            want = s * W[ids] + P[start:start + 10][None]
            worst = max(worst, _max_diff(got, want))
            _require(np.allclose(got, want, rtol=1e-6, atol=1e-6),
                     f"forward (scale_embeddings={scale}, start {start}) differs from s*wte[ids] + wpe[pos] "
                     f"by {_max_diff(got, want):.3g}")
        pos = rng.integers(0, T, ids.shape)
        got = layer(ids, position_ids=pos)
        want = s * W[ids] + P[pos]
        _require(np.allclose(got, want, rtol=1e-6, atol=1e-6), "forward with position_ids differs from the tables")
        # The layer norm: (x - mean) / sqrt(var + eps) * 1 + 0 at initialisation, biased variance.
        x = s * W[ids] + P[:10][None]
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        want = (x - mu) / np.sqrt(var + layer.config.layer_norm_eps)
        got = layer(ids, use_layer_norm=True)
        _require(np.allclose(got, want, rtol=1e-4, atol=1e-4),
                 f"layer-normalised forward differs from the closed form by {_max_diff(got, want):.3g}")
        layer.close()
    return f"s*wte[ids] + wpe[pos] (s = 1 and sqrt(D)), explicit positions, layer norm; max |diff| {worst:.2g}"


def check_gradient_flow(rng: np.random.Generator) -> str:
    """Closed form without the layer norm: d(sum out)/d wte[id] = count(id) * s, d/d wpe[t] =
    batch, the padding row gets nothing. With the layer norm: central finite differences of
    sum(out * G) against backward(G) on token, position and layer-norm entries."""
    V, D, T, B, S = 31, 16, 12, 4, 6
    layer = GPTEmbedding(V, D, T, dropout=0.0, scale_embeddings=True, padding_idx=0,
                         seed=int(rng.integers(1 << 31)))
    ids = rng.integers(0, V, (B, S))
    ids[0, 0] = 0  # the padding row appears
    layer(ids)
    layer.backward(np.ones((B, S, D), np.float32))
    grads = layer.grads()
    counts = np.bincount(ids.ravel(), minlength=V).astype(np.float64)
    counts[0] = 0
    s = np.float32(math.sqrt(D))
    want_w = (counts * s)[:, None] * np.ones(D)
    _require(np.allclose(grads["token_embedding.weight"], want_w, rtol=1e-6, atol=1e-6),
             "token-table gradient is not count(id) * s (padding row 0)")
    want_p = np.zeros((T, D))
    want_p[:S] = B
    _require(np.allclose(grads["position_embedding.weight"], want_p, rtol=1e-6),
             "position-table gradient is not the batch size on the used rows")
    _require(not np.any(grads["layer_norm.weight"]) and not np.any(grads["layer_norm.bias"]),
             "the layer norm received a gradient from a forward without it")
    layer.zero_grad()
    _require(not any(np.any(g) for g in layer.grads().values()), "zero_grad left a gradient")
    layer.close()

    # Finite differences through the layer norm (dropout 0: every forward computes the same).
    layer = GPTEmbedding(V, D, T, dropout=0.0, seed=int(rng.integers(1 << 31)))
    ids = rng.integers(1, V, (2, 5))
    G = rng.standard_normal((2, 5, D)).astype(np.float32)
    layer(ids, use_layer_norm=True)
    layer.backward(G)
    grads = layer.grads()
    layer.eval()

    def loss() -> float:
        return float(np.sum(layer(ids, use_layer_norm=True).astype(np.float64) * G))
    probes: List[Tuple[str, Tuple[int, ...]]] = [
        ("token_embedding.weight", (int(ids[0, 1]), 3)), ("token_embedding.weight", (int(ids[1, 4]), 11)),
        ("position_embedding.weight", (2, 5)), ("layer_norm.weight", (7,)), ("layer_norm.bias", (0,))]
    worst = 0.0
    for name, index in probes:
        view = layer.parameter(name)
        eps = 1e-3 if name.startswith("layer_norm") else 1e-4
        old = view[index].copy()
        view[index] = old + eps
        up = loss()
        view[index] = old - eps
        down = loss()
        view[index] = old
        fd = (up - down) / (2 * eps)
        analytic = float(grads[name][index])
        err = abs(fd - analytic) / max(1.0, abs(analytic))
        worst = max(worst, err)
        _require(err < 2e-2, f"d loss / d {name}{list(index)}: backward {analytic:.6g}, finite differences {fd:.6g}")
        del view
    layer.close()
    return f"closed form (count * s, batch, padding 0) exact; finite differences through the layer norm " \
           f"within {worst:.1e} (relative)"


def check_shapes(rng: np.random.Generator) -> str:
    """[B, T] -> [B, T, D]; [T] -> [1, T, D]; empty batch or sequence -> empty outputs; 16-bit
    outputs; parameter shapes; a wrong grad_output shape is refused."""
    V, D, T = 50, 24, 16
    layer = GPTEmbedding(V, D, T, dropout=0.1, seed=int(rng.integers(1 << 31)))
    cases = {(2, 5): (2, 5, D), (5,): (1, 5, D), (0, 5): (0, 5, D), (3, 0): (3, 0, D), (1, T): (1, T, D)}
    for ids_shape, out_shape in cases.items():
        got = layer.eval()(rng.integers(0, V, ids_shape)).shape
        _require(got == out_shape, f"ids {list(ids_shape)} gave {list(got)}, expected {list(out_shape)}")
    _require(layer([[1, 2]], out_dtype="float16").dtype == np.float16, "out_dtype float16 ignored")
    shapes = {k: v.shape for k, v in layer.state_dict().items()}
    want = {"token_embedding.weight": (V, D), "position_embedding.weight": (T, D), "layer_norm.weight": (D,),
            "layer_norm.bias": (D,)}
    _require(shapes == want, f"parameter shapes {shapes}, expected {want}")
    layer.train()(rng.integers(0, V, (2, 3)))
    try:
        layer.backward(np.zeros((2, 4, D), np.float32))
    except ValueError:
        pass
    else:
        raise CheckFailed("backward accepted a grad_output of the wrong shape")
    layer.close()
    return "[B,T], [T], [0,T], [B,0] -> [.., D]; float16 outputs; parameter shapes; wrong grad shape refused"


def check_devices(rng: np.random.Generator) -> str:
    """The CPU path the library runs (``gpt_embedding.isa``, one of ``isa_supported``); with
    torch installed, a CPU tensor of ids is accepted and gives the numpy result, and a tensor on
    another device (``meta``, available without a GPU) is refused with an error."""
    import gpt_embedding
    isa, supported = gpt_embedding.isa, gpt_embedding.isa_supported
    _require(isa in supported, f"the running path {isa!r} is not among the supported {supported}")
    detail = f"CPU path {isa} (supported: {', '.join(supported)})"
    try:
        import torch
    except ImportError:
        return detail + "; torch not installed: tensor inputs not checked"
    layer = GPTEmbedding(20, 8, 8, dropout=0.0, seed=int(rng.integers(1 << 31))).eval()
    ids = rng.integers(0, 20, (2, 3))
    _require(np.array_equal(layer(torch.from_numpy(ids)), layer(ids)), "a CPU torch tensor of ids gave another result")
    try:
        layer(torch.empty((2, 3), dtype=torch.int64, device="meta"))
    except Exception as e:  # noqa: BLE001 - any clear refusal
        refusal = f"{type(e).__name__}"
    else:
        raise CheckFailed("a tensor on the meta device was accepted")
    layer.close()
    gpu = "CUDA available but not used by the numpy API" if torch.cuda.is_available() else "no GPU here"
    return detail + f"; torch CPU tensors accepted, a meta-device tensor refused ({refusal}); {gpu}"


def check_parameter_counts(rng: np.random.Generator) -> str:
    """V*D + T*D + 2D with learned positions, V*D + 2D with sinusoidal ones: the layer's count,
    the configuration's (no allocation: GPT-2 small to XL) and the sizes of the state dict."""
    for V, D, T, sinusoidal in ((101, 32, 17, False), (101, 32, 17, True)):
        layer = GPTEmbedding(V, D, T, use_sinusoidal=sinusoidal, seed=int(rng.integers(1 << 31)))
        want = V * D + (0 if sinusoidal else T * D) + 2 * D
        _require(layer.num_parameters() == want, f"num_parameters {layer.num_parameters()}, expected {want}")
        _require(sum(a.size for a in layer.state_dict().values()) == want, "state dict sizes do not add up")
        layer.close()
    sizes = {}
    for name, D in (("gpt2", 768), ("gpt2-medium", 1024), ("gpt2-large", 1280), ("gpt2-xl", 1600)):
        total = GPTEmbeddingConfig.from_preset(name).num_parameters()["total"]
        want = 50257 * D + 1024 * D + 2 * D
        _require(total == want, f"{name}: {total} parameters, expected {want}")
        sizes[name] = total
    return "learned V*D+T*D+2D, sinusoidal V*D+2D; GPT-2 " + ", ".join(
        f"{k.replace('gpt2-', '').replace('gpt2', 'small')} {v / 1e6:.1f}M" for k, v in sizes.items())


def check_statistics(rng: np.random.Generator) -> str:
    """Initialisation N(0, 0.02): sample mean and std within 6 standard errors (SE of the mean
    0.02/sqrt(n), of the std 0.02/sqrt(2n)); layer norm weight 1 and bias 0. Dropout p: the kept
    fraction within 6 binomial standard errors of 1 - p, kept values scaled by exactly
    1 / (1 - p), eval forwards deterministic."""
    V, D, T = 4096, 128, 256
    layer = GPTEmbedding(V, D, T, dropout=0.25, seed=int(rng.integers(1 << 31)))
    std = layer.config.init_std
    lines = []
    for name in ("token_embedding.weight", "position_embedding.weight"):
        w = layer.parameter(name).astype(np.float64).ravel()
        n = w.size
        mean_tol, std_tol = 6 * std / math.sqrt(n), 6 * std / math.sqrt(2 * n)
        _require(abs(w.mean()) < mean_tol, f"{name}: mean {w.mean():.3g}, expected 0 ± {mean_tol:.2g}")
        _require(abs(w.std() - std) < std_tol, f"{name}: std {w.std():.6f}, expected {std} ± {std_tol:.2g}")
        lines.append(f"std {w.std():.5f}")
        del w
    _require(np.all(layer.parameter("layer_norm.weight") == 1) and not np.any(layer.parameter("layer_norm.bias")),
             "layer norm not initialised to weight 1, bias 0")
    ids = rng.integers(0, V, (32, T))
    clean = layer.eval()(ids)
    _require(np.array_equal(clean, layer(ids)), "eval forwards differ between calls")
    p = layer.dropout
    dropped = layer.train()(ids)
    kept = dropped != 0
    frac = float(kept.mean())
    se = math.sqrt(p * (1 - p) / kept.size)
    _require(abs(frac - (1 - p)) < 6 * se, f"dropout kept {frac:.4f} of the elements, expected {1 - p} ± {6 * se:.4f}")
    want = clean[kept].astype(np.float64) / (1 - p)
    _require(np.allclose(dropped[kept], want, rtol=2e-7, atol=0),
             f"kept values are not the eval values / (1 - p) (max |diff| {_max_diff(dropped[kept], want):.3g})")
    again = layer(ids)
    _require(not np.array_equal(again != 0, kept), "two training forwards drew the same dropout mask")
    layer.close()
    return (f"tables {lines[0]}, {lines[1]} (init_std {std}); dropout {p}: kept {frac:.4f} "
            f"(expected {1 - p} ± {6 * se:.4f}), kept values x 1/(1-p)")


def check_position_encodings(rng: np.random.Generator) -> str:
    """Sinusoidal rows equal the closed form (float64) to 1e-6, beyond max_seq_len too; a
    sinusoidal layer computes s*wte[ids] + PE[pos] and has no position table; learned
    positions read wpe rows; no positions gives the token rows alone."""
    D = 33  # odd: the last channel is a sin channel
    positions = np.arange(0, 3000, 7)
    table = np.concatenate([SinusoidalPositionalEmbedding(4096, D)(1, start_position=int(p)) for p in positions])
    want = sinusoidal_closed_form(positions, D)
    diff = _max_diff(table, want)
    _require(diff < 1e-6, f"sinusoidal rows differ from the closed form by {diff:.3g}")
    V, D, T = 40, 32, 64
    layer = GPTEmbedding(V, D, T, use_sinusoidal=True, dropout=0.0, seed=int(rng.integers(1 << 31))).eval()
    _require("position_embedding.weight" not in layer.parameter_names(), "a sinusoidal layer has a position table")
    W = layer.parameter("token_embedding.weight").astype(np.float64)
    s = _token_scale(layer.config)  # sinusoidal layers scale token rows by sqrt(D) by default (the seed's)
    ids = rng.integers(0, V, (2, 9))
    for start in (0, 100):  # past max_seq_len: allowed for sinusoidal positions
        got = layer(ids, start_position=start)
        want = s * W[ids] + sinusoidal_closed_form(np.arange(start, start + 9), D)[None]
        _require(np.allclose(got, want, rtol=1e-6, atol=2e-6),
                 f"sinusoidal forward (start {start}) differs by {_max_diff(got, want):.3g}")
    layer.close()
    learned = GPTEmbedding(V, D, T, dropout=0.0, seed=int(rng.integers(1 << 31))).eval()
    P = learned.parameter("position_embedding.weight")
    W = learned.parameter("token_embedding.weight")
    got = learned(ids, start_position=T - 9)
    s_learned = _token_scale(learned.config)
    _require(np.allclose(got, s_learned * W[ids].astype(np.float64) + P[T - 9:][None], rtol=1e-6, atol=1e-7),
             "learned positions do not read wpe rows")
    try:
        learned(ids, start_position=T - 8)
    except IndexError:
        pass
    else:
        raise CheckFailed("a learned position past max_seq_len was accepted")
    del P, W
    learned.close()
    none = GPTEmbedding(V, D, T, position_encoding="none", dropout=0.0, scale_embeddings=False, seed=1).eval()
    _require(np.array_equal(none(ids), none.parameter("token_embedding.weight")[ids]),
             "without positions the output is not the token rows")
    _require(none.num_parameters() == V * D + 2 * D, "a layer without positions counts position parameters")
    return (f"sinusoidal rows = closed form (max |diff| {diff:.1e}, positions to 2994, odd D) and forward "
            f"s*wte + PE (s = {s:.4g}), learned rows, none")


#: (name, check) in the seed's order.
CHECKS: List[Tuple[str, Callable[[np.random.Generator], str]]] = [
    ("forward pass", check_forward),
    ("gradient flow", check_gradient_flow),
    ("shape consistency", check_shapes),
    ("device handling", check_devices),
    ("parameter counts", check_parameter_counts),
    ("statistical properties", check_statistics),
    ("position encodings", check_position_encodings),
]


def run(out: TextIO, seed: int = 0, only: Optional[List[str]] = None) -> int:
    """Runs the checks, writes the report to ``out`` and returns the number that failed."""
    import gpt_embedding
    out.write(f"gpt_embedding {gpt_embedding.__version__} self-check\n")
    out.write(f"library  {gpt_embedding.library_path} (version {gpt_embedding.library_version})\n")
    out.write(f"kernels  {gpt_embedding.isa} (this CPU supports: {', '.join(gpt_embedding.isa_supported)})\n")
    out.write(f"seed     {seed}\n\n")
    failed = 0
    ran = 0
    for name, check in CHECKS:
        if only and not any(o in name for o in only):
            continue
        ran += 1
        t0 = time.perf_counter()
        try:
            detail = check(np.random.default_rng([seed, ran]))
            status = "PASS"
        except Exception as e:  # noqa: BLE001 - a failed check is reported, not raised
            detail = f"{type(e).__name__}: {e}"
            status = "FAIL"
            failed += 1
        out.write(f"{status}  {name:<24} {detail} ({(time.perf_counter() - t0) * 1e3:.0f} ms)\n")
        out.flush()
    out.write(f"\n{ran} checks: {ran - failed} passed, {failed} failed\n")
    return failed
