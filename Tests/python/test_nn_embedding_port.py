"""PyTorch's test/nn/test_embedding.py, ported to gpt_embedding.nn.TokenEmbedding (issue 18).

Every test builds ``TokenEmbedding(..., scale_embeddings=False)`` and a real
``torch.nn.Embedding`` over the same table (weights copied) and compares them, bit for bit
wherever the operation is a pure lookup or scatter. Each test names, in a comment, the
PyTorch test it ports. The tests are written from what PyTorch's tests check, not copied.

Ported (PyTorch test -> test here):
  TestEmbeddingNN.test_embedding_sparse_basic            -> test_sparse_basic
  TestEmbeddingNN.test_embedding_sparse_empty_tensor      -> test_sparse_empty_input (+ refusal of 0 rows / width 0)
  TestEmbeddingNN.test_move_sparse_half_embedding         -> test_move_sparse_half_embedding
  TestEmbeddingNN.test_embedding_from_pretrained          -> test_from_pretrained (float32/bf16/f16; other dtypes refused)
  TestEmbeddingNN.test_embedding_from_pretrained_padding_idx -> test_from_pretrained_padding_idx
  TestEmbeddingNN.test_embedding_from_pretrained_options  -> test_from_pretrained_options (sparse, norm_type; max_norm refused)
  TestEmbeddingNN.test_embedding_functional               -> test_functional
  TestEmbeddingNNDeviceType.test_embedding_dense_grad     -> test_dense_grad (exact against nn.Embedding's gradient)
  TestEmbeddingNNDeviceType.test_embedding_scalar_weight_error -> test_scalar_weight_error
  TestEmbeddingNNDeviceType.test_embedding_backward       -> test_sparse_backward_structure, test_sparse_backward_half_tables
  TestEmbeddingNNDeviceType.test_embedding_padding_idx    -> test_padding_idx_* (four tests)
  TestEmbeddingNNDeviceType.test_embedding_bag_out_of_bounds_idx -> test_out_of_bounds_ids (the Embedding half of it)
  TestEmbeddingNNDeviceType.test_embedding_bag_empty_input -> test_empty_and_nd_ids (the Embedding half, int32/int64)
  TestEmbeddingNNDeviceType.test_embedding_bag_non_contiguous_weight -> test_from_pretrained_non_contiguous
  TestEmbeddingNNDeviceType.test_embedding_bag_per_sample_weights_grad -> test_requires_grad_toggle
  (the dtypes parametrisations over int/long ids)         -> test_int32_and_int64_ids, test_id_dtype_refusals
  (the sparse=True optimisers of the EmbeddingBag tests)  -> test_sparse_and_dense_training_with_optimizers
  (repr, weight sharing: nn.Module conventions)           -> test_repr, test_weight_sharing_semantics

Refusal tests (clear errors where nn.Embedding computes):
  test_embedding_max_norm, test_embedding_max_norm_unsorted_repeating_indices,
  test_embedding_max_norm_backward, test_embedding_max_norm_device,
  test_embedding_from_pretrained_options (max_norm)      -> test_max_norm_refused
  test_embedding_max_norm_fwd_AD                          -> test_max_norm_refused, test_forward_ad_refused
  test_embedding_dense_grad (gradgradcheck), test_embedding_padding_idx (double backward
  with a grad_output that needs grad)                     -> test_double_backward_refused
  test_embedding_dense_grad / _backward / _from_pretrained in float64 -> test_float64_refused
  test_large_tensors, the CUDA halves of test_move_sparse_half_embedding and the
  max_norm tests                                          -> test_other_devices_refused (meta; cuda)

Left out:
  every test_embedding_bag_* / test_EmbeddingBag_* / test_embeddingbag_* case beyond the
  pieces above (EmbeddingBag: no bag reduction, offsets or per_sample_weights here);
  test_embedding_bag_dimension_errors (offsets/bag shapes only); test_large_tensors itself
  (CUDA and 40 GB); gradcheck's numerical check (needs float64 tables, refused: the exact
  comparison with nn.Embedding's analytic gradient replaces it).

Deliberate differences the ports meet: errors are TypeError / ValueError where nn.Embedding
raises RuntimeError / AssertionError (float ids; padding_idx out of range); vocab 0 and
width 0 tables are refused by the library; half/bf16 sparse gradients cannot be accumulated
on the CPU by torch itself (as with nn.Embedding).
"""
import os

