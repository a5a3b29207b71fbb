"""safetensors files: written by the official `safetensors` package and read by the
library, written by the library and read by the package; F16/BF16; rejected files change
nothing."""
import numpy as np
import pytest

from gpt_embedding import GPTEmbedding

safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="pip install safetensors (.ci/run installs it)")


def make():
    return GPTEmbedding(20, 8, 6, 0.0, seed=3, scale_embeddings=False)  # GPT-2: no scaling


@pytest.mark.parametrize("prefix", ["", "transformer."])
def test_files_from_the_official_package_load(tmp_path, prefix):
    rng = np.random.default_rng(0)
    wte, wpe = rng.standard_normal((20, 8)).astype(np.float32), rng.standard_normal((6, 8)).astype(np.float32)
    path = tmp_path / "gpt2.safetensors"
    safetensors_numpy.save_file({f"{prefix}wte.weight": wte, f"{prefix}wpe.weight": wpe,
                                 f"{prefix}h.0.ln_1.weight": np.ones(8, np.float32)}, str(path))
    layer = make()
    layer.load_safetensors(path)
    np.testing.assert_array_equal(layer.state_dict()["token_embedding.weight"], wte)
    np.testing.assert_array_equal(layer.state_dict()["position_embedding.weight"], wpe)
    layer.eval()
    ids = np.array([[1, 5, 19]])
    np.testing.assert_allclose(layer(ids), wte[ids] + wpe[np.arange(3)], rtol=1e-6)


def test_f16_converts_exactly(tmp_path):
    wte = (np.arange(160) / 8 - 10).astype(np.float16).reshape(20, 8)
    wpe = np.zeros((6, 8), np.float16)
    path = tmp_path / "half.safetensors"
    safetensors_numpy.save_file({"token_embedding.weight": wte, "position_embedding.weight": wpe}, str(path))
    layer = make()
    layer.load_safetensors(path)
    np.testing.assert_array_equal(layer.state_dict()["token_embedding.weight"], wte.astype(np.float32))


@pytest.mark.parametrize("gpt2_names", [False, True])
def test_files_we_write_load_in_the_official_package(tmp_path, gpt2_names):
    layer = make()
    path = tmp_path / "ours.safetensors"
    layer.save_safetensors(path, gpt2_names=gpt2_names)
    loaded = safetensors_numpy.load_file(str(path))
    state = layer.state_dict()
    token = "wte.weight" if gpt2_names else "token_embedding.weight"
    np.testing.assert_array_equal(loaded[token], state["token_embedding.weight"])
    np.testing.assert_array_equal(loaded["layer_norm.bias"], state["layer_norm.bias"])
    other = GPTEmbedding(20, 8, 6, 0.0, seed=4)
    other.load_safetensors(path)
    for k, v in state.items():
        np.testing.assert_array_equal(other.state_dict()[k], v)


def test_bad_files_raise_and_change_nothing(tmp_path):
    layer = make()
    before = layer.state_dict()
    path = tmp_path / "bad.safetensors"
    safetensors_numpy.save_file({"wte.weight": np.zeros((19, 8), np.float32), "wpe.weight": np.zeros((6, 8), np.float32)},
                                str(path))
    with pytest.raises(ValueError, match=r"wte.weight: shape \[19, 8\] does not match"):
        layer.load_safetensors(path)
    path.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(ValueError, match="not valid JSON"):
        layer.load_safetensors(path)
    with pytest.raises(OSError, match="cannot open"):
        layer.load_safetensors(tmp_path / "missing.safetensors")
    for k, v in before.items():
        np.testing.assert_array_equal(layer.state_dict()[k], v)
