"""The package's surface: the seed's API, the configuration against the library's, the
ctypes declarations against the header and the compiled struct, the loader, id dtypes,
copies and views, and the components."""
import ctypes
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gpt_embedding
from gpt_embedding import (GPTEmbedding, GPTEmbeddingConfig, GPTEmbeddingError, GPTEmbeddingStateError,
                           PositionalEmbedding, SinusoidalPositionalEmbedding, TokenEmbedding, _lib)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(ROOT, "include", "gpt_embedding.h")
PACKAGE_DIR = os.path.join(ROOT, "bindings", "python")


# -- configuration -----------------------------------------------------------------------

def test_seed_defaults_are_the_librarys_defaults():
    c = _lib.default_config()
    cfg = GPTEmbeddingConfig()
    assert (cfg.vocab_size, cfg.embed_dim, cfg.max_seq_len, cfg.dropout, cfg.use_sinusoidal) == (50257, 768, 1024, 0.1, False)
    assert cfg == GPTEmbeddingConfig._from_c(c)
    assert (c.vocab_size, c.embed_dim, c.max_seq_len) == (50257, 768, 1024)
    assert np.float32(cfg.dropout) == np.float32(c.dropout)
    assert cfg.padding_idx is None and c.padding_idx == -1
    assert cfg.scale_embeddings and cfg.num_threads == 0 and cfg.seed == 0


def test_seed_keywords_and_options():
    cfg = GPTEmbeddingConfig(vocab_size=32000, embed_dim=512, max_seq_len=2048, dropout=0.2, use_sinusoidal=True)
    assert cfg.position_encoding == "sinusoidal" and cfg.use_sinusoidal
    layer = GPTEmbedding(vocab_size=100, embed_dim=8, max_seq_len=16, dropout=0.0, use_sinusoidal=False,
                         scale_embeddings=False, layer_norm_eps=1e-6, init_std=0.1, padding_idx=3, seed=7,
                         num_threads=1)
    got = layer.config
    assert (got.vocab_size, got.embed_dim, got.max_seq_len, got.dropout, got.position_encoding) == (100, 8, 16, 0.0, "learned")
    assert (got.scale_embeddings, got.layer_norm_eps, got.init_std, got.padding_idx, got.seed, got.num_threads) == \
        (False, 1e-6, 0.1, 3, 7, 1)
    assert GPTEmbedding(10, 4, 4, position_encoding="none").position_encoding == "none"
    with pytest.raises(ValueError, match="contradicts"):
        GPTEmbeddingConfig(use_sinusoidal=True, position_encoding="learned")
    with pytest.raises(TypeError, match="must be an integer"):
        GPTEmbeddingConfig(embed_dim=768.0)
    with pytest.raises(ValueError, match="seed"):
        GPTEmbeddingConfig(seed=-1)
    assert GPTEmbeddingConfig(vocab_size=10, seed=2**64 - 1).to_c().seed == 2**64 - 1


def test_from_config_and_config_keyword():
    cfg = GPTEmbeddingConfig(vocab_size=20, embed_dim=6, max_seq_len=5, dropout=0.0, seed=3)
    a, b = GPTEmbedding.from_config(cfg), GPTEmbedding(config=cfg)
    assert a.config == cfg == b.config
    np.testing.assert_array_equal(a.state_dict()["token_embedding.weight"], b.state_dict()["token_embedding.weight"])
    cfg.vocab_size = 99  # the layer copied the config
    assert a.vocab_size == 20
    with pytest.raises(TypeError, match="either config"):
        GPTEmbedding(config=cfg, seed=1)
    with pytest.raises(TypeError, match="either config"):
        GPTEmbedding(30, config=cfg)
    with pytest.raises(ValueError, match="vocab_size = 0"):
        GPTEmbedding(config=cfg.replace(vocab_size=0))  # replace validates through the library


