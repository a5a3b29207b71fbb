"""Empty inputs (issue 18, item 10): a batch or a sequence of length 0 is a valid call that
returns an empty output of the right shape, as PyTorch's nn.Embedding does; the backward of
an empty training forward adds nothing. Dtypes, shapes and the layer's state are still
checked."""
import numpy as np
import pytest

import gpt_embedding.layer

from gpt_embedding import GPTEmbedding, GPTEmbeddingStateError

D = 8


def _library_takes_empty_calls():
    return GPTEmbedding(4, 2, 2)._library_takes_empty_calls()


@pytest.fixture(autouse=True, params=["library", "python"])
def empty_calls_by(request, monkeypatch):
    """Every test twice: empty calls answered by the library (header 0.5) and by the
    package's own short-circuit (for a library without them)."""
    if request.param == "library":
        if not _library_takes_empty_calls():
            pytest.skip("the loaded library refuses empty calls")
        monkeypatch.setattr(gpt_embedding.layer, "_EMPTY_CALLS", True)
    else:
        monkeypatch.setattr(gpt_embedding.layer, "_EMPTY_CALLS", False)
    return request.param


@pytest.fixture
def layer():
    return GPTEmbedding(50, D, 16, dropout=0.1, seed=4)


@pytest.mark.parametrize("ids, shape", [
    (np.zeros((0, 5), np.int64), (0, 5, D)),
    (np.zeros((0, 5), np.int32), (0, 5, D)),
    (np.zeros((3, 0), np.int64), (3, 0, D)),
    (np.zeros((3, 0), np.int32), (3, 0, D)),
    (np.zeros((0, 0), np.int64), (0, 0, D)),
    (np.zeros((0,), np.int32), (1, 0, D)),
    ([], (1, 0, D)),
    ([[]], (1, 0, D)),
    ([[], []], (2, 0, D)),
    (np.zeros((2, 0), np.uint8), (2, 0, D)),
])
@pytest.mark.parametrize("training", [False, True])
def test_empty_forward_returns_an_empty_output(layer, ids, shape, training):
    layer.train(training)
    y = layer(ids)
    assert y.shape == shape and y.dtype == np.float32
    assert layer(ids, out_dtype="float16").dtype == np.float16
    out = np.empty(shape, np.float32)
    assert layer(ids, out=out, start_position=3) is out
    if shape[0] == 0 or shape[1] == 0:
        assert layer(ids, position_ids=np.zeros(np.shape(ids), np.int64)).shape == shape


def test_empty_calls_still_check_dtypes_and_shapes(layer):
    with pytest.raises(ValueError, match="integer"):
        layer(np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \[batch, seq\]"):
        layer(np.zeros((0, 3, 1), np.int64))
    with pytest.raises(ValueError, match="out must have shape"):
        layer(np.zeros((0, 3), np.int64), out=np.empty((0, 4, D), np.float32))
    with pytest.raises(ValueError, match="float32"):
        layer(np.zeros((0, 3), np.int64), out=np.empty((0, 3, D), np.float64))
    with pytest.raises(ValueError, match="position_ids must have the shape"):
        layer(np.zeros((0, 3), np.int64), position_ids=np.zeros((0, 2), np.int64))
    with pytest.raises(TypeError, match="start_position"):
        layer(np.zeros((0, 3), np.int64), start_position=1.5)


def test_backward_of_an_empty_training_forward_adds_nothing(layer):
    ids = np.array([[1, 2, 3]], np.int64)
    layer(ids)
    layer.backward(np.ones((1, 3, D), np.float32))
    before = layer.grads()
    assert np.abs(before["token_embedding.weight"]).sum() > 0
    layer(np.zeros((2, 0), np.int64))
    layer.backward(np.zeros((2, 0, D), np.float32))
    for name, g in layer.grads().items():
        np.testing.assert_array_equal(g, before[name], err_msg=name)
    # The empty forward replaced the state: the previous forward's backward is gone.
    with pytest.raises(ValueError, match="grad_output must have shape"):
        layer.backward(np.ones((1, 3, D), np.float32))
    # And an empty backward does not fit a non-empty forward.
    layer(ids)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        layer.backward(np.zeros((1, 0, D), np.float32))
    layer.backward(np.ones((1, 3, D), np.float32))  # the state of that forward is intact


def test_empty_backward_without_a_training_forward_is_a_state_error(layer):
    with pytest.raises(GPTEmbeddingStateError):
        layer.backward(np.zeros((0, 3, D), np.float32))


def test_empty_calls_on_a_closed_layer_raise(layer):
    layer.close()
    with pytest.raises(GPTEmbeddingStateError, match="closed"):
        layer(np.zeros((0, 3), np.int64))
    with pytest.raises(GPTEmbeddingStateError, match="closed"):
        layer.eval()(np.zeros((0, 3), np.int64))


def test_empty_eval_forward_keeps_the_training_state(layer):
    ids = np.array([[4, 5]], np.int64)
    layer(ids)
    layer.eval()(np.zeros((0, 2), np.int64))
    layer.train().backward(np.ones((1, 2, D), np.float32))
    assert layer.touched_rows().tolist() == [4, 5]


def test_empty_two_phase_forward():
    layer = GPTEmbedding(50, D, 16, dropout=0.0, seed=1)
    x = layer.forward_partial(np.zeros((0, 4), np.int64))
    assert x.shape == (0, 4, D)
    assert layer.forward_finish(x) is x
    layer.backward(np.zeros((0, 4, D), np.float32))
