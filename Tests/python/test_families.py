"""Hugging Face model families (issue 12): every checkpoint in Tests/fixtures/families opens
with ``from_pretrained(folder)`` and reproduces, bit for bit, what transformers feeds its
first decoder block (``expected.txt``; see the folder's README for the format); malformed
ones are refused with a message naming the problem; the 0.3 configuration fields
(``token_scale``, ``layer_norm``, ``position_offset``) and the sized C entry points."""
import ctypes
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gpt_embedding import GPTEmbedding, GPTEmbeddingConfig, GPTEmbeddingError, _lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAMILIES = os.path.join(ROOT, "Tests", "fixtures", "families")
BAD = os.path.join(FAMILIES, "bad")
SUPPORTED = ("gpt2", "gpt_neo", "gpt_bigcode", "gptj", "opt", "bloom", "llama", "mistral", "qwen2", "falcon", "mpt",
             "gpt_neox", "phi", "gemma", "gemma2", "gemma3_text")
STATUS = {"IO": 11, "BAD_FILE": 12}


def read_expected(path):
    """An ``expected.txt`` (format family-1): scalars as str, ``int``/``float`` tensors as
    numpy arrays (hidden_f32_bits as uint32)."""
    tokens = [t for line in open(path) if not line.lstrip().startswith("#") for t in line.split()]
    assert tokens[:2] == ["format", "family-1"], path
    out, i = {}, 2
    while tokens[i] != "end":
        key = tokens[i]
        if key in ("int", "float"):
            name, n = tokens[i + 1], int(tokens[i + 2])
            values = tokens[i + 3:i + 3 + n]
            assert len(values) == n, (path, name)
            dtype = np.uint32 if name == "hidden_f32_bits" else (np.int64 if key == "int" else np.float64)
            out[name] = np.array(values, dtype=np.uint64 if dtype is np.uint32 else dtype).astype(dtype)
            i += 3 + n
        else:
            out[key] = tokens[i + 1]
            i += 2
    for key in ("batch", "seq", "hidden_size"):
        out[key] = int(out[key])
    return out


def cases():
    """(folder, expected file) for every fixture with an expected output."""
    found = []
    for name in sorted(os.listdir(FAMILIES)):
        folder = os.path.join(FAMILIES, name)
        for file in ("expected.txt", "expected_padded.txt"):
            if os.path.isfile(os.path.join(folder, file)):
                found.append((name, file))
    return found


CASES = cases()


def test_every_family_has_a_fixture():
    assert {read_expected(os.path.join(FAMILIES, n, f))["model_type"] for n, f in CASES} == set(SUPPORTED)
    assert ("opt", "expected_padded.txt") in CASES and len(CASES) == 19


def widened_bits(out):
    """The output widened to float32 (exact for bfloat16 and float16), as uint32 bits."""
    return np.ascontiguousarray(out.astype(np.float32)).view(np.uint32)


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
@pytest.mark.parametrize("name,file", CASES, ids=[f"{n}/{f}" for n, f in CASES])
def test_fixture_reproduces_the_block_0_input(name, file, mmap):
    e = read_expected(os.path.join(FAMILIES, name, file))
    b, s, d = e["batch"], e["seq"], e["hidden_size"]
    layer = GPTEmbedding.from_pretrained(os.path.join(FAMILIES, name), mmap=mmap)
    assert not layer.training and layer.embed_dim == d and layer.weight_dtype == e["dtype"]
    ids = e["ids"].reshape(b, s)
    positions = e["positions"].reshape(b, s) if "positions" in e else None
    out = layer(ids, position_ids=positions, out_dtype=e["dtype"])
    assert out.shape == (b, s, d) and out.dtype.name == e["dtype"]
    want = e["hidden_f32_bits"].reshape(b, s, d)
    if e["model_type"] == "bloom" and e["dtype"] == "float32":
        # A reduction (the layer norm): torch's float32 kernel and the library's agree to
        # 1-2 ulp, not bit for bit (see the fixtures' README).
        ref = want.view(np.float32)
        np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
        assert (np.abs(out - ref) <= 1e-6 * np.abs(ref) + 1e-6).all()
    else:
        got = widened_bits(out)
        bad = np.argwhere(got != want)
        assert not bad.size, f"{name}/{file}: {len(bad)} values differ, first at {bad[0].tolist()}: " \
                             f"{got[tuple(bad[0])]:#010x} != {want[tuple(bad[0])]:#010x}"
    # int32 ids take the other entry point: the same bits.
    out32 = layer(ids.astype(np.int32), position_ids=None if positions is None else positions.astype(np.int32),
                  out_dtype=e["dtype"])
    np.testing.assert_array_equal(widened_bits(out32), widened_bits(out))


