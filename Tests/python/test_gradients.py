"""Backward against central finite differences of L = sum(out * g), computed in float64
from the library's float32 forward; dropout statistics; the forward's mask in backward."""
import numpy as np
import pytest

from gpt_embedding import GPTEmbedding


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("positions,padding", [("learned", None), ("sinusoidal", None), ("learned", 0), ("none", 2)])
def test_backward_matches_finite_differences(layer_norm, positions, padding):
    layer = GPTEmbedding(12, 10, 8, 0.0, position_encoding=positions, padding_idx=padding, init_std=0.5, seed=3)
    rng = np.random.default_rng(0)
    ln = layer.parameter("layer_norm.weight")
    ln[:] = 1 + 0.1 * rng.standard_normal(10).astype(np.float32)
    ids = np.array([[3, 0, 5, 3], [11, 0, 7, 2]])
    g = rng.standard_normal((2, 4, 10)).astype(np.float32)
    layer.train()
    layer(ids, use_layer_norm=layer_norm, start_position=1)
    layer.backward(g)
    grads = layer.grads()
    layer.eval()

    def loss():
        return float(np.sum(layer(ids, use_layer_norm=layer_norm, start_position=1).astype(np.float64) * g))

    for name in layer.parameter_names():
        param = layer.parameter(name).reshape(-1)
        analytic = grads[name].reshape(-1)
        for i in range(0, param.size, max(1, param.size // 17)):
            saved = param[i]
            param[i] = saved + 1e-2
            up = loss()
            param[i] = saved - 1e-2
            down = loss()
            param[i] = saved
            numeric = (up - down) / 2e-2
            if name == "token_embedding.weight" and padding is not None and i // 10 == padding:
                assert analytic[i] == 0, "the padding row gets no gradient"
                continue
            assert abs(numeric - analytic[i]) <= 2e-3 + 1e-2 * abs(analytic[i]), (name, i, numeric, analytic[i])
        del param


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_keeps_about_1_minus_p_and_the_mean(p):
    layer = GPTEmbedding(1000, 128, 256, p, seed=1, num_threads=2)
    ids = np.random.default_rng(1).integers(0, 1000, (8, 256))
    layer.eval()
    y = layer(ids)
    layer.train()
    d = layer(ids)
    n = d.size
    kept = np.count_nonzero(d)
    assert abs(kept - n * (1 - p)) < 5 * np.sqrt(n * p * (1 - p))
    mask = d != 0
    np.testing.assert_array_equal(d[mask], y[mask] * np.float32(1 / (1 - p)))
    assert abs(d.mean() - y.mean()) < 5 * y.std() / np.sqrt(n) * 3


def test_backward_uses_the_forward_mask():
    layer = GPTEmbedding(64, 32, 64, 0.3, scale_embeddings=False, seed=5)
    ids = np.arange(32).reshape(1, 32)
    out = layer(ids)
    layer.backward(np.ones_like(out))
    dwte = layer.grads()["token_embedding.weight"][:32]
    np.testing.assert_array_equal(dwte == 0, out[0] == 0)
    np.testing.assert_allclose(dwte[dwte != 0], 1 / 0.7, rtol=1e-6)


def test_eval_is_deterministic_and_seeds_reproduce():
    a = GPTEmbedding(100, 16, 16, 0.5, seed=9)
    b = GPTEmbedding(100, 16, 16, 0.5, seed=9)
    c = GPTEmbedding(100, 16, 16, 0.5, seed=10)
    for name in a.parameter_names():
        np.testing.assert_array_equal(a.state_dict()[name], b.state_dict()[name])
    assert not np.array_equal(a.state_dict()["token_embedding.weight"], c.state_dict()["token_embedding.weight"])
    ids = [[1, 2, 3]]
    np.testing.assert_array_equal(a(ids), b(ids))  # same seed, same step: same mask
    a.eval()
    np.testing.assert_array_equal(a(ids), a(ids))


def test_gradients_accumulate_until_zeroed_and_touched_rows():
    layer = GPTEmbedding(50, 8, 8, 0.0, scale_embeddings=False)
    y = layer([[4, 9, 4]])
    g = np.ones_like(y)
    layer.backward(g)
    layer.backward(g)
    np.testing.assert_array_equal(layer.grads()["token_embedding.weight"][4], np.full(8, 4, np.float32))
    np.testing.assert_array_equal(layer.touched_rows(), [4, 9])
    layer.zero_grad()
    assert all(not v.any() for v in layer.grads().values())
    assert layer.touched_rows().size == 0


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("padding", [None, 1])
def test_directional_derivative_matches_backward(layer_norm, padding):
    """One random direction v over every parameter at once: (L(p + h v) - L(p - h v)) / 2h
    against sum(grad * v), L = sum(out * g) in float64 from the library's float32 outputs."""
    layer = GPTEmbedding(9, 6, 5, 0.0, padding_idx=padding, init_std=0.7, seed=11)
    rng = np.random.default_rng(4)
    ids = np.array([[1, 4, 4, 8, 1], [0, 2, 1, 3, 5]])
    g = rng.standard_normal((2, 5, 6)).astype(np.float32)
    layer(ids, use_layer_norm=layer_norm)
    layer.backward(g)
    grads = layer.grads()
    layer.eval()
    params = {name: layer.parameter(name) for name in layer.parameter_names()}
    start = {name: p.copy() for name, p in params.items()}
    direction = {name: rng.standard_normal(p.shape).astype(np.float32) for name, p in params.items()}

    def loss_at(h):
        for name, p in params.items():
            p[...] = start[name] + np.float32(h) * direction[name]
        return float(np.sum(layer(ids, use_layer_norm=layer_norm).astype(np.float64) * g))

    h = 1e-2
    numeric = (loss_at(h) - loss_at(-h)) / (2 * h)
    loss_at(0.0)
    analytic = sum(float(np.sum(grads[k].astype(np.float64) * direction[k])) for k in grads)
    if padding is not None:  # the padding row is used in the forward but gets no gradient
        row = direction["token_embedding.weight"][padding].astype(np.float64)
        params["token_embedding.weight"][padding] += np.float32(h) * row
        up = float(np.sum(layer(ids, use_layer_norm=layer_norm).astype(np.float64) * g))
        params["token_embedding.weight"][padding] -= np.float32(2 * h) * row
        down = float(np.sum(layer(ids, use_layer_norm=layer_norm).astype(np.float64) * g))
        params["token_embedding.weight"][padding] = start["token_embedding.weight"][padding]
        numeric -= (up - down) / (2 * h)
        assert not grads["token_embedding.weight"][padding].any()
    assert abs(numeric - analytic) <= 1e-2 * abs(analytic) + 1e-3, (numeric, analytic)
    del params