import pytest

if os.environ.get("GPT_EMBEDDING_REQUIRE_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.autograd import forward_ad as fwad  # noqa: E402

from gpt_embedding import nn as gnn  # noqa: E402

torch.set_num_threads(2)
TABLE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def pair(num, dim, dtype=torch.float32, seed=0, **kw):
    """(TokenEmbedding, nn.Embedding) with one table: the library's init, copied into torch's."""
    ours = gnn.TokenEmbedding(num, dim, scale_embeddings=False, seed=seed, num_threads=2,
                              weight_dtype=_NAMES[dtype], **kw)
    ref = nn.Embedding(num, dim, **kw).to(dtype)
    with torch.no_grad():
        ref.weight.copy_(ours.weight)
    return ours, ref


def exact(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def same_sparse(g, r):
    """Two sparse COO gradients with the same structure and values (uncoalesced, as given)."""
    assert g.is_sparse and r.is_sparse
    assert g.shape == r.shape and g.dtype == r.dtype
    assert torch.equal(g._indices(), r._indices())
    exact(g._values(), r._values())


# ---------------------------------------------------------------------------------------
# Sparse gradients
# ---------------------------------------------------------------------------------------

# Ports TestEmbeddingNN.test_embedding_sparse_basic.
def test_sparse_basic():
    ours, ref = pair(10, 20, sparse=True)
    ids = torch.tensor([[0, 2, 4, 5], [4, 3, 0, 9]])
    ours(ids).sum().backward()
    ref(ids).sum().backward()
    assert ours.weight.grad.is_sparse
    assert ours.weight.grad.shape == ours.weight.shape
    same_sparse(ours.weight.grad, ref.weight.grad)


# Ports TestEmbeddingNN.test_embedding_sparse_empty_tensor (0 rows / width 0 are refused).
def test_sparse_empty_input():
    ours, ref = pair(10, 6, sparse=True)
    for ids in (torch.tensor([], dtype=torch.int64), torch.zeros((2, 0), dtype=torch.int64)):
        ours.zero_grad(), ref.zero_grad()
        out = ours(ids)
        assert out.shape == ref(ids).shape == ids.shape + (6,)
        out.sum().backward()
        ref(ids).sum().backward()
        g = ours.weight.grad
        assert g.is_sparse and g.shape == ours.weight.shape and g._nnz() == 0
        same_sparse(g, ref.weight.grad)
    # nn.Embedding(0, 0) and nn.Embedding(10, 0) exist; the library needs >= 1 row and column.
    for num, dim in ((0, 0), (10, 0), (0, 4)):
        with pytest.raises(ValueError, match="must be in"):
            gnn.TokenEmbedding(num, dim, sparse=True, scale_embeddings=False)


# Ports TestEmbeddingNN.test_move_sparse_half_embedding (the CUDA half: test_other_devices_refused).
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_move_sparse_half_embedding(dtype):
    ours, ref = pair(10, 3, sparse=True)
    assert ours.weight.device.type == "cpu"
    assert ours.weight.dtype == torch.get_default_dtype()
    assert ours.to(dtype) is ours
    ref.to(dtype)
    assert ours.weight.dtype == dtype
    assert ours.embedding_dim == 3 and ours.num_embeddings == 10 and ours.sparse
    exact(ours.weight.detach(), ref.weight.detach())  # same rounding (nearest even)
    # still the library's memory, and still a lookup
    assert ours.weight.data_ptr() == ours.layer.parameter("token_embedding.weight").ctypes.data
    ids = torch.tensor([[1, 9, 1]])
    exact(ours(ids), ref(ids))
    ours.to(torch.float32)
    assert ours.weight.dtype == torch.float32


# ---------------------------------------------------------------------------------------
# from_pretrained
# ---------------------------------------------------------------------------------------

# Ports TestEmbeddingNN.test_embedding_from_pretrained (float32/bf16/f16 kept; the integer
# and float64 parametrisations are refused: the library's tables are floating point <= 32 bits).
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.uint8, torch.int8,
                                   torch.int16, torch.int32, torch.int64, torch.float64])