def test_families_read_their_config_fields():
    gpt2 = GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "gpt2"))
    assert gpt2.dropout == 0.1 and gpt2.position_encoding == "learned" and gpt2.max_seq_len == 32  # embd_pdrop
    assert gpt2.config.layer_norm_eps == 1e-5 and not gpt2.config.scale_embeddings
    assert GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "phi")).dropout == 0.1  # embd_pdrop
    # OPT and MPT have dropout-looking fields that transformers never applies to the input.
    for name in ("opt", "mpt", "falcon", "llama_bf16"):
        assert GPTEmbedding.from_pretrained(os.path.join(FAMILIES, name)).dropout == 0.0, name
    assert GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "mpt")).position_encoding == "none"
    # Overrides win over config.json; None means "from config.json".
    assert GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "gpt2"), dropout=0.3).dropout == 0.3
    assert GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "gpt2"), dropout=None).dropout == 0.1
    eps = GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "bloom"), layer_norm_eps=1e-3).config.layer_norm_eps
    assert eps == 1e-3
    with pytest.raises(ValueError, match="dropout = -0.5"):
        GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "gpt2"), dropout=-0.5)
    with pytest.raises(TypeError, match="by_tensor_names"):
        GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "gpt2"), by_tensor_names=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "gpt2"), use_config_json=False)


def test_by_tensor_names_ignores_config_json():
    folder = os.path.join(FAMILIES, "gpt2")
    layer = GPTEmbedding.from_pretrained(folder, by_tensor_names=True)
    assert layer.dropout == 0.0  # the open options' default, not embd_pdrop
    e = read_expected(os.path.join(folder, "expected.txt"))
    out = layer(e["ids"].reshape(e["batch"], e["seq"]))
    np.testing.assert_array_equal(widened_bits(out), e["hidden_f32_bits"].reshape(out.shape))
    # Without its config.json a llama checkpoint opens by its token-table name as a plain lookup
    # (issue 19 item 7): the file's rows, nothing applied.
    folder = os.path.join(FAMILIES, "llama_bf16")
    plain = GPTEmbedding.from_pretrained(folder, by_tensor_names=True)
    assert plain.position_encoding == "none" and not plain.config.layer_norm and plain.config.token_scale is None
    import json
    import struct
    with open(os.path.join(folder, "model.safetensors"), "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    t = json.loads(blob[8:8 + n])["model.embed_tokens.weight"]
    assert t["dtype"] == "BF16"
    lo, hi = t["data_offsets"]
    table = np.frombuffer(blob[8 + n + lo:8 + n + hi], dtype=np.uint16).reshape(t["shape"])
    ids = np.array([[0, 3, plain.vocab_size - 1]], dtype=np.int64)
    np.testing.assert_array_equal(plain(ids, out_dtype="bfloat16")[0].view(np.uint16), table[ids[0]])


def test_gemma_scale_is_rounded_to_the_table_dtype():
    for name, scale in (("gemma_bf16", 6.9375), ("gemma2_f16", 6.32421875), ("gemma3_text_bf16", 6.71875),
                        ("gemma_f32", float(np.float32(np.sqrt(50.0))))):
        config = GPTEmbedding.from_pretrained(os.path.join(FAMILIES, name)).config
        assert np.float32(config.token_scale) == np.float32(scale), name
    plain = GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "llama_bf16")).config
    assert plain.token_scale is None and not plain.scale_embeddings


