"""gpt_embedding.AdamW: the library's fused AdamW step through Python. Closed forms, a
float64 reference of the header's formula, lazy steps, 16-bit tables with master weights,
thread counts, resuming (state_dict and safetensors), every bad input, the gradient norm."""
import copy
import ctypes
import math
import os
import shutil
import subprocess

import ml_dtypes
import numpy as np
import pytest

from gpt_embedding import (AdamW, GPTEmbedding, GPTEmbeddingStateError, GPTEmbeddingValueError, _lib)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLES = ["token_embedding.weight", "position_embedding.weight"]
NORM = ["layer_norm.weight", "layer_norm.bias"]
ALL = TABLES + NORM
NUMPY16 = {"bfloat16": np.dtype(ml_dtypes.bfloat16), "float16": np.dtype(np.float16)}


def make(V=50, D=16, T=8, dtype="float32", dropout=0.0, **kw):
    kw.setdefault("seed", 3)
    return GPTEmbedding(V, D, T, dropout, scale_embeddings=False, weight_dtype=dtype, **kw)


def batch(layer, rng, B=2, T=6, ids=None, ln=True):
    """A training forward and backward with random ids and grad_output."""
    if ids is None:
        ids = rng.integers(0, layer.vocab_size, (B, T))
    layer(ids, use_layer_norm=ln)
    layer.backward(rng.standard_normal((*np.shape(ids), layer.embed_dim)).astype(np.float32))
    return ids


def params(layer):
    """The parameters widened to float32 (copies)."""
    return {k: np.asarray(v, dtype=np.float32) for k, v in layer.state_dict().items()}


def raw(layer):
    """The parameters' stored bits (copies), for bit-for-bit comparisons."""
    return {k: v.view(np.uint16) if v.dtype.itemsize == 2 else v.view(np.uint32)
            for k, v in layer.state_dict().items()}