def test_from_pretrained(dtype):
    a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=dtype)
    if dtype not in TABLE_DTYPES:
        with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
            gnn.TokenEmbedding.from_pretrained(a)
        return
    ours = gnn.TokenEmbedding.from_pretrained(a)
    ref = nn.Embedding.from_pretrained(a)
    assert ours.weight.dtype == dtype
    exact(ours.weight.detach(), a)
    ids = torch.tensor([0, 1])
    exact(ours(ids), a)
    exact(ours(ids), ref(ids))
    assert not ours.weight.requires_grad and not ref.weight.requires_grad  # freeze=True


# Ports TestEmbeddingNN.test_embedding_from_pretrained_padding_idx (also negative padding_idx).
@pytest.mark.parametrize("padding_idx", [2, -2])
def test_from_pretrained_padding_idx(padding_idx):
    padding_vec = torch.ones(3) * 7
    embeddings = torch.rand(4, 3, requires_grad=True)
    with torch.no_grad():
        embeddings[padding_idx] = padding_vec
    ours = gnn.TokenEmbedding.from_pretrained(embeddings, padding_idx=padding_idx)
    ref = nn.Embedding.from_pretrained(embeddings, padding_idx=padding_idx)
    assert ours.padding_idx == ref.padding_idx == padding_idx % 4
    # the pretrained padding row is kept, not zeroed (only a fresh table's is)
    exact(ours.weight[padding_idx].detach(), padding_vec)
    exact(ours.weight.detach(), ref.weight.detach())
    ids = torch.tensor([[0, 2, 3, 2]])
    exact(ours(ids), ref(ids))


# Ports TestEmbeddingNN.test_embedding_from_pretrained_options (without max_norm: see
# test_max_norm_refused).
def test_from_pretrained_options():
    a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    opts = dict(norm_type=0.5, scale_grad_by_freq=False, sparse=True)
    ours = gnn.TokenEmbedding.from_pretrained(a, **opts)
    ref = nn.Embedding.from_pretrained(a, **opts)
    assert ours.sparse and ref.sparse
    ids = torch.tensor([0, 1])
    exact(ours(ids), a)
    exact(ours(ids), ref(ids))
    # freeze=False with sparse=True: a sparse gradient, as nn.Embedding's
    ours = gnn.TokenEmbedding.from_pretrained(a, freeze=False, **opts)
    ref = nn.Embedding.from_pretrained(a.clone(), freeze=False, **opts)
    ours(ids).sum().backward()
    ref(ids).sum().backward()
    same_sparse(ours.weight.grad, ref.weight.grad)


# Ports TestEmbeddingNN.test_embedding_functional (module == F.embedding, weight set through .data).
def test_functional():
    ids = torch.tensor([[1, 3, 2], [0, 2, 1]])
    embeddings = torch.rand(4, 3, requires_grad=True)
    ours = gnn.TokenEmbedding(4, 3, scale_embeddings=False)
    ours.weight.data = embeddings.data
    exact(ours.weight.data, embeddings.data)
    exact(ours(ids), F.embedding(ids, embeddings))
    ours = gnn.TokenEmbedding.from_pretrained(embeddings, padding_idx=2)
    exact(ours(ids), F.embedding(ids, embeddings, padding_idx=2))


# Ports TestEmbeddingNNDeviceType.test_embedding_bag_non_contiguous_weight (for Embedding:
# a non-contiguous pretrained table).
@pytest.mark.parametrize("dtype", TABLE_DTYPES)
def test_from_pretrained_non_contiguous(dtype):
    base = torch.randn(3, 4, dtype=dtype)
    non_contig = base[:, :3]
    assert not non_contig.is_contiguous()
    ours = gnn.TokenEmbedding.from_pretrained(non_contig)
    ids = torch.tensor([0, 1, 2, 1])
    exact(ours(ids), F.embedding(ids, non_contig.contiguous()))


# Ports TestEmbeddingNNDeviceType.test_embedding_scalar_weight_error (the table must be 2-D).
def test_scalar_weight_error():
    for weight in (torch.tensor(1.0), torch.tensor(1.0).reshape(1, 1, 1), torch.ones(3)):
        with pytest.raises(ValueError, match="2-dimensional"):
            gnn.TokenEmbedding.from_pretrained(weight)
        with pytest.raises(RuntimeError, match="must be 2-D"):
            F.embedding(torch.zeros((2, 2), dtype=torch.long), weight)


