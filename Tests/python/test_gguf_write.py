"""Writing GGUF files from Python (issue 19, item 6): ``GPTEmbedding.save_gguf``.

The goldens in Tests/fixtures/gguf/write/ come from the ``gguf`` package
(generate_write_golden.py): the written token table must be ``gguf.quants.quantize``'s bytes
and must read back as ``gguf.quants.dequantize``'s rows. These checks need no ``gguf``; when
the package is installed, the written files are also read with its own ``GGUFReader``.
"""
import os
import struct

import numpy as np
import pytest

from gpt_embedding import GPTEmbedding, GPTEmbeddingError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GGUF = os.path.join(ROOT, "Tests", "fixtures", "gguf")
WRITE = os.path.join(GGUF, "write")
TYPES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f16", "bf16"]


def tensor_bytes(path, name):
    """The data of tensor `name` of a GGUF v3 file, parsed here with struct (no gguf needed)."""
    with open(path, "rb") as f:
        b = f.read()
    assert b[:4] == b"GGUF" and struct.unpack_from("<I", b, 4)[0] == 3
    n_tensors, n_kv = struct.unpack_from("<QQ", b, 8)
    at = 24

    def string():
        nonlocal at
        (n,) = struct.unpack_from("<Q", b, at)
        at += 8 + n
        return b[at - n:at].decode()

    sizes = {4: 4, 5: 4, 6: 4, 10: 8, 11: 8, 12: 8, 0: 1, 1: 1, 7: 1, 2: 2, 3: 2}
    alignment, arch = 32, None
    for _ in range(n_kv):
        key = string()
        (t,) = struct.unpack_from("<I", b, at)
        at += 4
        if t == 8:
            value = string()
        else:
            assert t in sizes, f"{key}: type {t}"
            value = b[at:at + sizes[t]]
            at += sizes[t]
        if key == "general.alignment":
            alignment = struct.unpack("<I", value)[0]
        if key == "general.architecture":
            arch = value
    infos = {}
    for _ in range(n_tensors):
        tname = string()
        (nd,) = struct.unpack_from("<I", b, at)
        at += 4
        ne = struct.unpack_from(f"<{nd}Q", b, at)
        at += 8 * nd
        ttype, offset = struct.unpack_from("<IQ", b, at)
        at += 12
        infos[tname] = (ne, ttype, offset)
    data = (at + alignment - 1) // alignment * alignment
    order = sorted(infos.items(), key=lambda kv: kv[1][2])
    ends = [o for _, (_, _, o) in order[1:]] + [len(b) - data]
    span = {k: (data + o, data + e) for (k, (_, _, o)), e in zip(order, ends)}
    lo, hi = span[name]
    return b[lo:hi], infos[name], arch


def golden(name):
    with open(os.path.join(WRITE, name), "rb") as f:
        return f.read()


@pytest.mark.parametrize("table_type", TYPES)
def test_written_table_is_the_gguf_packages_quantize(tmp_path, table_type):
    src = GPTEmbedding.from_pretrained(os.path.join(WRITE, "source.gguf"))
    out = tmp_path / f"{table_type}.gguf"
    src.save_gguf(out, table_type=table_type)
    data, (ne, _, _), arch = tensor_bytes(out, "token_embd.weight")
    expected = golden(f"{table_type}.bin")
    assert arch == "llama" and ne == (src.embed_dim, src.vocab_size)
    assert data[:len(expected)] == expected and not any(data[len(expected):])  # then only padding
    for mmap in (False, True):
        back = GPTEmbedding.from_pretrained(out, mmap=mmap)
        rows = back.get_parameter("token_embedding.weight")
        assert rows.view(np.uint32).tobytes() == golden(f"{table_type}.rows.bin")
        assert back.weight_dtype == {"f16": "float16", "bf16": "bfloat16"}.get(table_type, table_type)


@pytest.mark.parametrize("table_type", ["q8_0", "q4_1", "bf16", "keep"])
def test_the_gguf_package_reads_what_is_written(tmp_path, table_type):
    gguf = pytest.importorskip("gguf")  # CI has no gguf: the test above checks the same bytes
    src = GPTEmbedding.from_pretrained(os.path.join(GGUF, "gpt2_q8_0.gguf"), dtype="float32")  # D = 64
    out = tmp_path / "x.gguf"
    src.save_gguf(out, table_type=table_type)
    r = gguf.GGUFReader(str(out))
    t = {x.name: x for x in r.tensors}
    assert set(t) == {"token_embd.weight", "position_embd.weight"}
    table = src.get_parameter("token_embedding.weight")
    qtype = gguf.GGMLQuantizationType.F32 if table_type == "keep" else gguf.GGMLQuantizationType[table_type.upper()]
    assert t["token_embd.weight"].tensor_type == qtype
    assert np.array_equal(np.asarray(t["token_embd.weight"].data).view(np.uint8).ravel(),
                          np.asarray(gguf.quants.quantize(table, qtype)).view(np.uint8).ravel())
    back = GPTEmbedding.from_pretrained(out)
    assert np.array_equal(back.get_parameter("token_embedding.weight").view(np.uint32),
                          gguf.quants.dequantize(np.asarray(t["token_embd.weight"].data), qtype).astype(np.float32)
                          .reshape(table.shape).view(np.uint32))


