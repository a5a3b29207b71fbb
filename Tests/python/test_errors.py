"""Every wrong input raises a Python exception carrying the library's message; nothing a
user passes crashes the interpreter, and a failed call changes nothing."""
import numpy as np
import pytest

from gpt_embedding import (GPTEmbedding, GPTEmbeddingConfig, GPTEmbeddingError, GPTEmbeddingStateError,
                           PositionalEmbedding)


@pytest.fixture
def layer():
    return GPTEmbedding(10, 8, 4, 0.25)


def snapshot(layer):
    return {**{k: v.copy() for k, v in layer.state_dict().items()}, **{"d" + k: v for k, v in layer.grads().items()}}


def unchanged(before, layer):
    after = snapshot(layer)
    return all(np.array_equal(before[k], after[k]) for k in before)


def test_out_of_range_ids_and_positions_raise_index_error(layer):
    before = snapshot(layer)
    with pytest.raises(IndexError, match=r"token id 10 at \[1, 0\] is out of range \[0, 10\)"):
        layer([[1, 2], [10, 3]])
    with pytest.raises(IndexError, match=r"token id -1 at \[0, 1\]"):
        layer(np.array([[1, -1]], dtype=np.int32))
    with pytest.raises(IndexError, match=r"position 4 at \[0, 2\] \(start_position 2 \+ 2\) is out of range \[0, 4\)"):
        layer([[1, 2, 3]], start_position=2)
    with pytest.raises(IndexError, match=r"position 9 at \[0, 1\]"):
        layer([[1, 2]], position_ids=[[0, 9]])
    with pytest.raises(GPTEmbeddingError) as info:
        layer([[1, 2**40]])
    assert info.value.status == 4 and "1099511627776" in str(info.value)
    assert unchanged(before, layer)


def test_wrong_dtypes_shapes_and_layouts_raise_value_error(layer):
    with pytest.raises(ValueError, match="integer"):
        layer(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="integers"):
        layer([["a", "b"]])
    with pytest.raises(ValueError, match="rectangular|shape"):
        layer([[1, 2], [3]])
    strided = np.arange(8).reshape(2, 4)[:, ::2]  # strided ids are copied, not refused
    np.testing.assert_array_equal(layer.eval()(strided), layer(np.ascontiguousarray(strided)))
    layer.train()
    with pytest.raises(ValueError, match="C-contiguous"):
        layer([[1, 2]], out=np.empty((1, 2, 16), np.float32)[:, :, ::2])
    with pytest.raises(ValueError, match=r"shape \[batch, seq\]"):
        layer(np.zeros((1, 2, 3), dtype=np.int64))
    # Issue 18 item 10: an empty batch or sequence is a valid call, as in PyTorch (Tests/python/test_empty.py).
    assert layer(np.zeros((1, 0), dtype=np.int64)).shape == (1, 0, layer.embed_dim)
    with pytest.raises(ValueError, match="out must have shape"):
        layer([[1, 2]], out=np.empty((1, 2, 7), np.float32))
    with pytest.raises(ValueError, match="float32"):
        layer([[1, 2]], out=np.empty((1, 2, 8), np.float64))
    with pytest.raises(ValueError, match="position_ids must have the shape"):
        layer([[1, 2]], position_ids=[[0]])
    with pytest.raises(ValueError, match="start_position must be >= 0"):
        layer([[1, 2]], start_position=-1)


def test_out_argument_is_written_in_place(layer):
    layer.eval()
    out = np.full((2, 2, 8), 7, np.float32)
    result = layer([[1, 2], [3, 4]], out=out)
    assert result is out
    np.testing.assert_array_equal(out, layer([[1, 2], [3, 4]]))


def test_backward_errors(layer):
    layer.eval()
    layer([[1, 2]])
    with pytest.raises(RuntimeError, match="no training forward"):
        layer.backward(np.ones((1, 2, 8), np.float32))
    layer.train()
    layer([[1, 2]])
    with pytest.raises(ValueError, match=r"grad_output must have shape \[1, 2, 8\]"):
        layer.backward(np.ones((2, 1, 8), np.float32))
    with pytest.raises(ValueError, match="float32"):
        layer.backward(np.ones((1, 2, 8), np.float64))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"dropout = 1.5: must be in \[0, 1\]"):
        GPTEmbeddingConfig(dropout=1.5)
    with pytest.raises(ValueError, match="vocab_size = 0"):
        GPTEmbedding(vocab_size=0)
    with pytest.raises(ValueError, match="padding_idx = 99"):
        GPTEmbedding(vocab_size=10, padding_idx=99)
    with pytest.raises(ValueError, match="unknown preset"):
        GPTEmbeddingConfig.from_preset("gpt5")
    with pytest.raises(ValueError, match="position_encoding"):
        GPTEmbeddingConfig(position_encoding="rotary")
    with pytest.raises(ValueError, match="64-bit"):
        GPTEmbeddingConfig(vocab_size=2**70)
    with pytest.raises(MemoryError):
        GPTEmbedding(vocab_size=2**30, embed_dim=4096)


def test_state_dict_errors(layer):
    with pytest.raises(KeyError, match="missing"):
        layer.load_state_dict({"token_embedding.weight": np.zeros((10, 8), np.float32)})
    state = layer.state_dict()
    state["token_embedding.weight"] = np.zeros((10, 7), np.float32)
    before = snapshot(layer)
    with pytest.raises(ValueError, match=r"shape \[10, 8\]"):
        layer.load_state_dict(state)
    assert unchanged(before, layer)
    with pytest.raises(KeyError):
        GPTEmbedding(10, 8, 4, use_sinusoidal=True).parameter("position_embedding.weight")


def test_views_keep_the_layer_alive_and_close_refuses_while_they_exist():
    layer = GPTEmbedding(10, 8, 4)
    w = layer.parameter("token_embedding.weight")
    with pytest.raises(GPTEmbeddingStateError, match="view"):
        layer.close()
    del layer
    assert np.isfinite(w).all()  # the memory is still the layer's, which w keeps alive
    w[0, 0] = 1.0
    del w


def test_closed_layer_raises():
    layer = GPTEmbedding(10, 8, 4)
    layer.close()
    layer.close()  # twice is fine
    with pytest.raises(GPTEmbeddingStateError, match="closed"):
        layer([[1]])


def test_positional_embedding_range():
    pos = PositionalEmbedding(8, 4)
    assert pos(3, start_position=5).shape == (3, 4)
    with pytest.raises(IndexError, match="out of range"):
        pos(4, start_position=5)