# Not a PyTorch test: nn.Embedding.from_pretrained shares the tensor, TokenEmbedding copies it
# (the library owns its tables); the parameter itself is what the next forward reads.
def test_weight_sharing_semantics():
    a = torch.randn(5, 4)
    ours = gnn.TokenEmbedding.from_pretrained(a.clone(), freeze=False)
    source = a.clone()
    shared = nn.Embedding.from_pretrained(source, freeze=False)
    copied = gnn.TokenEmbedding.from_pretrained(source, freeze=False)
    ids = torch.tensor([3])
    with torch.no_grad():
        source[3] += 1.0
    exact(shared(ids), source[3:4])          # nn.Embedding: the same memory
    exact(copied(ids), a[3:4])               # TokenEmbedding: a copy
    assert copied.weight.data_ptr() != source.data_ptr()
    # writes to the parameter (an optimizer's) are what the library reads next
    with torch.no_grad():
        ours.weight[3].mul_(2.0)
    exact(ours(ids), a[3:4] * 2.0)
    assert ours.weight.data_ptr() == ours.layer.parameter("token_embedding.weight").ctypes.data


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------

# Ports TestEmbeddingNNDeviceType.test_embedding_dense_grad: gradcheck needs float64 tables
# (refused), so the analytic gradient is compared with nn.Embedding's instead.
@pytest.mark.parametrize("dtype", TABLE_DTYPES)
def test_dense_grad(dtype):
    ours, ref = pair(20, 20, dtype=dtype, seed=5)
    ids = torch.tensor([[0, 1, 1, 2], [3, 5, 7, 11]])
    w = torch.randn(2, 4, 20, generator=torch.Generator().manual_seed(1)).to(dtype)
    out = ours(ids)
    exact(out, ref(ids))
    out.backward(w)
    ref(ids).backward(w)
    assert ours.weight.grad.dtype == dtype and ours.weight.grad.layout == torch.strided
    exact(ours.weight.grad, ref.weight.grad)


# Ports TestEmbeddingNNDeviceType.test_embedding_backward (float32; the CPU float64 case is
# refused, see test_float64_refused): the sparse gradient's indices and values, their
# accumulation over two backwards, and ids changed in place between them. Accumulated
# gradients are compared coalesced: torch's sparse add concatenates or merges the entries
# depending on the values' memory layout (nn.Embedding's values of a .sum() backward are
# an expanded view, the library's are contiguous), which changes no number.
def test_sparse_backward_structure():
    ours, ref = pair(10, 3, sparse=True)
    ids = torch.tensor([[7, 1, 3]])
    ones = torch.ones(3, 3)

    for m in (ours, ref):
        m.zero_grad()
        m(ids[0]).sum().backward()
    assert torch.equal(ours.weight.grad._indices(), ids)
    exact(ours.weight.grad._values(), ones)
    same_sparse(ours.weight.grad, ref.weight.grad)

    def accumulated(m, second):
        m.zero_grad()
        x = ids.clone()
        m(x[0]).sum().backward()
        x[0, 0] = second  # the caller refills its id tensor: the gradient taken must not change
        m(x[0]).sum().backward()
        return m.weight.grad.coalesce()

    for second, expected_rows in ((7, {1: 2.0, 3: 2.0, 7: 2.0}), (8, {1: 2.0, 3: 2.0, 7: 1.0, 8: 1.0})):
        g, r = accumulated(ours, second), accumulated(ref, second)
        same_sparse(g, r)
        assert g._indices()[0].tolist() == sorted(expected_rows)
        exact(g._values(), torch.tensor([[v] * 3 for _, v in sorted(expected_rows.items())]))
    # the same with grad_outputs that are not an expanded view: then torch concatenates
    for m in (ours, ref):
        m.zero_grad()
        for k in (1.0, 10.0):
            m(ids[0]).backward(torch.full((3, 3), k))
    same_sparse(ours.weight.grad, ref.weight.grad)


