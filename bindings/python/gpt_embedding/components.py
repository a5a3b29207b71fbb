"""The seed's components on their own: TokenEmbedding, PositionalEmbedding (learned) and
SinusoidalPositionalEmbedding. Each is the library's layer configured for that one job."""
from __future__ import annotations

import ctypes
from typing import Any, Dict, Optional, TypeVar, Union

import numpy as np

from . import _lib
from ._arrays import fptr, ids_array, int64_arg
from .config import GPTEmbeddingConfig
from .layer import GPTEmbedding

ArrayLike = Any  # numpy arrays or nested lists
SeqOrIds = Union[int, ArrayLike]
_T = TypeVar("_T", bound="_OneTable")


def _seq_len(x: SeqOrIds) -> int:
    """A sequence length, or the seq dimension of an ids array [batch, seq] / [seq]."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        return int64_arg(x, "seq_len")
    return ids_array(x, "input_ids").shape[-1]


class _OneTable:
    """What TokenEmbedding and PositionalEmbedding share: one table ``weight`` held by a
    library layer (no positions, no scaling for positions, dropout 0), in training mode
    after construction so that :meth:`backward` works after every forward."""

    _layer: GPTEmbedding

    def train(self: _T, mode: bool = True) -> _T:
        """Training mode (the default): forwards keep what backward needs."""
        self._layer.train(mode)
        return self

    def eval(self: _T) -> _T:
        """Eval mode: forwards only read the table (no backward)."""
        return self.train(False)

    @property
    def training(self) -> bool:
        return self._layer.training

    def zero_grad(self) -> None:
        """Sets the table's gradient to zero."""
        self._layer.zero_grad()

    @property
    def weight(self) -> np.ndarray:
        """A writeable **view** of the table (writes change it; keeps the layer alive)."""
        return self._layer.parameter("token_embedding.weight")

    @property
    def grad(self) -> np.ndarray:
        """A **copy** of the table's gradient."""
        return self._layer.grads()["token_embedding.weight"]

    def state_dict(self) -> Dict[str, np.ndarray]:
        """``{"weight": copy of the table}`` (the key of ``nn.Embedding``)."""
        return {"weight": self._layer.state_dict()["token_embedding.weight"]}

    def load_state_dict(self, state: Dict[str, ArrayLike]) -> None:
        """Copies ``state["weight"]`` into the table."""
        if set(state) != {"weight"}:
            raise KeyError(f"load_state_dict: expected the key 'weight', got {sorted(state)}")
        self._layer.load_state_dict({"token_embedding.weight": state["weight"]}, strict=False)

    def num_parameters(self) -> int:
        """Rows times ``embed_dim``."""
        return self._layer.config.num_parameters()["token_embedding"]

    def close(self) -> None:
        """Frees the table now (see :meth:`GPTEmbedding.close`)."""
        self._layer.close()


class TokenEmbedding(_OneTable):
    """``s * weight[input_ids]`` with ``s = sqrt(embed_dim)`` when ``scale_embeddings`` (the
    seed's TokenEmbedding) and 1 otherwise. ``weight`` is [vocab_size, embed_dim]."""

    def __init__(self, vocab_size: int = 50257, embed_dim: int = 768, *, scale_embeddings: bool = True,
                 padding_idx: Optional[int] = None, init_std: float = 0.02, seed: int = 0, num_threads: int = 0) -> None:
        config = GPTEmbeddingConfig(vocab_size, embed_dim, 0, 0.0, position_encoding="none",
                                    scale_embeddings=scale_embeddings, padding_idx=padding_idx,
                                    init_std=init_std, seed=seed, num_threads=num_threads)
        self._layer = GPTEmbedding(config=config)

    def __call__(self, input_ids: ArrayLike) -> np.ndarray:
        return self.forward(input_ids)

    def forward(self, input_ids: ArrayLike) -> np.ndarray:
        """[batch, seq] ids -> [batch, seq, embed_dim] (a 1-D [seq] gives [1, seq, embed_dim]);
        int32/int64/list ids as for :meth:`GPTEmbedding.forward`."""
        return self._layer.forward(input_ids)

    def backward(self, grad_output: ArrayLike) -> None:
        """Adds the gradient of the latest forward (grad_output [batch, seq, embed_dim],
        float32) into ``grad``; the padding row receives nothing."""
        self._layer.backward(grad_output)


