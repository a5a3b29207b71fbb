"""One library layer as the torch modules see it: its tables as torch tensors (zero copy),
and the library's calls with explicit state (``gpt_embedding_forward_call`` /
``gpt_embedding_backward_call``) on torch tensors.

No maths here: every number comes from libgpt_embedding. This file only checks what the
library cannot (devices, dtypes, layouts of torch tensors), allocates the outputs and hands
addresses to the C calls.
"""
from __future__ import annotations

import ctypes
import itertools
import threading
import weakref
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .. import _lib
from ..errors import error_for
from ..layer import _PARAMS, GPTEmbedding as _Layer

#: enum gpt_embedding_dtype -> torch dtype, and back.
TORCH_DTYPES = {_lib.DTYPE_F32: torch.float32, _lib.DTYPE_BF16: torch.bfloat16, _lib.DTYPE_F16: torch.float16}
DTYPE_CODES = {v: k for k, v in TORCH_DTYPES.items()}
#: The parameters in state-dict order.
NAMES = ("token_embedding.weight", "position_embedding.weight", "layer_norm.weight", "layer_norm.bias")

# Which gradients a backward computes (bits of ``want``).
WANT_TOKEN, WANT_POSITION, WANT_LAYER_NORM, WANT_TOKEN_ROWS, WANT_INTO_LAYER = 1, 2, 4, 8, 16

# The C calls, as function objects of their own (``lib[name]`` makes a new one, so these
# argtypes -- plain addresses as integers, the fastest ctypes converts -- do not change the
# package's declarations of the same functions).
_vp, _i64, _int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int


def _function(name: str, argtypes: list) -> Optional[ctypes._CFuncPtr]:
    if not _lib.has(name):
        return None
    fn = _lib.lib[name]
    fn.argtypes = argtypes
    fn.restype = _int
    return fn


_forward_call = _function("gpt_embedding_forward_call", [_vp, _vp, _int, _vp, _i64])
_backward_call = _function("gpt_embedding_backward_call", [_vp, _vp, _int, _vp, _i64, _vp])
_forward_i64 = _function("gpt_embedding_forward_typed_i64", [_vp, _vp, _i64, _i64, _vp, _i64, ctypes.c_uint32, _int, _vp, _i64])
_forward_i32 = _function("gpt_embedding_forward_typed", [_vp, _vp, _i64, _i64, _vp, _i64, ctypes.c_uint32, _int, _vp, _i64])
_last_error = _lib.lib.gpt_embedding_last_error
_status_string = _lib.lib.gpt_embedding_status_string


def check(status: int) -> None:
    """Raises the status's exception with the library's message (read on this thread)."""
    if status:
        message = _last_error()
        raise error_for(status, (message or _status_string(status)).decode("utf-8", "replace"))


def require_explicit_state() -> None:
    if _forward_call is None or _backward_call is None:
        raise RuntimeError(f"{_lib.library_path} does not export gpt_embedding_forward_call / "
                           "gpt_embedding_backward_call (library 0.5): gpt_embedding.nn needs them; rebuild the "
                           "library (make lib)")


def torch_view(layer: _Layer, name: str) -> torch.Tensor:
    """A torch tensor over a parameter's storage in the library (no copy). Its numpy base
    keeps the layer alive, so the tensor never outlives the memory."""
    a = layer.parameter(name)
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(a)


class _GradientBuffer:
    """A dense gradient's memory, the version of its counter when it was handed out, and
    the rows the library wrote into it then."""

    __slots__ = ("base", "version", "rows")

    def __init__(self, base: torch.Tensor) -> None:
        self.base = base
        self.version = -1
        self.rows: Optional[torch.Tensor] = None


#: The four tables of a call in NAMES order (the position table None without learned positions).
Tables = Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor, torch.Tensor]


def _borrowed(t: Optional[torch.Tensor], own: Optional[torch.Tensor], name: str) -> Optional[torch.Tensor]:
    """A table tensor as the library reads it: on the CPU, contiguous, of the layer's dtype
    (the library checks the element count)."""
    if t is None:
        return None
    if own is None:
        raise ValueError(f"gpt_embedding.nn: this layer has no {name}")
    if t.device.type != "cpu":
        raise RuntimeError(f"gpt_embedding.nn: {name} is on {t.device}; the library runs on the CPU only")
    if t.dtype != own.dtype:
        raise TypeError(f"gpt_embedding.nn: {name} is {t.dtype}; this layer's is {own.dtype} (convert the module "
                        "with .to(dtype), which converts the library's tables)")
    return t.contiguous()


