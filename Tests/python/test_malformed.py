"""Every rejection rule of the safetensors loader (Tests/fixtures/malformed, one file per
rule): the error names the problem and the layer is unchanged."""
import os

import numpy as np
import pytest

from gpt_embedding import GPTEmbedding, GPTEmbeddingError

DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "malformed")
CASES = [line.rstrip("\n").split("\t") for line in open(os.path.join(DIR, "EXPECTED"))]


def test_every_rule_has_a_file():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name,text", CASES)
def test_malformed_file_is_rejected_and_changes_nothing(name, text):
    layer = GPTEmbedding(8, 4, 4, 0.0)
    layer([[1, 2]])
    layer.backward(np.ones((1, 2, 4), np.float32))
    before = {**layer.state_dict(), **{"d" + k: v for k, v in layer.grads().items()}}
    with pytest.raises(GPTEmbeddingError) as info:
        layer.load_safetensors(os.path.join(DIR, name))
    assert info.value.status == 12 and text in str(info.value), str(info.value)
    after = {**layer.state_dict(), **{"d" + k: v for k, v in layer.grads().items()}}
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