# Ports TestEmbeddingNNDeviceType.test_embedding_backward's half-precision case (CUDA-only
# upstream): one backward matches. Accumulating a second one is torch's sparse add, whose
# CPU kernels lack some half/bf16 paths (nn.Embedding's gradient meets them too): either
# torch's NotImplementedError or the exact sum.
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sparse_backward_half_tables(dtype):
    ours, ref = pair(10, 3, dtype=dtype, sparse=True)
    ids = torch.tensor([7, 1, 3, 1])
    w = torch.randn(4, 3).to(dtype)
    ours(ids).backward(w)
    ref(ids).backward(w)
    same_sparse(ours.weight.grad, ref.weight.grad)
    once = ours.weight.grad.to_dense()
    try:
        ours(ids).backward(w)
    except NotImplementedError as e:
        assert "not implemented for" in str(e)
    else:
        exact(ours.weight.grad.to_dense(), once * 2)


# Not a ported assertion but the dense counterpart of the case above: ids refilled in place
# after a backward must not change the next backward's gradient (buffers are reused).
def test_dense_gradient_after_ids_refilled_in_place():
    ours, ref = pair(10, 3)
    for m in (ours, ref):
        x = torch.tensor([[7]])
        m(x).sum().backward()
        x[0, 0] = 8
        m.zero_grad()
        m(torch.tensor([[1]])).sum().backward()
    exact(ours.weight.grad, ref.weight.grad)


# Ports the sparse=True / optimiser side of the EmbeddingBag tests (and
# test_embedding_backward's purpose) for Embedding: identical gradients give identical
# steps of torch's optimisers, sparse and dense.
@pytest.mark.parametrize("sparse,opt_cls,kw", [
    (True, torch.optim.SGD, dict(lr=0.5)),
    (True, torch.optim.SparseAdam, dict(lr=0.01)),
    (True, torch.optim.Adagrad, dict(lr=0.1)),
    (False, torch.optim.SGD, dict(lr=0.5, momentum=0.9)),
    (False, torch.optim.AdamW, dict(lr=0.01)),
])
def test_sparse_and_dense_training_with_optimizers(sparse, opt_cls, kw):
    ours, ref = pair(31, 8, seed=2, padding_idx=4, sparse=sparse)
    o1, o2 = opt_cls(ours.parameters(), **kw), opt_cls(ref.parameters(), **kw)
    for step in range(4):
        g = torch.Generator().manual_seed(step)
        ids = torch.randint(0, 31, (3, 5), generator=g)
        ids[0, 0] = 4
        w = torch.randn(3, 5, 8, generator=g)
        for m, o in ((ours, o1), (ref, o2)):
            o.zero_grad()
            (m(ids) * w).sum().backward()
            o.step()
        if sparse:
            same_sparse(ours.weight.grad, ref.weight.grad)
        else:
            # two ids at most repeat a few times: float32 sums may differ in order only
            torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours.weight.detach(), ref.weight.detach(), rtol=1e-6, atol=1e-7)
    assert torch.all(ours.weight[4] == ref.weight[4])  # the padding row never moves


# Ports TestEmbeddingNNDeviceType.test_embedding_bag_per_sample_weights_grad (requires_grad
# toggled on the module).
def test_requires_grad_toggle():
    ours, ref = pair(16, 8)
    ids = torch.arange(1, 5).expand(3, -1)
    for flag in (True, False):
        ours.requires_grad_(flag), ref.requires_grad_(flag)
        out = ours(ids)
        assert out.requires_grad == ref(ids).requires_grad == flag
        exact(out, ref(ids))


# ---------------------------------------------------------------------------------------
# padding_idx
# ---------------------------------------------------------------------------------------

# Ports TestEmbeddingNNDeviceType.test_embedding_padding_idx (outputs: zero padding rows,
# positive and negative padding_idx, dense and sparse).
@pytest.mark.parametrize("dtype", TABLE_DTYPES)
@pytest.mark.parametrize("sparse", [False, True])
def test_padding_idx_outputs(dtype, sparse):
    ours, ref = pair(10, 20, dtype=dtype, padding_idx=0, sparse=sparse)
    ids = torch.tensor([[0, 2, 4, 5], [4, 3, 0, 9]])
    out = ours(ids)
    assert out[0][0].sum() == 0 and out[1][2].sum() == 0
    exact(out, ref(ids))
    # padding_idx=-2 with 10 rows: row 8
    ours, ref = pair(10, 20, dtype=dtype, padding_idx=-2, sparse=sparse)
    assert ours.padding_idx == ref.padding_idx == 8
    ids = torch.tensor([[0, 2, 8, 5], [4, 8, 0, 9]])
    out = ours(ids)
    assert out[0][2].sum() == 0 and out[1][1].sum() == 0
    exact(out, ref(ids))


