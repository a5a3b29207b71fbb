"""``gpt_embedding.nn``: the library's layer inside PyTorch models.

    >>> import torch
    >>> from gpt_embedding.nn import GPTEmbedding
    >>> emb = GPTEmbedding(vocab_size=1000, embed_dim=64, max_seq_len=128)
    >>> emb(torch.randint(0, 1000, (2, 10))).shape
    torch.Size([2, 10, 64])

``GPTEmbedding`` is a ``torch.nn.Module`` whose parameters are the library's own tables
(zero copy), whose forward and backward run in the library through registered custom
operators (autograd, ``torch.compile(fullgraph=True)``, ``torch.library.opcheck``), and
whose dropout masks come from torch's generator. ``TokenEmbedding``,
``PositionalEmbedding`` and ``SinusoidalPositionalEmbedding`` are the seed's components;
``AdamW`` is the library's fused step as a ``torch.optim.Optimizer``.

Importing this module imports torch (an extra: ``pip install "gpt-embedding[torch]"``); the
numpy API (``import gpt_embedding``) never does.
"""
try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("gpt_embedding.nn needs PyTorch: pip install \"gpt-embedding[torch]\" "
                      "(or torch itself; on CPU-only machines the +cpu build)") from e

from .components import PositionalEmbedding, SinusoidalPositionalEmbedding, TokenEmbedding
from .module import GPTEmbedding
from .optim import AdamW

__all__ = ["GPTEmbedding", "TokenEmbedding", "PositionalEmbedding", "SinusoidalPositionalEmbedding", "AdamW"]