def test_presets_and_parameter_counts():
    # The README's table: vocab * D + 1024 * D (+ 2 * D for the layer norm).
    for name, d in (("gpt2", 768), ("gpt2-small", 768), ("gpt2-medium", 1024), ("gpt2-large", 1280), ("gpt2-xl", 1600)):
        cfg = GPTEmbeddingConfig.from_preset(name)
        assert (cfg.vocab_size, cfg.embed_dim, cfg.max_seq_len, cfg.dropout) == (50257, d, 1024, 0.1)
        assert cfg.position_encoding == "learned" and not cfg.scale_embeddings
        counts = cfg.num_parameters()
        assert counts["token_embedding"] + counts["position_embedding"] == 50257 * d + 1024 * d
        assert counts["total"] == 50257 * d + 1024 * d + 2 * d
    assert GPTEmbeddingConfig.gpt2_small() == GPTEmbeddingConfig.from_preset("gpt2")
    assert GPTEmbeddingConfig.gpt2_medium().embed_dim == 1024
    assert GPTEmbeddingConfig.gpt2_large().embed_dim == 1280
    assert GPTEmbeddingConfig.gpt2_xl(seed=5).seed == 5
    assert GPTEmbeddingConfig(use_sinusoidal=True).num_parameters()["position_embedding"] == 0
    layer = GPTEmbedding.from_preset("gpt2", seed=42)
    assert layer.num_parameters() == 39385344 and layer.config.seed == 42
    with pytest.raises(ValueError, match="gpt5"):
        GPTEmbedding.from_preset("gpt5")


def test_validation_uses_the_librarys_message():
    with pytest.raises(ValueError) as info:
        GPTEmbeddingConfig(dropout=1.5)
    assert isinstance(info.value, GPTEmbeddingError)
    assert info.value.status == 3 and info.value.status_name == "GPT_EMBEDDING_ERROR_INVALID_CONFIG"
    assert str(info.value).startswith("gpt_embedding_config_validate:") and "dropout" in str(info.value)
    cfg = GPTEmbeddingConfig(vocab_size=10)
    cfg.embed_dim = -3  # a plain record: checked on validate() and when a layer is made
    with pytest.raises(ValueError, match="embed_dim = -3"):
        cfg.validate()
    with pytest.raises(ValueError, match="embed_dim = -3"):
        GPTEmbedding(config=cfg)


# -- the ctypes declarations ---------------------------------------------------------------

def header_prototypes():
    """name -> number of parameters, for every function declared in the header. Macros
    (the 0.1 names are macros since 0.3, possibly continued over several lines) and
    ``static inline`` helpers with their bodies are not functions of the library's ABI."""
    text = re.sub(r"/\*.*?\*/", "", open(HEADER).read(), flags=re.S)
    text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", "", text, flags=re.M)  # preprocessor lines
    text = re.sub(r"^[ \t]*static\s+inline\b[^{;]*\{.*?^\}", "", text, flags=re.M | re.S)  # inline helpers
    protos = {}
    for m in re.finditer(r"^[A-Za-z_][\w \*]*?\b(gpt_embedding_\w+)\s*\(([^)]*)\)\s*;", text, flags=re.M):
        params = m.group(2).strip()
        protos[m.group(1)] = 0 if params in ("void", "") else params.count(",") + 1
    return protos


def test_every_header_function_is_declared_with_its_arity():
    protos = header_prototypes()
    assert len(protos) >= 26
    assert set(protos) == set(_lib.SIGNATURES), set(protos) ^ set(_lib.SIGNATURES)
    for name, arity in protos.items():
        fn = getattr(_lib.lib, name)
        assert len(fn.argtypes) == arity, name
        assert fn.restype is _lib.SIGNATURES[name][1], name


def test_calls_release_the_gil():
    assert type(_lib.lib) is ctypes.CDLL  # CDLL releases the GIL during calls; PyDLL would not


