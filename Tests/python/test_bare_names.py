"""Bare safetensors files and ``from_pretrained(path, family=...)`` (issue 19 item 7).

A file without config.json holding a family's token-table name (written with the official
safetensors package by Tests/fixtures/generate_bare_names.py) opens as a plain lookup equal
to its rows bit for bit; ``family=`` applies the family's input stage without config.json
and reproduces transformers' block-0 input of every family fixture from its safetensors
alone; two candidate tables are refused naming both; an unknown family lists the
supported ones. References are read here from the files with json and numpy, not through
the library."""
import ctypes
import json
import os
import shutil
import struct

import numpy as np
import pytest

from gpt_embedding import GPTEmbedding, GPTEmbeddingError, _lib

from test_families import FAMILIES, CASES, SUPPORTED, read_expected, widened_bits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BARE = os.path.join(ROOT, "Tests", "fixtures", "bare_names")
NAMES = sorted(f[:-len(".expected.txt")] for f in os.listdir(BARE) if f.endswith(".expected.txt"))
REFUSED = [line.rstrip("\n").split("\t") for line in open(os.path.join(BARE, "EXPECTED")) if not line.startswith("#")]
NUMPY = {"F32": np.float32, "F16": np.float16}


def tensors(path):
    """Every F32 / F16 tensor of a safetensors file, read with json and numpy."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] not in NUMPY:
            continue
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(blob[8 + n + lo:8 + n + hi], dtype=NUMPY[t["dtype"]]).reshape(t["shape"])
    return out


def without_config(folder, tmp_path):
    """A copy of folder's safetensors files (single or sharded) without config.json."""
    dst = tmp_path / "checkpoint"
    dst.mkdir()
    for name in os.listdir(folder):
        if name.endswith(".safetensors") or name == "model.safetensors.index.json":
            shutil.copy(os.path.join(folder, name), dst / name)
    return str(dst)


def test_fixtures_cover_the_name_sets():
    assert len(NAMES) >= 7 and len(REFUSED) >= 2
    names = {n for name in NAMES for n in tensors(os.path.join(BARE, name + ".safetensors"))}
    for n in ("model.embed_tokens.weight", "transformer.word_embeddings.weight", "gpt_neox.embed_in.weight",
              "model.decoder.embed_tokens.weight", "model.language_model.embed_tokens.weight", "word_embeddings.weight"):
        assert n in names


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
@pytest.mark.parametrize("name", NAMES)
def test_bare_file_is_a_plain_lookup_of_its_table(name, mmap):
    e = read_expected(os.path.join(BARE, name + ".expected.txt"))
    path = os.path.join(BARE, name + ".safetensors")
    layer = GPTEmbedding.from_pretrained(path, mmap=mmap)
    assert layer.position_encoding == "none" and not layer.config.layer_norm and layer.config.token_scale is None
    assert layer.weight_dtype == e["dtype"] and layer.embed_dim == e["hidden_size"]
    ids = e["ids"].reshape(e["batch"], e["seq"])
    out = layer(ids, out_dtype=e["dtype"])
    np.testing.assert_array_equal(widened_bits(out), e["hidden_f32_bits"].reshape(out.shape))
    # The same rows as the file holds, read independently.
    table = [t for k, t in tensors(path).items() if t.ndim == 2 and t.shape[0] == layer.vocab_size
             and ("embed" in k or "word" in k) and k != "embed_out.weight"]  # GPT-NeoX's head is not a table
    assert len(table) == 1
    np.testing.assert_array_equal(widened_bits(out[0]), widened_bits(table[0][ids[0]]))


@pytest.mark.parametrize("entry", REFUSED, ids=[r[0] for r in REFUSED])
def test_two_candidate_tables_are_refused_naming_both(entry):
    with pytest.raises(ValueError) as info:
        GPTEmbedding.from_pretrained(os.path.join(BARE, entry[0]))
    assert isinstance(info.value, GPTEmbeddingError) and info.value.status == 12
    for text in entry[2:]:
        assert text in str(info.value), (text, str(info.value))


def test_family_chooses_between_candidates():
    layer = GPTEmbedding.from_pretrained(os.path.join(BARE, "two_candidates.safetensors"), family="llama")
    assert layer.vocab_size == 11
    with pytest.raises(ValueError, match="transformer.wpe.weight"):  # gpt2 needs its position table
        GPTEmbedding.from_pretrained(os.path.join(BARE, "two_candidates.safetensors"), family="gpt2")


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
@pytest.mark.parametrize("name,file", CASES, ids=[f"{n}/{f}" for n, f in CASES])
def test_family_reproduces_the_folder_with_config_json(name, file, mmap, tmp_path):
    e = read_expected(os.path.join(FAMILIES, name, file))
    b, s, d = e["batch"], e["seq"], e["hidden_size"]
    folder = without_config(os.path.join(FAMILIES, name), tmp_path)
    layer = GPTEmbedding.from_pretrained(folder, mmap=mmap, family=e["model_type"])
    reference = GPTEmbedding.from_pretrained(os.path.join(FAMILIES, name))
    for key in ("token_scale", "position_offset", "layer_norm", "position_encoding", "max_seq_len"):
        assert getattr(layer.config, key) == getattr(reference.config, key), key
    assert layer.dropout == 0.0 and layer.config.layer_norm_eps == np.float32(1e-5)
    ids = e["ids"].reshape(b, s)
    positions = e["positions"].reshape(b, s) if "positions" in e else None
    out = layer(ids, position_ids=positions, out_dtype=e["dtype"])
    want = e["hidden_f32_bits"].reshape(b, s, d)
    if e["model_type"] == "bloom" and e["dtype"] == "float32":
        ref = want.view(np.float32)
        assert (np.abs(out - ref) <= 1e-6 * np.abs(ref) + 1e-6).all()
    else:
        np.testing.assert_array_equal(widened_bits(out), want)