# Ports TestEmbeddingNNDeviceType.test_embedding_padding_idx ("change padding vector").
@pytest.mark.parametrize("dtype", TABLE_DTYPES)
def test_padding_idx_changed_padding_vector(dtype):
    ours, ref = pair(10, 20, dtype=dtype, padding_idx=2, sparse=True)
    padding_vector = torch.ones(20, dtype=dtype)
    with torch.no_grad():
        ours.weight[2] = padding_vector
        ref.weight[2] = padding_vector
    ids = torch.tensor([0, 2])
    out = ours(ids)
    exact(out[1], padding_vector)
    exact(out, ref(ids))
    # the padding row gets no gradient even though it is not zero
    ours(ids).sum().backward()
    assert ours.weight.grad._nnz() == 1 and ours.weight.grad._indices().tolist() == [[0]]


# Ports TestEmbeddingNNDeviceType.test_embedding_padding_idx ("out of bounds check for
# padding_idx"): nn.Embedding asserts (AssertionError), TokenEmbedding raises ValueError.
def test_padding_idx_out_of_bounds():
    for padding_idx in (25, -25, 10, -11):
        with pytest.raises(AssertionError):
            nn.Embedding(num_embeddings=10, embedding_dim=20, padding_idx=padding_idx)
        with pytest.raises(ValueError, match="padding_idx"):
            gnn.TokenEmbedding(num_embeddings=10, embedding_dim=20, padding_idx=padding_idx)
    for padding_idx in (9, -10, 0, -1):  # the edges are accepted by both
        ours = gnn.TokenEmbedding(num_embeddings=10, embedding_dim=20, padding_idx=padding_idx,
                                  scale_embeddings=False)
        assert ours.padding_idx == nn.Embedding(10, 20, padding_idx=padding_idx).padding_idx


# Ports TestEmbeddingNNDeviceType.test_embedding_padding_idx (the padding row's gradient is
# zero for 1, 2 and 1000 padding ids among others, and with the grad-of-grad scalar whose
# grad_output does not itself need grad, which torch runs as a plain second backward).
@pytest.mark.parametrize("sparse", [False, True])
def test_padding_idx_gradient(sparse):
    ours, ref = pair(5, 2, padding_idx=0, sparse=sparse)
    for n in (1, 2, 1000):
        for others in ([], [1, 3], [2]):
            ids = torch.tensor(others + [0] * n)
            for m in (ours, ref):
                m.zero_grad()
                pre = m.weight[0].detach().clone()
                m(ids).sum().backward()
                grad = m.weight.grad.to_dense()
                exact((m.weight.detach() + grad)[0], pre)
            exact(ours.weight.grad.to_dense(), ref.weight.grad.to_dense())
            if sparse:
                same_sparse(ours.weight.grad, ref.weight.grad)
            # PyTorch's "double backward" step: d(sum)/dW does not depend on W, so its sum
            # plus the output sum backpropagates like the output sum alone.
            for m in (ours, ref):
                m.zero_grad()
                s = m(ids).sum()
                (g,) = torch.autograd.grad(s, list(m.parameters()), retain_graph=True)
                scalar = (g.to_dense() if g.is_sparse else g).sum() + s
                scalar.backward()
                exact((m.weight.detach() + m.weight.grad.to_dense())[0], m.weight[0].detach())
            exact(ours.weight.grad.to_dense(), ref.weight.grad.to_dense())


# ---------------------------------------------------------------------------------------
# Ids: dtypes, shapes, ranges
# ---------------------------------------------------------------------------------------

# Ports the (torch.int, torch.long) id parametrisations of TestEmbeddingNNDeviceType.
@pytest.mark.parametrize("sparse", [False, True])
def test_int32_and_int64_ids(sparse):
    ours, ref = pair(13, 6, padding_idx=3, sparse=sparse)
    ids64 = torch.tensor([[3, 1, 12], [0, 3, 5]])
    grads = []
    for ids in (ids64, ids64.to(torch.int32)):
        ours.zero_grad(), ref.zero_grad()
        exact(ours(ids), ref(ids))
        ours(ids).sum().backward()
        ref(ids).sum().backward()
        grads.append(ours.weight.grad.to_dense())
        exact(grads[-1], ref.weight.grad.to_dense())
    exact(grads[0], grads[1])


