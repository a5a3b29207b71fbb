"""The seed's components as ``torch.nn.Module``s: ``TokenEmbedding`` (an ``nn.Embedding``
drop-in with the seed's ``sqrt(D)`` scale), ``PositionalEmbedding`` (learned) and
``SinusoidalPositionalEmbedding`` (fixed). Each is a library layer configured for that one
job; their parameter is ``weight``, as in ``nn.Embedding``."""
from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from .. import components as _np_components
from ..config import GPTEmbeddingConfig
from ..layer import GPTEmbedding as _Layer
from .module import _CPU_ONLY, _DTYPE_NAMES, LibraryModule, _ids_tensor, _refuse

__all__ = ["TokenEmbedding", "PositionalEmbedding", "SinusoidalPositionalEmbedding"]


class TokenEmbedding(LibraryModule):
    """``s * weight[input_ids]``, ``s = sqrt(embed_dim)`` when ``scale_embeddings`` (the
    seed's TokenEmbedding, default) and 1 otherwise (then exactly ``nn.Embedding``).

    ``TokenEmbedding(vocab_size=50257, embed_dim=768, padding_idx=None, max_norm=None,
    norm_type=2.0, scale_grad_by_freq=False, sparse=False, *, scale_embeddings=True,
    init_std=0.02, seed=0, num_threads=0, weight_dtype="float32")``: ``nn.Embedding``'s
    arguments (``padding_idx`` may be negative, counted from the end; ``max_norm`` and
    ``scale_grad_by_freq`` are refused; ``num_embeddings`` / ``embedding_dim`` are accepted as
    keywords, ``device`` must be the CPU, ``dtype`` sets ``weight_dtype``) and the
    library's. ``forward(input_ids)`` takes int32/int64 ids of any shape ``(*)`` and returns ``(*, embed_dim)``."""

    _PATHS = {"token_embedding.weight": "weight"}

    def __init__(self, vocab_size: int = 50257, embed_dim: int = 768, padding_idx: Optional[int] = None,
                 max_norm: Optional[float] = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, *, scale_embeddings: bool = True, init_std: float = 0.02, seed: int = 0,
                 num_threads: int = 0, weight_dtype: Any = "float32", num_embeddings: Optional[int] = None,
                 embedding_dim: Optional[int] = None, device: Any = None, dtype: Optional[torch.dtype] = None,
                 _layer: Optional[_Layer] = None) -> None:
        super().__init__()
        # nn.Embedding's keywords: num_embeddings / embedding_dim (aliases of the seed's
        # names), device (the CPU only) and dtype (the tables' dtype, as weight_dtype).
        if num_embeddings is not None:
            vocab_size = num_embeddings
        if embedding_dim is not None:
            embed_dim = embedding_dim
        if device is not None and torch.device(device).type != "cpu":
            raise RuntimeError(_CPU_ONLY.format(device=str(torch.device(device))))
        if dtype is not None:
            if dtype not in _DTYPE_NAMES:
                raise TypeError(f"gpt_embedding.nn: the tables can be float32, bfloat16 or float16, not {dtype}")
            weight_dtype = _DTYPE_NAMES[dtype]
        _refuse(max_norm, scale_grad_by_freq)
        if padding_idx is not None:
            if not -vocab_size <= padding_idx < vocab_size:
                raise ValueError(f"padding_idx = {padding_idx} must be within [-{vocab_size}, {vocab_size})")
            padding_idx = padding_idx % vocab_size
        if _layer is None:
            config = GPTEmbeddingConfig(vocab_size, embed_dim, 0, 0.0, position_encoding="none",
                                        scale_embeddings=scale_embeddings, padding_idx=padding_idx,
                                        init_std=init_std, seed=seed, num_threads=num_threads,
                                        weight_dtype=weight_dtype)
            _layer = _Layer(config=config)
        self.sparse = bool(sparse)
        self._bind(_layer)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: Optional[int] = None,
                        max_norm: Optional[float] = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False, *, scale_embeddings: bool = False) -> "TokenEmbedding":
        """``nn.Embedding.from_pretrained``: a table from a 2-D tensor (float32, bfloat16 or
        float16, kept), ``freeze=True`` (default) makes it not require grad. Unlike
        ``nn.Embedding`` the values are **copied** into the library's memory (the library
        owns its tables), and ``scale_embeddings`` defaults to False (a plain lookup)."""
        if not isinstance(embeddings, Tensor) or embeddings.dim() != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional")
        vocab, dim = embeddings.shape
        dtype = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(embeddings.dtype)
        if dtype is None:
            raise TypeError(f"embeddings must be float32, bfloat16 or float16, got {embeddings.dtype}")
        module = cls(vocab, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                     scale_embeddings=scale_embeddings, init_std=0.0, weight_dtype=dtype)
        with torch.no_grad():
            module.weight.copy_(embeddings.detach().cpu())
        module.weight.requires_grad_(not freeze)
        return module

    @property
    def num_embeddings(self) -> int:
        return self._binding.config.vocab_size

    @property
    def embedding_dim(self) -> int:
        return self._binding.embed_dim

    @property
    def padding_idx(self) -> Optional[int]:
        return self._binding.config.padding_idx

    def forward(self, input_ids: Any) -> Tensor:
        ids = _ids_tensor(input_ids, "input_ids")
        shape = tuple(ids.shape)
        out = self._run(ids.reshape(1, -1), None, 0, False)
        return out.reshape(shape + (self._binding.embed_dim,))

    def extra_repr(self) -> str:
        c = self._binding.config
        s = f"{c.vocab_size}, {c.embed_dim}"
        if c.padding_idx is not None:
            s += f", padding_idx={c.padding_idx}"
        if self.sparse:
            s += ", sparse=True"
        if not c.scale_embeddings:
            s += ", scale_embeddings=False"
        return s