def _empty() -> torch.Tensor:
    return torch.empty((0,), dtype=torch.float32)


_keys = itertools.count(1)
_bindings: Dict[int, "weakref.ReferenceType[Binding]"] = {}
_bindings_lock = threading.Lock()


def binding(key: int) -> "Binding":
    """The live binding of a key (the custom operators carry the key, an int, because an
    operator's schema cannot hold a Python object)."""
    ref = _bindings.get(key)
    b = ref() if ref is not None else None
    if b is None:
        raise RuntimeError(f"gpt_embedding: layer key {key} belongs to a module that no longer exists")
    return b


class Binding:
    """A library layer, its tables as torch tensors, and what the calls need cached: the
    handle as an integer, the tables' addresses (to notice a parameter that no longer is
    the library's memory), shapes and dtypes."""

    def __init__(self, layer: _Layer) -> None:
        self.layer = layer
        self.handle: int = layer._handle.get().value
        #: The layer's readers-writer lock (the header's thread contract): calls into caller
        #: buffers only read the layer; a backward into its own gradients writes it.
        self.access = layer._access
        config = layer._config
        if layer.frozen_parameter_names():
            # torch parameters are float tensors; a table in ggml's blocks is not one.
            raise ValueError(f"gpt_embedding.nn modules hold float tables; this token table is {config.weight_dtype} "
                             "(a quantized GGUF table): open it with dtype='float32', 'bfloat16' or 'float16' "
                             "(dequantized while opening), or use the numpy API (gpt_embedding.GPTEmbedding), "
                             "which runs it in its blocks")
        self.config = config
        self.embed_dim: int = config.embed_dim
        self.learned_positions = config.position_encoding == "learned"
        self.layer_norm_default = bool(config.layer_norm)
        self.dropout = float(config.dropout)
        self.names = tuple(n for n in NAMES if n != "position_embedding.weight" or self.learned_positions)
        self.tensors: Dict[str, torch.Tensor] = {n: torch_view(layer, n) for n in self.names}
        self.addresses: Dict[str, int] = {n: t.data_ptr() for n, t in self.tensors.items()}
        self.shapes: Dict[str, Tuple[int, ...]] = {n: tuple(t.shape) for n, t in self.tensors.items()}
        self.token_rows: int = self.shapes["token_embedding.weight"][0]
        self.table_dtype: torch.dtype = self.tensors["token_embedding.weight"].dtype
        self.dtype_code: int = DTYPE_CODES[self.table_dtype]
        #: The plain typed forward of each id dtype (the decode path).
        self.plain_forward = {torch.int32: _forward_i32, torch.int64: _forward_i64}
        #: Parameters whose gradient goes into the library's own buffers (an
        #: :class:`gpt_embedding.nn.AdamW` steps them there) instead of ``.grad``.
        self.into_layer: set = set()
        #: One buffer per kind of dense gradient, reused once nothing else refers to it
        #: (see :meth:`dense_gradient`).
        self._gradient_buffers: Dict[str, "_GradientBuffer"] = {}
        self._gradient_lock = threading.Lock()
        self.key = next(_keys)
        with _bindings_lock:
            _bindings[self.key] = weakref.ref(self)
        weakref.finalize(self, _bindings.pop, self.key, None)

    # -- checks ----------------------------------------------------------------------

    def is_own(self, tables: Tables) -> bool:
        """Whether every table is the library's own memory (the parameters this binding
        made, unchanged): then the plain calls, which read the layer's tables, are right."""
        for name, t in zip(NAMES, tables):
            own = self.tensors.get(name)
            if t is None:
                if own is not None:
                    return False
            elif own is None or t.data_ptr() != self.addresses[name] or t.dtype != own.dtype:
                return False
        return True

    def dense_gradient(self, key: str, shape: Tuple[int, ...], zero: bool = True) -> Tuple[torch.Tensor, "_GradientBuffer"]:
        """A float32 tensor of zeros for a dense table gradient, and its buffer (set the
        buffer's ``rows`` to the rows the library wrote, once it has: until then the whole
        buffer counts as written).

        A fresh [vocab, D] tensor per backward costs more than the backward itself: its
        pages are new to the process and each first touch faults (154 MB for GPT-2 small,
        45-70 ms here), because after ``zero_grad(set_to_none=True)`` the previous gradient
        is freed and returned to the system. So each kind of gradient keeps one buffer, and
        hands it out again once nothing else refers to it (``.grad`` was set to None and no
        one holds the tensor). The tensor handed out is a view of the buffer: it shares the
        buffer's version counter, so if anything changed it in place through torch
        (``clip_grad_norm_``, ``.grad += ...``, a GradScaler) the whole buffer is zeroed
        again; otherwise only the rows the library wrote last time are (25 MB for 8 x 1024
        tokens instead of 154). With ``zero=False`` (a buffer the library writes whole: the
        per-token rows of a sparse gradient) nothing is cleared. Writes through raw pointers (``.grad.numpy()``, ctypes) do not
        count as changes: don't write a gradient tensor that way and then drop it. A buffer
        still referenced is never reused: a new one is allocated."""
        numel = 1
        for n in shape:
            numel *= n
        with self._gradient_lock:
            buf = self._gradient_buffers.get(key)
            if buf is not None and buf.base.numel() == numel and \
                    torch._C._storage_Use_Count(buf.base.untyped_storage()._cdata) == 2:  # base + this probe
                t = buf.base.view(shape)
                if not zero:
                    pass
                elif buf.version == buf.base._version and buf.rows is not None:
                    t.index_fill_(0, buf.rows, 0.0)
                else:
                    buf.base.zero_()
            else:
                buf = _GradientBuffer(torch.zeros((numel,), dtype=torch.float32) if zero
                                      else torch.empty((numel,), dtype=torch.float32))
                self._gradient_buffers[key] = buf
                t = buf.base.view(shape)
            buf.rows = None
            buf.version = buf.base._version
            return t, buf

    # -- the calls ---------------------------------------------------------------------

    def _call(self, tables: Tables, ids: torch.Tensor, positions: Optional[torch.Tensor], start: int, flags: int,
              rng: Optional[torch.Tensor], mean: Optional[torch.Tensor], rstd: Optional[torch.Tensor]) -> _lib.Call:
        """The ``gpt_embedding_call`` of one forward and its backward, borrowing ``tables``
        (the tensors autograd gave the operator: the library computes from them, whatever
        memory they are in; it checks their sizes, the dtypes are checked here)."""
        c = _lib.Call()
        c.struct_size = ctypes.sizeof(c)
        c.flags = flags
        c.index_dtype = _lib.INDEX_I32 if ids.dtype == torch.int32 else _lib.INDEX_I64
        c.ids = ids.data_ptr() or None
        c.positions = (positions.data_ptr() or None) if positions is not None else None
        c.batch, c.seq = ids.shape
        c.start_position = start
        if rng is not None and rng.numel():
            seed, offset = rng.tolist()
            c.dropout_seed = seed & 0xFFFF_FFFF_FFFF_FFFF
            c.dropout_offset = offset & 0xFFFF_FFFF_FFFF_FFFF
        if mean is not None and mean.numel():
            c.mean = mean.data_ptr()
            c.rstd = rstd.data_ptr()
        keep = []
        for name, t, field in zip(NAMES, tables, ("token_embedding", "position_embedding", "layer_norm_weight",
                                                  "layer_norm_bias")):
            t = _borrowed(t, self.tensors.get(name), name)
            if t is not None:  # None: the layer's own
                setattr(c, field, t.data_ptr() or None)
                setattr(c, field + "_len", t.numel())
                keep.append(t)
        c._keep = keep  # contiguous copies, if any, live as long as the call
        return c

    def forward(self, tables: Tables, ids: torch.Tensor, positions: Optional[torch.Tensor], start: int, flags: int,
                rng: Optional[torch.Tensor], keep_stats: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``gpt_embedding_forward_call``: the output [batch, seq, D] in the tables' dtype
        and, with the layer norm and ``keep_stats``, the per-token mean and rstd (empty
        tensors otherwise)."""
        require_explicit_state()
        batch, seq = ids.shape
        out = torch.empty((batch, seq, self.embed_dim), dtype=self.table_dtype)
        n = batch * seq if keep_stats and flags & _lib.LAYER_NORM else 0
        mean = torch.empty((n,), dtype=torch.float32)
        rstd = torch.empty((n,), dtype=torch.float32)
        c = self._call(tables, ids, positions, start, flags, rng, mean, rstd)
        check(self.access.read(_forward_call, self.handle, ctypes.addressof(c), DTYPE_CODES[self.table_dtype],
                               out.data_ptr() or None, out.numel()))
        return out, mean, rstd

    def forward_eval(self, ids: torch.Tensor, positions: Optional[torch.Tensor], start: int,
                     flags: int) -> torch.Tensor:
        """An eval forward through the plain call (the decode path: no struct to fill)."""
        batch, seq = ids.shape
        out = torch.empty((batch, seq, self.embed_dim), dtype=self.table_dtype)
        fn = _forward_i32 if ids.dtype == torch.int32 else _forward_i64
        check(self.access.read(fn, self.handle, ids.data_ptr() or None, batch, seq,
                               None if positions is None else positions.data_ptr() or None, start, flags,
                               DTYPE_CODES[self.table_dtype], out.data_ptr() or None, out.numel()))
        return out

    def backward(self, tables: Tables, grad: torch.Tensor, ids: torch.Tensor, positions: Optional[torch.Tensor],
                 start: int, flags: int, rng: Optional[torch.Tensor], mean: torch.Tensor, rstd: torch.Tensor,
                 want: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``gpt_embedding_backward_call`` into fresh float32 tensors: (token table gradient
        [rows, D] -- or, with WANT_TOKEN_ROWS, each token's row gradient [batch * seq, D] --,
        position table gradient, layer norm weight and bias gradients); a gradient not in
        ``want`` is an empty tensor. With WANT_INTO_LAYER the gradients are added into the
        library's own buffers instead (nothing is returned but empty tensors)."""
        require_explicit_state()
        grad = grad.contiguous()
        code = DTYPE_CODES.get(grad.dtype)
        if code is None:
            raise TypeError(f"gpt_embedding.nn: grad_output must be float32, bfloat16 or float16, got {grad.dtype}")
        batch, seq = ids.shape
        if tuple(grad.shape) != (batch, seq, self.embed_dim):
            raise ValueError(f"gpt_embedding.nn: grad_output has shape {list(grad.shape)}, the forward's output "
                             f"has [{batch}, {seq}, {self.embed_dim}]")
        c = self._call(tables, ids, positions, start, flags, rng, mean, rstd)
        d = self.embed_dim
        if want & WANT_INTO_LAYER:
            # Into the layer's own gradients: exclusive access (the library's thread contract).
            check(self.access.write(_backward_call, self.handle, ctypes.addressof(c), code,
                                    grad.data_ptr() or None, grad.numel(), None))
            return _empty(), _empty(), _empty(), _empty()
        g = _lib.Grads()
        g.struct_size = ctypes.sizeof(g)
        # Distinct empty tensors: an operator's outputs may not alias each other.
        dwte, dwpe, dgamma, dbeta = _empty(), _empty(), _empty(), _empty()
        if want & WANT_TOKEN_ROWS:
            dwte, _ = self.dense_gradient("token rows", (batch * seq, d), zero=False)
            g.token_rows, g.token_rows_len = dwte.data_ptr() or None, dwte.numel()
        elif want & WANT_TOKEN:
            dwte, written = self.dense_gradient("token", (self.token_rows, d))
            g.token_embedding, g.token_embedding_len = dwte.data_ptr(), dwte.numel()
        if want & WANT_POSITION and self.learned_positions:
            dwpe, _ = self.dense_gradient("position", self.shapes["position_embedding.weight"])
            g.position_embedding, g.position_embedding_len = dwpe.data_ptr(), dwpe.numel()
        if want & WANT_LAYER_NORM and flags & _lib.LAYER_NORM:
            dgamma = torch.zeros((d,), dtype=torch.float32)
            dbeta = torch.zeros((d,), dtype=torch.float32)
            g.layer_norm_weight, g.layer_norm_weight_len = dgamma.data_ptr(), d
            g.layer_norm_bias, g.layer_norm_bias_len = dbeta.data_ptr(), d
        check(self.access.read(_backward_call, self.handle, ctypes.addressof(c), code, grad.data_ptr() or None,
                               grad.numel(), ctypes.addressof(g)))
        if want & WANT_TOKEN and not want & WANT_TOKEN_ROWS:
            # valid ids: the call checked them. A copy: the caller may refill its id tensor
            # in place after backward, and these rows are what the next backward clears.
            written.rows = ids.reshape(-1).to(torch.int64, copy=True)
        return dwte, dwpe, dgamma, dbeta