def test_family_on_the_bare_files_against_numpy():
    # OPT: token row + position row p + 2, one float32 addition.
    path = os.path.join(BARE, "opt.safetensors")
    t = tensors(path)
    w, p = t["model.decoder.embed_tokens.weight"], t["model.decoder.embed_positions.weight"]
    opt = GPTEmbedding.from_pretrained(path, family="opt")
    assert opt.config.position_offset == 2 and opt.max_seq_len == 18
    ids, pos = np.array([[4, 9, 30]]), np.array([[-1, 0, 15]])
    np.testing.assert_array_equal(opt(ids, position_ids=pos), (w[ids] + p[pos + 2])[...])
    # Gemma: rows x sqrt(10) rounded to float16, the product rounded once to float16.
    path = os.path.join(BARE, "gemma.safetensors")
    w = tensors(path)["model.embed_tokens.weight"]
    gemma = GPTEmbedding.from_pretrained(path, family="gemma")
    scale = np.float16(np.sqrt(np.float32(10)))
    assert np.float32(gemma.config.token_scale) == np.float32(scale)
    ids = np.arange(19).reshape(1, 19)
    np.testing.assert_array_equal(widened_bits(gemma(ids, out_dtype="float16")), widened_bits(w[ids] * scale))
    # BLOOM: the embedding layer norm, on by default, against float64.
    path = os.path.join(BARE, "bloom.safetensors")
    t = tensors(path)
    w = t["transformer.word_embeddings.weight"].astype(np.float64)
    g, beta = (t["transformer.word_embeddings_layernorm." + k].astype(np.float64) for k in ("weight", "bias"))
    bloom = GPTEmbedding.from_pretrained(path, family="bloom", layer_norm_eps=1e-3)
    assert bloom.config.layer_norm and np.float32(bloom.config.layer_norm_eps) == np.float32(1e-3)
    ids = np.arange(29).reshape(1, 29)
    x = w[ids]
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + np.float64(np.float32(1e-3))) * g + beta
    np.testing.assert_allclose(bloom(ids, out_dtype="float32"), ref, rtol=1e-5, atol=1e-5)
    # Without family the same file is the plain lookup: no norm.
    plain = GPTEmbedding.from_pretrained(path)
    np.testing.assert_array_equal(plain(ids, out_dtype="float32"), w[ids].astype(np.float32))


def test_unknown_family_lists_the_supported_ones():
    for name in ("llamaX", "", "LLAMA"):
        with pytest.raises(ValueError) as info:
            GPTEmbedding.from_pretrained(os.path.join(BARE, "llama.safetensors"), family=name)
        assert isinstance(info.value, GPTEmbeddingError) and info.value.status == 2
        assert f'"{name}"' in str(info.value) and all(t in str(info.value) for t in SUPPORTED)
    with pytest.raises(TypeError, match="family"):
        GPTEmbedding.from_pretrained(os.path.join(BARE, "llama.safetensors"), family=b"llama")
    with pytest.raises(ValueError, match="NUL"):
        GPTEmbedding.from_pretrained(os.path.join(BARE, "llama.safetensors"), family="lla\0ma")
    with pytest.raises(ValueError, match="longer than 64"):
        GPTEmbedding.from_pretrained(os.path.join(BARE, "llama.safetensors"), family="x" * 65)
    # A GGUF file's architecture decides.
    with pytest.raises(ValueError, match="general.architecture"):
        GPTEmbedding.from_pretrained(os.path.join(ROOT, "Tests", "fixtures", "gguf", "bloom_f32.gguf"), family="bloom")


def test_open_options_layout():
    """The 0.6 struct: family after the named padding, past the 0.4 size."""
    o = _lib.OpenOptions
    assert _lib.OpenOptions.reserved_0_4.offset == 76
    assert o.family.offset == 80 and ctypes.sizeof(o) == 88
    opts = o()
    _lib.call(_lib.lib.gpt_embedding_open_options_init, ctypes.byref(opts), ctypes.sizeof(opts))
    assert opts.family is None and opts.struct_size == 88
