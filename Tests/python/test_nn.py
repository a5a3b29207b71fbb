"""gpt_embedding.nn (issue 18): the layer as a torch.nn.Module, against plain PyTorch modules
built from the same tables.

The reference of every test is PyTorch itself (F.embedding, F.layer_norm, autograd,
torch.optim) or the numpy API on the same layer; nothing is hard-coded. CI installs
PyTorch's CPU build; set GPT_EMBEDDING_REQUIRE_TORCH=1 (as .ci/run does) to make a missing
torch a failure instead of a skip.
"""
import copy
import io
import math
import os
import pickle

import numpy as np
import pytest

if os.environ.get("GPT_EMBEDDING_REQUIRE_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import gpt_embedding  # noqa: E402
from gpt_embedding import nn as gnn  # noqa: E402

torch.set_num_threads(2)
V, D, T = 97, 24, 16  # a vocabulary and width that are multiples of nothing in particular


def make(**kw):
    kw.setdefault("dropout", 0.0)
    kw.setdefault("seed", 3)
    kw.setdefault("num_threads", 2)
    return gnn.GPTEmbedding(kw.pop("vocab_size", V), kw.pop("embed_dim", D), kw.pop("max_seq_len", T), **kw)


def ids_of(batch=3, seq=7, vocab=V, seed=0, dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, seq), generator=g, dtype=dtype)


class Reference(nn.Module):
    """The same layer in plain PyTorch, over copies of a module's tables."""

    def __init__(self, m):
        super().__init__()
        c = m.config
        self.scale = float(np.float32(c.token_scale if c.token_scale else (math.sqrt(c.embed_dim) if c.scale_embeddings else 1.0)))
        self.wte = nn.Parameter(m.token_embedding.weight.detach().clone())
        self.wpe = nn.Parameter(m.position_embedding.weight.detach().clone()) if c.position_encoding == "learned" else None
        self.ln = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)
        with torch.no_grad():
            self.ln.weight.copy_(m.layer_norm.weight)
            self.ln.bias.copy_(m.layer_norm.bias)
        self.encoding = c.position_encoding
        self.max_seq_len = c.max_seq_len
        self.dim = c.embed_dim

    def forward(self, ids, use_layer_norm=False, start_position=0, position_ids=None):
        x = F.embedding(ids, self.wte) * self.scale
        pos = position_ids if position_ids is not None else torch.arange(start_position, start_position + ids.shape[1])
        if self.encoding == "learned":
            x = x + self.wpe[pos]
        elif self.encoding == "sinusoidal":
            table = torch.from_numpy(gpt_embedding.SinusoidalPositionalEmbedding(self.max_seq_len, self.dim)
                                     .forward(int(pos.max()) + 1))
            x = x + table[pos]
        if use_layer_norm:
            x = self.ln(x)
        return x


# ---------------------------------------------------------------------------------------
# Zero copy, forward
# ---------------------------------------------------------------------------------------

def test_parameters_are_the_librarys_memory():
    m = make()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["token_embedding.weight", "position_embedding.weight", "layer_norm.weight", "layer_norm.bias"]
    view = m.layer.parameter("token_embedding.weight")
    assert m.token_embedding.weight.data_ptr() == view.ctypes.data
    # An in-place update by torch is what the library reads next.
    with torch.no_grad():
        m.token_embedding.weight[5].fill_(2.5)
    out = m.layer.eval().forward(np.array([[5]]), start_position=0)
    assert np.all(out[0, 0] == np.float32(2.5) * np.float32(math.sqrt(D)) + view[5] * 0
                  + m.layer.parameter("position_embedding.weight")[0])


@pytest.mark.parametrize("encoding", ["learned", "sinusoidal", "none"])
@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_forward_equals_numpy_api_bit_for_bit_and_torch(encoding, norm, dtype):
    m = make(position_encoding=encoding).eval()
    ids = ids_of(dtype=dtype)
    out = m(ids, use_layer_norm=norm, start_position=2)
    expected = m.layer.eval().forward(ids.numpy(), use_layer_norm=norm, start_position=2)
    assert out.dtype == torch.float32 and out.shape == (3, 7, D)
    assert torch.equal(out, torch.from_numpy(expected))
    ref = Reference(m)(ids, norm, start_position=2)
    torch.testing.assert_close(out, ref.detach(), rtol=1e-6, atol=1e-6)
    # The same through the autograd operator.
    m.train()
    out2 = m(ids, use_layer_norm=norm, start_position=2)
    assert out2.requires_grad and torch.equal(out2.detach(), out)