def assert_bits_equal(a, b):
    """Two nested structures of arrays / numbers / dicts / lists are equal bit for bit."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (sorted(a), sorted(b) if isinstance(b, dict) else b)
        for k in a:
            assert_bits_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_bits_equal(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    else:
        assert a == b


def snapshot(layer, opt):
    """Parameters, gradients and optimizer state (not the groups, which tests change)."""
    return {"params": raw(layer), "grads": layer.grads(), "state": opt.state_dict()["state"]}


# -- the C struct and the declarations ---------------------------------------------------

def test_options_struct_matches_the_compiled_header(tmp_path):
    o = _lib.default_adamw_options()
    assert ctypes.sizeof(_lib.AdamWOptions) == 64 and o.struct_size == 64
    assert (o.params, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.grad_scale, o.decay_params, o.lazy) == \
        (0xF, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1.0, 0xF, 0)
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler: size checked against the library only")
    fields = [name for name, _ in _lib.AdamWOptions._fields_]
    src = tmp_path / "offsets.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include \"gpt_embedding.h\"\nint main(void) {\n"
                   '    printf("size %zu\\n", sizeof(gpt_embedding_adamw_options));\n'
                   + "".join(f'    printf("{f} %zu %zu\\n", offsetof(gpt_embedding_adamw_options, {f}), '
                             f'sizeof(((gpt_embedding_adamw_options *)0)->{f}));\n' for f in fields)
                   + "    return 0;\n}\n")
    exe = tmp_path / "offsets"
    subprocess.run([cc, "-std=c11", "-I", os.path.join(ROOT, "include"), str(src), "-o", str(exe)], check=True)
    lines = dict(line.split(" ", 1) for line in subprocess.run([str(exe)], check=True, capture_output=True,
                                                                 text=True).stdout.splitlines())
    assert int(lines.pop("size")) == 64
    assert list(lines) == fields
    for name, ctype in _lib.AdamWOptions._fields_:
        offset, size = map(int, lines[name].split())
        assert (getattr(_lib.AdamWOptions, name).offset, ctypes.sizeof(ctype)) == (offset, size), name


def test_groups_and_defaults():
    layer = make()
    opt = AdamW(layer)
    assert opt.param_groups == [{"params": ALL, "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                                 "weight_decay": 0.01, "lazy": False}]
    opt = AdamW(layer, lr=0.1, params=[{"params": TABLES, "weight_decay": 0.1},
                                       {"params": NORM, "weight_decay": 0.0, "lazy": True}])
    assert [g["params"] for g in opt.param_groups] == [TABLES, NORM]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]
    assert [g["lazy"] for g in opt.param_groups] == [False, True]
    assert "Parameter Group 1" in repr(opt)
    sinusoidal = make(position_encoding="sinusoidal")
    assert AdamW(sinusoidal).param_groups[0]["params"] == ["token_embedding.weight"] + NORM


# -- (a) closed forms of the first step ---------------------------------------------------

@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_first_step_closed_form(wd):
    rng = np.random.default_rng(0)
    layer = make()
    opt = AdamW(layer, lr=0.01, weight_decay=wd)
    p0 = params(layer)
    batch(layer, rng)
    g = layer.grads()
    opt.step()
    p1 = params(layer)
    lr, eps = 0.01, 1e-8
    for name in ALL:
        gg = g[name].astype(np.float64)
        expected = p0[name].astype(np.float64) * (1 - lr * wd) - lr * gg / (np.abs(gg) + eps)
        np.testing.assert_allclose(p1[name], expected, rtol=1e-6, atol=1e-8, err_msg=name)
        if wd == 0:  # rows without gradient do not move at all
            untouched = gg == 0
            assert np.array_equal(p1[name][untouched], p0[name][untouched])
    state = opt.state_dict()["state"]
    assert sorted(state) == sorted(ALL)
    for name in ALL:
        assert state[name]["step"] == 1
        np.testing.assert_allclose(state[name]["exp_avg"], 0.1 * g[name], rtol=1e-6)
        np.testing.assert_allclose(state[name]["exp_avg_sq"], 0.001 * g[name].astype(np.float64) ** 2, rtol=1e-6)
        assert "master" not in state[name]


# -- (b) a float64 reference over 5 steps with a changing lr ------------------------------

def reference_step(p, m, v, g, t, lr, b1, b2, eps, wd):
    p = p * (1 - lr * wd)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr / (1 - b1 ** t) * m / (np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)
    return p, m, v


def close(a, b, what):
    """|a - b| <= 1e-6 |b| + 1e-7 max|b|: relative, with a floor far below the tensor's scale
    (float32 rounding of terms that cancel is relative to the terms, not to the result)."""
    b = np.asarray(b, dtype=np.float64)
    err = np.abs(np.asarray(a, dtype=np.float64) - b)
    floor = 1e-7 * max(np.abs(b).max(), 1e-30)
    bad = err > 1e-6 * np.abs(b) + floor
    assert not bad.any(), f"{what}: {bad.sum()} elements differ, worst {err.max()}"


@pytest.mark.parametrize("lazy", [False, True])
def test_five_steps_match_a_float64_reference(lazy):
    rng = np.random.default_rng(1)
    layer = make(V=40, D=24, T=10)
    betas = (0.8, 0.95)
    groups = [{"params": TABLES, "weight_decay": 0.1}, {"params": NORM, "weight_decay": 0.0}]
    opt = AdamW(layer, lr=0.02, betas=betas, eps=1e-6, lazy=lazy, params=groups)
    ref = {k: v.astype(np.float64) for k, v in params(layer).items()}
    m = {k: np.zeros_like(v) for k, v in ref.items()}
    v2 = {k: np.zeros_like(v) for k, v in ref.items()}
    lrs = [0.02, 0.01, 0.03, 0.005, 0.015]
    for t, lr in enumerate(lrs, start=1):
        opt.zero_grad()
        ids = batch(layer, rng, B=2, T=5)
        g = {k: a.astype(np.float64) for k, a in layer.grads().items()}
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        touched = {"token_embedding.weight": np.unique(ids), "position_embedding.weight": np.arange(5)}
        for name in ALL:
            wd = 0.1 if name in TABLES else 0.0
            if lazy and name in touched:
                rows = touched[name]
                p_, m_, v_ = reference_step(ref[name][rows], m[name][rows], v2[name][rows], g[name][rows], t,
                                            lr, *betas, 1e-6, wd)
                ref[name][rows], m[name][rows], v2[name][rows] = p_, m_, v_
            else:
                ref[name], m[name], v2[name] = reference_step(ref[name], m[name], v2[name], g[name], t, lr,
                                                              *betas, 1e-6, wd)
    got = params(layer)
    state = opt.state_dict()["state"]
    for name in ALL:
        close(got[name], ref[name], f"{name} parameter")
        close(state[name]["exp_avg"], m[name], f"{name} exp_avg")
        close(state[name]["exp_avg_sq"], v2[name], f"{name} exp_avg_sq")
        assert state[name]["step"] == 5


def test_scheduler_changes_take_effect_and_grad_scale_scales():
    rng = np.random.default_rng(2)
    a, b = make(), make()
    oa, ob = AdamW(a, lr=0.01, weight_decay=0.0), AdamW(b, lr=0.05, weight_decay=0.0)
    ids = rng.integers(0, 50, (2, 6))
    dy = rng.standard_normal((2, 6, 16)).astype(np.float32)
    for layer in (a, b):
        layer(ids, use_layer_norm=True)
        layer.backward(dy)
    oa.param_groups[0]["lr"] = 0.05
    oa.step()
    ob.step()
    assert_bits_equal(raw(a), raw(b))
    # grad_scale: with a zero scale the moments stay zero after the first step
    c = make()
    oc = AdamW(c, weight_decay=0.0)
    c(ids, use_layer_norm=True)
    c.backward(dy)
    before = raw(c)
    oc.step(grad_scale=0.0)
    assert_bits_equal(raw(c), before)
    for entry in oc.state_dict()["state"].values():
        assert not entry["exp_avg"].any() and not entry["exp_avg_sq"].any()


def test_clip_grad_norm_sets_the_next_steps_scale():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 50, (2, 6))
    dy = rng.standard_normal((2, 6, 16)).astype(np.float32)
    a, b = make(), make()
    oa, ob = AdamW(a), AdamW(b)
    for layer in (a, b):
        layer(ids, use_layer_norm=True)
        layer.backward(dy)
    norm = oa.clip_grad_norm(0.5)
    assert norm == pytest.approx(ob.grad_norm())
    oa.step()
    ob.step(grad_scale=min(1.0, 0.5 / (norm + 1e-6)))
    assert_bits_equal(raw(a), raw(b))
    assert oa._clip_scale == 1.0  # consumed
    with pytest.raises(ValueError):
        oa.clip_grad_norm(-1.0)


# -- (c) lazy steps ----------------------------------------------------------------------

def test_lazy_steps_leave_untouched_rows_alone():
    rng = np.random.default_rng(4)
    layer = make(V=60, D=16, T=12)
    opt = AdamW(layer, lr=0.01, weight_decay=0.1, lazy=True)
    p0 = params(layer)
    first = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    second = np.array([[3, 4, 9, 10, 11], [12, 13, 14, 15, 16]])
    batch(layer, rng, ids=first)
    opt.step()
    p1, s1 = params(layer), opt.state_dict()["state"]
    opt.zero_grad()
    batch(layer, rng, ids=second)
    opt.step()
    p2, s2 = params(layer), opt.state_dict()["state"]
    tok = "token_embedding.weight"
    only_first = np.setdiff1d(np.unique(first), np.unique(second))
    never = np.setdiff1d(np.arange(60), np.union1d(first, second))
    # rows of the first batch only: as the first step left them, bit for bit
    for a, b in ((p2[tok], p1[tok]), (s2[tok]["exp_avg"], s1[tok]["exp_avg"]),
                 (s2[tok]["exp_avg_sq"], s1[tok]["exp_avg_sq"])):
        assert a[only_first].tobytes() == b[only_first].tobytes()
    # rows never touched: initial values (no decay either), zero moments
    assert p2[tok][never].tobytes() == p0[tok][never].tobytes()
    assert not s2[tok]["exp_avg"][never].any() and not s2[tok]["exp_avg_sq"][never].any()
    # touched rows moved
    assert (p2[tok][np.unique(second)] != p1[tok][np.unique(second)]).any(axis=1).all()
    assert (p1[tok][np.unique(first)] != p0[tok][np.unique(first)]).any(axis=1).all()
    # positions: rows 0..4 touched, rows 5.. never
    pos = "position_embedding.weight"
    assert p2[pos][5:].tobytes() == p0[pos][5:].tobytes()
    assert (p2[pos][:5] != p1[pos][:5]).any(axis=1).all()
    # the layer norm is dense
    for name in NORM:
        assert (p2[name] != p1[name]).all() and (p1[name] != p0[name]).all()
        assert s2[name]["step"] == 2


def test_lazy_first_step_equals_dense_on_the_touched_rows():
    rng = np.random.default_rng(5)
    dense, lazy = make(), make()
    od, ol = AdamW(dense, lr=0.01), AdamW(lazy, lr=0.01, lazy=True)
    ids = rng.integers(0, 50, (2, 6))
    dy = rng.standard_normal((2, 6, 16)).astype(np.float32)
    for layer in (dense, lazy):
        layer(ids, use_layer_norm=True)
        layer.backward(dy)
    od.step()
    ol.step()
    rows = np.unique(ids)
    d, lz = raw(dense), raw(lazy)
    assert d["token_embedding.weight"][rows].tobytes() == lz["token_embedding.weight"][rows].tobytes()
    for name in NORM:
        assert d[name].tobytes() == lz[name].tobytes()


# -- (d) 16-bit tables: master weights -----------------------------------------------------

@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_16_bit_tables_keep_float32_master_weights(dtype):
    rng = np.random.default_rng(6)
    layer = make(dtype=dtype)
    opt = AdamW(layer, lr=1e-3)
    t0 = layer.state_dict()["token_embedding.weight"]
    for step in range(3):
        opt.zero_grad()
        batch(layer, rng)
        opt.step()
        state = opt.state_dict()["state"]
        tables = layer.state_dict()
        for name in TABLES:
            master = state[name]["master"]
            assert master.dtype == np.float32 and master.shape == tables[name].shape
            assert tables[name].dtype == NUMPY16[dtype]
            # the table is its master rounded to nearest even
            assert master.astype(NUMPY16[dtype]).view(np.uint16).tobytes() == \
                tables[name].view(np.uint16).tobytes()
        for name in NORM:
            assert "master" not in state[name]
    master = opt.state_dict()["state"]["token_embedding.weight"]["master"]
    # small updates accumulate in the master although the table may not show them
    assert (master != layer.state_dict()["token_embedding.weight"].astype(np.float32)).any()
    assert (master != t0.astype(np.float32)).any()


def test_master_starts_from_the_table():
    rng = np.random.default_rng(7)
    layer = make(dtype="bfloat16")
    t0 = layer.state_dict()["token_embedding.weight"].astype(np.float64)
    opt = AdamW(layer, lr=1e-2, weight_decay=0.0)
    ids = batch(layer, rng)
    g = layer.grads()["token_embedding.weight"].astype(np.float64)
    opt.step()
    master = opt.state_dict()["state"]["token_embedding.weight"]["master"]
    np.testing.assert_allclose(master, t0 - 1e-2 * g / (np.abs(g) + 1e-8), rtol=1e-6, atol=1e-8)
    untouched = np.setdiff1d(np.arange(50), ids)
    assert np.array_equal(master[untouched], t0[untouched])


# -- (e) thread counts -------------------------------------------------------------------

@pytest.mark.parametrize("lazy", [False, True])
def test_thread_counts_give_identical_results(lazy):
    rng = np.random.default_rng(8)
    V, D, T = 5000, 256, 256
    one = make(V=V, D=D, T=T, num_threads=1)
    two = make(V=V, D=D, T=T, num_threads=2)
    two.load_state_dict(one.state_dict())
    opts = [AdamW(layer, lr=3e-3, weight_decay=0.1, lazy=lazy) for layer in (one, two)]
    for step in range(3):
        ids = rng.integers(0, V, (4, T))
        dy = rng.standard_normal((4, T, D)).astype(np.float32)
        for layer, opt in zip((one, two), opts):
            opt.zero_grad()
            layer(ids, use_layer_norm=True)
            layer.backward(dy)
            opt.step()
    assert opts[0].grad_norm_squared() == opts[1].grad_norm_squared()
    assert_bits_equal(raw(one), raw(two))
    assert_bits_equal(opts[0].state_dict(), opts[1].state_dict())


# -- (f) resuming ------------------------------------------------------------------------

def train(layer, opt, rng, steps):
    for _ in range(steps):
        opt.zero_grad()
        batch(layer, rng)
        opt.step()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("lazy", [False, True])
def test_state_dict_resumes_bit_for_bit(dtype, lazy):
    groups = [{"params": TABLES, "weight_decay": 0.1, "lazy": lazy}, {"params": NORM, "weight_decay": 0.0}]
    layer = make(dtype=dtype)
    opt = AdamW(layer, lr=3e-3, params=groups)
    train(layer, opt, np.random.default_rng(9), 3)
    saved_layer, saved_opt = layer.state_dict(), opt.state_dict()
    saved_opt["param_groups"][0]["lr"] = 2e-3  # the saved hyperparameters are restored too
    opt.param_groups[0]["lr"] = 2e-3
    train(layer, opt, np.random.default_rng(10), 3)

    copy_ = make(dtype=dtype, seed=99)
    copy_.load_state_dict(saved_layer)
    opt2 = AdamW(copy_, lr=3e-3, params=copy.deepcopy(groups))
    opt2.load_state_dict(saved_opt)
    assert opt2.param_groups[0]["lr"] == 2e-3
    train(copy_, opt2, np.random.default_rng(10), 3)
    assert_bits_equal(raw(copy_), raw(layer))
    assert_bits_equal(opt2.state_dict(), opt.state_dict())


def test_safetensors_with_optimizer_resumes_with_dropout_bit_for_bit(tmp_path):
    """The checkpoint carries the dropout stream's position: a layer created with the same
    configuration (seed included) draws the same masks after loading it."""
    layer = make(dropout=0.2, seed=5)
    opt = AdamW(layer, lr=3e-3)
    train(layer, opt, np.random.default_rng(21), 3)
    path = tmp_path / "ckpt.safetensors"
    layer.save_safetensors(path, optimizer=True)
    train(layer, opt, np.random.default_rng(22), 3)
    resumed = make(dropout=0.2, seed=5)
    resumed.load_safetensors(path)
    opt2 = AdamW(resumed, lr=3e-3)
    train(resumed, opt2, np.random.default_rng(22), 3)
    assert_bits_equal(raw(resumed), raw(layer))
    assert_bits_equal(opt2.state_dict(), opt.state_dict())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_safetensors_with_optimizer_resumes_bit_for_bit(dtype, tmp_path):
    layer = make(dtype=dtype)
    opt = AdamW(layer, lr=3e-3)
    train(layer, opt, np.random.default_rng(11), 2)
    path = tmp_path / "ckpt.safetensors"
    layer.save_safetensors(path, optimizer=True)
    plain = tmp_path / "plain.safetensors"
    layer.save_safetensors(plain)
    train(layer, opt, np.random.default_rng(12), 2)

    resumed = make(dtype=dtype, seed=77)
    resumed.load_safetensors(path)
    opt2 = AdamW(resumed, lr=3e-3)
    assert all(e["step"] == 2 for e in opt2.state_dict()["state"].values())
    train(resumed, opt2, np.random.default_rng(12), 2)
    assert_bits_equal(raw(resumed), raw(layer))
    assert_bits_equal(opt2.state_dict(), opt.state_dict())

    fresh = make(dtype=dtype, seed=77)
    fresh.load_safetensors(plain)  # without the flag: no optimizer state in the file
    assert AdamW(fresh).state_dict()["state"] == {}
    with pytest.raises(TypeError):
        layer.save_safetensors(tmp_path / "x.safetensors", optimizer=1)


def test_load_state_dict_forgets_state_the_dict_lacks_and_reset():
    rng = np.random.default_rng(13)
    layer = make()
    opt = AdamW(layer)
    empty = opt.state_dict()
    assert empty["state"] == {}
    train(layer, opt, rng, 2)
    opt.load_state_dict(empty)
    assert opt.state_dict()["state"] == {}
    train(layer, opt, rng, 1)
    assert all(e["step"] == 1 for e in opt.state_dict()["state"].values())
    opt.reset_state()
    assert opt.state_dict()["state"] == {}


# -- (g) bad inputs ----------------------------------------------------------------------

BAD_REALS = [-1e-3, float("nan"), float("inf"), -float("inf")]


def trained():
    rng = np.random.default_rng(14)
    layer = make()
    opt = AdamW(layer, params=[{"params": TABLES}, {"params": NORM, "weight_decay": 0.0}])
    train(layer, opt, rng, 2)
    batch(layer, rng)  # a pending gradient
    return layer, opt


@pytest.mark.parametrize("key,value", [(k, v) for k in ("lr", "eps", "weight_decay") for v in BAD_REALS]
                         + [("eps", 0.0)])
def test_bad_hyperparameters_raise_and_change_nothing(key, value):
    with pytest.raises(GPTEmbeddingValueError) as e:
        AdamW(make(), **{key: value})
    assert key.split("_")[0] in e.value.message
    layer, opt = trained()
    before = snapshot(layer, opt)
    opt.param_groups[1][key] = value  # the second group: the first must not be stepped either
    with pytest.raises(GPTEmbeddingValueError) as e:
        opt.step()
    assert e.value.status == 2 and key.split("_")[0] in e.value.message
    assert_bits_equal(snapshot(layer, opt), before)


@pytest.mark.parametrize("betas", [(-0.1, 0.999), (1.0, 0.999), (0.9, 1.0), (0.9, 1.5), (float("nan"), 0.9),
                                   (0.9, float("inf"))])
def test_bad_betas_raise_and_change_nothing(betas):
    with pytest.raises(GPTEmbeddingValueError, match="beta"):
        AdamW(make(), betas=betas)
    layer, opt = trained()
    before = snapshot(layer, opt)
    opt.param_groups[1]["betas"] = betas
    with pytest.raises(GPTEmbeddingValueError, match="beta"):
        opt.step()
    assert_bits_equal(snapshot(layer, opt), before)


@pytest.mark.parametrize("scale", BAD_REALS)
def test_bad_grad_scale_raises_and_changes_nothing(scale):
    layer, opt = trained()
    before = snapshot(layer, opt)
    with pytest.raises(GPTEmbeddingValueError, match="grad_scale"):
        opt.step(grad_scale=scale)
    assert_bits_equal(snapshot(layer, opt), before)


def test_wrong_types_raise():
    layer = make()
    for kw in ({"lr": "0.1"}, {"lr": None}, {"betas": 0.9}, {"betas": (0.9, 0.99, 0.9)}, {"lazy": 1},
               {"eps": True}):
        with pytest.raises(TypeError):
            AdamW(layer, **kw)
    with pytest.raises(TypeError):
        AdamW(layer, params={"params": ALL})
    with pytest.raises(TypeError):
        AdamW(object())
    with pytest.raises(ValueError):
        AdamW(layer, params=[{"params": ALL, "momentum": 0.9}])
    with pytest.raises(ValueError):
        AdamW(layer, params=[{"params": []}])


def test_step_without_a_pending_gradient_raises_and_changes_nothing():
    rng = np.random.default_rng(15)
    layer = make()
    opt = AdamW(layer)
    before = snapshot(layer, opt)
    with pytest.raises(GPTEmbeddingStateError, match="backward"):
        opt.step()
    assert_bits_equal(snapshot(layer, opt), before)
    layer(rng.integers(0, 50, (2, 6)))  # a forward alone is not enough
    with pytest.raises(GPTEmbeddingStateError):
        opt.step()
    batch(layer, rng)
    opt.step()
    opt.zero_grad()
    before = snapshot(layer, opt)
    with pytest.raises(GPTEmbeddingStateError) as e:
        opt.step()
    assert e.value.status == 7
    assert_bits_equal(snapshot(layer, opt), before)


def test_unknown_or_repeated_parameter_names_raise():
    layer = make()
    with pytest.raises(KeyError, match="wte.weight"):
        AdamW(layer, params=[{"params": ["wte.weight"]}])
    with pytest.raises(KeyError, match="position_embedding"):
        AdamW(make(position_encoding="none"), params=[{"params": ["position_embedding.weight"]}])
    with pytest.raises(ValueError):
        AdamW(layer, params=[{"params": TABLES}, {"params": ["token_embedding.weight"]}])
    with pytest.raises(ValueError):
        AdamW(layer, params=[{"params": TABLES + TABLES}])
    layer, opt = trained()
    before = snapshot(layer, opt)
    opt.param_groups[1]["params"] = ["layer_norm.weight", "nope"]
    with pytest.raises(KeyError):
        opt.step()
    opt.param_groups[1]["params"] = NORM
    assert_bits_equal(snapshot(layer, opt), before)


def bad_state_dicts(sd):
    """(description, mutated copy, expected exception) for every way load_state_dict refuses."""
    tok = "token_embedding.weight"
    cases = []

    def case(what, exc, fn):
        d = copy.deepcopy(sd)
        fn(d)
        cases.append((what, d, exc))
    case("unknown name", KeyError, lambda d: d["state"].__setitem__("wte.weight", d["state"][tok]))
    case("wrong shape", ValueError, lambda d: d["state"][tok].__setitem__("exp_avg", d["state"][tok]["exp_avg"][:-1]))
    case("transposed", ValueError, lambda d: d["state"][tok].__setitem__("exp_avg_sq",
                                                                         np.ascontiguousarray(d["state"][tok]["exp_avg_sq"].T)))
    case("float64", ValueError, lambda d: d["state"][tok].__setitem__("exp_avg", d["state"][tok]["exp_avg"].astype(np.float64)))
    case("list", TypeError, lambda d: d["state"][tok].__setitem__("exp_avg", d["state"][tok]["exp_avg"].tolist()))
    case("negative step", ValueError, lambda d: d["state"][tok].__setitem__("step", -1))
    case("float step", TypeError, lambda d: d["state"][tok].__setitem__("step", 2.0))
    case("missing moment", KeyError, lambda d: d["state"][tok].pop("exp_avg_sq"))
    case("master of a float32 table", ValueError, lambda d: d["state"][tok].__setitem__("master", d["state"][tok]["exp_avg"]))
    case("unknown key", KeyError, lambda d: d.__setitem__("extra", 1))
    case("group count", ValueError, lambda d: d["param_groups"].pop())
    case("group params", ValueError, lambda d: d["param_groups"][0].__setitem__("params", list(reversed(TABLES))))
    case("bad lr", GPTEmbeddingValueError, lambda d: d["param_groups"][1].__setitem__("lr", -1.0))
    case("bad betas", GPTEmbeddingValueError, lambda d: d["param_groups"][1].__setitem__("betas", (0.9, 1.0)))
    case("lr type", TypeError, lambda d: d["param_groups"][1].__setitem__("lr", "x"))
    return cases


def test_load_state_dict_validates_everything_before_writing():
    layer, opt = trained()
    sd = opt.state_dict()
    opt.step()  # so that the saved state differs from the current one
    for what, bad, exc in bad_state_dicts(sd):
        before = snapshot(layer, opt)
        groups = copy.deepcopy(opt.param_groups)
        with pytest.raises(exc):
            opt.load_state_dict(bad)
        assert_bits_equal(snapshot(layer, opt), before)
        assert opt.param_groups == groups, what


# -- (h) the gradient norm ---------------------------------------------------------------

def test_grad_norm_is_numpys_float64_norm():
    rng = np.random.default_rng(16)
    layer = make(V=300, D=48, T=32)
    opt = AdamW(layer)
    assert opt.grad_norm() == 0.0
    batch(layer, rng, B=3, T=20)
    batch(layer, rng, B=3, T=20)  # accumulated
    expected = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in layer.grads().values()))
    assert opt.grad_norm() == pytest.approx(expected, rel=1e-6)
    assert opt.grad_norm_squared() == pytest.approx(expected ** 2, rel=1e-6)
    opt.zero_grad()
    assert opt.grad_norm() == 0.0


# -- the guide's block (docs/training.md) ---------------------------------------------------

def test_readme_block_runs_as_written(tmp_path):
    import re
    import sys
    text = open(os.path.join(ROOT, "docs", "training.md")).read()
    section = re.search(r"<!-- BEGIN python-adamw.*?-->(.*?)<!-- END python-adamw -->", text, re.S)
    assert section, "no python-adamw section in docs/training.md"
    block = re.search(r"```python\n(.*?)```", section.group(1), re.S).group(1)
    script = tmp_path / "adamw.py"
    script.write_text(block)
    env = {k: v for k, v in os.environ.items() if k != "GPT_EMBEDDING_LIB"}
    env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["3"]
    assert (tmp_path / "ckpt.safetensors").exists()
