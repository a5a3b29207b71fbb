"""gpt_embedding: the input layer of a GPT model (token + position embedding, optional
layer norm, dropout), forward and backward, from libgpt_embedding through ctypes; numpy in
and out.

    >>> from gpt_embedding import GPTEmbedding
    >>> layer = GPTEmbedding(vocab_size=1000, embed_dim=64, max_seq_len=128)
    >>> layer([[1, 2, 3]]).shape
    (1, 3, 64)

Tables may be float32, bfloat16 or float16 (``weight_dtype=``), outputs too (``out_dtype=``);
``GPTEmbedding.from_pretrained`` opens a safetensors checkpoint at its own precision.
``AdamW`` is the library's fused training step with ``torch.optim.AdamW``'s API.
bfloat16 arrays are ``ml_dtypes.bfloat16``, imported on first use.

The package has no maths of its own: every number comes from the library. Calls release
the GIL (ctypes), so layers run in parallel from Python threads. The library is found as
described in :mod:`gpt_embedding._lib` (``$GPT_EMBEDDING_LIB`` overrides the search).
"""
from . import _lib
from ._version import __version__
from .components import PositionalEmbedding, SinusoidalPositionalEmbedding, TokenEmbedding
from .config import GPTEmbeddingConfig
from .errors import error_for
from .errors import (GPTEmbeddingError, GPTEmbeddingIndexError, GPTEmbeddingIOError, GPTEmbeddingMemoryError,
                     GPTEmbeddingStateError, GPTEmbeddingValueError)
from .layer import GPTEmbedding, shard_range
from .optim import AdamW

#: The path of the loaded libgpt_embedding.
library_path: str = _lib.library_path
#: The loaded library's version, e.g. "0.5.0" (``gpt_embedding_version_string()``).
library_version: str = _lib.lib.gpt_embedding_version_string().decode()
#: The kernel paths this CPU can run, best first, e.g. ``("x86-64-v3", "baseline")``
#: (``gpt_embedding_isa_supported()``).
isa_supported: tuple = tuple(_lib.lib.gpt_embedding_isa_supported().decode().split(","))


def __getattr__(name: str):
    """``gpt_embedding.isa``: the kernel path every layer of this process runs,
    ``"x86-64-v3"`` or ``"baseline"`` (``gpt_embedding_isa()``), chosen once from
    ``$GPT_EMBEDDING_ISA`` or the CPU. Raises :class:`GPTEmbeddingError` when
    ``GPT_EMBEDDING_ISA`` names an unknown path or one this CPU cannot run (creating a
    layer raises the same)."""
    if name == "isa":
        value = _lib.lib.gpt_embedding_isa()
        if value is None:
            message = _lib.lib.gpt_embedding_last_error()
            raise error_for(13, message.decode("utf-8", "replace") if message else "GPT_EMBEDDING_ISA is invalid")
        return value.decode()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GPTEmbedding", "GPTEmbeddingConfig", "AdamW", "TokenEmbedding", "PositionalEmbedding", "SinusoidalPositionalEmbedding",
    "GPTEmbeddingError", "GPTEmbeddingValueError", "GPTEmbeddingIndexError", "GPTEmbeddingMemoryError",
    "GPTEmbeddingStateError", "GPTEmbeddingIOError", "library_path", "library_version", "isa_supported", "shard_range",
    "__version__",
]
