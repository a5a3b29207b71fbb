"""``gpt_embedding.nn.GPTEmbedding``: the library's layer as a ``torch.nn.Module``.

The parameters are the library's own tables exposed to torch (``torch.from_numpy`` over
the library's memory: no copy). The library reads them on every call, so an in-place update
by any torch optimizer is what the next forward sees, and the library's backward lands in
``.grad`` through autograd (``gpt_embedding::forward`` / ``::backward``, see ``_ops.py``).
"""
from __future__ import annotations

import copy
import os
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.autograd import forward_ad as _forward_ad
from torch.utils.weak import WeakIdKeyDictionary
import weakref

from .. import _lib
from .._arrays import ids_array
from ..config import GPTEmbeddingConfig
from ..layer import GPTEmbedding as _Layer
from . import _ops
from ._binding import DTYPE_CODES, NAMES, Binding, check, torch_view

_CPU_ONLY = ("gpt_embedding.nn modules run on the CPU only: their tables are libgpt_embedding's memory. Keep the "
             "module on 'cpu' and move its output instead (out.to({device!r})).")
#: Seed range of the dropout draws (torch.randint's high bound is exclusive and < 2**63).
_RNG_HIGH = 1 << 62
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


#: parameter -> (weak reference to its module, library name): how gpt_embedding.nn.AdamW
#: finds the layer that owns a parameter it is given.
_OWNERS: "WeakIdKeyDictionary" = WeakIdKeyDictionary()


def owner_of(p: Tensor) -> Optional[Tuple["LibraryModule", str]]:
    """The live module and library name of a parameter of a ``gpt_embedding.nn`` module, or None."""
    entry = _OWNERS.get(p)
    if entry is None:
        return None
    module = entry[0]()
    if module is None or module._binding.tensors.get(entry[1]) is None:
        return None
    return module, entry[1]


