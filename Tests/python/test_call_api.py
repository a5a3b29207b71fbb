"""The ctypes mirror of the header's calls with explicit state (issue 18): gpt_embedding_call,
gpt_embedding_grads, their init functions, gpt_embedding_forward_call and
gpt_embedding_backward_call. Layouts are checked against the compiled header; the calls
themselves once the loaded library exports them."""
import ctypes
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from gpt_embedding import GPTEmbedding, GPTEmbeddingValueError, _lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(ROOT, "include", "gpt_embedding.h")
NAMES = ("gpt_embedding_call_init", "gpt_embedding_forward_call", "gpt_embedding_grads_init",
         "gpt_embedding_backward_call")
EXPORTED = all(_lib.has(n) for n in NAMES)
needs_calls = pytest.mark.skipif(not EXPORTED, reason="the library does not export the 0.5 calls yet")


@pytest.mark.parametrize("struct, cname, size", [(_lib.Call, "gpt_embedding_call", 152),
                                                 (_lib.Grads, "gpt_embedding_grads", 88)])
def test_struct_matches_the_compiled_header(tmp_path, struct, cname, size):
    fields = [name for name, _ in struct._fields_]
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "offsets.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include \"gpt_embedding.h\"\nint main(void) {\n"
                   f'    printf("size %zu\\n", sizeof({cname}));\n'
                   + "".join(f'    printf("{f} %zu %zu\\n", offsetof({cname}, {f}), sizeof((({cname} *)0)->{f}));\n'
                             for f in fields)
                   + "    return 0;\n}\n")
    exe = tmp_path / "offsets"
    subprocess.run([cc, "-std=c11", "-I", os.path.join(ROOT, "include"), str(src), "-o", str(exe)], check=True)
    lines = dict(line.split(" ", 1) for line in subprocess.run([str(exe)], check=True, capture_output=True,
                                                                 text=True).stdout.splitlines())
    assert int(lines.pop("size")) == ctypes.sizeof(struct) == size
    assert list(lines) == fields
    for name, ctype in struct._fields_:
        offset, size = map(int, lines[name].split())
        assert (getattr(struct, name).offset, ctypes.sizeof(ctype)) == (offset, size), name


def test_index_constants_follow_the_header():
    text = open(HEADER).read()
    assert re.search(r"#define GPT_EMBEDDING_INDEX_I32 (\d+)", text).group(1) == str(_lib.INDEX_I32)
    assert re.search(r"#define GPT_EMBEDDING_INDEX_I64 (\d+)", text).group(1) == str(_lib.INDEX_I64)


def test_the_four_functions_are_declared_once():
    for name in NAMES:
        assert (name in _lib.SIGNATURES) != (name in _lib.OPTIONAL_SIGNATURES), name
        if EXPORTED:
            assert name in _lib.SIGNATURES, f"{name} is exported now: move it to SIGNATURES"
            fn = getattr(_lib.lib, name)
            table = _lib.SIGNATURES
            assert fn.argtypes == table[name][0] and fn.restype is table[name][1]
    argtypes = {**_lib.SIGNATURES, **_lib.OPTIONAL_SIGNATURES}
    assert len(argtypes["gpt_embedding_forward_call"][0]) == 5
    assert len(argtypes["gpt_embedding_backward_call"][0]) == 6


# -- the calls (once the library has them) -------------------------------------------------

@needs_calls
def test_init_fills_the_sizes_and_defaults():
    c, g = _lib.new_call(), _lib.new_grads()
    assert c.struct_size == ctypes.sizeof(_lib.Call) and g.struct_size == ctypes.sizeof(_lib.Grads)
    assert (c.flags, c.index_dtype, c.ids, c.positions, c.batch, c.mean) == (0, _lib.INDEX_I32, None, None, 0, None)
    assert g.token_embedding is None and g.token_rows_len == 0
    with pytest.raises(Exception):
        _lib.call(_lib.lib.gpt_embedding_call_init, ctypes.byref(_lib.Call()), 3)


def _call_for(ids, start=0, flags=0):
    c = _lib.new_call()
    c.flags = flags
    c.index_dtype = _lib.INDEX_I64 if ids.dtype == np.int64 else _lib.INDEX_I32
    c.ids = ids.ctypes.data
    c.batch, c.seq = ids.shape
    c.start_position = start
    return c


@needs_calls
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_forward_call_equals_forward(dtype):
    layer = GPTEmbedding(40, 16, 8, dropout=0.0, seed=3).eval()
    ids = np.array([[1, 5, 7], [0, 39, 2]], dtype=dtype)
    want = layer(ids, start_position=2)
    out = np.empty_like(want)
    c = _call_for(ids, start=2)
    _lib.call(_lib.lib.gpt_embedding_forward_call, layer._handle.get(), ctypes.byref(c), _lib.DTYPE_F32,
              out.ctypes.data, out.size)
    np.testing.assert_array_equal(out, want)
    c.batch = -1
    with pytest.raises(GPTEmbeddingValueError):
        _lib.call(_lib.lib.gpt_embedding_forward_call, layer._handle.get(), ctypes.byref(c), _lib.DTYPE_F32,
                  out.ctypes.data, out.size)


@needs_calls
def test_backward_call_into_caller_buffers_equals_backward():
    layer = GPTEmbedding(40, 16, 8, dropout=0.0, seed=3)
    ids = np.array([[1, 5, 5, 7]], dtype=np.int64)
    g = np.random.default_rng(0).standard_normal((1, 4, 16)).astype(np.float32)
    layer(ids)
    layer.backward(g)
    want = layer.grads()
    c = _call_for(ids, flags=_lib.TRAINING)
    grads = _lib.new_grads()
    tok = np.zeros((40, 16), np.float32)
    pos = np.zeros((8, 16), np.float32)
    grads.token_embedding, grads.token_embedding_len = tok.ctypes.data, tok.size
    grads.position_embedding, grads.position_embedding_len = pos.ctypes.data, pos.size
    _lib.call(_lib.lib.gpt_embedding_backward_call, layer._handle.get(), ctypes.byref(c), _lib.DTYPE_F32,
              g.ctypes.data, g.size, ctypes.byref(grads))
    np.testing.assert_array_equal(tok, want["token_embedding.weight"])
    np.testing.assert_array_equal(pos, want["position_embedding.weight"])
