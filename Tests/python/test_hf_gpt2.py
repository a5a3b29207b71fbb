"""A checkpoint written by Hugging Face transformers' GPT-2 (Tests/fixtures, made by
Tests/fixtures/generate.py) loads, and the eval forward equals transformers'
wte(ids) + wpe(positions)."""
import os

import numpy as np
import pytest

from gpt_embedding import GPTEmbedding

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def expected():
    rows = dict(line.split(None, 1) for line in open(os.path.join(FIXTURES, "gpt2_tiny_expected.txt"))
                if not line.startswith("#"))
    ids = np.array(rows["ids"].split(), dtype=np.int64).reshape(2, 6)
    pos = np.array(rows["positions"].split(), dtype=np.int64).reshape(2, 6)
    out = np.array(rows["out"].split(), dtype=np.float32).reshape(2, 6, 8)
    return ids, pos, out


@pytest.mark.parametrize("name", ["gpt2_tiny.safetensors", "gpt2_tiny_unprefixed.safetensors"])
def test_transformers_checkpoint_reproduces_its_embedding(name):
    layer = GPTEmbedding(64, 8, 16, 0.1, scale_embeddings=False)  # GPT-2's embedding
    layer.load_safetensors(os.path.join(FIXTURES, name))
    layer.eval()
    ids, pos, out = expected()
    np.testing.assert_allclose(layer(ids, position_ids=pos), out, rtol=1e-6, atol=1e-7)