def test_config_struct_matches_the_compiled_header(tmp_path):
    fields = [name for name, _ in _lib.Config._fields_]
    assert ctypes.sizeof(_lib.Config) == _lib.lib.gpt_embedding_config_size()
    assert _lib.default_config().struct_size == ctypes.sizeof(_lib.Config) == 104  # 0.4: the shard fields
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler: size checked against the library only")
    src = tmp_path / "offsets.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include \"gpt_embedding.h\"\nint main(void) {\n"
                   '    printf("size %zu\\n", sizeof(gpt_embedding_config));\n'
                   + "".join(f'    printf("{f} %zu %zu\\n", offsetof(gpt_embedding_config, {f}), '
                             f'sizeof(((gpt_embedding_config *)0)->{f}));\n' for f in fields)
                   + "    return 0;\n}\n")
    exe = tmp_path / "offsets"
    subprocess.run([cc, "-std=c11", "-I", os.path.join(ROOT, "include"), str(src), "-o", str(exe)], check=True)
    lines = dict(line.split(" ", 1) for line in subprocess.run([str(exe)], check=True, capture_output=True,
                                                                 text=True).stdout.splitlines())
    assert int(lines.pop("size")) == ctypes.sizeof(_lib.Config)
    assert list(lines) == fields
    for name, ctype in _lib.Config._fields_:
        offset, size = map(int, lines[name].split())
        assert (getattr(_lib.Config, name).offset, ctypes.sizeof(ctype)) == (offset, size), name


def test_library_version_matches_the_package():
    number = _lib.lib.gpt_embedding_version_number()
    assert number // 10000 == _lib.EXPECTED_MAJOR
    assert gpt_embedding.library_version == f"{number // 10000}.{number // 100 % 100}.{number % 100}"
    header = open(HEADER).read()
    assert f'#define GPT_EMBEDDING_VERSION_STRING "{gpt_embedding.__version__}"' in header, \
        "the package version (_version.py) follows the header's"
    assert os.path.samefile(gpt_embedding.library_path, _lib.lib._name)


def test_status_strings_and_exception_classes():
    for status, name in gpt_embedding.errors.STATUS_NAMES.items():
        assert _lib.lib.gpt_embedding_status_string(status).decode().startswith(name)
    assert issubclass(gpt_embedding.GPTEmbeddingIndexError, IndexError)
    assert issubclass(gpt_embedding.GPTEmbeddingMemoryError, MemoryError)
    assert issubclass(gpt_embedding.GPTEmbeddingValueError, ValueError)
    assert issubclass(gpt_embedding.GPTEmbeddingStateError, RuntimeError)
    import pickle
    e = pickle.loads(pickle.dumps(gpt_embedding.errors.error_for(4, "msg")))
    assert type(e) is gpt_embedding.GPTEmbeddingIndexError and e.status == 4 and str(e) == "msg"


# -- the loader -----------------------------------------------------------------------------

