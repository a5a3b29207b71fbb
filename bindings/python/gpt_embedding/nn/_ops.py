"""The layer as PyTorch operators: ``gpt_embedding::forward`` and ``gpt_embedding::backward``
(``torch.library.custom_op``), with fake (meta) kernels for ``torch.compile`` and the
backward registered as the forward's autograd formula.

Why custom operators: a ctypes call inside ``forward`` is opaque to Dynamo (a graph break),
while a registered operator is one node that ``torch.compile(fullgraph=True)`` captures,
forward and backward, on every backend, and that ``torch.library.opcheck`` can test.

Each backward belongs to its own forward: the forward returns what its backward needs (the
per-token layer norm mean and rstd) as outputs that autograd saves with the node, and the
dropout mask is drawn from ``rng`` (a [2] int64 tensor: seed and offset, drawn from torch's
generator by the module), so two forwards before their backwards, a backward run twice and
a forward recomputed by activation checkpointing (which restores torch's RNG state) all get
their own, right, gradients.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .. import _lib
from ._binding import (WANT_INTO_LAYER, WANT_LAYER_NORM, WANT_POSITION, WANT_TOKEN, WANT_TOKEN_ROWS, binding)

# Positions of the tensors in forward's inputs (for ctx.needs_input_grad).
_WTE, _WPE, _GAMMA, _BETA = 4, 5, 6, 7
#: Option bits of forward (``options``): the token gradient as sparse rows.
OPTION_SPARSE = 1


@torch.library.custom_op("gpt_embedding::forward", mutates_args=(), device_types="cpu")
def forward(key: int, ids: Tensor, positions: Optional[Tensor], start: int, wte: Tensor, wpe: Optional[Tensor],
            ln_weight: Tensor, ln_bias: Tensor, flags: int, rng: Optional[Tensor],
            options: int) -> Tuple[Tensor, Tensor, Tensor]:
    """The layer's forward: ``(out [batch, seq, D] in the tables' dtype, mean [N], rstd [N])``
    (N = batch * seq when the layer norm is applied, else 0), computed from the tables
    passed (borrowed for the call: whatever tensors autograd hands the operator)."""
    return binding(key).forward((wte, wpe, ln_weight, ln_bias), ids, positions, start, flags, rng, keep_stats=True)


@forward.register_fake
def _forward_fake(key: int, ids: Tensor, positions: Optional[Tensor], start: int, wte: Tensor,
                  wpe: Optional[Tensor], ln_weight: Tensor, ln_bias: Tensor, flags: int, rng: Optional[Tensor],
                  options: int) -> Tuple[Tensor, Tensor, Tensor]:
    batch, seq = ids.shape
    out = wte.new_empty((batch, seq, wte.shape[1]))
    n = batch * seq if flags & _lib.LAYER_NORM else 0
    return out, ln_weight.new_empty((n,)), ln_weight.new_empty((n,))


@torch.library.custom_op("gpt_embedding::backward", mutates_args=(), device_types="cpu")
def backward(key: int, grad: Tensor, ids: Tensor, positions: Optional[Tensor], start: int, wte: Optional[Tensor],
             wpe: Optional[Tensor], ln_weight: Optional[Tensor], ln_bias: Optional[Tensor], flags: int, rng: Optional[Tensor], mean: Tensor,
             rstd: Tensor, want: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The layer's backward into fresh float32 tensors: (token table gradient [rows, D], or
    each token's row gradient [batch * seq, D] for a sparse gradient; position table
    gradient; layer norm weight and bias gradients). A gradient not asked for in ``want``
    is an empty tensor. The tables are the forward's when it normalised (the layer norm's
    backward recomputes its input from them); without the layer norm they are not read
    and may be None."""
    return binding(key).backward((wte, wpe, ln_weight, ln_bias), grad, ids, positions, start, flags, rng, mean, rstd,
                                 want)