class _Parameters(nn.Module):
    """Holds one component's parameters (``weight``, and ``bias`` for the layer norm) so
    that the state-dict keys are the library's: ``token_embedding.weight``,
    ``position_embedding.weight``, ``layer_norm.weight``, ``layer_norm.bias``."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def extra_repr(self) -> str:
        return ", ".join(f"{n}: {list(p.shape)} {_DTYPE_NAMES.get(p.dtype, p.dtype)}"
                         for n, p in self._parameters.items())

    def forward(self, *args: Any) -> Any:
        raise RuntimeError(f"{self.role} holds parameters of its parent gpt_embedding.nn module; call the parent")


def _ids_tensor(value: Any, name: str) -> Tensor:
    """int32 / int64 CPU tensor, contiguous; numpy arrays and lists as the numpy API takes
    them. Other dtypes and devices raise."""
    if not isinstance(value, Tensor):
        return torch.from_numpy(ids_array(value, name))
    if value.device.type != "cpu":
        raise RuntimeError(f"{name} is on {value.device}: " + _CPU_ONLY.format(device=str(value.device)))
    if value.dtype != torch.int64 and value.dtype != torch.int32:
        raise TypeError(f"{name} must be an int32 or int64 tensor (torch.int / torch.long), got {value.dtype}")
    if value.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {value.layout}")
    return value.contiguous()


class LibraryModule(nn.Module):
    """What every ``gpt_embedding.nn`` module shares: one library layer, its tables as
    parameters, the guards that keep the parameters and the library's memory one and the
    same (devices, dtypes, ``share_memory``, ``load_state_dict(assign=True)``), and deep
    copies and pickling as new layers with copied tables."""

    _binding: Binding
    #: Attributes (besides the layer and the parameters) that copies and pickles carry.
    _COPIED: Tuple[str, ...] = ("training", "sparse")

    #: library parameter name -> this module's attribute path (the parameters it exposes).
    _PATHS: Dict[str, str] = {n: n for n in NAMES}

    def _bind(self, layer: _Layer, requires_grad: Optional[Dict[str, bool]] = None) -> None:
        """Makes ``layer``'s tables this module's parameters (zero copy)."""
        b = Binding(layer)
        self._binding = b
        #: library name -> (module holding the parameter, attribute): the parameters are read
        #: from the holders' ``_parameters`` on every call (``get_parameter`` costs ~4 us each).
        self._slots: Dict[str, Tuple[nn.Module, str]] = {}
        for name in b.names:
            path = self._PATHS.get(name)
            if path is None:
                continue  # a tensor of the layer this module does not expose (fixed)
            owner: nn.Module = self
            *roles, attr = path.split(".")
            for role in roles:
                holder = owner._modules.get(role)
                if holder is None:
                    holder = _Parameters(role)
                    setattr(owner, role, holder)
                owner = holder
            flag = True if requires_grad is None else requires_grad.get(name, True)
            param = nn.Parameter(b.tensors[name], requires_grad=flag)
            setattr(owner, attr, param)
            self._slots[name] = (owner, attr)
            _OWNERS[param] = (weakref.ref(self), name)
        #: ((holder, attribute), address) of every table: the decode path's check that the
        #: parameters are still the library's memory.
        self._own = tuple((self._slots[n], b.addresses[n]) for n in b.names if n in self._slots)

    # -- the tables ---------------------------------------------------------------------

    def _named_tables(self) -> Dict[str, Optional[Tensor]]:
        """Every tensor the layer computes from, by library name: this module's parameters,
        and the library's own tensors for what it does not expose (None: no such tensor)."""
        b = self._binding
        tables: Dict[str, Optional[Tensor]] = {}
        for name in NAMES:
            slot = self._slots.get(name)
            if slot is not None:
                tables[name] = slot[0]._parameters.get(slot[1])
            else:
                tables[name] = b.tensors.get(name)
        return tables

    def _tables(self) -> Tuple[Tensor, Optional[Tensor], Tensor, Tensor]:
        t = self._named_tables()
        return t[NAMES[0]], t[NAMES[1]], t[NAMES[2]], t[NAMES[3]]

    def library_parameters(self) -> Iterator[Tuple[str, nn.Parameter]]:
        """``(library name, parameter)`` for every parameter this module exposes."""
        for name, (owner, attr) in self._slots.items():
            yield name, owner._parameters[attr]

    @property
    def layer(self) -> _Layer:
        """The numpy-API layer behind this module (same memory): its checkpoint, copy and
        query methods (``save_safetensors``, ``memory_bytes``, ...) see this module's values."""
        return self._binding.layer

    @property
    def config(self) -> GPTEmbeddingConfig:
        """A copy of the layer's configuration, as the library holds it."""
        return self._binding.layer.config

    # -- running the layer ----------------------------------------------------------------

    def _run(self, ids: Tensor, positions: Optional[Tensor], start: int, use_layer_norm: Optional[bool]) -> Tensor:
        """The layer on 2-D ids: through the custom operator when autograd (or compile)
        needs it, straight into the library otherwise."""
        b = self._binding
        norm = b.layer_norm_default if use_layer_norm is None else bool(use_layer_norm)
        flags = _lib.LAYER_NORM if norm else _lib.NO_LAYER_NORM
        dropout = self.training and b.dropout > 0
        if dropout:
            flags |= _lib.TRAINING
        if positions is not None and positions.dtype != ids.dtype:
            ids, positions = ids.to(torch.int64), positions.to(torch.int64)
        start = int(start)
        tables = self._named_tables()
        wte, wpe, gamma, beta = (tables[n] for n in NAMES)
        compiling = torch.compiler.is_compiling()
        if not compiling and not (torch.is_grad_enabled() and (wte.requires_grad or gamma.requires_grad
                                                                 or beta.requires_grad
                                                                 or (wpe is not None and wpe.requires_grad))):
            # No graph to record: one C call (a custom operator's dispatch alone costs
            # ~100 us, longer than a decode step).
            if _forward_ad._current_level >= 0 and any(
                    t is not None and _forward_ad.unpack_dual(t).tangent is not None for t in (wte, wpe, gamma, beta)):
                # (With requires_grad the operator refuses it itself; here the tangent would be dropped.)
                raise NotImplementedError("gpt_embedding.nn: forward-mode AD (torch.autograd.forward_ad dual "
                                          "tensors) is not supported: the library's forward has no jvp")
            own = b.is_own((wte, wpe, gamma, beta))
            if dropout or not own:
                out, _, _ = b.forward((wte, wpe, gamma, beta), ids, positions, start, flags,
                                      _draw() if dropout else None, keep_stats=False)
                return out
            return b.forward_eval(ids, positions, start, flags)
        if compiling and self.sparse:
            raise RuntimeError("gpt_embedding.nn: sparse=True gradients cannot be compiled (torch.compile does not "
                               "support sparse gradients); use sparse=False under torch.compile")
        out, _, _ = _ops.forward(b.key, ids, positions, start, wte, wpe, gamma, beta, flags,
                                 _draw() if dropout else None, _ops.OPTION_SPARSE if self.sparse else 0)
        return out

    # -- guards: the parameters must stay the library's memory ------------------------------

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - nn.Module's signature
        """``.to()``, ``.half()``, ``.double()``, ``.cuda()``, ``share_memory()``... all come
        here. Each is tried on a probe first: other devices, float64 and shared memory are
        refused (the library's memory cannot follow them); a change of the tables' dtype to
        float32, bfloat16 or float16 converts them through the library (a new layer, the
        values rounded to nearest even when narrowing). The layer norm vectors stay float32."""
        target = None
        for name, p in self._named_tables().items():
            if p is None:
                continue
            try:
                probe = fn(torch.zeros((1,), dtype=p.dtype))
            except Exception as e:  # noqa: BLE001 - e.g. "Torch not compiled with CUDA enabled"
                raise RuntimeError(f"gpt_embedding.nn: cannot apply this conversion to {name}: {e}. "
                                   + _CPU_ONLY.format(device="cuda")) from e
            if probe.device.type != "cpu":
                raise RuntimeError(f"gpt_embedding.nn: cannot move {name} to {probe.device}. "
                                   + _CPU_ONLY.format(device=str(probe.device)))
            if probe.is_shared():
                raise RuntimeError("gpt_embedding.nn: share_memory() would move the tables out of the library's "
                                   "memory; use one module per process (torch.multiprocessing workers can open the "
                                   "same checkpoint with from_pretrained(..., mmap=True), which shares its pages)")
            if probe.dtype != p.dtype:
                if probe.dtype not in DTYPE_CODES:
                    raise TypeError(f"gpt_embedding.nn: the tables can be float32, bfloat16 or float16, not "
                                    f"{probe.dtype} (arithmetic is float32 in the library whatever they are)")
                if name.startswith("layer_norm"):
                    continue  # float32 always
                target = probe.dtype
        if target is not None and target != self._binding.table_dtype:
            self._convert(target)
        return self

    def to(self, *args: Any, **kwargs: Any):
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None and torch.device(device).type != "cpu":
            raise RuntimeError(_CPU_ONLY.format(device=str(device)))
        return super().to(*args, **kwargs)

    def cuda(self, device: Any = None):
        raise RuntimeError(_CPU_ONLY.format(device="cuda" if device is None else f"cuda:{device}"))

    def xpu(self, device: Any = None):
        raise RuntimeError(_CPU_ONLY.format(device="xpu"))

    def ipu(self, device: Any = None):
        raise RuntimeError(_CPU_ONLY.format(device="ipu"))

    def share_memory(self):
        raise RuntimeError("gpt_embedding.nn: share_memory() would move the tables out of the library's memory; use "
                           "one module per process (workers can open the same checkpoint with "
                           "from_pretrained(..., mmap=True), which shares its pages)")

    def _convert(self, dtype: torch.dtype) -> None:
        """Rebuilds the layer with tables of ``dtype`` (values converted by the library)."""
        old = self._binding
        config = old.layer.config.replace(weight_dtype=_DTYPE_NAMES[dtype])
        layer = _Layer(config=config)
        # The values the module computes from (its parameters, which may have been replaced),
        # widened exactly to float32; the library rounds them to the new dtype.
        layer.load_state_dict({n: t.detach().float().numpy() for n, t in self._named_tables().items() if t is not None})
        layer.train(old.layer.training)
        params = dict(self.library_parameters())
        flags = {n: p.requires_grad for n, p in params.items()}
        grads = {n: p.grad for n, p in params.items() if p.grad is not None}
        self._bind(layer, flags)
        # Gradients follow their parameters' dtype, as nn.Module's conversions do.
        for n, p in self.library_parameters():
            if n in grads:
                p.grad = grads[n].to(p.dtype)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``, copying values into the library's tables (in
        place). ``assign=True`` is refused: it would replace the parameters with tensors the
        library does not read."""
        if assign:
            raise RuntimeError("gpt_embedding.nn: load_state_dict(assign=True) would replace the library's tables "
                               "with other tensors; load without assign (values are copied in place)")
        return super().load_state_dict(state_dict, strict=strict)

    # -- copies and pickles: a new layer with copied tables ----------------------------------

    def __getstate__(self) -> Dict[str, Any]:
        b = self._binding
        tables = {n: t.detach().clone() for n, t in self._named_tables().items() if t is not None}
        params = dict(self.library_parameters())
        return {
            "config": b.layer.config.to_dict(),
            "tables": tables,
            "requires_grad": {n: p.requires_grad for n, p in params.items()},
            "grads": {n: p.grad.clone() for n, p in params.items() if p.grad is not None},
            "attributes": {k: getattr(self, k) for k in self._COPIED},
        }

    def __setstate__(self, state: Dict[str, Any]) -> None:
        nn.Module.__init__(self)
        layer = _Layer(config=GPTEmbeddingConfig(**state["config"]))
        self._bind(layer, state["requires_grad"])
        with torch.no_grad():
            for name, value in state["tables"].items():
                self._named_tables()[name].copy_(value)
        for name, grad in state["grads"].items():
            self._named_tables()[name].grad = grad
        for key, value in state["attributes"].items():
            setattr(self, key, value)

    def __deepcopy__(self, memo: Dict[int, Any]):
        new = type(self).__new__(type(self))
        new.__setstate__(self.__getstate__())
        memo[id(self)] = new
        return new


def _draw() -> Tensor:
    """The dropout mask's (seed, offset), drawn from torch's default generator: torch.manual_seed
    reproduces a run, and activation checkpointing, which restores the generator's state,
    recomputes the same mask."""
    return torch.randint(0, _RNG_HIGH, (2,), dtype=torch.int64)


class GPTEmbedding(LibraryModule):
    """Token embedding + position embedding, added; optional LayerNorm; dropout -- the
    seed's ``GPTEmbedding`` as a ``torch.nn.Module`` whose every number comes from
    libgpt_embedding.

    ``GPTEmbedding(vocab_size=50257, embed_dim=768, max_seq_len=1024, dropout=0.1,
    use_sinusoidal=False, *, sparse=False, **options)`` takes the seed's arguments and every
    keyword of the numpy API (``seed``, ``position_encoding``, ``scale_embeddings``,
    ``layer_norm_eps``, ``init_std``, ``padding_idx``, ``num_threads``, ``weight_dtype``,
    ``token_scale``, ``layer_norm``, ``position_offset``); ``config=`` takes a
    :class:`~gpt_embedding.GPTEmbeddingConfig` instead. ``sparse=True`` gives the token
    table a sparse COO gradient, as ``nn.Embedding(sparse=True)`` does (for
    ``torch.optim.SparseAdam`` / ``SGD``). ``max_norm`` and ``scale_grad_by_freq`` are
    refused (``NotImplementedError``).

    Parameters (the library's memory, zero copy): ``token_embedding.weight`` [vocab, D],
    ``position_embedding.weight`` [max_seq_len, D] (learned positions only),
    ``layer_norm.weight`` and ``layer_norm.bias`` [D] (float32). Tables are float32,
    bfloat16 or float16 (``weight_dtype``), and the output has their dtype.

    ``forward(input_ids, use_layer_norm=None, start_position=0, position_ids=None)``:
    ids [batch, seq] (or [seq], giving [1, seq, D]) as int32/int64 CPU tensors, numpy arrays
    or lists; returns [batch, seq, D]. ``use_layer_norm=None`` follows the configuration
    (off unless ``layer_norm=True``, e.g. BLOOM). Dropout applies in training mode
    (``train()`` / ``eval()``), its mask drawn from torch's generator.
    """

    def __init__(self, vocab_size: int = 50257, embed_dim: int = 768, max_seq_len: int = 1024,
                 dropout: float = 0.1, use_sinusoidal: bool = False, *, sparse: bool = False,
                 max_norm: Optional[float] = None, scale_grad_by_freq: bool = False,
                 config: Optional[GPTEmbeddingConfig] = None, _layer: Optional[_Layer] = None,
                 **options: Any) -> None:
        super().__init__()
        _refuse(max_norm, scale_grad_by_freq)
        if _layer is None:
            _layer = _Layer(vocab_size, embed_dim, max_seq_len, dropout, use_sinusoidal, config=config, **options)
        self.sparse = bool(sparse)
        self._bind(_layer)
        self.train(_layer.training)

    @classmethod
    def from_pretrained(cls, path: Union[str, "os.PathLike[str]"], dtype: Any = None, mmap: bool = False, *,
                        sparse: bool = False, **overrides: Any) -> "GPTEmbedding":
        """Opens a checkpoint (safetensors file or folder, Hugging Face families, sharded
        index) exactly as :meth:`gpt_embedding.GPTEmbedding.from_pretrained` does, with the
        same ``dtype``, ``mmap`` and overrides; returned in eval mode. With ``mmap=True``
        the parameters are the private mapping of the file: pages stay shared with the page
        cache until written (training or ``load_state_dict`` makes private copies of the
        pages it writes; the file never changes)."""
        layer = _Layer.from_pretrained(path, dtype=dtype, mmap=mmap, **overrides)
        return cls(sparse=sparse, _layer=layer).eval()

    @classmethod
    def from_preset(cls, name: str, *, sparse: bool = False, **overrides: Any) -> "GPTEmbedding":
        """Hugging Face GPT-2's embedding: ``"gpt2"``, ``"gpt2-medium"``, ``"gpt2-large"``,
        ``"gpt2-xl"``, with keyword overrides (``seed=``, ...)."""
        return cls(sparse=sparse, _layer=_Layer.from_preset(name, **overrides))

    @property
    def vocab_size(self) -> int:
        return self._binding.config.vocab_size

    @property
    def embed_dim(self) -> int:
        return self._binding.embed_dim

    @property
    def max_seq_len(self) -> int:
        return self._binding.config.max_seq_len

    @property
    def dropout(self) -> float:
        return self._binding.dropout

    @property
    def use_sinusoidal(self) -> bool:
        return self._binding.config.position_encoding == "sinusoidal"

    @property
    def padding_idx(self) -> Optional[int]:
        return self._binding.config.padding_idx

    def forward(self, input_ids: Any, use_layer_norm: Optional[bool] = None, start_position: int = 0,
                position_ids: Any = None) -> Tensor:
        # The decode path (no graph to record, no dropout, a contiguous 2-D id tensor, the
        # library's own tables): one C call, every check it needs inlined here, because a
        # decode step costs the library well under a microsecond.
        if (type(input_ids) is Tensor and position_ids is None and not torch.is_grad_enabled()
                and not torch.compiler.is_compiling() and _forward_ad._current_level < 0):
            b = self._binding
            if (not (self.training and b.dropout > 0) and input_ids.dim() == 2 and input_ids.is_cpu
                    and input_ids.is_contiguous()):
                fn = b.plain_forward.get(input_ids.dtype)
                for (holder, attr), address in self._own:
                    p = holder._parameters.get(attr)
                    if p is None or p.data_ptr() != address:
                        fn = None
                if fn is not None:
                    norm = b.layer_norm_default if use_layer_norm is None else use_layer_norm
                    batch, seq = input_ids.shape
                    out = torch.empty((batch, seq, b.embed_dim), dtype=b.table_dtype)
                    access = b.access
                    access.enter_read()
                    try:
                        status = fn(b.handle, input_ids.data_ptr() or None, batch, seq, None, int(start_position),
                                    _lib.LAYER_NORM if norm else _lib.NO_LAYER_NORM, b.dtype_code,
                                    out.data_ptr() or None, out.numel())
                    finally:
                        access.exit_read()
                    if status:
                        check(status)
                    return out
        ids = _ids_tensor(input_ids, "input_ids")
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
        elif ids.dim() != 2:
            raise ValueError(f"input_ids must have shape [batch, seq] (or [seq]), got {list(ids.shape)}")
        positions = None
        if position_ids is not None:
            positions = _ids_tensor(position_ids, "position_ids")
            if positions.dim() == 1:
                positions = positions.unsqueeze(0)
            if tuple(positions.shape) != tuple(ids.shape):
                raise ValueError(f"position_ids must have the shape of input_ids {list(ids.shape)}, got "
                                 f"{list(positions.shape)}")
        return self._run(ids, positions, start_position, use_layer_norm)

    def num_parameters(self) -> int:
        """The number of trainable parameters (the seed's count: V*D + T*D + 2D)."""
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        c = self._binding.config
        parts = [f"{c.vocab_size}, {c.embed_dim}", f"max_seq_len={c.max_seq_len}", f"dropout={c.dropout}",
                 f"position_encoding={c.position_encoding!r}"]
        if c.weight_dtype != "float32":
            parts.append(f"weight_dtype={c.weight_dtype!r}")
        if c.padding_idx is not None:
            parts.append(f"padding_idx={c.padding_idx}")
        if self.sparse:
            parts.append("sparse=True")
        return ", ".join(parts)


def _refuse(max_norm: Any, scale_grad_by_freq: Any) -> None:
    if max_norm is not None:
        raise NotImplementedError("gpt_embedding.nn: max_norm is not supported (nn.Embedding renormalises the looked-up "
                                  "rows in place during forward, which would write the tables on every call); "
                                  "renormalise the table yourself under torch.no_grad() if you need it")
    if scale_grad_by_freq:
        raise NotImplementedError("gpt_embedding.nn: scale_grad_by_freq is not supported")
