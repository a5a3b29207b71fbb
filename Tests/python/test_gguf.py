"""GGUF files (issue 19, part one): every fixture of Tests/fixtures/gguf (written by
generate_gguf.py with the ``gguf`` package) opens with ``from_pretrained``, read and mapped,
and reproduces the float64 reference of llama.cpp's input stage (``<name>.expected.txt``) bit
for bit (BLOOM's layer norm within 1e-6 |b| + 1e-6); bad files, refused architectures and
types this build does not decode raise with a message naming the problem. Needs neither ``gguf`` nor the
generator."""
import os

import numpy as np
import pytest

from gpt_embedding import GPTEmbedding, GPTEmbeddingError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GGUF = os.path.join(ROOT, "Tests", "fixtures", "gguf")
BAD_FILE = 12


def fixtures():
    names = sorted(n for n in os.listdir(GGUF) if n.endswith(".expected.txt"))
    out = []
    for n in names:
        fields = {}
        for line in open(os.path.join(GGUF, n)):
            parts = line.split()
            if parts:
                fields[parts[0]] = parts[1:]
        out.append(fields)
    return out


def bad_files():
    with open(os.path.join(GGUF, "bad", "expected.txt")) as f:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in f if "\t" in line]


FIXTURES = fixtures()


def test_fixtures_exist():
    assert len(FIXTURES) >= 12
    assert len(bad_files()) >= 20


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("fx", FIXTURES, ids=[f["file"][0] for f in FIXTURES])
def test_reproduces_llama_cpp_input_stage(fx, mmap):
    path = os.path.join(GGUF, fx["file"][0])
    layer = GPTEmbedding.from_pretrained(path, mmap=mmap, num_threads=2,
                                         by_tensor_names=fx["by_tensor_names"][0] == "1")
    ids = np.array([int(i) for i in fx["ids"]], dtype=np.int64)[None, :]
    got = np.ascontiguousarray(layer(ids), dtype=np.float32).reshape(-1)
    expected = np.array([int(b) for b in fx["out"]], dtype=np.uint64).astype(np.uint32).view(np.float32)
    assert got.shape == expected.shape
    if fx["exact"][0] == "1":
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    else:
        assert np.all(np.abs(got - expected) <= 1e-6 * np.abs(expected) + 1e-6)


def test_configuration_per_architecture():
    gemma = GPTEmbedding.from_pretrained(os.path.join(GGUF, "gemma_bf16.gguf"))
    # sqrtf(24) in float32 (llama.cpp), not rounded to bf16 as transformers does
    assert np.float32(gemma.config.token_scale) == np.sqrt(np.float32(24), dtype=np.float32)
    assert gemma.weight_dtype == "bfloat16"
    bloom = GPTEmbedding.from_pretrained(os.path.join(GGUF, "bloom_f32.gguf"))
    assert bloom.config.layer_norm
    gpt2 = GPTEmbedding.from_pretrained(os.path.join(GGUF, "gpt2_f32.gguf"))
    assert gpt2.config.max_seq_len == 8
    f32 = GPTEmbedding.from_pretrained(os.path.join(GGUF, "qwen2_bf16.gguf"), dtype="float32")
    assert f32.weight_dtype == "float32"


@pytest.mark.parametrize("name,message", bad_files())
def test_bad_files_are_refused(name, message):
    for mmap in (False, True):
        with pytest.raises((ValueError, OSError)) as info:
            GPTEmbedding.from_pretrained(os.path.join(GGUF, "bad", name + ".gguf"), mmap=mmap)
        assert isinstance(info.value, GPTEmbeddingError) and info.value.status == BAD_FILE
        assert message in str(info.value)


def test_refused_architecture():
    with pytest.raises(ValueError, match=r'architecture "bert" is not supported.*by_tensor_names=True'):
        GPTEmbedding.from_pretrained(os.path.join(GGUF, "bert_f32.gguf"))
    layer = GPTEmbedding.from_pretrained(os.path.join(GGUF, "bert_f32.gguf"), by_tensor_names=True)
    assert layer.config.vocab_size == 30