# Ports TestEmbeddingNNDeviceType.test_embedding_bag_empty_input (int32/int64, sparse and
# dense, Embedding's side), with 0-d and N-d ids.
@pytest.mark.parametrize("id_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("sparse", [False, True])
def test_empty_and_nd_ids(id_dtype, sparse):
    ours, ref = pair(4, 3, sparse=sparse)
    for ids in (torch.tensor([], dtype=id_dtype), torch.zeros((2, 0, 3), dtype=id_dtype),
                torch.tensor(2, dtype=id_dtype), torch.randint(0, 4, (2, 1, 3, 2), dtype=id_dtype)):
        ours.zero_grad(), ref.zero_grad()
        out = ours(ids)
        assert out.shape == ids.shape + (3,)
        exact(out, ref(ids))
        w = torch.randn(out.shape)
        out.backward(w)
        ref(ids).backward(w)
        assert ours.weight.grad.is_sparse == sparse
        if sparse:
            same_sparse(ours.weight.grad, ref.weight.grad)
        else:
            exact(ours.weight.grad, ref.weight.grad)
        if ids.numel() == 0:
            assert not ours.weight.grad.to_dense().any()


# Ports TestEmbeddingNNDeviceType.test_embedding_bag_out_of_bounds_idx (Embedding's side:
# ids -1 and past the end, int32/int64, with and without padding_idx): IndexError from both,
# nothing written.
@pytest.mark.parametrize("id_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_out_of_bounds_ids(id_dtype, padding_idx):
    ours, ref = pair(10, 2, padding_idx=padding_idx)
    before = ours.weight.detach().clone()
    for ids in (torch.tensor([[-1, 1]], dtype=id_dtype), torch.tensor([[11, 8]], dtype=id_dtype),
                torch.tensor([[10]], dtype=id_dtype)):
        with pytest.raises(IndexError):
            ref(ids)
        with pytest.raises(IndexError, match="out of range"):
            ours(ids)
        with torch.no_grad(), pytest.raises(IndexError, match="out of range"):
            ours(ids)
    exact(ours.weight.detach(), before)
    assert ours.weight.grad is None


# Ports the id dtype checks of F.embedding that test_embedding.py relies on ("nn.Embedding
# only takes LongTensor/IntTensor"): other dtypes are refused by both (TypeError here,
# RuntimeError from torch).
@pytest.mark.parametrize("id_dtype", [torch.float32, torch.float64, torch.float16, torch.bool, torch.uint8,
                                      torch.int8, torch.int16])
def test_id_dtype_refusals(id_dtype):
    ours, ref = pair(10, 2)
    ids = torch.tensor([[1, 0]]).to(id_dtype)
    with pytest.raises(RuntimeError):
        ref(ids)
    with pytest.raises(TypeError, match="int32 or int64"):
        ours(ids)


# ---------------------------------------------------------------------------------------
# repr
# ---------------------------------------------------------------------------------------

# Not a PyTorch test of this file: nn.Embedding's extra_repr, plus the scale flag.
def test_repr():
    for kw in (dict(), dict(padding_idx=0), dict(padding_idx=-2, sparse=True), dict(sparse=True)):
        ours, ref = pair(10, 3, **kw)
        assert ours.extra_repr() == ref.extra_repr() + ", scale_embeddings=False"
        assert repr(ours) == "Token" + repr(ref)[:-1] + ", scale_embeddings=False)"
    assert repr(gnn.TokenEmbedding(10, 3)) == "TokenEmbedding(10, 3)"  # scale_embeddings=True (default)


# ---------------------------------------------------------------------------------------
# Refusals: what TokenEmbedding does not do, with a clear error
# ---------------------------------------------------------------------------------------

# Refusal for TestEmbeddingNN.test_embedding_max_norm, test_embedding_max_norm_unsorted_repeating_indices,
# test_embedding_from_pretrained_options (max_norm), TestEmbeddingNNDeviceType.test_embedding_max_norm_backward,
# test_embedding_max_norm_fwd_AD and test_embedding_max_norm_device; and scale_grad_by_freq.
def test_max_norm_refused():
    a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with pytest.raises(NotImplementedError, match="max_norm"):
        gnn.TokenEmbedding(22, 5, max_norm=1.0)
    with pytest.raises(NotImplementedError, match="max_norm"):
        gnn.TokenEmbedding.from_pretrained(a, max_norm=2.0, norm_type=0.5, sparse=True)
    assert torch.equal(a, torch.arange(1, 7, dtype=a.dtype).view(2, 3))  # not renormalised
    with pytest.raises(NotImplementedError, match="scale_grad_by_freq"):
        gnn.TokenEmbedding(22, 5, scale_grad_by_freq=True)
    with pytest.raises(NotImplementedError, match="scale_grad_by_freq"):
        gnn.TokenEmbedding.from_pretrained(a, scale_grad_by_freq=True)


# Refusal for TestEmbeddingNNDeviceType.test_embedding_max_norm_fwd_AD's forward-mode AD
# (without max_norm): nn.Embedding propagates a tangent; TokenEmbedding refuses, with or
# without a graph to record, rather than return an output without one.
def test_forward_ad_refused():
    weight = torch.randn(4, 4)
    ids = torch.tensor([[0, 1], [2, 2]])
    with fwad.dual_level():
        dual = fwad.make_dual(weight, torch.ones(4, 4))
        jvp = fwad.unpack_dual(F.embedding(ids, dual)).tangent
        exact(jvp, torch.ones(2, 2, 4))
    ours = gnn.TokenEmbedding.from_pretrained(weight)
    for requires_grad in (False, True):
        with fwad.dual_level():
            dual = fwad.make_dual(weight.clone().requires_grad_(requires_grad), torch.ones(4, 4))
            with pytest.raises(NotImplementedError):
                torch.func.functional_call(ours, {"weight": dual}, (ids,))
    exact(ours(ids), F.embedding(ids, weight))  # the dual level gone, a plain lookup again


# Refusal for TestEmbeddingNNDeviceType.test_embedding_dense_grad's gradgradcheck and the
# double backward of test_embedding_padding_idx when grad_output itself needs grad.
@pytest.mark.parametrize("sparse", [False, True])
def test_double_backward_refused(sparse):
    ours, _ = pair(20, 20, sparse=sparse)
    ids = torch.tensor([[0, 1, 1, 2], [3, 5, 7, 11]])
    y = ours(ids)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad((y * y).sum(), [ours.weight], create_graph=True)


# Refusal for the float64 parametrisations (test_embedding_dense_grad's default dtype,
# test_embedding_backward on the CPU, test_embedding_from_pretrained[double]).
def test_float64_refused():
    with pytest.raises(TypeError, match="float64"):
        gnn.TokenEmbedding(10, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="float64"):
        gnn.TokenEmbedding(10, 3).double()
    with pytest.raises(TypeError, match="float64"):
        gnn.TokenEmbedding(10, 3).to(torch.float64)
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        gnn.TokenEmbedding.from_pretrained(torch.ones(2, 3, dtype=torch.float64))
    # nn.Embedding's dtype= keyword for the kinds the library has
    for dtype in TABLE_DTYPES:
        assert gnn.TokenEmbedding(10, 3, dtype=dtype, device="cpu").weight.dtype == dtype


# Refusal for the CUDA tests (test_large_tensors, the CUDA half of
# test_move_sparse_half_embedding, test_embedding_max_norm_device) on the meta device.
def test_other_devices_refused():
    ours, ref = pair(10, 3, sparse=True)
    ref_meta = nn.Embedding(10, 3, device="meta")
    assert ref_meta.weight.device.type == "meta"
    with pytest.raises(RuntimeError, match="meta"):
        gnn.TokenEmbedding(10, 3, device="meta")
    with pytest.raises(RuntimeError, match="meta"):
        ours.to("meta")
    with pytest.raises(RuntimeError, match="meta"):
        ours.to(torch.device("meta"), torch.float16)
    with pytest.raises(RuntimeError, match="CPU only"):
        ours.cuda()
    with pytest.raises(RuntimeError, match="CPU only"):
        ours.to("cuda")
    ids = torch.tensor([[1, 2]], device="meta")
    assert ref.to("meta")(ids).device.type == "meta"
    with pytest.raises(RuntimeError, match="meta"):
        ours(ids)
    # nothing moved or converted
    assert ours.weight.device.type == "cpu" and ours.weight.dtype == torch.float32
    assert ours.weight.data_ptr() == ours.layer.parameter("token_embedding.weight").ctypes.data