@pytest.mark.parametrize("name", ["gpt2_f32.gguf", "gemma_bf16.gguf", "granite_f16.gguf", "bloom_q8_0.gguf"])
def test_families_round_trip(tmp_path, name):
    a = GPTEmbedding.from_pretrained(os.path.join(GGUF, name))
    out = tmp_path / name
    a.save_gguf(out)
    b = GPTEmbedding.from_pretrained(out)
    ids = (np.arange(12, dtype=np.int64) * 5 + 1).reshape(3, 4) % a.vocab_size
    assert np.array_equal(a(ids).view(np.uint32), b(ids).view(np.uint32))


def test_safetensors_to_q8_0_and_back(tmp_path):
    """A Hugging Face checkpoint (GPT-Neo, bf16 safetensors + config.json) written as GGUF
    Q8_0 opens as a gpt2-architecture file with its positions and the quantized rows (each
    within Q8_0's step of the original); converted to float32 it saves as safetensors again."""
    a = GPTEmbedding.from_pretrained(os.path.join(ROOT, "Tests", "fixtures", "families", "gpt_neo_bf16"))
    out = tmp_path / "neo.gguf"
    a.save_gguf(out, table_type="q8_0")
    _, _, arch = tensor_bytes(out, "token_embd.weight")
    b = GPTEmbedding.from_pretrained(out)
    assert arch == "gpt2" and b.weight_dtype == "q8_0" and b.position_encoding == "learned"
    x = a.get_parameter("token_embedding.weight").astype(np.float64)
    y = b.get_parameter("token_embedding.weight").astype(np.float64)
    # Q8_0's error: half a step of d = max|x| / 127, plus the fp16 rounding of d (2^-11 of
    # d, times at most 127 levels).
    step = np.abs(x.reshape(-1, 32)).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(x.reshape(-1, 32) - y.reshape(-1, 32)) <= step * (0.5 + 127 / 2048) * 1.001)
    assert not np.array_equal(x, y)  # it was quantized
    assert np.array_equal(a.get_parameter("position_embedding.weight"), b.get_parameter("position_embedding.weight"))
    c = GPTEmbedding.from_pretrained(out, dtype="float32")
    c.save_safetensors(tmp_path / "back.safetensors")
    d = GPTEmbedding.from_pretrained(tmp_path / "back.safetensors")
    assert np.array_equal(d.get_parameter("token_embedding.weight"), y.astype(np.float32))


def test_refusals_leave_no_file(tmp_path):
    src = GPTEmbedding.from_pretrained(os.path.join(WRITE, "source.gguf"))
    out = tmp_path / "x.gguf"
    with pytest.raises(ValueError, match="table_type"):
        src.save_gguf(out, table_type="q4_k")
    sin = GPTEmbedding(vocab_size=10, embed_dim=64, position_encoding="sinusoidal")
    with pytest.raises(GPTEmbeddingError, match="sinusoidal") as info:
        sin.save_gguf(out)
    assert info.value.status == 2  # GPT_EMBEDDING_ERROR_INVALID_ARGUMENT
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("name", ["llama_q4_k.gguf", "gpt2_q8_0.gguf", "llama_iq4_xs.gguf"])
def test_a_quantized_table_saves_to_safetensors_dequantized(tmp_path, name):
    """safetensors has no block types: save_safetensors writes the rows the layer computes
    with (F32), which the official package reads and the library reopens unchanged."""
    from safetensors.numpy import load_file
    q = GPTEmbedding.from_pretrained(os.path.join(GGUF, name))
    q.save_safetensors(tmp_path / "t.safetensors")
    rows = q.get_parameter("token_embedding.weight")
    t = load_file(str(tmp_path / "t.safetensors"))["token_embedding.weight"]
    assert t.dtype == np.float32 and np.array_equal(t.view(np.uint32), rows.view(np.uint32))
    back = GPTEmbedding.from_pretrained(tmp_path / "t.safetensors")
    assert back.weight_dtype == "float32"
    assert np.array_equal(back.get_parameter("token_embedding.weight").view(np.uint32), rows.view(np.uint32))