def test_bloom_applies_its_layer_norm_by_default():
    layer = GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "bloom"))
    assert layer.config.layer_norm and layer.position_encoding == "none"
    ids = np.array([[0, 5, 5, 167]])
    normed, plain = layer(ids), layer(ids, use_layer_norm=False)
    np.testing.assert_array_equal(layer(ids, use_layer_norm=True), normed)
    wte = layer.state_dict()["token_embedding.weight"]
    np.testing.assert_array_equal(plain[0], wte[ids[0]])  # no norm, no scale, no positions
    assert not np.array_equal(normed, plain)
    mean = normed[0].mean(axis=-1)
    assert np.abs(mean).max() < 0.1 * np.abs(plain[0].mean(axis=-1)).max() + 1e-3  # the norm ran
    # Training forwards follow the same default, and backward reaches the norm's vectors.
    layer.train()
    y = layer(ids)
    layer.backward(np.ones_like(y))
    assert layer.grads()["layer_norm.weight"].any()


def test_opt_positions_are_offset_by_two():
    layer = GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "opt"))
    config = layer.config
    assert config.position_offset == 2 and layer.max_seq_len == 34  # max_position_embeddings + 2
    sd = layer.state_dict()
    wte, wpe = sd["token_embedding.weight"], sd["position_embedding.weight"]
    ids = np.array([[1, 7, 9, 9]])
    positions = np.array([[-1, -2, 0, 31]])
    out = layer(ids, position_ids=positions)
    np.testing.assert_array_equal(out[0], wte[ids[0]] + wpe[positions[0] + 2])  # -1 reads row 1
    np.testing.assert_array_equal(layer(ids, start_position=3)[0], wte[ids[0]] + wpe[np.arange(5, 9)])
    with pytest.raises(IndexError, match=r"-3"):
        layer(ids, position_ids=np.array([[-1, -3, 0, 1]]))
    with pytest.raises(IndexError):
        layer(ids, position_ids=np.array([[0, 1, 2, 32]]))  # row 34 does not exist
    with pytest.raises(ValueError):
        layer(ids, start_position=-1)  # start_position stays >= 0


def test_opt_project_in_is_refused():
    with pytest.raises((ValueError, OSError)) as info:
        GPTEmbedding.from_pretrained(os.path.join(FAMILIES, "opt_project_in"))
    message = str(info.value)
    # The token rows are 16 wide (word_embed_proj_dim) and hidden_size is 32: the message
    # names the checkpoint's config.json, hidden_size and the 16-wide table.
    assert isinstance(info.value, GPTEmbeddingError) and info.value.status == STATUS["BAD_FILE"]
    assert "config.json" in message and "hidden_size" in message and "16" in message, message


def bad_cases():
    rows = []
    for line in open(os.path.join(BAD, "EXPECTED")):
        if line.strip() and not line.startswith("#"):
            case, status, *texts = line.rstrip("\n").split("\t")
            rows.append((case, status, texts))
    return rows


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
@pytest.mark.parametrize("case,status,texts", bad_cases(), ids=[c for c, _, _ in bad_cases()])
def test_bad_checkpoints_are_refused_naming_the_problem(case, status, texts, mmap):
    assert len(bad_cases()) == len([d for d in os.listdir(BAD) if os.path.isdir(os.path.join(BAD, d))])
    with pytest.raises((ValueError, OSError)) as info:
        GPTEmbedding.from_pretrained(os.path.join(BAD, case), mmap=mmap)
    assert isinstance(info.value, GPTEmbeddingError) and info.value.status == STATUS[status]
    for text in texts:
        assert text in str(info.value), (case, text, str(info.value))


def test_unknown_model_type_lists_the_supported_ones():
    with pytest.raises(ValueError) as info:
        GPTEmbedding.from_pretrained(os.path.join(BAD, "unknown_model_type"))
    message = str(info.value)
    assert "llamaX" in message
    listed = set(re.findall(r"[a-z0-9_]+", message))
    assert set(SUPPORTED) <= listed, set(SUPPORTED) - listed
    assert "by_tensor_names" in message or "config.json" in message


