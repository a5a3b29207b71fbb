"""Real checkpoints at their own precision, against the golden vectors of
Tests/golden/precision (written by torch; README.md there gives the rules): every case is
opened with from_pretrained, read and mapped; the forward in float32, bfloat16 and float16
matches torch bit for bit where the README says exact, within its tolerance with layer
norm; backward from the case's grad_output dtype gives the float32 gradients; 4096
additions of bf16(1e-3) give 4.09375, not torch's bf16 0.5."""
import functools
import json
import shutil
import struct

import ml_dtypes
import numpy as np
import pytest

from gpt_embedding import GPTEmbedding
from precision_golden import (ABS, DTYPE, FORWARD_CASES, HALF_ULP, REL, assert_same_bits, assert_within, bits,
                              from_bits, read)

REDUCED = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


@functools.lru_cache(maxsize=None)
def case(name):
    return read(name)


def open_case(s, mmap=False, dtype=None):
    return GPTEmbedding.from_pretrained(s["checkpoint_path"], dtype=dtype, mmap=mmap,
                                        scale_embeddings=bool(s["scale_embeddings"]),
                                        layer_norm_eps=s["layer_norm_eps"])


def tables(layer):
    return [n for n in layer.parameter_names() if not n.startswith("layer_norm")]


def read_safetensors(path):
    """{name: (dtype, shape, raw bytes)} of a safetensors file, read with a few lines of
    Python (independent of the library and of the safetensors package)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], tuple(v["shape"]), data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items()}


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
@pytest.mark.parametrize("name", FORWARD_CASES)
def test_forward_matches_torch(name, mmap):
    s, t = case(name)
    layer = open_case(s, mmap)
    B, T, D, V = s["batch"], s["seq"], s["embed_dim"], s["vocab_size"]
    dt = DTYPE[s["weight_dtype"]]
    # The configuration comes from the tensors.
    assert (layer.vocab_size, layer.embed_dim, layer.position_encoding) == (V, D, s["position_encoding"])
    assert layer.max_seq_len == s["max_seq_len"]
    assert layer.weight_dtype == dt and not layer.training and layer.dropout == 0.0
    for n in tables(layer):
        assert layer.parameter_dtype(n) == np.dtype(ml_dtypes.bfloat16 if dt == "bfloat16" else dt)
        assert layer.is_mapped(n) == mmap, n
    # The layer norm vectors are mapped when the file has them (F32, kept), else made (1, 0).
    file_has_norm = bool(s["layer_norm"])
    assert layer.is_mapped("layer_norm.weight") == layer.is_mapped("layer_norm.bias") == (mmap and file_has_norm)

    ids = t["ids"].reshape(B, T)
    ln = bool(s["layer_norm"])
    outs = {}
    for out_dtype in ("float32", "bfloat16", "float16"):
        for id_type in (np.int64, np.int32):  # forward[_typed] and forward[_typed]_i64
            out = layer(ids.astype(id_type), use_layer_norm=ln, start_position=s["start_position"],
                        out_dtype=out_dtype)
            assert out.shape == (B, T, D) and out.dtype.name == out_dtype
            if out_dtype in outs:
                assert np.array_equal(bits(out), bits(outs[out_dtype]))
            outs[out_dtype] = out
    if not ln:
        # Exact: one correctly rounded addition, then one rounding to nearest even.
        assert_same_bits(t["out_f32_bits"], outs["float32"], "float32", f"{name} float32")
        assert_same_bits(t["out_bf16_bits"], outs["bfloat16"], "bfloat16", f"{name} bfloat16")
        assert_same_bits(t["out_f16_bits"], outs["float16"], "float16", f"{name} float16")
    else:
        ref = t["out_f32"]
        assert_within(outs["float32"], ref, REL, ABS, f"{name} float32")
        for out_dtype, np_type in REDUCED.items():
            assert_within(outs[out_dtype].astype(np.float32), ref, HALF_ULP[out_dtype] + REL, ABS,
                          f"{name} {out_dtype}")
            # The reduced output is the library's own float32 result rounded once, to
            # nearest even (ml_dtypes' and numpy's casts as the independent reference).
            assert np.array_equal(bits(outs[out_dtype]), bits(outs["float32"].astype(np_type)))


@pytest.mark.parametrize("name", FORWARD_CASES)
def test_backward_from_the_case_dtype_gives_float32_gradients(name):
    s, t = case(name)
    layer = open_case(s).train()
    B, T, D = s["batch"], s["seq"], s["embed_dim"]
    dt = DTYPE[s["weight_dtype"]]
    ids = t["ids"].reshape(B, T)
    ln = bool(s["layer_norm"])
    g = from_bits(t[f"grad_output_{s['weight_dtype']}_bits"], dt).reshape(B, T, D)
    assert g.dtype.name == dt
    layer(ids, use_layer_norm=ln, start_position=s["start_position"], out_dtype=dt)
    layer.backward(g)
    grads = layer.grads()
    assert all(v.dtype == np.float32 for v in grads.values())
    expected = {"token_embedding.weight": "grad_wte", "position_embedding.weight": "grad_wpe",
                "layer_norm.weight": "grad_ln_weight", "layer_norm.bias": "grad_ln_bias"}
    for key, field in expected.items():
        if field in t:
            assert_within(grads[key], t[field], REL, ABS, f"{name} {key}")
        elif key in grads:
            assert not grads[key].any(), key  # no layer norm, no gradient there
    # The library widens 16-bit gradients exactly: the same bits as a float32 backward of
    # the widened values.
    layer.zero_grad()
    layer(ids, use_layer_norm=ln, start_position=s["start_position"])
    layer.backward(g.astype(np.float32))
    for key, value in layer.grads().items():
        assert np.array_equal(bits(value), bits(grads[key])), key


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_4096_bf16_gradients_accumulate_in_float32(mmap):
    s, t = case("accumulate_4096")
    layer = GPTEmbedding.from_pretrained(s["checkpoint_path"], mmap=mmap).train()
    assert layer.weight_dtype == "bfloat16" and layer.position_encoding == "none"
    ids = t["ids"].reshape(1, 4096)
    out = layer(ids, out_dtype="bfloat16")
    g = from_bits(t["grad_output_bf16_bits"], "bfloat16").reshape(out.shape)
    layer.backward(g)
    gw = layer.grads()["token_embedding.weight"]
    assert_same_bits(t["grad_wte_f32_bits"], gw, "float32", "accumulate_4096")
    assert np.all(gw[3] == 4.09375) and not np.delete(gw, 3, axis=0).any()
    assert t["torch_bf16_grad"][0] == 0.5  # torch's bf16 accumulation stalls; the library must not


def test_sharded_folder_and_model_safetensors_folder(tmp_path):
    s, _ = case("sharded")
    sharded = GPTEmbedding.from_pretrained(s["checkpoint_path"])
    assert (sharded.vocab_size, sharded.embed_dim, sharded.max_seq_len) == (96, 16, 24)
    # A folder holding model.safetensors opens like the file itself.
    s, _ = case("bf16_learned")
    shutil.copy(s["checkpoint_path"], tmp_path / "model.safetensors")
    a = GPTEmbedding.from_pretrained(tmp_path).state_dict()
    b = GPTEmbedding.from_pretrained(s["checkpoint_path"]).state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(bits(a[k]), bits(b[k])) for k in a)


def test_state_dict_holds_the_checkpoint_bits():
    for name in ("bf16_learned", "f16_learned_rounding", "f32_reference", "bf16_scaled_ln"):
        s, _ = case(name)
        file = read_safetensors(s["checkpoint_path"])
        for mmap in (False, True):
            state = open_case(s, mmap).state_dict()
            for key, tensor in (("token_embedding.weight", "transformer.wte.weight"),
                                ("position_embedding.weight", "transformer.wpe.weight"),
                                ("layer_norm.weight", "layer_norm.weight"), ("layer_norm.bias", "layer_norm.bias")):
                if tensor in file:
                    dtype, shape, raw = file[tensor]
                    assert state[key].shape == shape and state[key].tobytes() == raw, (name, key)
                    assert state[key].dtype.name == {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]


def test_dtype_converts_the_tables_when_opening():
    # Widening is exact: a bf16 checkpoint opened as float32 gives the same outputs.
    s, t = case("bf16_learned")
    wide = GPTEmbedding.from_pretrained(s["checkpoint_path"], dtype="float32", mmap=True)
    assert wide.weight_dtype == "float32" and not wide.is_mapped("token_embedding.weight")  # converted: read
    out = wide(t["ids"].reshape(s["batch"], s["seq"]))
    assert_same_bits(t["out_f32_bits"], out, "float32", "bf16 checkpoint as float32")
    # Narrowing rounds to nearest even: as ml_dtypes' and numpy's casts of the file's values.
    s, _ = case("f32_reference")
    _, shape, raw = read_safetensors(s["checkpoint_path"])["transformer.wte.weight"]
    wte = np.frombuffer(raw, "<f4").reshape(shape)
    for dtype, np_type in ((ml_dtypes.bfloat16, ml_dtypes.bfloat16), (np.float16, np.float16)):
        narrow = GPTEmbedding.from_pretrained(s["checkpoint_path"], dtype=dtype)
        got = narrow.state_dict()["token_embedding.weight"]
        assert got.dtype == np.dtype(np_type)
        assert np.array_equal(bits(got), bits(wte.astype(np_type)))