@backward.register_fake
def _backward_fake(key: int, grad: Tensor, ids: Tensor, positions: Optional[Tensor], start: int,
                   wte: Optional[Tensor], wpe: Optional[Tensor], ln_weight: Optional[Tensor],
                   ln_bias: Optional[Tensor], flags: int, rng: Optional[Tensor],
                   mean: Tensor, rstd: Tensor, want: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    b = binding(key)
    d = b.embed_dim
    f32 = dict(dtype=torch.float32)
    if want & WANT_INTO_LAYER:
        return tuple(grad.new_empty((0,), **f32) for _ in range(4))
    if want & WANT_TOKEN_ROWS:
        dwte = grad.new_empty((ids.numel(), d), **f32)
    elif want & WANT_TOKEN:
        dwte = grad.new_empty((b.token_rows, d), **f32)
    else:
        dwte = grad.new_empty((0,), **f32)
    dwpe = grad.new_empty(b.shapes["position_embedding.weight"] if want & WANT_POSITION and b.learned_positions
                          else (0,), **f32)
    ln = (d,) if want & WANT_LAYER_NORM and flags & _lib.LAYER_NORM else (0,)
    return dwte, dwpe, grad.new_empty(ln, **f32), grad.new_empty(ln, **f32)


def _setup_context(ctx, inputs, output) -> None:  # noqa: ANN001 - torch's signature
    key, ids, positions, start, wte, wpe, ln_weight, ln_bias, flags, rng, options = inputs
    _, mean, rstd = output
    ctx.key, ctx.start, ctx.flags, ctx.options = key, start, flags, options
    # The layer norm's backward recomputes its input from the tables; without it they are
    # not needed (and not saved, so an in-place update before backward is no error).
    norm = bool(flags & _lib.LAYER_NORM)
    ctx.norm = norm
    ctx.save_for_backward(ids, positions, rng, mean, rstd, *((wte, wpe, ln_weight, ln_bias) if norm else ()))


def _backward(ctx, grad: Tensor, grad_mean: Optional[Tensor], grad_rstd: Optional[Tensor]):  # noqa: ANN001
    saved = ctx.saved_tensors
    ids, positions, rng, mean, rstd = saved[:5]
    tables = tuple(saved[5:]) if ctx.norm else (None, None, None, None)
    need = ctx.needs_input_grad
    if torch.is_grad_enabled() and grad.requires_grad:
        raise RuntimeError("gpt_embedding.nn: double backward (create_graph=True through the embedding) is not "
                           "supported: the layer's backward is not itself differentiable")
    b = binding(ctx.key)
    names = ("token_embedding.weight", "position_embedding.weight", "layer_norm.weight", "layer_norm.bias")
    wanted = [bool(need[i]) for i in (_WTE, _WPE, _GAMMA, _BETA)]
    # Parameters an gpt_embedding.nn.AdamW steps get their gradient in the library's own
    # buffers (where the fused step and its touched-row tracking read it), not in .grad.
    into_layer = [w and n in b.into_layer for w, n in zip(wanted, names)]
    if any(into_layer):
        if torch.compiler.is_compiling() or _is_fake(grad):
            raise RuntimeError("gpt_embedding.nn.AdamW keeps gradients in the library, which torch.compile cannot "
                               "trace: under torch.compile use a torch optimizer (torch.optim.AdamW) instead")
        b.backward(tables, grad, ids, positions, ctx.start, ctx.flags, rng, mean, rstd, WANT_INTO_LAYER)
    dense = [w and not i for w, i in zip(wanted, into_layer)]
    want = 0
    sparse = bool(ctx.options & OPTION_SPARSE)
    if dense[0]:
        want |= WANT_TOKEN_ROWS if sparse else WANT_TOKEN
    if dense[1]:
        want |= WANT_POSITION
    if dense[2] or dense[3]:
        want |= WANT_LAYER_NORM
    grads: list = [None, None, None, None]
    if want:
        dwte, dwpe, dgamma, dbeta = backward(ctx.key, grad, ids, positions, ctx.start, *tables, ctx.flags, rng,
                                             mean, rstd, want)
        if dense[0]:
            grads[0] = _sparse_gradient(b, ids, dwte) if sparse else dwte
        if dense[1]:
            grads[1] = dwpe
        if dense[2] and ctx.flags & _lib.LAYER_NORM:
            grads[2] = dgamma
        if dense[3] and ctx.flags & _lib.LAYER_NORM:
            grads[3] = dbeta
    return None, None, None, None, grads[0], grads[1], grads[2], grads[3], None, None, None


def _sparse_gradient(b, ids: Tensor, rows: Tensor) -> Tensor:  # noqa: ANN001
    """The token table's gradient as ``nn.Embedding(sparse=True)`` gives it: an uncoalesced
    sparse COO tensor with one row per token (the padding row's tokens left out)."""
    # A copy: the gradient outlives the call, and the caller may refill its id tensor in
    # place (nn.Embedding's sparse gradient does not alias the input either).
    flat = ids.reshape(-1).to(torch.int64, copy=True)
    padding = b.config.padding_idx
    if padding is not None:
        keep = flat != padding
        flat, rows = flat[keep], rows[keep]
    return torch.sparse_coo_tensor(flat.unsqueeze(0), rows, (b.token_rows, b.embed_dim), check_invariants=False)


def _is_fake(t: Tensor) -> bool:
    from torch._subclasses.fake_tensor import is_fake
    return is_fake(t)


forward.register_autograd(_backward, setup_context=_setup_context)
