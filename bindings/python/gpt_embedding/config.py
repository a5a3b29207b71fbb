"""GPTEmbeddingConfig: the seed's configuration class, validated by the library."""
from __future__ import annotations

import copy
import ctypes
import operator
from typing import Any, Dict, Optional

import numpy as np

from . import _lib
from ._arrays import DTYPE_NAMES, dtype_code, dtype_name

_ENCODINGS = {"learned": _lib.POSITION_LEARNED, "sinusoidal": _lib.POSITION_SINUSOIDAL, "none": _lib.POSITION_NONE}
_NAMES = {v: k for k, v in _ENCODINGS.items()}
PRESETS = ("gpt2", "gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl")
_FIELDS = ("vocab_size", "embed_dim", "max_seq_len", "dropout", "position_encoding", "scale_embeddings",
           "layer_norm_eps", "init_std", "padding_idx", "seed", "num_threads", "weight_dtype", "token_scale",
           "layer_norm", "position_offset", "shard_start", "shard_end")
_INT_RANGES = {"vocab_size": 63, "embed_dim": 63, "max_seq_len": 63, "padding_idx": 63, "num_threads": 31,
               "position_offset": 63, "shard_start": 63, "shard_end": 63}


def _int(name: str, value: Any) -> int:
    """An integer field: ints and numpy integers only (a float such as 768.0 is a mistake,
    not a size), within the C field's range (ctypes would silently truncate)."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"invalid config: {name} = {value!r}: must be an integer") from None
    if name == "seed":
        if not 0 <= v < (1 << 64):
            raise ValueError(f"invalid config: seed = {v}: must be in [0, 2**64)")
    else:
        bits = _INT_RANGES[name]
        if not -(1 << bits) <= v < (1 << bits):
            raise ValueError(f"invalid config: {name} = {v}: out of the {bits + 1}-bit range of the C field")
    return v


def _float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"invalid config: {name} = {value!r}: must be a number") from None


def _token_scale(value: Any) -> Any:
    """``None`` for a derived token scale: 0 is the C spelling of it, ``None`` the Python
    one. Anything else is kept as given (``to_c`` checks it is a number)."""
    if value is None:
        return None
    try:
        return None if float(value) == 0 else value
    except (TypeError, ValueError):
        return value


def _from_float32(x: float) -> float:
    """The shortest decimal that reads back as the same float32, so that a config read
    from the library shows ``dropout=0.1``, not ``0.10000000149011612``."""
    return float(str(np.float32(x)))


class GPTEmbeddingConfig:
    """Configuration of a GPT embedding layer.

    The first five keywords are the seed's, with the seed's defaults (the library's
    ``gpt_embedding_config_init``); the others are the library's options:

    ``position_encoding``
        ``"learned"`` (default), ``"sinusoidal"`` or ``"none"``. When given it must agree
        with ``use_sinusoidal``; ``use_sinusoidal`` is then a read-only view of it.
    ``scale_embeddings``
        multiply token rows by ``sqrt(embed_dim)`` (the seed's TokenEmbedding; default);
        ``False`` is GPT-2 exactly.
    ``layer_norm_eps``, ``init_std``
        LayerNorm epsilon (1e-5) and the std of the N(0, std) initialisation (0.02).
    ``padding_idx``
        a token row that is initialised to zero and receives no gradient, or ``None``.
    ``seed``
        initialisation and dropout, in [0, 2**64).
    ``num_threads``
        worker threads of the layer; 0 = all cores.
    ``weight_dtype``
        the element type of the token table and the learned position table:
        ``"float32"`` (default), ``"bfloat16"`` or ``"float16"`` (numpy dtypes --
        ``np.float32``, ``ml_dtypes.bfloat16``, ``np.float16`` -- are accepted and stored
        as these names). Arithmetic is float32 whatever it is; values written to a
        16-bit table are rounded to nearest even by the library. The layer norm vectors
        stay float32.
    ``token_scale``
        an explicit multiplier of token rows (Gemma's ``sqrt(hidden_size)`` rounded to the
        table dtype, e.g. 6.9375 for 48 in bfloat16); ``None`` (default, or 0) derives it:
        ``sqrt(embed_dim)`` when ``scale_embeddings``, else 1.
    ``layer_norm``
        ``True``: forwards apply the layer norm unless told ``use_layer_norm=False``
        (BLOOM's input stage); ``False`` (default): only with ``use_layer_norm=True``.
    ``position_offset``
        position ``p`` reads row ``p + position_offset`` of the position table (OPT: 2, so
        the position -1 OPT gives padding tokens reads row 1); positions may be as low as
        ``-position_offset``. Default 0.
    ``shard_start``, ``shard_end``
        the layer holds rows ``[shard_start, shard_end)`` of a token table of
        ``vocab_size`` rows: one shard of a vocabulary-parallel table (Megatron-LM's
        ``VocabParallelEmbedding``; see :meth:`GPTEmbedding.forward_partial` and
        :func:`gpt_embedding.shard_range`). ``0, 0`` (default): the whole vocabulary. Ids
        stay global.

    The object is a plain mutable record: a layer copies it when it is created. Invalid
    values raise ``ValueError`` with the library's message naming the field and the value
    (``gpt_embedding_config_validate``), both here and when a layer is created.
    """

    vocab_size: int
    embed_dim: int
    max_seq_len: int
    dropout: float
    position_encoding: str
    scale_embeddings: bool
    layer_norm_eps: float
    init_std: float
    padding_idx: Optional[int]
    seed: int
    num_threads: int
    weight_dtype: str
    token_scale: Optional[float]
    layer_norm: bool
    position_offset: int
    shard_start: int
    shard_end: int

    def __init__(self, vocab_size: int = 50257, embed_dim: int = 768, max_seq_len: int = 1024,
                 dropout: float = 0.1, use_sinusoidal: bool = False, *,
                 position_encoding: Optional[str] = None, scale_embeddings: bool = True,
                 layer_norm_eps: float = 1e-5, init_std: float = 0.02, padding_idx: Optional[int] = None,
                 seed: int = 0, num_threads: int = 0, weight_dtype: Any = "float32",
                 token_scale: Optional[float] = None, layer_norm: bool = False, position_offset: int = 0,
                 shard_start: int = 0, shard_end: int = 0) -> None:
        if position_encoding is None:
            position_encoding = "sinusoidal" if use_sinusoidal else "learned"
        elif use_sinusoidal and position_encoding != "sinusoidal":
            raise ValueError(f"use_sinusoidal=True contradicts position_encoding={position_encoding!r}")
        if position_encoding not in _ENCODINGS:
            raise ValueError(f"invalid config: position_encoding = {position_encoding!r}: expected one of "
                             + ", ".join(repr(k) for k in _ENCODINGS))
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim
        self.max_seq_len = max_seq_len
        self.dropout = dropout
        self.position_encoding = position_encoding
        self.scale_embeddings = bool(scale_embeddings)
        self.layer_norm_eps = layer_norm_eps
        self.init_std = init_std
        self.padding_idx = padding_idx
        self.seed = seed
        self.num_threads = num_threads
        self.weight_dtype = dtype_name(weight_dtype, "invalid config: weight_dtype")
        self.token_scale = _token_scale(token_scale)
        self.layer_norm = bool(layer_norm)
        self.position_offset = position_offset
        self.shard_start = shard_start
        self.shard_end = shard_end
        self.validate()

    @property
    def use_sinusoidal(self) -> bool:
        """Whether positions come from the sinusoidal table (the seed's flag)."""
        return self.position_encoding == "sinusoidal"

    # -- presets -------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "GPTEmbeddingConfig":
        """A configuration that reproduces the Hugging Face GPT-2 embedding exactly
        (``gpt_embedding_preset``): ``"gpt2"`` (or ``"gpt2-small"``),
        ``"gpt2-medium"``, ``"gpt2-large"``, ``"gpt2-xl"`` -- learned positions, no scaling,
        dropout 0.1, vocabulary 50257, 1024 positions. Keyword overrides (e.g. ``seed=1``)
        are applied on top."""
        return cls._from_c(_lib.preset_config(name)).replace(**overrides)

    @classmethod
    def gpt2_small(cls, **overrides: Any) -> "GPTEmbeddingConfig":
        """GPT-2 small: D 768 (the ``"gpt2"`` preset)."""
        return cls.from_preset("gpt2", **overrides)

    @classmethod
    def gpt2_medium(cls, **overrides: Any) -> "GPTEmbeddingConfig":
        """GPT-2 medium: D 1024."""
        return cls.from_preset("gpt2-medium", **overrides)

    @classmethod
    def gpt2_large(cls, **overrides: Any) -> "GPTEmbeddingConfig":
        """GPT-2 large: D 1280."""
        return cls.from_preset("gpt2-large", **overrides)

    @classmethod
    def gpt2_xl(cls, **overrides: Any) -> "GPTEmbeddingConfig":
        """GPT-2 XL: D 1600."""
        return cls.from_preset("gpt2-xl", **overrides)

    def replace(self, **changes: Any) -> "GPTEmbeddingConfig":
        """A validated copy with some fields changed (``use_sinusoidal=`` is accepted and
        sets ``position_encoding``)."""
        fields = self.to_dict()
        if "use_sinusoidal" in changes:
            flag = changes.pop("use_sinusoidal")
            fields["position_encoding"] = "sinusoidal" if flag else (
                "learned" if fields["position_encoding"] == "sinusoidal" else fields["position_encoding"])
        for key in changes:
            if key not in fields:
                raise TypeError(f"unknown configuration field {key!r}; fields: {', '.join(_FIELDS)}")
        fields.update(changes)
        return type(self)(**fields)

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a dict (keyword arguments of the constructor)."""
        return {k: getattr(self, k) for k in _FIELDS}

    def copy(self) -> "GPTEmbeddingConfig":
        return copy.copy(self)

    # -- the library's view ----------------------------------------------------------

    def to_c(self) -> _lib.Config:
        """The C struct, starting from ``gpt_embedding_config_init`` (which sets
        ``struct_size``). Raises ``TypeError``/``ValueError`` for a value the C field cannot
        hold; the library checks everything else."""
        if self.position_encoding not in _ENCODINGS:
            raise ValueError(f"invalid config: position_encoding = {self.position_encoding!r}: expected one of "
                             + ", ".join(repr(k) for k in _ENCODINGS))
        if self.padding_idx is not None and _int("padding_idx", self.padding_idx) < 0:
            raise ValueError(f"invalid config: padding_idx = {self.padding_idx}: must be in "
                             f"[0, vocab_size) or None (no padding row)")
        c = _lib.default_config()
        c.vocab_size = _int("vocab_size", self.vocab_size)
        c.embed_dim = _int("embed_dim", self.embed_dim)
        c.max_seq_len = _int("max_seq_len", self.max_seq_len)
        c.dropout = _float("dropout", self.dropout)
        c.position_encoding = _ENCODINGS[self.position_encoding]
        c.scale_embeddings = 1 if self.scale_embeddings else 0
        c.layer_norm_eps = _float("layer_norm_eps", self.layer_norm_eps)
        c.init_std = _float("init_std", self.init_std)
        c.padding_idx = -1 if self.padding_idx is None else _int("padding_idx", self.padding_idx)
        c.seed = _int("seed", self.seed)
        c.num_threads = _int("num_threads", self.num_threads)
        c.weight_dtype = dtype_code(self.weight_dtype, "invalid config: weight_dtype")
        c.token_scale = 0.0 if self.token_scale is None else _float("token_scale", self.token_scale)
        c.layer_norm = 1 if self.layer_norm else 0
        c.position_offset = _int("position_offset", self.position_offset)
        c.shard_start = _int("shard_start", self.shard_start)
        c.shard_end = _int("shard_end", self.shard_end)
        return c

    @classmethod
    def _from_c(cls, c: _lib.Config) -> "GPTEmbeddingConfig":
        block = _lib.GGML_BLOCKS.get(c.weight_dtype - _lib.DTYPE_GGML)
        if block is not None:
            # A token table in a ggml block format (a quantized GGUF table) computes in
            # float32 and reports its type's name ("q4_k"), which no new layer can take.
            config = cls._from_c_dtype(c, "float32")
            config.weight_dtype = block[0]
            return config
        return cls._from_c_dtype(c, DTYPE_NAMES.get(c.weight_dtype, c.weight_dtype))

    @classmethod
    def _from_c_dtype(cls, c: _lib.Config, weight_dtype: Any) -> "GPTEmbeddingConfig":
        return cls(c.vocab_size, c.embed_dim, c.max_seq_len, _from_float32(c.dropout),
                   position_encoding=_NAMES.get(c.position_encoding, str(c.position_encoding)),
                   scale_embeddings=bool(c.scale_embeddings), layer_norm_eps=_from_float32(c.layer_norm_eps),
                   init_std=_from_float32(c.init_std), padding_idx=None if c.padding_idx < 0 else c.padding_idx,
                   seed=c.seed, num_threads=c.num_threads,
                   weight_dtype=weight_dtype,
                   token_scale=None if c.token_scale == 0 else _from_float32(c.token_scale),
                   layer_norm=bool(c.layer_norm), position_offset=c.position_offset,
                   shard_start=c.shard_start, shard_end=c.shard_end)

    def validate(self) -> None:
        """Raises ``ValueError`` (the library's message, from
        ``gpt_embedding_config_validate``) if a field is invalid."""
        _lib.call(_lib.lib.gpt_embedding_config_validate, ctypes.byref(self.to_c()))

    def num_parameters(self) -> Dict[str, int]:
        """Trainable parameters per component and in total
        (``gpt_embedding_config_num_parameters``; allocates nothing, so it works for any
        size). ``position_embedding`` is 0 unless positions are learned."""
        c = self.to_c()
        out = ctypes.c_int64()
        counts = {}
        for key, param in (("token_embedding", _lib.PARAM_TOKEN), ("position_embedding", _lib.PARAM_POSITION),
                           ("layer_norm_weight", _lib.PARAM_LN_WEIGHT), ("layer_norm_bias", _lib.PARAM_LN_BIAS),
                           ("total", _lib.PARAM_ALL)):
            _lib.call(_lib.lib.gpt_embedding_config_num_parameters, ctypes.byref(c), param, ctypes.byref(out))
            counts[key] = out.value
        return counts

    def __repr__(self) -> str:
        return "GPTEmbeddingConfig(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in _FIELDS) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GPTEmbeddingConfig) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable
