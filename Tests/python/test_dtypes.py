"""The Python API of reduced-precision tables and outputs: weight_dtype on configs and
layers, out_dtype and out= per call, bf16/f16 grad_output, state dicts and views in the
stored dtype, rounding to nearest even (against ml_dtypes' and numpy's own casts),
from_pretrained's options and errors, mapped checkpoints that training never writes back,
and bf16 files the official safetensors package reads."""
import hashlib
import os
import shutil
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import gpt_embedding
from gpt_embedding import (GPTEmbedding, GPTEmbeddingConfig, GPTEmbeddingIOError, GPTEmbeddingStateError,
                           GPTEmbeddingValueError, TokenEmbedding)
from precision_golden import PRECISION_DIR, bits

BF16 = np.dtype(ml_dtypes.bfloat16)
NUMPY = {"float32": np.dtype(np.float32), "bfloat16": BF16, "float16": np.dtype(np.float16)}
SPELLINGS = {
    "float32": ["float32", np.float32, np.dtype(np.float32)],
    "bfloat16": ["bfloat16", ml_dtypes.bfloat16, BF16],
    "float16": ["float16", np.float16, np.dtype(np.float16)],
}
BAD_DTYPES = ["bf16", "fp16", "float64", "int8", np.float64, np.int32, np.dtype(">f4"), 3, object()]
CHECKPOINT = os.path.join(PRECISION_DIR, "bf16_learned.safetensors")
TABLES = ("token_embedding.weight", "position_embedding.weight")


def make(weight_dtype="float32", **kw):
    return GPTEmbedding(40, 16, 8, 0.0, weight_dtype=weight_dtype, seed=3, **kw)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# -- configuration -------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SPELLINGS))
def test_weight_dtype_spellings(name):
    for spelling in SPELLINGS[name]:
        config = GPTEmbeddingConfig(40, 16, 8, weight_dtype=spelling)
        assert config.weight_dtype == name and config.to_dict()["weight_dtype"] == name
        assert f"weight_dtype={name!r}" in repr(config)
        layer = GPTEmbedding(config=config)
        assert layer.weight_dtype == name == layer.config.weight_dtype
        assert GPTEmbedding(40, 16, 8, weight_dtype=spelling).weight_dtype == name
    preset = GPTEmbeddingConfig.from_preset("gpt2", weight_dtype=SPELLINGS[name][1])
    assert preset.weight_dtype == name and preset.embed_dim == 768
    assert GPTEmbeddingConfig().weight_dtype == "float32"
    assert GPTEmbeddingConfig().replace(weight_dtype=SPELLINGS[name][2]).weight_dtype == name


def test_from_preset_layer_with_bf16_tables_is_half_the_size():
    f32 = GPTEmbedding.from_preset("gpt2")
    bf16 = GPTEmbedding.from_preset("gpt2", weight_dtype="bfloat16")
    assert bf16.weight_dtype == "bfloat16" and bf16.num_parameters() == f32.num_parameters() == 39_385_344
    tables = 2 * (50257 + 1024) * 768
    assert abs(f32.memory_bytes() - bf16.memory_bytes() - tables) < 1 << 22


@pytest.mark.parametrize("bad", BAD_DTYPES, ids=repr)
def test_unknown_weight_dtypes_raise_value_error_naming_them(bad):
    with pytest.raises(ValueError, match=r"weight_dtype = .* is not a supported dtype: expected \"float32\", "
                                         r"\"bfloat16\" or \"float16\""):
        GPTEmbeddingConfig(weight_dtype=bad)
    with pytest.raises(ValueError, match="weight_dtype"):
        GPTEmbedding(10, 8, 4, weight_dtype=bad)
    with pytest.raises(ValueError, match=r"out_dtype = .* is not a supported dtype"):
        make().eval()([[1]], out_dtype=bad)
    with pytest.raises(ValueError, match=r"dtype = .* is not a supported dtype"):
        GPTEmbedding.from_pretrained(CHECKPOINT, dtype=bad)
    if isinstance(bad, str):
        with pytest.raises(ValueError, match=repr(bad)):
            GPTEmbeddingConfig(weight_dtype=bad)


# -- parameters ----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SPELLINGS))
def test_state_dict_views_and_grads_dtypes(name):
    layer = make(name)
    state = layer.state_dict()
    for key, value in state.items():
        want = NUMPY[name] if key in TABLES else np.dtype(np.float32)
        assert value.dtype == want and layer.parameter_dtype(key) == want
        view = layer.parameter(key)
        assert view.dtype == want and view.shape == value.shape
        assert np.array_equal(bits(view), bits(value))
        assert not layer.is_mapped(key)
    assert all(g.dtype == np.float32 for g in layer.grads().values())
    # A copy is a copy: changing it changes nothing in the layer.
    state["token_embedding.weight"][0, 0] = 5
    assert layer.state_dict()["token_embedding.weight"][0, 0] != 5
    # A view is the layer's memory: a write through it changes the forward.
    view = layer.parameter("token_embedding.weight")
    view[1] = np.full(16, 0.5, NUMPY[name])
    np.testing.assert_array_equal(layer.eval()([[1]], out_dtype="float32")[0, 0],
                                  layer.state_dict()["position_embedding.weight"][0].astype(np.float32) + 2.0)
    with pytest.raises(GPTEmbeddingStateError, match="view"):
        layer.close()
    del view
    # Token embedding components see the same dtype through their weight view.
    assert TokenEmbedding(10, 8).weight.dtype == np.float32


def rounding_inputs():
    """float32 values that stress round-to-nearest-even in bf16 and f16: exact ties with an
    even and an odd kept part, values just beside ties, overflow, subnormals, signed zeros,
    and random values of many magnitudes."""
    rng = np.random.default_rng(11)
    upper = rng.integers(0, 1 << 16, 200, dtype=np.uint32)
    ties = (upper << 16) | 0x8000  # bf16 ties, half of them odd
    beside = np.concatenate([ties - 1, ties + 1])
    f16_ties = np.array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504 + 16, -(65504 + 15), 2 ** -25, 3 * 2 ** -25,
                         2 ** -24, 6e-8, -0.0, 0.0, 1e5, -1e-9], np.float32)
    random = (rng.standard_normal(400) * np.exp2(rng.integers(-30, 30, 400))).astype(np.float32)
    values = np.concatenate([ties.view(np.float32), beside.view(np.float32), f16_ties, random])
    values = values[np.isfinite(values) & (np.abs(values) < 1e38)]  # no overflow in bf16 either
    return values[:40 * 16].reshape(40, 16)


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
@np.errstate(over="ignore")  # values past 65504 become inf in float16, as intended
def test_load_state_dict_rounds_to_nearest_even_like_ml_dtypes(name):
    layer = make(name)
    x = rounding_inputs()
    state = layer.state_dict()
    for value, reference in ((x, x),                                        # float32
                             (x.astype(np.float64) * (1 + 2 ** -40), None),  # float64 -> float32 (numpy) first
                             (x.astype(BF16), None), (x.astype(np.float16), None)):  # widened exactly
        ref = (reference if reference is not None else value.astype(np.float32)).astype(NUMPY[name])
        state["token_embedding.weight"] = value
        layer.load_state_dict(state)
        got = layer.state_dict()["token_embedding.weight"]
        assert got.dtype == NUMPY[name]
        assert np.array_equal(bits(got), bits(ref)), value.dtype
    # Values already in the table's dtype are stored exactly.
    exact = x.astype(NUMPY[name])
    state["token_embedding.weight"] = exact
    layer.load_state_dict(state)
    assert np.array_equal(bits(layer.state_dict()["token_embedding.weight"]), bits(exact))


@np.errstate(over="ignore")
def test_float32_layers_take_every_floating_dtype():
    layer = make()
    x = rounding_inputs()
    for value in (x.astype(np.float64), x.astype(BF16), x.astype(np.float16), x):
        layer.load_state_dict({"token_embedding.weight": value}, strict=False)
        assert np.array_equal(layer.state_dict()["token_embedding.weight"], value.astype(np.float32))
    with pytest.raises(ValueError, match="real numbers"):
        layer.load_state_dict({"token_embedding.weight": x.astype(np.complex64)}, strict=False)


# -- forward and backward ------------------------------------------------------------

@pytest.mark.parametrize("table", list(SPELLINGS))
def test_out_dtype_is_the_float32_result_rounded_once(table):
    layer = make(table, scale_embeddings=True).eval()
    ids = np.array([[1, 5, 9], [2, 2, 39]])
    for ln in (False, True):
        f32 = layer(ids, use_layer_norm=ln)
        assert f32.dtype == np.float32
        for name, spellings in SPELLINGS.items():
            for spelling in spellings:
                out = layer(ids, use_layer_norm=ln, out_dtype=spelling)
                assert out.dtype == NUMPY[name] and out.shape == (2, 3, 16)
                assert np.array_equal(bits(out), bits(f32.astype(NUMPY[name])))
                # __call__ and forward take it positionally too
                assert np.array_equal(bits(layer.forward(ids, ln, 0, None, None, spelling)), bits(out))


def test_out_argument_dtype_decides_or_must_match():
    layer = make("bfloat16").eval()
    ids = [[1, 2]]
    ref = layer(ids)
    for name, dtype in NUMPY.items():
        out = np.full((1, 2, 16), 7, dtype)
        assert layer(ids, out=out) is out
        assert np.array_equal(bits(out), bits(ref.astype(dtype)))
        assert layer(ids, out=out, out_dtype=name) is out
        other = "float16" if name != "float16" else "bfloat16"
        with pytest.raises(ValueError, match=f"out must be a writeable, C-contiguous {other} array, got a {name}"):
            layer(ids, out=out, out_dtype=other)
        with pytest.raises(ValueError, match=r"out must have shape \[1, 2, 16\], got \[1, 2, 15\]"):
            layer(ids, out=np.empty((1, 2, 15), dtype))
        with pytest.raises(ValueError, match="C-contiguous"):
            layer(ids, out=np.empty((1, 2, 32), dtype)[:, :, ::2])
        frozen = np.empty((1, 2, 16), dtype)
        frozen.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            layer(ids, out=frozen)
    for bad in (np.float64, np.int16, np.uint16):
        with pytest.raises(ValueError, match=f"float32, bfloat16 or float16 array, got {np.dtype(bad)}"):
            layer(ids, out=np.empty((1, 2, 16), bad))
    # A failed typed call writes nothing.
    out = np.full((1, 2, 16), 3, BF16)
    with pytest.raises(IndexError, match="token id 40"):
        layer([[1, 40]], out=out)
    assert np.all(out == 3)


@pytest.mark.parametrize("grad_dtype", ["bfloat16", "float16"])
def test_backward_takes_16_bit_gradients_widened_exactly(grad_dtype):
    a, b = make("bfloat16"), make("bfloat16")
    ids = np.array([[1, 2, 2, 7]])
    g = np.random.default_rng(2).standard_normal((1, 4, 16)).astype(NUMPY[grad_dtype])
    a(ids)
    a.backward(g)
    b(ids)
    b.backward(g.astype(np.float32))
    for key, value in a.grads().items():
        assert value.dtype == np.float32 and np.array_equal(bits(value), bits(b.grads()[key]))
    assert a.grads()["token_embedding.weight"][2].any()
    a(ids)
    with pytest.raises(ValueError, match=r"grad_output must be float32, bfloat16 or float16, got float64"):
        a.backward(g.astype(np.float64))
    with pytest.raises(ValueError, match="got int32"):
        a.backward(g.astype(np.int32))
    with pytest.raises(ValueError, match=r"grad_output must have shape \[1, 4, 16\]"):
        a.backward(g[:, :3])
    strided = np.zeros((1, 4, 32), NUMPY[grad_dtype])[:, :, ::2]
    a.backward(strided)  # copied, dtype kept


@pytest.mark.parametrize("grad_dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("dim,layer_norm,dropout,threads", [
    (29, False, 0.0, 1), (29, True, 0.1, 2), (64, False, 0.1, 2), (64, True, 0.0, 2), (64, True, 0.1, 1)])
def test_16_bit_gradients_read_in_place_equal_the_widened_float32_ones(grad_dtype, dim, layer_norm, dropout, threads):
    """The backward reads a 16-bit grad_output where it is (no float32 copy): every path
    (the owned scatter and the column scatter without the layer norm, both layer-norm
    phases, odd widths with tail columns, one and two workers) gives the bits of the same
    gradient widened to float32 first."""
    rng = np.random.default_rng(dim)
    B, T = 8, 1024  # 8 x 1024 x 64 floats: large enough for two workers
    ids = rng.integers(0, 500, size=(B, T))
    ids[:, ::7] = 3  # a shared id across every worker's positions
    g = rng.standard_normal((B, T, dim)).astype(NUMPY[grad_dtype])
    # Explicit positions crowded into one range make the owned plan fall back to columns.
    crowded = np.minimum(np.tile(np.arange(T), (B, 1)), 40)
    for positions in (None, crowded):
        layers = [GPTEmbedding(500, dim, T, dropout, seed=5, num_threads=threads) for _ in range(2)]
        for layer, grad in zip(layers, (g, g.astype(np.float32))):
            for _ in range(2):
                layer(ids, use_layer_norm=layer_norm, position_ids=positions)
                layer.backward(grad)
        ga, gb = layers[0].grads(), layers[1].grads()
        assert ga.keys() == gb.keys()
        for key in ga:
            assert np.array_equal(bits(ga[key]), bits(gb[key])), (key, positions is None)
        assert ga["token_embedding.weight"][3].any()



# -- checkpoints ---------------------------------------------------------------------

def test_mapped_training_never_writes_the_checkpoint(tmp_path):
    path = tmp_path / "model.safetensors"
    shutil.copy(CHECKPOINT, path)
    digest = sha256(path)
    layer = GPTEmbedding.from_pretrained(path, mmap=True).train()
    assert all(layer.is_mapped(k) for k in TABLES)
    original = layer.state_dict()
    ids = np.array([[5, 7, 11, 5], [1, 2, 3, 5]])
    for step in range(3):
        out = layer(ids, out_dtype="bfloat16")
        layer.backward(np.ones_like(out))
        # SGD through the zero-copy bf16 views (numpy casts the float32 update back).
        for _, param, grad in layer.named_parameters():
            param[...] = (param.astype(np.float32) - 0.25 * grad).astype(param.dtype)
        del param, grad  # views: close() refuses while they exist
        layer.zero_grad()
    state = layer.state_dict()
    state["position_embedding.weight"] = np.zeros((32, 24), np.float32)
    layer.load_state_dict(state)
    trained = layer.state_dict()
    assert not np.array_equal(bits(trained["token_embedding.weight"]), bits(original["token_embedding.weight"]))
    assert not trained["position_embedding.weight"].any()
    assert all(layer.is_mapped(k) for k in TABLES)  # the writes went to private pages of the mapping
    assert sha256(path) == digest
    # The file, read again (and mapped again), still holds the original values.
    for mmap in (False, True):
        again = GPTEmbedding.from_pretrained(path, mmap=mmap).state_dict()
        assert all(np.array_equal(bits(again[k]), bits(original[k])) for k in original)
    layer.close()
    assert sha256(path) == digest


def test_from_pretrained_overrides_reach_the_layer():
    path = os.path.join(PRECISION_DIR, "f16_none_extremes.safetensors")
    plain = GPTEmbedding.from_pretrained(path)
    assert plain.position_encoding == "none" and plain.max_seq_len == 0 and plain.config.padding_idx is None
    layer = GPTEmbedding.from_pretrained(path, dtype="bfloat16", use_sinusoidal=True, max_seq_len=50, seed=5,
                                         dropout=0.25, num_threads=1, padding_idx=3, layer_norm_eps=1e-3,
                                         scale_embeddings=True)
    c = layer.config
    assert (c.position_encoding, c.max_seq_len, c.seed, c.dropout, c.num_threads, c.padding_idx) == \
        ("sinusoidal", 50, 5, 0.25, 1, 3)
    assert (c.layer_norm_eps, c.scale_embeddings, c.weight_dtype) == (1e-3, True, "bfloat16")
    assert isinstance(layer, GPTEmbedding) and not layer.training and "sinusoidal" in repr(layer)
    assert GPTEmbedding.from_pretrained(path, position_encoding="sinusoidal").use_sinusoidal
    learned = GPTEmbedding.from_pretrained(CHECKPOINT, position_encoding="none")
    assert learned.parameter_names() == ["token_embedding.weight", "layer_norm.weight", "layer_norm.bias"]

    class Sub(GPTEmbedding):
        pass
    sub = Sub.from_pretrained(CHECKPOINT)
    assert type(sub) is Sub and sub.train() is sub
    sub.close()
    assert sub.closed