class PositionalEmbedding(_OneTable):
    """Learned positions: row ``p`` of ``weight`` [max_seq_len, embed_dim] for position ``p``.

    ``forward(x, start_position=0)`` takes a sequence length or an ids array [batch, seq]
    and returns the rows of positions ``start_position .. start_position + seq - 1`` as
    [seq, embed_dim] (it broadcasts over the batch)."""

    def __init__(self, max_seq_len: int = 1024, embed_dim: int = 768, *, init_std: float = 0.02,
                 seed: int = 0, num_threads: int = 0) -> None:
        config = GPTEmbeddingConfig(max_seq_len, embed_dim, 0, 0.0, position_encoding="none",
                                    scale_embeddings=False, init_std=init_std, seed=seed, num_threads=num_threads)
        self.max_seq_len = int(max_seq_len)
        self._layer = GPTEmbedding(config=config)
        self._rows = None

    def __call__(self, x: SeqOrIds, start_position: int = 0) -> np.ndarray:
        return self.forward(x, start_position)

    def forward(self, x: SeqOrIds, start_position: int = 0) -> np.ndarray:
        """The rows of positions ``start_position .. start_position + seq - 1`` as
        [seq, embed_dim], where ``x`` is ``seq`` itself or an ids array [batch, seq] (only
        its length is used, as the seed does; add the result to [batch, seq, embed_dim]
        token embeddings by broadcasting). Positions past ``max_seq_len`` raise
        ``IndexError``."""
        seq = _seq_len(x)
        start_position = int64_arg(start_position, "start_position")
        if seq <= 0 or start_position < 0 or start_position + seq > self.max_seq_len:
            raise IndexError(f"positions {start_position} ..< {start_position + seq} are out of range "
                             f"[0, {self.max_seq_len}) (max_seq_len, learned positions)")
        self._rows = np.arange(start_position, start_position + seq, dtype=np.int64)
        return self._layer.forward(self._rows)[0]

    def lookup(self, position_ids: ArrayLike) -> np.ndarray:
        """Rows for an explicit positions array [batch, seq] -> [batch, seq, embed_dim]
        (left-padded batches); :meth:`backward` then takes [batch, seq, embed_dim]."""
        return self._layer.forward(position_ids)

    def backward(self, grad_output: ArrayLike) -> None:
        """Adds ``grad_output`` into ``grad``: [seq, embed_dim] after :meth:`forward` (sum
        the batch's gradient first), [batch, seq, embed_dim] after :meth:`lookup`."""
        g = np.asarray(grad_output, dtype=np.float32)
        if g.ndim == 2:
            g = g.reshape(1, *g.shape)
        self._layer.backward(np.ascontiguousarray(g))


class SinusoidalPositionalEmbedding:
    """The fixed table of Vaswani et al.: channel ``c`` is ``sin(pos * 10000^(-c/D))`` for
    even ``c`` and ``cos(pos * 10000^(-(c-1)/D))`` for odd ``c`` (odd ``D``: the last channel
    is a sin channel). No parameters; positions may exceed ``max_seq_len``."""

    def __init__(self, max_seq_len: int = 1024, embed_dim: int = 768) -> None:
        self.max_seq_len = int64_arg(max_seq_len, "max_seq_len")
        self.embed_dim = int64_arg(embed_dim, "embed_dim")
        if self.embed_dim <= 0:
            raise ValueError(f"embed_dim = {self.embed_dim} must be > 0")

    def __call__(self, x: SeqOrIds, start_position: int = 0) -> np.ndarray:
        return self.forward(x, start_position)

    def forward(self, x: SeqOrIds, start_position: int = 0) -> np.ndarray:
        """Rows ``start_position .. start_position + seq - 1`` of the table as
        [seq, embed_dim] (``gpt_embedding_sinusoidal_table``), where ``x`` is ``seq`` or an
        ids array [batch, seq] (only its length is used). Positions may exceed
        ``max_seq_len`` (up to 2**31 - 1); the table is computed, not cached, so there is
        nothing to train and no backward."""
        seq = _seq_len(x)
        start_position = int64_arg(start_position, "start_position")
        if seq <= 0:
            raise ValueError(f"seq_len = {seq} must be > 0")
        out = np.empty((seq, self.embed_dim), dtype=np.float32)
        _lib.call(_lib.lib.gpt_embedding_sinusoidal_table, start_position, seq, self.embed_dim,
                  fptr(out) if out.size else ctypes.cast(None, _lib.c_float_p), out.size)
        return out

    def num_parameters(self) -> int:
        return 0
