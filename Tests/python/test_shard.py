"""Vocabulary-parallel shards from Python, in one process (the all-reduce is the sum of
the shards' partials; Tests/mpi runs it with mpi4py): the split rule, the two phases and
the backward against a layer holding the whole table bit for bit, opening a shard of a
checkpoint, and the errors (nothing changed)."""
import ctypes

import numpy as np
import pytest

import gpt_embedding as ge
from gpt_embedding import _lib

V, D = 37, 16


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def test_config_struct_mirrors_the_header():
    assert ctypes.sizeof(_lib.Config) == _lib.lib.gpt_embedding_config_size() == 104
    assert _lib.Config.shard_start.offset == 88 and _lib.Config.shard_end.offset == 96
    assert ctypes.sizeof(_lib.OpenOptions) == 88 and _lib.OpenOptions.shard_rank.offset == 64  # 0.6 appends family


def test_split_rules():
    ranges = [ge.shard_range(V, r, 3) for r in range(3)]
    assert ranges == [(0, 13), (13, 25), (25, 37)]
    assert [ge.shard_range(51200, r, 8, "megatron")[0] for r in range(8)] == [6400 * r for r in range(8)]
    with pytest.raises(ValueError, match=r"37 % 2 = 1"):
        ge.shard_range(V, 0, 2, "megatron")
    with pytest.raises(ValueError, match=r"rank = 3"):
        ge.shard_range(V, 3, 3)
    with pytest.raises(ValueError, match=r"world = 38 is larger than vocab_size = 37"):
        ge.shard_range(V, 0, 38)
    with pytest.raises(ValueError, match=r"rule = 'even'"):
        ge.shard_range(V, 0, 2, "even")


@pytest.mark.parametrize("start,end", [(5, 5), (6, 2), (-1, 3), (30, 38), (3, 0)])
def test_bad_shard_ranges_are_refused(start, end):
    with pytest.raises(ValueError, match="shard"):
        ge.GPTEmbeddingConfig(vocab_size=V, shard_start=start, shard_end=end)


def shards_of(world, **cfg):
    return [ge.GPTEmbedding(config=ge.GPTEmbeddingConfig(**cfg, shard_start=s, shard_end=e))
            for s, e in (ge.shard_range(cfg["vocab_size"], r, world) for r in range(world))]


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "none"])
@pytest.mark.parametrize("layer_norm", [True, False])
def test_shards_equal_the_whole_layer(positions, layer_norm):
    cfg = dict(vocab_size=V, embed_dim=D, max_seq_len=16, dropout=0.2, seed=4, padding_idx=3,
               position_encoding=positions, num_threads=2)
    rng = np.random.default_rng(1)
    for world in (1, 2, 3):
        whole = ge.GPTEmbedding(**cfg)
        shards = shards_of(world, **cfg)
        for step in range(2):
            ids = rng.integers(0, V, size=(2, 11))
            ids[0, 0] = 3
            dy = rng.standard_normal((2, 11, D)).astype(np.float32)
            ref = whole.forward(ids, use_layer_norm=layer_norm, start_position=step)
            total = sum(s.forward_partial(ids, use_layer_norm=layer_norm, start_position=step) for s in shards)
            whole.zero_grad()
            whole.backward(dy)
            for s in shards:
                y = s.forward_finish(total.copy())
                assert np.array_equal(bits(y), bits(ref))
                s.zero_grad()
                s.backward(dy)
            tokens = np.concatenate([s.gradient("token_embedding.weight") for s in shards])
            assert np.array_equal(bits(tokens), bits(whole.gradient("token_embedding.weight")))
            for name in whole.parameter_names()[1:]:
                for s in shards:
                    assert np.array_equal(bits(s.gradient(name)), bits(whole.gradient(name))), name
            touched = np.concatenate([s.touched_rows() + s.config.shard_start for s in shards])
            assert np.array_equal(touched, whole.touched_rows())


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("positions,layer_norm,dim", [("learned", True, 64), ("learned", False, 64),
                                                      ("sinusoidal", True, 29)])