class PositionalEmbedding(LibraryModule):
    """Learned positions: row ``p`` of ``weight`` [max_seq_len, embed_dim] for position
    ``p``. ``forward(x, start_position=0)`` takes a sequence length or ids [batch, seq] (only
    the length is used, as the seed does) and returns the rows of positions
    ``start_position .. start_position + seq - 1`` as [seq, embed_dim] (add it to token
    embeddings by broadcasting). Positions past ``max_seq_len`` raise ``IndexError``."""

    _PATHS = {"token_embedding.weight": "weight"}

    def __init__(self, max_seq_len: int = 1024, embed_dim: int = 768, *, init_std: float = 0.02, seed: int = 0,
                 num_threads: int = 0, weight_dtype: Any = "float32") -> None:
        super().__init__()
        config = GPTEmbeddingConfig(max_seq_len, embed_dim, 0, 0.0, position_encoding="none", scale_embeddings=False,
                                    init_std=init_std, seed=seed, num_threads=num_threads, weight_dtype=weight_dtype)
        self.sparse = False
        self._bind(_Layer(config=config))

    @property
    def max_seq_len(self) -> int:
        return self._binding.config.vocab_size

    def forward(self, x: Union[int, Tensor, Any], start_position: int = 0) -> Tensor:
        seq = _length(x)
        start = int(start_position)
        if seq < 0 or start < 0 or start + seq > self.max_seq_len:
            raise IndexError(f"positions {start} ..< {start + seq} are out of range [0, {self.max_seq_len}) "
                             "(max_seq_len, learned positions)")
        rows = torch.arange(start, start + seq, dtype=torch.int64).unsqueeze(0)
        return self._run(rows, None, 0, False)[0]


class SinusoidalPositionalEmbedding(nn.Module):
    """The fixed table of Vaswani et al. (``gpt_embedding_sinusoidal_table``): no
    parameters; ``forward(x, start_position=0)`` returns float32 [seq, embed_dim] for a
    sequence length or ids [batch, seq]; positions may exceed ``max_seq_len``."""

    def __init__(self, max_seq_len: int = 1024, embed_dim: int = 768) -> None:
        super().__init__()
        self._table = _np_components.SinusoidalPositionalEmbedding(max_seq_len, embed_dim)
        self.max_seq_len = self._table.max_seq_len
        self.embed_dim = self._table.embed_dim

    def forward(self, x: Union[int, Tensor, Any], start_position: int = 0) -> Tensor:
        seq = _length(x)
        if seq == 0:
            return torch.empty((0, self.embed_dim), dtype=torch.float32)
        return torch.from_numpy(self._table.forward(seq, int(start_position)))

    def extra_repr(self) -> str:
        return f"{self.max_seq_len}, {self.embed_dim}"


def _length(x: Any) -> int:
    if isinstance(x, Tensor):
        if x.dim() == 0 and not x.is_floating_point():
            return int(x)
        return int(x.shape[-1])
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    return int(np.shape(x)[-1])