# -- the 0.3 configuration fields ------------------------------------------------------------

def test_new_config_fields_default_and_round_trip():
    cfg = GPTEmbeddingConfig()
    assert (cfg.token_scale, cfg.layer_norm, cfg.position_offset) == (None, False, 0)
    c = cfg.to_c()
    assert (c.token_scale, c.layer_norm, c.position_offset, c.struct_size) == (0.0, 0, 0, ctypes.sizeof(_lib.Config))
    assert GPTEmbeddingConfig(token_scale=0).token_scale is None  # 0 is C's "derived"
    layer = GPTEmbedding(20, 4, 8, dropout=0.0, token_scale=2.5, layer_norm=True, position_offset=3, seed=1)
    got = layer.config
    assert (got.token_scale, got.layer_norm, got.position_offset) == (2.5, True, 3)
    assert GPTEmbedding(config=got).config == got
    assert got.replace(layer_norm=False).layer_norm is False
    assert "token_scale=2.5" in repr(got) and got.to_dict()["position_offset"] == 3
    with pytest.raises(ValueError, match="token_scale"):
        GPTEmbeddingConfig(token_scale=float("inf"))
    with pytest.raises(TypeError, match="position_offset"):
        GPTEmbeddingConfig(position_offset=1.0)
    with pytest.raises(TypeError, match="token_scale"):
        GPTEmbeddingConfig(token_scale="big")


def test_token_scale_layer_norm_default_and_offset_in_forwards():
    layer = GPTEmbedding(20, 4, 8, dropout=0.0, token_scale=2.0, layer_norm=True, position_offset=3,
                         seed=1).eval()
    sd = layer.state_dict()
    wte, wpe = sd["token_embedding.weight"], sd["position_embedding.weight"]
    ids = np.array([[4, 5]])
    plain = layer(ids, position_ids=[[-3, 4]], use_layer_norm=False)
    np.testing.assert_array_equal(plain[0], np.float32(2.0) * wte[[4, 5]] + wpe[[0, 7]])
    default, on = layer(ids, position_ids=[[-3, 4]]), layer(ids, position_ids=[[-3, 4]], use_layer_norm=True)
    np.testing.assert_array_equal(default, on)
    assert not np.array_equal(default, plain)
    with pytest.raises(IndexError, match="-4"):
        layer(ids, position_ids=[[-4, 0]])
    # Without the configuration default, None and False are both "no norm" (0.2 behaviour).
    seed_layer = GPTEmbedding(20, 4, 8, dropout=0.0, seed=1).eval()
    np.testing.assert_array_equal(seed_layer([[4, 5]]), seed_layer([[4, 5]], use_layer_norm=False))


def test_forward_flags_for_use_layer_norm(monkeypatch):
    flags = []
    real = _lib.lib.gpt_embedding_forward_i64

    def spy(*args):
        flags.append(args[6])
        return real(*args)
    monkeypatch.setattr(_lib.lib, "gpt_embedding_forward_i64", spy)
    on = GPTEmbedding(10, 4, 4, dropout=0.0, layer_norm=True).eval()
    off = GPTEmbedding(10, 4, 4, dropout=0.0).eval()
    for layer in (on, off):
        for choice in (None, True, False):
            layer([[1]], use_layer_norm=choice)
    assert flags == [0, _lib.LAYER_NORM, _lib.NO_LAYER_NORM, 0, _lib.LAYER_NORM, 0]


# -- the C surface: sized entry points, struct layouts ----------------------------------------