def test_large_phase_two_split_over_workers_equals_the_single_call(threads, positions, layer_norm, dim):
    # Phase two in place, split over workers (a part needs 2**18 elements) and over chunks,
    # for three training steps (the later ones reuse the summed part the first kept), with
    # an eval call between them; dim 29 puts worker rows off 16-byte boundaries.
    cfg = dict(vocab_size=300, embed_dim=dim, max_seq_len=18079, dropout=0.1, seed=11,
               position_encoding=positions, num_threads=threads)
    one, two = ge.GPTEmbedding(**cfg), ge.GPTEmbedding(**cfg)
    rng = np.random.default_rng(threads)
    shape = (4, 4096) if dim == 64 else (2, 18079)
    for step in range(3):
        ids = rng.integers(0, 300, size=shape)
        if step == 1:
            one.eval(), two.eval()
            ref = one.forward(ids, use_layer_norm=layer_norm)
            y = two.forward_finish(two.forward_partial(ids, use_layer_norm=layer_norm))
            assert np.array_equal(bits(y), bits(ref))
            one.train(), two.train()
        ref = one.forward(ids, use_layer_norm=layer_norm)
        y = two.forward_finish(two.forward_partial(ids, use_layer_norm=layer_norm))
        assert np.array_equal(bits(y), bits(ref)), step
        dy = rng.standard_normal(ref.shape).astype(np.float32)
        for layer in (one, two):
            layer.zero_grad()
            layer.backward(dy)
        for name in one.parameter_names():
            assert np.array_equal(bits(one.gradient(name)), bits(two.gradient(name))), (name, step)


def test_phase_errors_change_nothing():
    layer = ge.GPTEmbedding(config=ge.GPTEmbeddingConfig(vocab_size=10, embed_dim=8, shard_start=0, shard_end=5))
    x = np.full((2, 3, 8), 7.0, dtype=np.float32)
    with pytest.raises(ge.GPTEmbeddingStateError, match="no phase one"):
        layer.forward_finish(x)
    assert (x == 7).all()
    with pytest.raises(ge.GPTEmbeddingStateError, match=r"\[0, 5\) of a vocabulary of 10"):
        layer.forward([[1, 2, 3]])
    with pytest.raises(IndexError, match=r"token id 10 at \[0, 1\]"):
        layer.forward_partial([[7, 10, 1]])
    p = layer.forward_partial([[7, 9, 1], [2, 3, 4]])
    assert (bits(p[0, :2]) == 0x80000000).all()  # tokens of another shard: -0.0
    before = p.copy()
    with pytest.raises(ValueError, match=r"differs from phase one's \[2, 3, 8\]"):
        layer.forward_finish(p.reshape(3, 2, 8))
    assert np.array_equal(bits(p), bits(before))
    layer.forward_finish(p)
    with pytest.raises(ge.GPTEmbeddingStateError):
        layer.forward_finish(p)


@pytest.mark.parametrize("mmap", [False, True])
def test_from_pretrained_opens_only_the_shard(tmp_path, mmap):
    source = ge.GPTEmbedding(vocab_size=V, embed_dim=D, max_seq_len=8)
    path = tmp_path / "model.safetensors"
    source.save_safetensors(path)
    table = source.parameter("token_embedding.weight")
    for rank in range(3):
        layer = ge.GPTEmbedding.from_pretrained(path, mmap=mmap, shard=(rank, 3))
        s, e = ge.shard_range(V, rank, 3)
        assert (layer.config.vocab_size, layer.config.shard_start, layer.config.shard_end) == (V, s, e)
        assert layer.is_mapped("token_embedding.weight") == mmap
        assert np.array_equal(bits(layer.parameter("token_embedding.weight")), bits(table[s:e]))
    with pytest.raises(ValueError, match=r"shard rank 3 of world 3 .* 37 rows"):
        ge.GPTEmbedding.from_pretrained(path, shard=(3, 3))
    with pytest.raises(ValueError, match=r"world = 40 is larger than vocab_size = 37"):
        ge.GPTEmbedding.from_pretrained(path, shard=(0, 40))
    with pytest.raises(ValueError, match=r"37 % 2 = 1"):
        ge.GPTEmbedding.from_pretrained(path, shard=(0, 2), shard_rule="megatron")
    with pytest.raises(TypeError, match="pair of integers"):
        ge.GPTEmbedding.from_pretrained(path, shard=3)
