"""Quantized GGUF token tables from Python (issue 19): every block type opens (read and
mapped) with its type as ``weight_dtype``, hands out its raw blocks (the file's bytes),
dequantizes in ``get_parameter`` exactly as the table converted at open (``dtype=``), and is
frozen: backward trains positions and the layer norm only, ``AdamW`` leaves it out by
default and refuses a group naming it. The forward against ``gguf.quants.dequantize`` and
llama.cpp's input stage is in test_gguf.py (the fixtures' goldens)."""
import os

import numpy as np
import pytest

from gpt_embedding import AdamW, GPTEmbedding, GPTEmbeddingError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GGUF = os.path.join(ROOT, "Tests", "fixtures", "gguf")
TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"]
BAD_STATE = 7
TOKEN = "token_embedding.weight"


def open_(name, **kw):
    return GPTEmbedding.from_pretrained(os.path.join(GGUF, name), num_threads=2, **kw)


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("qtype", TYPES)
def test_table_keeps_its_blocks(qtype, mmap):
    name = f"llama_{qtype}.gguf"
    layer = open_(name, mmap=mmap)
    assert layer.weight_dtype == qtype
    assert layer.parameter_dtype(TOKEN) == np.uint8
    assert layer.frozen_parameter_names() == [TOKEN]
    assert layer.is_mapped(TOKEN) == mmap
    raw = layer.parameter(TOKEN)
    assert raw.dtype == np.uint8 and raw.shape[0] == layer.config.vocab_size
    with open(os.path.join(GGUF, name), "rb") as f:
        assert f.read().find(raw.tobytes()) > 0, "the raw blocks are the file's bytes"
    converted = open_(name, dtype="float32")
    assert converted.weight_dtype == "float32" and converted.frozen_parameter_names() == []
    np.testing.assert_array_equal(layer.get_parameter(TOKEN).view(np.uint32),
                                  converted.get_parameter(TOKEN).view(np.uint32))
    del raw
    layer.close()


def test_frozen_table_trains_the_rest():
    q, f = open_("gpt2_q8_0.gguf"), open_("gpt2_q8_0.gguf", dtype="float32")
    ids = np.array([[36, 0, 7, 7]])
    dout = (np.arange(4 * q.config.embed_dim, dtype=np.float32).reshape(1, 4, -1) % 13 - 6) / 7
    for layer in (q, f):
        layer.train()
        out = layer(ids)
        layer.backward(dout)
    np.testing.assert_array_equal(q.grads()["position_embedding.weight"], f.grads()["position_embedding.weight"])
    assert TOKEN not in q.grads()
    with pytest.raises(GPTEmbeddingError) as info:
        q.gradient(TOKEN)
    assert info.value.status == BAD_STATE and "q8_0" in str(info.value) and "dtype" in str(info.value)
    with pytest.raises(GPTEmbeddingError) as info:
        q.load_state_dict({TOKEN: q.get_parameter(TOKEN)}, strict=False)
    assert info.value.status == BAD_STATE
    before = q.get_parameter(TOKEN)
    opt = AdamW(q, lr=1e-2)
    assert TOKEN not in opt.param_groups[0]["params"]
    opt.step()
    AdamW(f, lr=1e-2, params=[{"params": ["position_embedding.weight", "layer_norm.weight", "layer_norm.bias"]}]).step()
    np.testing.assert_array_equal(q.get_parameter(TOKEN), before)
    np.testing.assert_array_equal(q.get_parameter("position_embedding.weight"), f.get_parameter("position_embedding.weight"))
    with pytest.raises(GPTEmbeddingError) as info:
        AdamW(q, params=[{"params": [TOKEN]}]).step()
    assert info.value.status == BAD_STATE and "optimizer step" in str(info.value)
    assert out.shape == (1, 4, q.config.embed_dim)


def test_shard_reads_its_rows():
    whole = open_("llama_q4_k.gguf")
    parts = [open_("llama_q4_k.gguf", shard=(r, 2)) for r in range(2)]
    rows = np.concatenate([p.get_parameter(TOKEN) for p in parts])
    np.testing.assert_array_equal(rows, whole.get_parameter(TOKEN))
    assert all(p.weight_dtype == "q4_k" for p in parts)


def test_torch_module_refuses_blocks_and_takes_a_converted_table():
    if os.environ.get("GPT_EMBEDDING_REQUIRE_TORCH") != "1":
        pytest.importorskip("torch")
    import torch
    import gpt_embedding.nn as gnn
    with pytest.raises(ValueError, match="q8_0 .*dtype='float32'"):
        gnn.GPTEmbedding.from_pretrained(os.path.join(GGUF, "gpt2_q8_0.gguf"))
    m = gnn.GPTEmbedding.from_pretrained(os.path.join(GGUF, "gpt2_q8_0.gguf"), dtype="float32")
    ref = open_("gpt2_q8_0.gguf")
    ids = np.array([[36, 0, 7, 7]])
    np.testing.assert_array_equal(m(torch.tensor(ids)).detach().numpy(), ref(ids))