def test_position_ids_and_non_contiguous_ids_and_lists():
    m = make().eval()
    ids = ids_of(batch=4, seq=9)[:, ::2]  # strided
    pos = torch.tensor([[0, 1, 2, 3, 4], [3, 4, 5, 6, 7], [0, 0, 1, 2, 3], [9, 8, 7, 6, 5]], dtype=torch.int32)
    out = m(ids, position_ids=pos)
    ref = Reference(m)(ids, position_ids=pos.long())
    torch.testing.assert_close(out, ref.detach(), rtol=1e-6, atol=1e-6)
    assert torch.equal(m(ids.tolist()), m(ids.contiguous()))
    assert torch.equal(m(ids.numpy()), m(ids.contiguous()))
    assert m(ids[0]).shape == (1, 5, D)  # a 1-D sequence is batch 1


def test_bfloat16_tables():
    m = make(weight_dtype="bfloat16").eval()
    assert m.token_embedding.weight.dtype == torch.bfloat16
    assert m.token_embedding.weight.data_ptr() == m.layer.parameter("token_embedding.weight").ctypes.data
    ids = ids_of()
    out = m(ids)
    assert out.dtype == torch.bfloat16
    expected = m.layer.forward(ids.numpy(), out_dtype="bfloat16")
    assert torch.equal(out.view(torch.int16), torch.from_numpy(expected.view(np.int16)))
    # Gradients flow to bf16 parameters as bf16, the float32 result rounded once.
    m.train()
    w = torch.randn(3, 7, D, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    (m(ids) * w).float().sum().backward()
    assert m.token_embedding.weight.grad.dtype == torch.bfloat16
    ref = Reference(m)
    ref.wte.data, ref.wpe.data = ref.wte.data.float(), ref.wpe.data.float()
    (ref(ids).to(torch.bfloat16) * w).float().sum().backward()
    torch.testing.assert_close(m.token_embedding.weight.grad.float(), ref.wte.grad, rtol=1e-2, atol=1e-2)


# ---------------------------------------------------------------------------------------
# Autograd
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("encoding", ["learned", "sinusoidal"])
def test_gradients_equal_torch(norm, encoding):
    m = make(position_encoding=encoding, padding_idx=4)
    ref = Reference(m)
    ids = ids_of(seed=5)
    ids[0, :3] = 4  # padding tokens
    ids[1, :] = 11  # a repeated id
    w = torch.randn(3, 7, D, generator=torch.Generator().manual_seed(2))
    (m(ids, use_layer_norm=norm) * w).sum().backward()
    (ref(ids, norm) * w).sum().backward()
    # The layer norm's backward sums in another order than torch's (and row 11 sums 7 tokens).
    tol = dict(rtol=1e-4, atol=1e-5) if norm else dict(rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(m.token_embedding.weight.grad, ref.wte.grad.index_fill(0, torch.tensor([4]), 0.0), **tol)
    assert torch.all(m.token_embedding.weight.grad[4] == 0)
    if encoding == "learned":
        torch.testing.assert_close(m.position_embedding.weight.grad, ref.wpe.grad, **tol)
    if norm:
        torch.testing.assert_close(m.layer_norm.weight.grad, ref.ln.weight.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(m.layer_norm.bias.grad, ref.ln.bias.grad, rtol=1e-5, atol=1e-5)
    else:
        assert m.layer_norm.weight.grad is None and m.layer_norm.bias.grad is None


def test_gradients_accumulate_and_zero_grad_sets_none():
    m = make()
    ids = ids_of()
    m(ids).sum().backward()
    first = m.token_embedding.weight.grad.clone()
    m(ids).sum().backward()
    torch.testing.assert_close(m.token_embedding.weight.grad, 2 * first, rtol=0, atol=0)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    opt.zero_grad()
    assert m.token_embedding.weight.grad is None
    m.zero_grad(set_to_none=False)


def test_requires_grad_false_and_no_grad_and_hooks():
    m = make()
    m.token_embedding.weight.requires_grad_(False)
    ids = ids_of()
    m(ids).sum().backward()
    assert m.token_embedding.weight.grad is None
    assert m.position_embedding.weight.grad is not None
    with torch.no_grad():
        assert not m(ids).requires_grad
    with torch.inference_mode():
        assert not m(ids).requires_grad
    for p in m.parameters():
        p.requires_grad_(False)
    assert not m(ids).requires_grad
    # register_hook on the output, as the seed's troubleshooting section does.
    m2 = make()
    seen = []
    out = m2(ids)
    out.register_hook(lambda g: seen.append(float(g.norm())))
    (out * 2).sum().backward()
    assert seen == [pytest.approx(2 * math.sqrt(out.numel()))]


def test_two_forwards_one_backward_and_backward_order():
    m = make(dropout=0.3).train()
    ids_a, ids_b = ids_of(seed=1), ids_of(seed=2)
    torch.manual_seed(0)
    a = m(ids_a, use_layer_norm=True)
    b = m(ids_b, use_layer_norm=True)
    wa, wb = torch.randn_like(a), torch.randn_like(b)
    ((a * wa).sum() + (b * wb).sum()).backward()
    together = {n: p.grad.clone() for n, p in m.named_parameters()}
    # The same two forwards, each backward alone, in reverse order.
    m.zero_grad()
    torch.manual_seed(0)
    a = m(ids_a, use_layer_norm=True)
    b = m(ids_b, use_layer_norm=True)
    (b * wb).sum().backward()
    (a * wa).sum().backward()
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.grad, together[n], rtol=1e-6, atol=1e-7)
    # A no-grad forward in training mode between a forward and its backward changes nothing.
    m.zero_grad()
    torch.manual_seed(0)
    a = m(ids_a, use_layer_norm=True)
    b = m(ids_b, use_layer_norm=True)
    with torch.no_grad():
        m(ids_of(seed=9), use_layer_norm=True)
    ((a * wa).sum() + (b * wb).sum()).backward()
    for n, p in m.named_parameters():
        assert torch.equal(p.grad, together[n])


def test_dropout_mask_and_gradient_and_seed():
    p = 0.25
    m = make(dropout=p).train()
    ids = ids_of(batch=4, seq=16)
    torch.manual_seed(7)
    out = m(ids)
    torch.manual_seed(7)
    assert torch.equal(m(ids), out)  # torch.manual_seed reproduces the mask
    assert not torch.equal(m(ids), out)  # the next draw differs
    ref = Reference(m)(ids).detach()
    keep = out != 0
    frac = keep.float().mean().item()
    n = out.numel()
    assert abs(frac - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    torch.testing.assert_close(out[keep], (ref / (1 - p))[keep], rtol=1e-6, atol=1e-6)
    # The gradient goes through the same mask.
    torch.manual_seed(7)
    out = m(ids)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    r = Reference(m)
    ((r(ids) * keep / (1 - p)) * w).sum().backward()
    torch.testing.assert_close(m.token_embedding.weight.grad, r.wte.grad, rtol=1e-5, atol=1e-6)
    # eval(): no dropout.
    m.eval()
    torch.testing.assert_close(m(ids), ref, rtol=0, atol=0)


def test_checkpoint_with_dropout_equals_plain_run():
    from torch.utils.checkpoint import checkpoint
    ids = ids_of(batch=2, seq=12)
    head = nn.Linear(D, 5)
    results = []
    for use_checkpoint in (False, True):
        m = make(dropout=0.4).train()
        torch.manual_seed(11)
        if use_checkpoint:
            h = checkpoint(lambda x: m(x, use_layer_norm=True), ids, use_reentrant=False)
        else:
            h = m(ids, use_layer_norm=True)
        head.zero_grad()
        head(h).square().sum().backward()
        results.append({n: p.grad.clone() for n, p in m.named_parameters()})
    for n in results[0]:
        assert torch.equal(results[0][n], results[1][n]), n


def test_sparse_gradients_match_nn_embedding_and_optimizers():
    ids = ids_of(seed=4)
    ids[0, 0] = 7  # padding
    for opt_cls, kw in ((torch.optim.SparseAdam, dict(lr=0.01)), (torch.optim.SGD, dict(lr=0.1))):
        m = make(position_encoding="none", scale_embeddings=False, padding_idx=7, sparse=True)
        emb = nn.Embedding(V, D, padding_idx=7, sparse=True)
        with torch.no_grad():
            emb.weight.copy_(m.token_embedding.weight)
        params = [m.token_embedding.weight]
        o1, o2 = opt_cls(params, **kw), opt_cls(emb.parameters(), **kw)
        for step in range(5):
            w = torch.randn(3, 7, D, generator=torch.Generator().manual_seed(step))
            o1.zero_grad()
            o2.zero_grad()
            (m(ids) * w).sum().backward()
            (emb(ids) * w).sum().backward()
            g = m.token_embedding.weight.grad
            assert g.is_sparse
            torch.testing.assert_close(g.to_dense(), emb.weight.grad.to_dense(), rtol=1e-6, atol=1e-7)
            o1.step()
            o2.step()
        torch.testing.assert_close(m.token_embedding.weight.detach(), emb.weight.detach(), rtol=1e-5, atol=1e-6)


def test_training_a_small_model_equals_plain_pytorch():
    """10 steps of torch.optim.AdamW and SGD: embedding + linear head + cross-entropy."""
    for opt_cls, kw in ((torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)), (torch.optim.SGD, dict(lr=0.5, momentum=0.9))):
        torch.manual_seed(0)
        m = make()
        head = nn.Linear(D, V)
        ref = Reference(m)
        head_ref = copy.deepcopy(head)
        o1 = opt_cls(list(m.parameters()) + list(head.parameters()), **kw)
        o2 = opt_cls([ref.wte, ref.wpe, ref.ln.weight, ref.ln.bias] + list(head_ref.parameters()), **kw)
        for step in range(10):
            ids = ids_of(seed=100 + step)
            target = ids_of(seed=200 + step)
            for model, h, o in ((m, head, o1), (ref, head_ref, o2)):
                o.zero_grad()
                out = model(ids, True)
                F.cross_entropy(h(out).reshape(-1, V), target.reshape(-1)).backward()
                o.step()
        torch.testing.assert_close(m.token_embedding.weight.detach(), ref.wte.detach(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.position_embedding.weight.detach(), ref.wpe.detach(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.layer_norm.weight.detach(), ref.ln.weight.detach(), rtol=1e-4, atol=1e-5)


def test_library_adamw_equals_torch_adamw():
    m = make()
    ref = Reference(m)
    opt = gnn.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    opt_ref = torch.optim.AdamW([ref.wte, ref.wpe, ref.ln.weight, ref.ln.bias], lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    sched_ref = torch.optim.lr_scheduler.StepLR(opt_ref, step_size=3, gamma=0.5)
    for step in range(8):
        ids = ids_of(seed=step, batch=6, seq=T)  # every row touched is not needed: dense AdamW
        w = torch.randn(6, T, D, generator=torch.Generator().manual_seed(50 + step))
        opt.zero_grad()
        opt_ref.zero_grad()
        (m(ids, True) * w).sum().backward()
        (ref(ids, True) * w).sum().backward()
        assert m.token_embedding.weight.grad is None  # the gradient stays in the library
        opt.step()
        opt_ref.step()
        sched.step()
        sched_ref.step()
    torch.testing.assert_close(m.token_embedding.weight.detach(), ref.wte.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.position_embedding.weight.detach(), ref.wpe.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.layer_norm.weight.detach(), ref.ln.weight.detach(), rtol=1e-5, atol=1e-6)
    # state_dict round trip: a fresh optimizer over a copy continues identically.
    sd = opt.state_dict()
    assert sd["state"][0]["exp_avg"].shape == (V, D) and int(sd["state"][0]["step"]) == 8
    m2 = copy.deepcopy(m)
    opt2 = gnn.AdamW(m2.parameters(), lr=1e-2, weight_decay=0.1)
    opt2.load_state_dict(sd)
    ids = ids_of(seed=99)
    for mm, oo in ((m, opt), (m2, opt2)):
        oo.zero_grad()
        mm(ids).sum().backward()
        oo.step()
    assert torch.equal(m.token_embedding.weight, m2.token_embedding.weight)


def test_library_adamw_lazy_touches_only_batch_rows_and_refuses_foreign_parameters():
    m = make()
    before = m.token_embedding.weight.detach().clone()
    opt = gnn.AdamW([m.token_embedding.weight], lr=0.1, lazy=True)
    ids = torch.tensor([[1, 2, 3]])
    m(ids).sum().backward()
    opt.step()
    changed = (m.token_embedding.weight != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [1, 2, 3]
    with pytest.raises(ValueError, match="not a parameter of a gpt_embedding.nn module"):
        gnn.AdamW([nn.Parameter(torch.zeros(3))])
    snapshot = m.token_embedding.weight.detach().clone()
    with pytest.raises(ValueError):
        gnn.AdamW([m.token_embedding.weight], lr=-1.0)
    assert torch.equal(snapshot, m.token_embedding.weight)


# ---------------------------------------------------------------------------------------
# torch.compile and opcheck
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_forward_and_backward(backend):
    if backend == "inductor":
        import shutil
        if shutil.which(os.environ.get("CXX", "g++")) is None:
            pytest.skip("inductor needs a C++ compiler")
    torch._dynamo.reset()
    m = make(dropout=0.0)
    head = nn.Linear(D, 3)

    def step(ids):
        return head(m(ids, use_layer_norm=True)).square().sum()

    ids = ids_of()
    loss = step(ids)
    loss.backward()
    eager = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    head.zero_grad()
    compiled = torch.compile(step, fullgraph=True, backend=backend)
    loss2 = compiled(ids)
    loss2.backward()
    torch.testing.assert_close(loss2, loss, rtol=1e-5, atol=1e-5)
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.grad, eager[n], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["plain", "norm", "norm+dropout", "int64+positions", "empty", "bf16", "frozen",
                                  "sinusoidal"])
def test_opcheck(case):
    """torch.library.opcheck on the forward operator (schema, autograd registration, fake
    tensors, AOT dispatch with dynamic shapes: forward and backward against eager)."""
    from gpt_embedding import _lib
    from gpt_embedding.nn import _ops
    kw = dict(padding_idx=3, dropout=0.2)
    if case == "bf16":
        kw["weight_dtype"] = "bfloat16"
    if case == "sinusoidal":
        kw["position_encoding"] = "sinusoidal"
    m = make(**kw)
    if case == "frozen":
        m.token_embedding.weight.requires_grad_(False)
    ids = ids_of(dtype=torch.int64 if case == "int64+positions" else torch.int32)
    positions = None
    if case == "int64+positions":
        positions = torch.randint(0, T, ids.shape, generator=torch.Generator().manual_seed(3))
    if case == "empty":
        ids = ids[:0]
    flags = {"norm": _lib.LAYER_NORM, "norm+dropout": _lib.LAYER_NORM | _lib.TRAINING}.get(case, _lib.NO_LAYER_NORM)
    rng = torch.tensor([5, 9]) if flags & _lib.TRAINING else None
    wte, wpe, g, b = m._tables()
    torch.library.opcheck(_ops.forward, (m._binding.key, ids, positions, 1, wte, wpe, g, b, flags, rng, 0))


def test_compile_with_dropout_keeps_forward_and_backward_consistent():
    torch._dynamo.reset()
    p = 0.3
    m = make(dropout=p).train()
    ids = ids_of(batch=4, seq=16)
    compiled = torch.compile(lambda x: m(x), fullgraph=True, backend="aot_eager")
    out = compiled(ids)
    keep = out != 0
    assert abs(keep.float().mean().item() - (1 - p)) < 0.05
    w = torch.randn_like(out)
    (out * w).sum().backward()
    r = Reference(m)
    ((r(ids) * keep / (1 - p)) * w).sum().backward()
    torch.testing.assert_close(m.token_embedding.weight.grad, r.wte.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.position_embedding.weight.grad, r.wpe.grad, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Devices, dtypes, copies
# ---------------------------------------------------------------------------------------

def test_devices_and_conversions_are_refused_or_done_through_the_library():
    m = make()
    with pytest.raises(RuntimeError, match="CPU only"):
        m.to("cuda")
    with pytest.raises(RuntimeError, match="CPU only"):
        m.cuda()
    with pytest.raises(RuntimeError, match="CPU only"):
        m.to("meta")
    with pytest.raises(TypeError, match="float64"):
        m.double()
    with pytest.raises(RuntimeError, match="share_memory"):
        m.share_memory()
    with pytest.raises(RuntimeError, match="meta"):
        m(torch.zeros((1, 2), dtype=torch.int64, device="meta"))
    assert m.to(torch.float32) is m and m.to("cpu") is m
    values = m.token_embedding.weight.detach().clone()
    m.bfloat16()
    assert m.token_embedding.weight.dtype == torch.bfloat16
    assert m.token_embedding.weight.data_ptr() == m.layer.parameter("token_embedding.weight").ctypes.data
    assert torch.equal(m.token_embedding.weight, values.to(torch.bfloat16))
    assert m.layer_norm.weight.dtype == torch.float32
    m.float()
    assert m.token_embedding.weight.dtype == torch.float32


def test_state_dict_deepcopy_pickle_assign():
    m = make(padding_idx=2)
    sd = m.state_dict()
    assert set(sd) == {"token_embedding.weight", "position_embedding.weight", "layer_norm.weight", "layer_norm.bias"}
    m2 = make(seed=99, padding_idx=2)
    ptr = m2.token_embedding.weight.data_ptr()
    m2.load_state_dict(sd)
    assert m2.token_embedding.weight.data_ptr() == ptr
    ids = ids_of()
    m.eval(), m2.eval()
    assert torch.equal(m(ids), m2(ids))
    with pytest.raises(RuntimeError, match="assign"):
        m2.load_state_dict(sd, assign=True)
    c = copy.deepcopy(m)
    assert c.token_embedding.weight.data_ptr() != m.token_embedding.weight.data_ptr()
    assert torch.equal(c(ids), m(ids))
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert torch.equal(loaded(ids), m(ids)) and loaded.config.padding_idx == 2
    assert torch.equal(pickle.loads(pickle.dumps(m))(ids), m(ids))
    # A parameter replaced behind the module's back is what the layer computes from (the
    # operators borrow the tensors they are given), as with any torch module.
    m.token_embedding.weight = nn.Parameter(torch.zeros(V, D))
    assert torch.equal(m(ids), m.position_embedding.weight[:7].detach().expand(3, 7, D))
    m.train()
    m(ids).sum().backward()
    assert m.token_embedding.weight.grad is not None
    with pytest.raises(TypeError, match="float64"):
        m.token_embedding.weight = nn.Parameter(torch.zeros(V, D, dtype=torch.float64))
        m(ids)
    m.token_embedding.weight = nn.Parameter(torch.zeros(V + 1, D))
    with pytest.raises(ValueError):
        m(ids)


def test_refusals_max_norm_scale_grad_double_backward():
    with pytest.raises(NotImplementedError, match="max_norm"):
        gnn.GPTEmbedding(10, 4, 4, max_norm=1.0)
    with pytest.raises(NotImplementedError, match="scale_grad_by_freq"):
        gnn.TokenEmbedding(10, 4, scale_grad_by_freq=True)
    m = make()
    y = m(ids_of())
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad((y * y).sum(), [m.token_embedding.weight], create_graph=True)


# ---------------------------------------------------------------------------------------
# Bad input: a clear error, nothing changed
# ---------------------------------------------------------------------------------------

def test_bad_input_raises_and_changes_nothing():
    m = make()
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    with pytest.raises(TypeError, match="int32 or int64"):
        m(torch.zeros((1, 2)))
    with pytest.raises(TypeError, match="int32 or int64"):
        m(torch.zeros((1, 2), dtype=torch.bool))
    with pytest.raises(IndexError, match="out of range"):
        m(torch.tensor([[1, V]]))
    with pytest.raises(IndexError, match="out of range"):
        m(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="batch, seq"):
        m(torch.zeros((1, 2, 3), dtype=torch.int64))
    with pytest.raises(IndexError, match="out of range"):
        m(torch.tensor([[1, 2]]), start_position=T - 1)
    with pytest.raises(IndexError, match="out of range"):
        m(torch.tensor([[1, 2]]), position_ids=torch.tensor([[0, T]]))
    out = m(torch.tensor([[1, 2]]))
    with pytest.raises(RuntimeError):
        out.backward(torch.ones(1, 3, D))
    for n, p in m.named_parameters():
        assert torch.equal(p, before[n]) and p.grad is None


def test_empty_inputs():
    m = make()
    for shape in ((0, 5), (3, 0)):
        out = m(torch.zeros(shape, dtype=torch.int64))
        assert out.shape == shape + (D,)
        out.sum().backward()
    with torch.no_grad():
        assert m(torch.zeros((0, 4), dtype=torch.int32)).shape == (0, 4, D)


# ---------------------------------------------------------------------------------------
# The components, and the cases of PyTorch's test/nn/test_embedding.py that apply
# ---------------------------------------------------------------------------------------

def test_token_embedding_is_an_nn_embedding_drop_in():
    emb = gnn.TokenEmbedding(V, D, padding_idx=-2, scale_embeddings=False, seed=1)
    assert emb.padding_idx == V - 2 and emb.num_embeddings == V and emb.embedding_dim == D
    assert torch.all(emb.weight[V - 2] == 0)  # padding row zero at init
    ref = nn.Embedding(V, D, padding_idx=V - 2)
    with torch.no_grad():
        ref.weight.copy_(emb.weight)
    ids = torch.randint(0, V, (2, 3, 4))
    ids[0, 0, 0] = V - 2
    out = emb(ids)
    assert out.shape == (2, 3, 4, D)
    assert torch.equal(out, ref(ids))
    out.sum().backward()
    ref(ids).sum().backward()
    torch.testing.assert_close(emb.weight.grad, ref.weight.grad, rtol=0, atol=0)
    assert torch.all(emb.weight.grad[V - 2] == 0)
    assert emb(torch.tensor(5)).shape == (D,)  # 0-d ids, as nn.Embedding
    assert emb(torch.zeros((0, 3), dtype=torch.long)).shape == (0, 3, D)
    with pytest.raises(ValueError, match="padding_idx"):
        gnn.TokenEmbedding(10, 3, padding_idx=10)


def test_token_embedding_from_pretrained_freeze_and_scale():
    table = torch.randn(6, 4)
    emb = gnn.TokenEmbedding.from_pretrained(table)
    assert not emb.weight.requires_grad
    assert torch.equal(emb(torch.tensor([[0, 5]])), F.embedding(torch.tensor([[0, 5]]), table))
    emb = gnn.TokenEmbedding.from_pretrained(table, freeze=False, scale_embeddings=True)
    assert emb.weight.requires_grad
    torch.testing.assert_close(emb(torch.tensor([1])), table[1:2] * 2.0, rtol=0, atol=0)
    with pytest.raises(ValueError, match="2-dimensional"):
        gnn.TokenEmbedding.from_pretrained(torch.randn(3))
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        gnn.TokenEmbedding.from_pretrained(torch.randn(3, 3, dtype=torch.float64))


def test_positional_components():
    pe = gnn.PositionalEmbedding(T, D, seed=2)
    rows = pe(5, start_position=3)
    assert torch.equal(rows, pe.weight[3:8].detach())
    rows.sum().backward()
    assert torch.equal(pe.weight.grad[3:8], torch.ones(5, D)) and pe.weight.grad[:3].abs().sum() == 0
    with pytest.raises(IndexError):
        pe(T + 1)
    sin = gnn.SinusoidalPositionalEmbedding(T, D)
    got = sin(torch.zeros((2, 6), dtype=torch.long), start_position=4)
    pos = np.arange(4, 10, dtype=np.float64)[:, None]
    c = np.arange(D)
    angle = pos * 10000.0 ** (-(c - c % 2) / D)
    expected = np.where(c % 2 == 0, np.sin(angle), np.cos(angle))
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-6)
    assert list(sin.parameters()) == []


def test_from_pretrained_and_from_preset(tmp_path):
    m = make(weight_dtype="bfloat16")
    path = tmp_path / "e.safetensors"
    m.layer.save_safetensors(str(path))
    for mmap in (False, True):
        loaded = gnn.GPTEmbedding.from_pretrained(path, mmap=mmap)
        assert not loaded.training
        assert loaded.token_embedding.weight.dtype == torch.bfloat16
        assert torch.equal(loaded.token_embedding.weight, m.token_embedding.weight)
        assert loaded.layer.is_mapped("token_embedding.weight") == mmap
    gpt2 = gnn.GPTEmbedding.from_preset("gpt2", seed=1)
    assert gpt2.token_embedding.weight.shape == (50257, 768)
    assert gpt2.num_parameters() == 50257 * 768 + 1024 * 768 + 2 * 768


def test_numpy_api_never_imports_torch():
    import subprocess
    import sys
    code = "import sys, gpt_embedding; gpt_embedding.GPTEmbedding(10, 4, 4)(sys.argv[1:] or [[1]]); print('torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..", "bindings", "python"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_dense_gradient_buffers_are_reused_only_when_free_and_stay_right():
    """The token table's dense gradient reuses its memory after zero_grad(set_to_none=True)
    (no fresh [vocab, D] pages per step), zeroing what was written; a gradient changed in
    place, or still held, is handled without wrong values."""
    m = make()
    opt = torch.optim.SGD(m.parameters(), lr=0.0)

    def reference(ids, w):
        r = Reference(m)
        (r(ids) * w).sum().backward()
        return r.wte.grad

    pointers = []
    for step in range(4):
        opt.zero_grad()  # set_to_none=True
        ids, w = ids_of(seed=10 + step), torch.randn(3, 7, D, generator=torch.Generator().manual_seed(step))
        (m(ids) * w).sum().backward()
        g = m.token_embedding.weight.grad
        assert torch.equal(g, reference(ids, w)), step
        pointers.append(g.data_ptr())
        if step == 1:
            g.add_(1.0)  # changed in place through torch: the whole buffer must be cleared
        del g
    assert len(set(pointers)) == 1  # the same memory every step
    # Held by someone: not reused, and the held tensor keeps its values.
    held = m.token_embedding.weight.grad
    snapshot = held.clone()
    opt.zero_grad()
    ids, w = ids_of(seed=30), torch.ones(3, 7, D)
    (m(ids) * w).sum().backward()
    assert m.token_embedding.weight.grad.data_ptr() != held.data_ptr()
    assert torch.equal(held, snapshot)
    assert torch.equal(m.token_embedding.weight.grad, reference(ids, w))
    # set_to_none=False: autograd adds into the kept .grad; the sums stay right.
    opt.zero_grad(set_to_none=False)
    total = torch.zeros(V, D)
    for step in range(3):
        ids, w = ids_of(seed=40 + step), torch.randn(3, 7, D, generator=torch.Generator().manual_seed(9 + step))
        (m(ids) * w).sum().backward()
        total += reference(ids, w)
    torch.testing.assert_close(m.token_embedding.weight.grad, total, rtol=1e-6, atol=1e-6)


def test_backward_operator_refuses_a_grad_output_of_another_shape_or_dtype():
    from gpt_embedding import _lib
    from gpt_embedding.nn import _ops
    m = make()
    ids = ids_of()
    with pytest.raises(ValueError, match="grad_output has shape"):
        _ops.backward(m._binding.key, torch.ones(3, 6, D), ids, None, 0, None, None, None, None, _lib.NO_LAYER_NORM,
                      None, torch.empty(0), torch.empty(0), 1)
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        _ops.backward(m._binding.key, torch.ones(3, 7, D, dtype=torch.float64), ids, None, 0, None, None, None, None,
                      _lib.NO_LAYER_NORM, None, torch.empty(0), torch.empty(0), 1)
    assert m.token_embedding.weight.grad is None


def test_threads_share_one_module_for_inference():
    import threading
    m = make().eval()
    batches = [ids_of(seed=s) for s in range(8)]
    with torch.no_grad():
        expected = [m(b) for b in batches]
    results = [None] * 8

    def work(i):
        with torch.no_grad():
            for _ in range(50):
                results[i] = m(batches[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(r, e) for r, e in zip(results, expected))


def test_conversion_keeps_gradients_and_uses_the_current_values():
    m = make()
    m(ids_of()).sum().backward()
    grad = m.token_embedding.weight.grad.clone()
    with torch.no_grad():
        m.token_embedding.weight[0].fill_(0.5)
    m.half()
    assert m.token_embedding.weight.grad.dtype == torch.float16
    assert torch.equal(m.token_embedding.weight.grad, grad.half())
    assert torch.all(m.token_embedding.weight[0] == 0.5)
    assert m.layer_norm.weight.grad is None and m.layer_norm.weight.dtype == torch.float32