def run_python(code, env_extra, cwd):
    env = {k: v for k, v in os.environ.items() if k != _lib.ENV_VAR}
    env.update(env_extra)
    env["PYTHONPATH"] = PACKAGE_DIR
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_the_build_folder_is_found_without_configuration(tmp_path):
    r = run_python("import gpt_embedding; print(gpt_embedding.library_path)", {}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert os.path.samefile(r.stdout.strip(), _lib.library_path)


def test_env_var_overrides_with_a_file_or_a_folder(tmp_path):
    copy = tmp_path / "elsewhere" / "libgpt_embedding.so"
    copy.parent.mkdir()
    shutil.copy(_lib.library_path, copy)
    for value in (str(copy), str(copy.parent)):
        r = run_python("import gpt_embedding; print(gpt_embedding.library_path)", {_lib.ENV_VAR: value}, tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == str(copy)


def test_a_missing_library_lists_every_path_tried(tmp_path):
    r = run_python("import gpt_embedding", {_lib.ENV_VAR: str(tmp_path / "nope.so")}, tmp_path)
    assert r.returncode != 0
    assert str(tmp_path / "nope.so") in r.stderr and "GPT_EMBEDDING_LIB" in r.stderr
    assert "swift build -c release --product gpt_embedding" in r.stderr
    # Without the variable: the package folder, the repository build, the system search path.
    fake_pkg = tmp_path / "a" / "b" / "c" / "gpt_embedding"
    paths = _lib.candidates(None, str(fake_pkg))
    assert paths[0] == str(fake_pkg / "libgpt_embedding.so")
    assert paths[1] == str(tmp_path / "a" / ".build" / "release" / "libgpt_embedding.so")
    with pytest.raises(OSError) as info:
        _lib.load(paths[:2] + [str(tmp_path / "no-such-lib.so")])
    message = str(info.value)
    for p in paths[:2]:
        assert f"{p}: no such file" in message
    assert "swift build -c release --product gpt_embedding" in message
    assert _lib.candidates(None)[1] == os.path.join(ROOT, ".build", "release", "libgpt_embedding.so")


def test_a_file_that_is_not_a_library_reports_the_loader_error(tmp_path):
    bogus = tmp_path / "libgpt_embedding.so"
    bogus.write_text("not an ELF file")
    with pytest.raises(OSError, match=re.escape(str(bogus)) + ".*(invalid ELF|too short|file too short)"):
        _lib.load([str(bogus)])


# -- ids, outputs, copies and views --------------------------------------------------------

@pytest.fixture
def layer():
    return GPTEmbedding(50, 8, 16, dropout=0.0, seed=2).eval()


def test_int32_and_int64_ids_reach_their_functions_without_copies(layer, monkeypatch):
    calls = []
    for name in ("gpt_embedding_forward", "gpt_embedding_forward_i64"):
        real = getattr(_lib.lib, name)

        def spy(*args, _real=real, _name=name):
            calls.append((_name, ctypes.cast(args[1], ctypes.c_void_p).value))
            return _real(*args)
        monkeypatch.setattr(_lib.lib, name, spy)
    ids32 = np.array([[1, 2, 3]], dtype=np.int32)
    ids64 = ids32.astype(np.int64)
    y32, y64 = layer(ids32), layer(ids64)
    assert calls == [("gpt_embedding_forward", ids32.ctypes.data), ("gpt_embedding_forward_i64", ids64.ctypes.data)]
    np.testing.assert_array_equal(y32, y64)
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.uint32, np.uint64, ">i4", ">i8"):
        np.testing.assert_array_equal(layer(ids32.astype(dtype)), y32)
    np.testing.assert_array_equal(layer([[1, 2, 3]]), y32)
    assert calls[-1][0] == "gpt_embedding_forward_i64"


def test_shapes_lists_and_one_dimensional_ids(layer):
    y = layer([[1, 2, 3], [4, 5, 6]])
    assert y.shape == (2, 3, 8) and y.dtype == np.float32 and y.flags.c_contiguous
    one = layer(np.array([4, 5, 6]))  # [seq] is one sequence
    assert one.shape == (1, 3, 8)
    np.testing.assert_array_equal(one[0], y[1])
    np.testing.assert_array_equal(layer([[5, 6]], start_position=1)[0], y[1, 1:])  # token 5 at position 1


def test_floats_bools_and_huge_values_are_rejected(layer):
    for bad in (np.array([[1.0]]), np.array([[True]]), [[1.5]], [[True, False]], [["a"]], np.array([[1 + 2j]])):
        with pytest.raises(ValueError):
            layer(bad)
    with pytest.raises(IndexError, match="18446744073709551615"):
        layer(np.array([[1, 2**64 - 1]], dtype=np.uint64))
    with pytest.raises(IndexError):
        layer([[2**63]])
    with pytest.raises(ValueError):
        layer([[2**65]])
    with pytest.raises(ValueError, match="64-bit"):
        layer([[1]], start_position=2**63)
    with pytest.raises(TypeError):
        layer([[1]], start_position=1.0)


def test_mixed_int32_ids_and_int64_positions_never_narrow(layer):
    ids = np.array([[1, 2]], dtype=np.int32)
    with pytest.raises(IndexError, match="4294967297"):
        layer(ids, position_ids=np.array([[0, 2**32 + 1]], dtype=np.int64))
    np.testing.assert_array_equal(layer(ids, position_ids=np.array([[3, 4]], dtype=np.int64)),
                                  layer(ids, start_position=3))


def test_out_is_written_and_left_alone_on_error(layer):
    out = np.full((1, 2, 8), 5.0, np.float32)
    assert layer([[1, 2]], out=out) is out
    np.testing.assert_array_equal(out, layer([[1, 2]]))
    out[:] = 5.0
    with pytest.raises(IndexError):
        layer([[1, 99]], out=out)
    assert (out == 5.0).all()
    with pytest.raises(ValueError):
        layer([[1, 2]], out=np.empty((1, 2, 8), np.float32)[:, ::-1])
    ro = np.empty((1, 2, 8), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        layer([[1, 2]], out=ro)


def test_state_dict_returns_copies_and_round_trips(layer):
    sd = layer.state_dict()
    assert set(sd) == {"token_embedding.weight", "position_embedding.weight", "layer_norm.weight", "layer_norm.bias"}
    assert sd["token_embedding.weight"].shape == (50, 8) and sd["position_embedding.weight"].shape == (16, 8)
    assert sd["layer_norm.weight"].shape == (8,) and (sd["layer_norm.weight"] == 1).all() and (sd["layer_norm.bias"] == 0).all()
    sd["token_embedding.weight"][:] = 0  # a copy: the layer is unchanged
    assert layer.state_dict()["token_embedding.weight"].any()
    other = GPTEmbedding(50, 8, 16, dropout=0.0, seed=99).eval()
    other.load_state_dict({k: v.astype(np.float64) for k, v in layer.state_dict().items()})
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)
    np.testing.assert_array_equal(other([[3, 4]]), layer([[3, 4]]))
    assert set(GPTEmbedding(10, 4, 4, use_sinusoidal=True).state_dict()) == \
        {"token_embedding.weight", "layer_norm.weight", "layer_norm.bias"}
    assert set(layer.grads()) == set(sd) and not any(g.any() for g in layer.grads().values())


def test_views_are_zero_copy_and_keep_the_layer_alive():
    layer = GPTEmbedding(20, 4, 8, dropout=0.0, scale_embeddings=False)
    w = layer.parameter("token_embedding.weight")
    assert w.shape == (20, 4) and w.dtype == np.float32 and not w.flags.owndata
    w[3] = 1.5  # writes change the layer
    np.testing.assert_array_equal(layer.state_dict()["token_embedding.weight"][3], np.full(4, 1.5, np.float32))
    layer.eval()
    wpe = layer.state_dict()["position_embedding.weight"]
    np.testing.assert_array_equal(layer([[3]])[0, 0], np.float32(1.5) + wpe[0])
    g = layer.gradient("token_embedding.weight")
    layer.train()
    layer([[3, 3]])
    layer.backward(np.ones((1, 2, 4), np.float32))
    np.testing.assert_array_equal(g[3], np.full(4, 2, np.float32))  # backward adds into the view's memory
    sub = w[2:5]  # a view of a view still keeps the layer alive
    with pytest.raises(GPTEmbeddingStateError, match="view"):
        layer.close()
    del w, g, layer
    import gc
    gc.collect()
    assert (sub[1] == 1.5).all()
    sub[0] = 2.0


def test_close_and_context_manager():
    with GPTEmbedding(10, 4, 4) as layer:
        layer([[1, 2]])
    assert layer.closed and "closed" in repr(layer)
    for call in (lambda: layer([[1]]), layer.zero_grad, layer.state_dict, lambda: layer.backward(np.zeros((1, 2, 4), np.float32))):
        with pytest.raises(GPTEmbeddingStateError, match="closed"):
            call()
    layer.close()
    layer = GPTEmbedding(10, 4, 4)
    v = layer.parameter("layer_norm.bias")
    del v
    layer.close()  # no view left


def test_train_eval_and_the_training_flag():
    layer = GPTEmbedding(30, 16, 8, dropout=0.5, seed=1)
    assert layer.training  # like torch: training after construction
    assert layer.eval() is layer and not layer.training
    a, b = layer([[1, 2, 3]]), layer([[1, 2, 3]])
    np.testing.assert_array_equal(a, b)
    assert layer.train() is layer and layer.training
    t1, t2 = layer([[1, 2, 3]]), layer([[1, 2, 3]])
    assert (t1 == 0).any() and not np.array_equal(t1, t2)  # the mask advances with every training forward


def test_memory_bytes_and_touched_rows():
    layer = GPTEmbedding(100, 8, 8, dropout=0.0)
    before = layer.memory_bytes()
    assert before >= (100 * 8 + 8 * 8 + 16) * 4
    layer([[5, 7, 5]])
    layer.backward(np.ones((1, 3, 8), np.float32))
    assert layer.memory_bytes() > before  # gradients allocated on the first backward
    np.testing.assert_array_equal(layer.touched_rows(), [5, 7])


# -- components -----------------------------------------------------------------------------

def test_token_embedding_scales_by_sqrt_d_and_skips_the_padding_row():
    tok = TokenEmbedding(vocab_size=12, embed_dim=9, padding_idx=0, seed=4)
    w = tok.state_dict()["weight"]
    assert w.shape == (12, 9) and not w[0].any()  # the padding row starts at zero
    y = tok([[0, 5, 5]])
    np.testing.assert_allclose(y[0, 1], 3.0 * w[5], rtol=1e-6)
    tok.backward(np.ones_like(y))
    grad = tok.grad
    assert not grad[0].any() and (grad[5] == 6.0).all()  # 2 uses * s = 3
    assert tok.num_parameters() == 12 * 9
    plain = TokenEmbedding(12, 9, scale_embeddings=False, seed=4)
    np.testing.assert_array_equal(plain([[5]])[0, 0], plain.state_dict()["weight"][5])
    tok.load_state_dict({"weight": np.ones((12, 9), np.float32)})
    np.testing.assert_array_equal(tok.weight, 1)


def test_positional_embedding_forward_backward_and_range():
    pos = PositionalEmbedding(max_seq_len=6, embed_dim=4, seed=1)
    table = pos.state_dict()["weight"]
    assert table.shape == (6, 4)
    np.testing.assert_array_equal(pos(3), table[:3])
    np.testing.assert_array_equal(pos(np.zeros((2, 3), np.int64), start_position=2), table[2:5])
    pos.backward(np.ones((3, 4), np.float32))
    assert (pos.grad[2:5] == 1).all() and not pos.grad[:2].any() and not pos.grad[5].any()
    np.testing.assert_array_equal(pos.lookup([[5, 0]]), table[[5, 0]][None])
    with pytest.raises(IndexError):
        pos(7)
    with pytest.raises(IndexError):
        pos.lookup([[6]])
    assert pos.num_parameters() == 24


def test_sinusoidal_positional_embedding_is_the_librarys_table():
    sin = SinusoidalPositionalEmbedding(max_seq_len=16, embed_dim=7)
    table = sin(16)
    assert table.shape == (16, 7)
    np.testing.assert_array_equal(table[0, 0::2], 0.0)  # sin(0)
    np.testing.assert_array_equal(table[0, 1::2], 1.0)  # cos(0)
    np.testing.assert_array_equal(sin(4, start_position=12), table[12:])
    np.testing.assert_array_equal(sin(np.zeros((3, 5), np.int32)), table[:5])
    layer = GPTEmbedding(10, 7, 16, dropout=0.0, use_sinusoidal=True, scale_embeddings=False).eval()
    wte = layer.state_dict()["token_embedding.weight"]
    np.testing.assert_allclose(layer([[2, 2, 2]], start_position=3)[0], wte[2] + table[3:6], rtol=1e-6, atol=1e-7)
    assert sin(2, start_position=100).shape == (2, 7)  # past max_seq_len is fine for sinusoidal
    with pytest.raises(ValueError):
        sin(0)
    with pytest.raises(ValueError):
        sin(1, start_position=-1)
    with pytest.raises(ValueError):
        sin(1, start_position=2**64)


def test_functions_beyond_the_header_fail_cleanly_when_absent(tmp_path):
    layer = GPTEmbedding(10, 4, 4)
    for name, call in (("gpt_embedding_load_safetensors", lambda: layer.load_safetensors(tmp_path / "w.safetensors")),
                       ("gpt_embedding_save_safetensors", lambda: layer.save_safetensors(tmp_path / "w.safetensors"))):
        if _lib.has(name):
            continue
        with pytest.raises(NotImplementedError, match=name):
            call()