def test_from_pretrained_errors(tmp_path):
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(OSError, match="missing.safetensors") as info:
        GPTEmbedding.from_pretrained(missing)
    assert isinstance(info.value, GPTEmbeddingIOError) and info.value.status == 11
    with pytest.raises(OSError):
        GPTEmbedding.from_pretrained(tmp_path)  # a folder without model.safetensors
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(open(CHECKPOINT, "rb").read()[:-100])
    with pytest.raises(ValueError, match="truncated.safetensors") as bad:
        GPTEmbedding.from_pretrained(truncated, mmap=True)
    assert isinstance(bad.value, GPTEmbeddingValueError) and bad.value.status_name == "GPT_EMBEDDING_ERROR_BAD_FILE"
    with pytest.raises(TypeError, match="'bogus'"):
        GPTEmbedding.from_pretrained(CHECKPOINT, bogus=1)
    with pytest.raises(TypeError, match="'init_std'"):
        GPTEmbedding.from_pretrained(CHECKPOINT, init_std=0.1)  # a checkpoint is not initialised
    with pytest.raises(TypeError, match="mmap"):
        GPTEmbedding.from_pretrained(CHECKPOINT, mmap="yes")
    with pytest.raises(ValueError, match=r"dropout = 2.0: must be in \[0, 1\]"):
        GPTEmbedding.from_pretrained(CHECKPOINT, dropout=2)
    with pytest.raises(ValueError, match="position_encoding = 'rotary'"):
        GPTEmbedding.from_pretrained(CHECKPOINT, position_encoding="rotary")
    with pytest.raises(ValueError, match="contradicts"):
        GPTEmbedding.from_pretrained(CHECKPOINT, use_sinusoidal=True, position_encoding="none")
    with pytest.raises(ValueError, match="no position table"):
        GPTEmbedding.from_pretrained(os.path.join(PRECISION_DIR, "f16_none_extremes.safetensors"),
                                     position_encoding="learned")
    with pytest.raises(ValueError, match="padding_idx = -2"):
        GPTEmbedding.from_pretrained(CHECKPOINT, padding_idx=-2)
    with pytest.raises(ValueError, match="padding_idx = 97"):
        GPTEmbedding.from_pretrained(CHECKPOINT, padding_idx=97)
    with pytest.raises(TypeError, match="num_threads"):
        GPTEmbedding.from_pretrained(CHECKPOINT, num_threads=1.5)
    with pytest.raises(ValueError, match="NUL"):
        GPTEmbedding.from_pretrained(CHECKPOINT + "\0.txt")


def test_bf16_files_round_trip_through_the_official_safetensors_package(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="pip install safetensors")
    layer = make("bfloat16")
    state = layer.state_dict()
    for gpt2_names, keys in ((False, {k: k for k in state}),
                             (True, {"token_embedding.weight": "wte.weight", "position_embedding.weight": "wpe.weight",
                                     "layer_norm.weight": "layer_norm.weight", "layer_norm.bias": "layer_norm.bias"})):
        path = tmp_path / f"bf16_{gpt2_names}.safetensors"
        layer.save_safetensors(path, gpt2_names=gpt2_names)
        loaded = safetensors_numpy.load_file(str(path))
        for key, value in state.items():
            got = loaded[keys[key]]
            assert got.dtype == value.dtype and got.shape == value.shape, key
            assert np.array_equal(bits(got), bits(value)), key
        assert loaded[keys["token_embedding.weight"]].dtype == BF16
        reopened = GPTEmbedding.from_pretrained(path, scale_embeddings=True)
        assert reopened.weight_dtype == "bfloat16"
        assert all(np.array_equal(bits(reopened.state_dict()[k]), bits(v)) for k, v in state.items())
    # And a bf16 file written by the package opens at its precision.
    path = tmp_path / "package.safetensors"
    wte = np.random.default_rng(1).standard_normal((30, 8)).astype(BF16)
    safetensors_numpy.save_file({"wte.weight": wte}, str(path))
    opened = GPTEmbedding.from_pretrained(path, mmap=True)
    assert opened.weight_dtype == "bfloat16" and opened.position_encoding == "none"
    assert np.array_equal(bits(opened.parameter("token_embedding.weight")), bits(wte))


def test_ml_dtypes_is_imported_only_for_bfloat16(tmp_path):
    """A float32/float16 program never needs ml_dtypes (the package imports it on first use)."""
    code = ("import sys, numpy as np, gpt_embedding as g\n"
            "layer = g.GPTEmbedding(10, 8, 4, weight_dtype='float16')\n"
            "layer.eval()([[1, 2]], out_dtype=np.float16); layer.state_dict()\n"
            "print('ml_dtypes' in sys.modules)\n"
            "layer([[1]], out_dtype='bfloat16')\n"
            "print('ml_dtypes' in sys.modules)\n")
    package = os.path.dirname(os.path.dirname(os.path.abspath(gpt_embedding.__file__)))
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": package}, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]
