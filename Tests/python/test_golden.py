"""The Python package against the PyTorch golden vectors (the same files as Swift and C)."""
import numpy as np
import pytest

from gpt_embedding import GPTEmbedding, GPTEmbeddingConfig, SinusoidalPositionalEmbedding

from golden import files, read

RTOL, ATOL = 1e-5, 1e-6


def test_golden_files_exist():
    assert len(files()) >= 10


def make_layer(case, threads):
    config = GPTEmbeddingConfig(case["vocab_size"], case["embed_dim"], case["max_seq_len"], 0.0,
                                position_encoding=case["position_encoding"],
                                scale_embeddings=bool(case["scale_embeddings"]),
                                layer_norm_eps=case["layer_norm_eps"],
                                padding_idx=None if case["padding_idx"] < 0 else case["padding_idx"],
                                num_threads=threads)
    layer = GPTEmbedding.from_config(config)
    B, T, D, V = case["batch"], case["seq"], case["embed_dim"], case["vocab_size"]
    state = {"token_embedding.weight": case["wte"].reshape(V, D), "layer_norm.weight": case["ln_weight"],
             "layer_norm.bias": case["ln_bias"]}
    if case["position_encoding"] == "learned":
        state["position_embedding.weight"] = case["wpe"].reshape(case["max_seq_len"], D)
    layer.load_state_dict(state)
    return layer


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", files(), ids=lambda p: p.rsplit("/", 1)[-1][:-4])
def test_forward_and_backward_match_pytorch(path, threads):
    case = read(path)
    layer = make_layer(case, threads)
    B, T, D = case["batch"], case["seq"], case["embed_dim"]
    kwargs = dict(use_layer_norm=bool(case["layer_norm"]))
    if case["explicit_positions"]:
        kwargs["position_ids"] = case["positions"].reshape(B, T)
    else:
        kwargs["start_position"] = case["start_position"]
    expected = case["out"].reshape(B, T, D)
    layer.eval()
    np.testing.assert_allclose(layer(case["ids"].reshape(B, T), **kwargs), expected, rtol=RTOL, atol=ATOL)
    layer.train()
    ids32 = case["ids"].reshape(B, T).astype(np.int32)
    if "position_ids" in kwargs:
        kwargs["position_ids"] = kwargs["position_ids"].astype(np.int32)
    out = layer(ids32, **kwargs)
    np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL)
    layer.backward(case["grad_output"].reshape(B, T, D))
    grads = layer.grads()
    np.testing.assert_allclose(grads["token_embedding.weight"].ravel(), case["grad_wte"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grads["layer_norm.weight"], case["grad_ln_weight"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grads["layer_norm.bias"], case["grad_ln_bias"], rtol=RTOL, atol=ATOL)
    if case["position_encoding"] == "learned":
        np.testing.assert_allclose(grads["position_embedding.weight"].ravel(), case["grad_wpe"], rtol=RTOL, atol=ATOL)
    else:
        assert "position_embedding.weight" not in grads


@pytest.mark.parametrize("path", [p for p in files() if "sinusoidal" in p])
def test_sinusoidal_table_matches_pytorch(path):
    case = read(path)
    D = case["embed_dim"]
    table = case["pos_table"].reshape(-1, D)
    got = SinusoidalPositionalEmbedding(case["max_seq_len"], D)(table.shape[0])
    np.testing.assert_allclose(got, table, rtol=RTOL, atol=ATOL)