def test_sized_entry_points_replace_the_0_1_names():
    for old in ("gpt_embedding_default_config", "gpt_embedding_preset_config", "gpt_embedding_get_config"):
        assert old not in _lib.SIGNATURES  # macros in the 0.3 header; the exports keep the 0.1 meaning
    package = os.path.join(ROOT, "bindings", "python", "gpt_embedding")
    for file in os.listdir(package):
        if file.endswith(".py"):
            text = open(os.path.join(package, file)).read()
            assert not re.search(r"lib\.gpt_embedding_(default_config|preset_config|get_config)\b", text), file
    assert ctypes.sizeof(_lib.Config) == _lib.lib.gpt_embedding_config_size() == 104  # 0.4: the shard fields
    c = _lib.preset_config("gpt2-medium")
    assert c.struct_size == 104 and c.embed_dim == 1024 and c.token_scale == 0 and c.position_offset == 0
    with pytest.raises(ValueError, match="gpt5"):
        _lib.preset_config("gpt5")
    # The sized functions write only the size they are given: a 0.2 caller's 72 bytes.
    buf = (ctypes.c_ubyte * 104)(*([0xAB] * 104))
    assert _lib.lib.gpt_embedding_config_init(ctypes.cast(buf, ctypes.POINTER(_lib.Config)), 72) == 0
    assert bytes(buf[72:]) == b"\xab" * 32
    assert ctypes.cast(buf, ctypes.POINTER(_lib.Config)).contents.struct_size == 72
    layer = GPTEmbedding(10, 4, 4)
    assert _lib.layer_config(layer._handle.get()).struct_size == 104


def compile_offsets(tmp_path, struct, fields):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / f"{struct}.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include \"gpt_embedding.h\"\nint main(void) {\n"
                   f'    printf("size %zu\\n", sizeof({struct}));\n'
                   + "".join(f'    printf("{f} %zu %zu\\n", offsetof({struct}, {f}), sizeof((({struct} *)0)->{f}));\n'
                             for f in fields)
                   + "    return 0;\n}\n")
    exe = tmp_path / struct
    subprocess.run([cc, "-std=c11", "-I", os.path.join(ROOT, "include"), str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_open_options_struct_matches_the_compiled_header(tmp_path):
    fields = [name for name, _ in _lib.OpenOptions._fields_]
    lines = compile_offsets(tmp_path, "gpt_embedding_open_options", fields)
    assert int(lines.pop("size")) == ctypes.sizeof(_lib.OpenOptions) == 88  # 0.4: the shard fields; 0.6: family
    for name, ctype in _lib.OpenOptions._fields_:
        offset, size = map(int, lines[name].split())
        assert (getattr(_lib.OpenOptions, name).offset, ctypes.sizeof(ctype)) == (offset, size), name
    o = _lib.OpenOptions()
    assert _lib.lib.gpt_embedding_open_options_init(ctypes.byref(o), ctypes.sizeof(o)) == 0
    assert (o.dropout, o.layer_norm_eps, o.by_tensor_names) == (-1.0, -1.0, 0)


# -- the example ---------------------------------------------------------------------------------

def test_hf_compare_example_runs_or_skips_cleanly():
    """examples/python/hf_compare.py: with transformers it checks a fixture against
    transformers' own block-0 input; without it, it says so and exits 0."""
    env = {k: v for k, v in os.environ.items() if k != _lib.ENV_VAR}
    env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python", "hf_compare.py"),
                        os.path.join(FAMILIES, "gpt_neo_bf16")], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        assert r.stdout.startswith("skipped:") and "transformers" in r.stdout
    else:
        assert "bit-identical" in r.stdout, r.stdout


def test_readme_families_block_runs_as_written(tmp_path):
    """The Python README's "Hugging Face model families" block (the same code is in
    docs/checkpoints.md, whose copy Tests/docs/run_snippets.py runs) runs from the
    repository root and prints what its comments say."""
    text = open(os.path.join(ROOT, "bindings", "python", "README.md")).read()
    section = text[text.index("### Hugging Face model families"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = lambda b: [l for l in (re.sub(r"\s*#.*$", "", x) for x in b.splitlines()) if l.strip()]
    guide = re.findall(r"```python\n(.*?)```", open(os.path.join(ROOT, "docs", "checkpoints.md")).read(), re.S)
    assert code(block) in [code(b) for b in guide]
    script = tmp_path / "families.py"
    script.write_text(block)
    env = {k: v for k, v in os.environ.items() if k != _lib.ENV_VAR}
    env["PYTHONPATH"] = os.path.join(ROOT, "bindings", "python")
    r = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["2", "(2, 4, 35)", "True", "6.9375"]
    assert r.stderr == ""
