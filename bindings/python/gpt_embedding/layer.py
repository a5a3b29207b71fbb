"""GPTEmbedding: the whole input layer over the C API."""
from __future__ import annotations

import ctypes
import operator
import os
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _lib
from ._arrays import (ALIGNED_MIN_BYTES, DTYPE_NAMES, _View, address, aligned_empty, array_dtype_code, dtype_code,
                      float_array, fptr, ids_array, iptr, numpy_dtype, out_array, typed_array, view_array)
from .config import _ENCODINGS, GPTEmbeddingConfig, _float, _int
from .errors import GPTEmbeddingStateError, error_for

#: state-dict key -> ``enum gpt_embedding_param``
_PARAMS = {
    "token_embedding.weight": _lib.PARAM_TOKEN,
    "position_embedding.weight": _lib.PARAM_POSITION,
    "layer_norm.weight": _lib.PARAM_LN_WEIGHT,
    "layer_norm.bias": _lib.PARAM_LN_BIAS,
}
_SEED_DEFAULTS = (50257, 768, 1024, 0.1, False)
_INT64 = (-(1 << 63), (1 << 63) - 1)
#: The keyword overrides of :meth:`GPTEmbedding.from_pretrained` (fields of
#: ``gpt_embedding_open_options``; ``use_sinusoidal`` is the seed's spelling of
#: ``position_encoding="sinusoidal"``).
OPEN_OVERRIDES = ("num_threads", "seed", "dropout", "layer_norm_eps", "scale_embeddings", "position_encoding",
                  "use_sinusoidal", "max_seq_len", "padding_idx", "by_tensor_names", "shard", "shard_rule", "family")
#: Names of enum gpt_embedding_shard_rule.
SHARD_RULES = {"balanced": _lib.SHARD_BALANCED, "megatron": _lib.SHARD_MEGATRON}

ArrayLike = Any  # numpy arrays or nested lists of ints


class _Access:
    """A readers-writer lock that enforces the header's thread contract for one handle:
    calls that only read the layer (eval forwards, copies, queries) may overlap; calls that
    modify it (training forward, backward, zero_grad, set_parameter, handing out pointers,
    free) run alone. So sharing one layer between Python threads can give surprising
    *results* (one thread's backward may follow another's forward) but never a data race
    inside the library. A waiting writer blocks new readers, so writers do not starve.

    Plain locks, no Condition (whose ``wait``/``notify_all`` bookkeeping cost several µs
    per call even uncontended: a decode step's whole budget). An uncontended read is one
    round trip of ``_count`` on entry and one on exit (~0.4 µs):

    - ``_count`` guards ``_readers`` and ``_writer``;
    - ``_gate`` is held by a writer from before it waits for the readers until it is done:
      writers queue on it, and a reader that finds ``_writer`` set waits on it, then
      retries;
    - ``_wake`` lets a writer sleep until the last reader leaves: the writer takes it
      (free) while it registers, then blocks taking it again; the last reader gives it
      back (a ``threading.Lock`` may be released by another thread)."""

    __slots__ = ("_count", "_gate", "_wake", "_readers", "_writer", "_waiting")

    def __init__(self) -> None:
        self._count = threading.Lock()
        self._gate = threading.Lock()
        self._wake = threading.Lock()
        self._readers = 0
        self._writer = False  # a writer runs or waits: new readers queue at the gate
        self._waiting = False  # the writer sleeps on _wake until the readers drain

    def enter_read(self) -> None:
        while True:
            with self._count:
                if not self._writer:
                    self._readers += 1
                    return
            with self._gate:  # a writer runs or waits: queue behind it, then retry
                pass

    def exit_read(self) -> None:
        with self._count:
            self._readers -= 1
            if not self._readers and self._waiting:
                self._waiting = False
                self._wake.release()

    def enter_write(self) -> None:
        self._gate.acquire()
        with self._count:
            self._writer = True
            wait = self._readers > 0
            if wait:
                self._waiting = True
                self._wake.acquire()  # free now; the last reader releases it
        if wait:
            try:
                self._wake.acquire()  # sleeps until the readers drain
            except BaseException:  # interrupted: undo the registration and let others go
                with self._count:
                    if self._waiting:  # no reader released it: it is still ours
                        self._waiting = False
                        self._wake.release()
                    self._writer = False
                self._gate.release()
                raise
            self._wake.release()

    def exit_write(self) -> None:
        with self._count:
            self._writer = False
        self._gate.release()

    def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.enter_read()
        try:
            return fn(*args)
        finally:
            self.exit_read()

    def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.enter_write()
        try:
            return fn(*args)
        finally:
            self.exit_write()


_last_error = _lib.lib.gpt_embedding_last_error
_I32, _I64, _F32 = np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.float32)
_ndarray, _empty = np.ndarray, np.empty
_MIN64, _MAX64 = _INT64
_CLOSED = "the layer is closed"


def _fail(status: int) -> None:
    """Raises the exception of a failed call with the library's message, read on this
    thread (as :func:`_lib.call`)."""
    message = _last_error()
    raise error_for(status, message.decode("utf-8", "replace") if message
                    else _lib.lib.gpt_embedding_status_string(status).decode("utf-8", "replace"))


#: Whether the loaded library takes calls of batch or seq 0 (header 0.5): probed on the first
#: empty call (an eval forward of no tokens, read-only); None until then.
_EMPTY_CALLS: Optional[bool] = None


def _path(path: Union[str, "os.PathLike[str]", bytes]) -> bytes:
    """A file system path for a ``const char *`` argument. An embedded NUL would silently
    cut the path short in C, so it raises ValueError, as Python's ``open`` does."""
    encoded = os.fsencode(os.fspath(path))
    if b"\0" in encoded:
        raise ValueError(f"path {path!r} contains a NUL byte")
    return encoded


class _Handle:
    """Owns one C layer and frees it exactly once."""

    def __init__(self, config: _lib.Config) -> None:
        self.value = ctypes.c_void_p()
        _lib.call(_lib.lib.gpt_embedding_create, ctypes.byref(config), ctypes.byref(self.value))

    @classmethod
    def open(cls, path: bytes, options: _lib.OpenOptions) -> "_Handle":
        """A layer opened from a checkpoint (``gpt_embedding_open``)."""
        handle = cls.__new__(cls)
        handle.value = ctypes.c_void_p()
        _lib.call(_lib.lib.gpt_embedding_open, path, ctypes.byref(options), ctypes.byref(handle.value))
        return handle

    def get(self) -> ctypes.c_void_p:
        if not self.value:
            raise GPTEmbeddingStateError("the layer is closed", 9)
        return self.value

    def free(self) -> None:
        if self.value:
            _lib.lib.gpt_embedding_free(self.value)
            self.value = ctypes.c_void_p()



def _token_arguments(input_ids: ArrayLike, position_ids: Optional[ArrayLike],
                     start_position: int) -> Tuple[np.ndarray, Optional[np.ndarray], int, int, int]:
    """The ids (2-D), positions (or None), batch, seq and start of a forward call, checked:
    positions must have the ids' shape (an int32 and an int64 array are both widened, never
    narrowed), start_position an integer in the 64-bit range."""
    ids = ids_array(input_ids, "input_ids")
    if ids.ndim == 1:
        ids = ids.reshape(1, -1)
    batch, seq = ids.shape
    positions = None
    if position_ids is not None:
        positions = ids_array(position_ids, "position_ids")
        if positions.ndim == 1:
            positions = positions.reshape(1, -1)
        if positions.shape != ids.shape:
            raise ValueError(f"position_ids must have the shape of input_ids {list(ids.shape)}, "
                             f"got {list(positions.shape)}")
        if positions.dtype != ids.dtype:
            ids = ids.astype(np.int64)
            positions = positions.astype(np.int64)
    try:
        start = operator.index(start_position)
    except TypeError:
        raise TypeError(f"start_position must be an integer, got {start_position!r}") from None
    if not _INT64[0] <= start <= _INT64[1]:
        raise ValueError(f"start_position = {start} is out of the 64-bit range")
    return ids, positions, batch, seq, start

class GPTEmbedding:
    """Token embedding + position embedding, added; optional LayerNorm; dropout. Forward and
    backward, every number computed by libgpt_embedding.

    Construction:
        ``GPTEmbedding(vocab_size=50257, embed_dim=768, max_seq_len=1024, dropout=0.1,
        use_sinusoidal=False, **options)`` takes the seed's keywords and the options of
        :class:`GPTEmbeddingConfig` (``position_encoding``, ``scale_embeddings``,
        ``layer_norm_eps``, ``init_std``, ``padding_idx``, ``seed``, ``num_threads``,
        ``token_scale``, ``layer_norm``, ``position_offset``).
        ``GPTEmbedding(config=cfg)`` / :meth:`from_config` and :meth:`from_preset` build one
        from a configuration (then pass no other settings). ``weight_dtype`` (``"float32"``,
        ``"bfloat16"``, ``"float16"``) chooses the tables' element type.
        :meth:`from_pretrained` opens a safetensors checkpoint (a file, a folder, a sharded
        index) at its own precision, without a random initialisation.

    Modes:
        Like a torch module it starts in training mode (``training`` is True: dropout on,
        forwards keep what backward needs); :meth:`eval` switches dropout off and makes
        forwards read-only, :meth:`train` switches back.

    Arrays:
        ids are int32 or int64 arrays (or nested lists) [batch, seq]; outputs are new
        arrays [batch, seq, embed_dim] -- float32, or ``out_dtype`` (``"bfloat16"`` as
        ``ml_dtypes.bfloat16``, ``"float16"``) -- unless ``out=`` is given.
        :meth:`state_dict` and :meth:`grads` return **copies**; :meth:`parameter` and
        :meth:`gradient` return writeable **views** of the layer's memory (zero-copy) that
        keep the layer alive. Parameters come in their stored dtype, gradients always in
        float32. Arithmetic is always float32, in the library.

    Threads:
        Every call releases the GIL (ctypes), so different layers run truly in parallel from
        different Python threads. One layer may also be shared: eval forwards and queries
        overlap, while training forwards, backward, zero_grad and parameter writes are
        serialised by a per-layer lock (the library's thread contract, enforced here).
        Writes through views are not locked: do not write a view while another thread runs
        a forward on the same layer.

    Lifetime:
        :meth:`close` (or ``with GPTEmbedding(...) as layer:``) frees the C layer at once;
        it raises while views are alive, since they point into its memory. Without close,
        the layer is freed when it is garbage-collected and no view refers to it.
    """

    def __init__(self, vocab_size: int = 50257, embed_dim: int = 768, max_seq_len: int = 1024,
                 dropout: float = 0.1, use_sinusoidal: bool = False, *,
                 config: Optional[GPTEmbeddingConfig] = None, **options: Any) -> None:
        if config is None:
            config = GPTEmbeddingConfig(vocab_size, embed_dim, max_seq_len, dropout, use_sinusoidal, **options)
        else:
            if not isinstance(config, GPTEmbeddingConfig):
                raise TypeError(f"config must be a GPTEmbeddingConfig, got {type(config).__name__}")
            given = (vocab_size, embed_dim, max_seq_len, dropout, use_sinusoidal)
            if options or any(a is not d and a != d for a, d in zip(given, _SEED_DEFAULTS)):
                raise TypeError("pass either config= or individual settings, not both "
                                "(use config.replace(...) to change a field)")
        self._attach(_Handle(config.to_c()))

    def _attach(self, handle: _Handle) -> None:
        """Takes ownership of a live C layer (created or opened) and reads its configuration
        back from the library (``gpt_embedding_layer_config``)."""
        self._handle = handle  # first, so that __del__ frees it if anything below fails
        #: The handle as an int for the fast forward (0 once closed; read under the lock).
        self._hv: int = 0
        self._access = _Access()
        self._config = GPTEmbeddingConfig._from_c(_lib.layer_config(self._handle.get()))
        self._D: int = self._config.embed_dim
        self._hv = self._handle.get().value
        #: True in training mode (dropout on, forwards keep what backward needs).
        self.training: bool = True
        self._views: "weakref.WeakSet[_View]" = weakref.WeakSet()
        self._last_shape: Optional[Tuple[int, int]] = None
        #: Whether the pending phase one of a two-phase forward was a training call.
        self._pending_training = False
        #: (batch, seq) of a pending empty phase one answered in Python, else None.
        self._pending_empty: Optional[Tuple[int, int]] = None

    @classmethod
    def _from_handle(cls, handle: _Handle) -> "GPTEmbedding":
        """A layer around an existing handle (see :meth:`from_pretrained`)."""
        layer = cls.__new__(cls)
        layer._attach(handle)
        return layer

    @classmethod
    def from_config(cls, config: GPTEmbeddingConfig) -> "GPTEmbedding":
        """A layer with this configuration (the configuration is copied)."""
        return cls(config=config)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "GPTEmbedding":
        """A layer reproducing the Hugging Face GPT-2 embedding: ``"gpt2"`` (or
        ``"gpt2-small"``), ``"gpt2-medium"``, ``"gpt2-large"``, ``"gpt2-xl"``; keyword
        overrides such as ``seed=42`` are applied to the preset."""
        return cls(config=GPTEmbeddingConfig.from_preset(name, **overrides))

    @classmethod
    def from_pretrained(cls, path: Union[str, "os.PathLike[str]"], dtype: Any = None, mmap: bool = False,
                        **overrides: Any) -> "GPTEmbedding":
        """Opens a checkpoint as a layer, with no random initialisation
        (``gpt_embedding_open``).

        Args:
            path: a ``.safetensors`` file, or a folder holding ``model.safetensors`` or a
                sharded checkpoint (``model.safetensors.index.json``). A folder with a
                Hugging Face ``config.json`` is opened as its ``model_type`` says: gpt2,
                gpt_neo, gpt_bigcode, gptj, opt, bloom, llama, mistral, qwen2, falcon, mpt,
                gpt_neox, phi, gemma, gemma2, gemma3_text. The layer then computes what
                transformers feeds the first decoder block: the family's tensor names
                (with or without the base-model prefix), OPT's position offset 2
                (``position_offset``: its padding position -1 reads row 1), BLOOM's
                embedding layer norm (``layer_norm``: on by default in forwards), Gemma's
                scale ``sqrt(hidden_size)`` rounded to the table dtype (``token_scale``),
                and the family's input dropout and layer norm epsilon from config.json. An
                unknown ``model_type`` raises ``ValueError`` listing the supported ones.
                ``family="llama"`` (any supported ``model_type``) applies that family's
                input stage without config.json (a bare ``.safetensors`` file, or a
                ``model_type`` missing or unsupported): its tensor names, OPT's offset,
                BLOOM's layer norm, Gemma's scale; vocabulary and width from the token
                table, ``dropout`` and ``layer_norm_eps`` from the overrides (else a
                folder's config.json, still read for its numbers, else 0 and 1e-5). An
                unknown family raises ``ValueError`` listing the supported ones.
                Without config.json or ``family`` (or with ``by_tensor_names=True``)
                tensor names decide: the library's (``token_embedding.weight``, ...) or
                Hugging Face GPT-2's (``wte.weight``, ``wpe.weight``, with or without
                ``transformer.``, with their position table), or any supported family's
                token-table name (``model.embed_tokens.weight``,
                ``transformer.word_embeddings.weight``, ``gpt_neox.embed_in.weight``,
                ``model.decoder.embed_tokens.weight``, ...) opened as a plain lookup: a
                family's position table, layer norm and scale are not picked up without
                ``family``. Two candidate token tables raise ``ValueError`` naming both
                (``family`` chooses). Either
                way the sizes come from the tensors: ``vocab_size`` and ``embed_dim`` from
                the token table, learned positions and ``max_seq_len`` from the position
                table when there is one (else no positions), the layer norm from the file
                when present (else weight 1, bias 0). A GGUF file (llama.cpp's format,
                recognised by its magic whatever its name) opens ``token_embd.weight``
                (F32, F16 or BF16; a quantized table raises ``ValueError`` naming its
                type) with llama.cpp's input stage for its ``general.architecture``:
                Gemma's ``sqrtf(n_embd)`` in float32, ``{arch}.embedding_scale``
                (granite, minicpm), learned ``position_embd.weight`` (gpt2, starcoder,
                mpt), BLOOM's ``token_embd_norm``; an architecture it does not
                reproduce raises ``ValueError`` naming it unless ``by_tensor_names=True``
                asks for the plain lookup.
            dtype: ``None`` keeps the file's dtype (F32, BF16 or F16); ``"float32"``,
                ``"bfloat16"``, ``"float16"`` (or their numpy dtypes) convert the tables,
                exactly when widening, to nearest even when narrowing.
            mmap: ``False`` (default) reads the tables into the layer's memory; ``True``
                maps the file privately (copy-on-write): pages are shared with the page
                cache until written, and writes (training, :meth:`load_state_dict`, views)
                stay in this process and never reach the file. Only a table whose dtype is
                kept and whose data is aligned is mapped (see :meth:`is_mapped`). If
                another process truncates a mapped file, touching a lost page kills the
                process with SIGBUS: that is why reading is the default.
            **overrides: what the checkpoint does not say: ``num_threads`` (0 = all
                cores), ``seed`` (dropout masks), ``dropout`` and ``layer_norm_eps``
                (absent or ``None``: the family's value from config.json, else 0 and
                1e-5), ``scale_embeddings`` (default False, GPT-2), ``position_encoding``
                (``None``: from the file; ``"learned"``, ``"sinusoidal"`` or ``"none"``) or
                ``use_sinusoidal=True``, ``max_seq_len`` (rows of the sinusoidal table,
                1024), ``padding_idx`` (``None``), ``by_tensor_names`` (``True``: ignore a
                folder's config.json and open by tensor names alone; default ``False``),
                ``shard=(rank, world)``: open only the rows of the token table that
                :func:`gpt_embedding.shard_range` gives ``rank`` of ``world`` (read or mapped:
                each rank's memory is about 1/world of the table), for vocabulary
                parallelism (:meth:`forward_partial`); ``shard_rule`` ``"balanced"``
                (default: sizes differ by at most one row) or ``"megatron"`` (equal split;
                the vocabulary must divide). A shard that does not fit the checkpoint (a
                rank outside ``[0, world)``, more ranks than rows, a vocabulary the rule
                cannot split) raises ``ValueError`` naming the checkpoint; ``family``
                (``None``, or a ``model_type`` as above).

        The layer is returned in eval mode, as ``transformers``' ``from_pretrained`` does
        (call :meth:`train` to train it). Raises ``OSError`` when the checkpoint cannot be
        read, ``ValueError`` for a malformed one (the message names the file, the tensor
        and the problem: e.g. config.json that is not JSON, a tensor missing or of the
        wrong shape for its family, an OPT ``word_embed_proj_dim`` other than
        ``hidden_size``) or a bad dtype or override value, and ``TypeError`` for an
        unknown keyword."""
        options = _open_options(dtype, mmap, overrides)
        layer = cls._from_handle(_Handle.open(_path(path), options))
        return layer.eval()

    # -- configuration and mode ------------------------------------------------------

    @property
    def config(self) -> GPTEmbeddingConfig:
        """A copy of the layer's configuration, as the library holds it."""
        return self._config.copy()

    @property
    def vocab_size(self) -> int:
        return self._config.vocab_size

    @property
    def embed_dim(self) -> int:
        return self._config.embed_dim

    @property
    def max_seq_len(self) -> int:
        return self._config.max_seq_len

    @property
    def dropout(self) -> float:
        return self._config.dropout

    @property
    def use_sinusoidal(self) -> bool:
        return self._config.use_sinusoidal

    @property
    def position_encoding(self) -> str:
        return self._config.position_encoding

    @property
    def weight_dtype(self) -> str:
        """The element type of the token table and the learned position table:
        ``"float32"``, ``"bfloat16"`` or ``"float16"`` (the layer norm vectors are float32;
        :meth:`parameter_dtype` gives each parameter's numpy dtype). A quantized token table
        opened from a GGUF file reports its ggml block type (``"q4_k"``, ``"q8_0"``, ...):
        it is frozen (see :meth:`frozen_parameter_names`) and computes in float32."""
        return self._config.weight_dtype

    def frozen_parameter_names(self) -> List[str]:
        """The parameters that take no gradient and no optimizer step: the token table when
        it is in a ggml block format (a quantized GGUF table; open it with ``dtype=`` to
        train it), else none."""
        return [n for n in self.parameter_names() if self._dtype_code(n) >= _lib.DTYPE_GGML]

    def train(self, mode: bool = True) -> "GPTEmbedding":
        """Training mode (``mode=True``): dropout on, forwards keep what backward needs.
        Returns the layer, as torch does."""
        self.training = bool(mode)
        return self

    def eval(self) -> "GPTEmbedding":
        """Evaluation mode: no dropout; forwards only read the layer."""
        return self.train(False)

    # -- forward / backward ----------------------------------------------------------

    def __call__(self, input_ids: ArrayLike, use_layer_norm: Optional[bool] = None, start_position: int = 0,
                 position_ids: Optional[ArrayLike] = None, out: Optional[np.ndarray] = None,
                 out_dtype: Any = None) -> np.ndarray:
        return self.forward(input_ids, use_layer_norm, start_position, position_ids, out, out_dtype)

    def forward(self, input_ids: ArrayLike, use_layer_norm: Optional[bool] = None, start_position: int = 0,
                position_ids: Optional[ArrayLike] = None, out: Optional[np.ndarray] = None,
                out_dtype: Any = None) -> np.ndarray:
        """Embeds ``input_ids`` and returns [batch, seq, embed_dim], float32 unless
        ``out_dtype`` (or ``out``) says otherwise.

        Args:
            input_ids: token ids [batch, seq]: a numpy array of an integer dtype or nested
                lists. int32 arrays go to ``gpt_embedding_forward`` and int64 arrays to
                ``gpt_embedding_forward_i64`` without a copy; other integer dtypes are
                converted to int64 (a copy). A 1-D array [seq] is one sequence: the result
                is then [1, seq, embed_dim]. Strided arrays (``x[:, :-1]``) are copied.
                Floats and bools raise ``ValueError``.
            use_layer_norm: apply the layer norm (the seed's flag): ``True`` or ``False``;
                ``None`` (default) follows the configuration's ``layer_norm`` (off unless
                the layer was configured so, e.g. a BLOOM checkpoint).
            start_position: positions are ``start_position + t`` (the past length when
                decoding with a KV cache). Ignored when ``position_ids`` is given.
            position_ids: explicit positions, the shape of ``input_ids`` (left-padded
                batches). With a ``position_offset`` (OPT: 2) they may be as low as
                ``-position_offset`` (OPT's padding position -1 reads row 1).
            out: a writeable, C-contiguous array of the result's shape and dtype to write
                into instead of allocating; it is returned. Anything else raises
                ``ValueError`` (nothing is converted, since the result must land in it).
                Without ``out_dtype``, its dtype (float32, bfloat16, float16) decides.
            out_dtype: ``None`` (float32, or ``out``'s dtype), ``"float32"``,
                ``"bfloat16"`` (an ``ml_dtypes.bfloat16`` array) or ``"float16"``, or those
                numpy dtypes. The library computes in float32 and rounds each result once,
                to nearest even (``gpt_embedding_forward_typed``); float32 outputs go
                through ``gpt_embedding_forward`` / ``_i64``. Other values raise
                ``ValueError``.

        Raises:
            IndexError: an id or position outside its table; the message names the value,
                its ``[b, t]`` and the valid range. Nothing is written.
            ValueError: wrong dtype, shape or layout; a negative ``start_position``.
        """
        # The fast path: an int32/int64 C-contiguous array, positions from start_position,
        # float32 output (new or a matching out=). Python checks what the library cannot (the
        # arrays' dtype, layout and shape: the library reads and writes their memory); the
        # library validates every value. Anything else takes the general path below.
        ids = input_ids
        if (type(ids) is _ndarray and position_ids is None and out_dtype is None and type(start_position) is int
                and _MIN64 <= start_position <= _MAX64):
            dt = ids.dtype
            lib = _lib.lib  # gpt_embedding_forward / _i64 take addresses as ints (c_void_p)
            fn = lib.gpt_embedding_forward_i64 if dt is _I64 else lib.gpt_embedding_forward if dt is _I32 else None
            shape = ids.shape
            nd = len(shape)
            if nd == 2:
                batch, seq = shape
            elif nd == 1:
                batch, seq = 1, shape[0]
            else:
                fn = None
            if fn is not None and batch and seq and ids.flags.c_contiguous:
                D = self._D
                n = batch * seq * D
                if out is None:
                    result = _empty((batch, seq, D), _F32) if n < ALIGNED_MIN_BYTES // 4 \
                        else aligned_empty((batch, seq, D))
                elif (type(out) is _ndarray and out.dtype is _F32 and out.shape == (batch, seq, D)
                      and (f := out.flags).c_contiguous and f.writeable):
                    result = out
                else:
                    result = None  # the general path explains what is wrong with out
                if result is not None:
                    flags = 0 if use_layer_norm is None else self._norm_flag(use_layer_norm)
                    access = self._access
                    if self.training:
                        access.enter_write()
                        try:
                            h = self._hv
                            if not h:
                                raise GPTEmbeddingStateError(_CLOSED, 9)
                            status = fn(h, address(ids), batch, seq, None, start_position, flags | _lib.TRAINING,
                                        address(result), n)
                            if not status:
                                self._last_shape = (batch, seq)
                        finally:
                            access.exit_write()
                    else:
                        ia, oa = address(ids), address(result)
                        # access.enter_read() / exit_read(), the uncontended case inlined
                        count = access._count
                        with count:
                            entered = not access._writer
                            if entered:
                                access._readers += 1
                        if not entered:
                            access.enter_read()
                        try:
                            h = self._hv
                            if not h:
                                raise GPTEmbeddingStateError(_CLOSED, 9)
                            status = fn(h, ia, batch, seq, None, start_position, flags, oa, n)
                        finally:
                            with count:
                                access._readers -= 1
                                if not access._readers and access._waiting:
                                    access._waiting = False
                                    access._wake.release()
                    if status:
                        _fail(status)
                    return result
        return self._forward(input_ids, use_layer_norm, start_position, position_ids, out, out_dtype)

    def _forward(self, input_ids: ArrayLike, use_layer_norm: Optional[bool], start_position: int,
                 position_ids: Optional[ArrayLike], out: Optional[np.ndarray], out_dtype: Any) -> np.ndarray:
        """The general forward: any ids (lists, other integer dtypes, strided arrays), explicit
        positions, 16-bit outputs, empty calls; every argument checked and explained."""
        ids, positions, batch, seq, start = _token_arguments(input_ids, position_ids, start_position)
        if out_dtype is not None:
            code = dtype_code(out_dtype, "out_dtype")
        elif isinstance(out, np.ndarray):
            code = array_dtype_code(out)
            if code is None:
                raise ValueError(f"out must be a writeable, C-contiguous float32, bfloat16 or float16 array, "
                                 f"got {out.dtype}")
        else:
            code = _lib.DTYPE_F32
        shape = (batch, seq, self.embed_dim)
        result = aligned_empty(shape, dtype=numpy_dtype(code)) if out is None else out_array(out, shape, code)
        training = self.training
        flags = (_lib.TRAINING if training else 0) | self._norm_flag(use_layer_norm)
        if not (batch and seq) and not self._library_takes_empty_calls():
            # An empty call (PyTorch returns an empty output): nothing to compute. A training
            # one replaces the state, so its backward adds nothing (see backward).
            if training:
                def empty() -> None:
                    self._handle.get()
                    self._last_shape = (batch, seq)
                self._access.write(empty)
            else:
                self._access.read(self._handle.get)
            return result
        pos = None if positions is None else iptr(positions)
        if code == _lib.DTYPE_F32:
            fn = _lib.lib.gpt_embedding_forward if ids.dtype == np.int32 else _lib.lib.gpt_embedding_forward_i64
            args: Tuple[Any, ...] = (fn, self._handle.get(), iptr(ids), batch, seq, pos, start, flags, fptr(result),
                                     result.size)
        else:
            fn = (_lib.lib.gpt_embedding_forward_typed if ids.dtype == np.int32
                  else _lib.lib.gpt_embedding_forward_typed_i64)
            args = (fn, self._handle.get(), iptr(ids), batch, seq, pos, start, flags, code,
                    result.ctypes.data_as(ctypes.c_void_p), result.size)
        if training:
            self._access.write(_lib.call, *args)
            self._last_shape = (batch, seq)
        else:
            self._access.read(_lib.call, *args)
        return result

    def _library_takes_empty_calls(self) -> bool:
        """Whether the loaded library accepts batch or seq 0 (header 0.5): probed once, with
        an eval forward of no tokens on this layer (read-only; NULL arrays). Before that
        library lands, empty calls are answered here in Python."""
        global _EMPTY_CALLS
        if _EMPTY_CALLS is None:
            def probe() -> int:
                return _lib.lib.gpt_embedding_forward(self._handle.get(), None, 0, 1, None, 0, 0, None, 0)
            _EMPTY_CALLS = self._access.read(probe) == 0
        return _EMPTY_CALLS

    def forward_partial(self, input_ids: ArrayLike, use_layer_norm: Optional[bool] = None, start_position: int = 0,
                        position_ids: Optional[ArrayLike] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Phase one of a two-phase (vocabulary-parallel) forward
        (``gpt_embedding_forward_partial``): returns float32 [batch, seq, embed_dim]
        holding, for each token, its scaled token row when this layer's shard holds the id
        and -0.0 otherwise (the additive identity, so that summing the ranks' partials is
        exact in any order). Arguments as :meth:`forward` (float32 output only); the mode
        (:meth:`train` / :meth:`eval`) and ``use_layer_norm`` of the whole forward are
        taken here. Sum the partials over the ranks with your all-reduce (MPI,
        torch.distributed, NCCL, gloo), then call :meth:`forward_finish` on the sum::

            x = layer.forward_partial(ids)
            comm.Allreduce(MPI.IN_PLACE, x, op=MPI.SUM)   # mpi4py
            y = layer.forward_finish(x)                   # == the whole table's forward
        """
        ids, positions, batch, seq, start = _token_arguments(input_ids, position_ids, start_position)
        shape = (batch, seq, self.embed_dim)
        result = aligned_empty(shape, dtype=np.float32) if out is None else out_array(out, shape, _lib.DTYPE_F32)
        flags = (_lib.TRAINING if self.training else 0) | self._norm_flag(use_layer_norm)
        if not (batch and seq) and not self._library_takes_empty_calls():
            def empty() -> None:  # nothing to compute; phase two of no tokens follows
                self._handle.get()
                self._pending_training = self.training
                self._pending_empty = (batch, seq)
            self._access.write(empty)
            return result
        self._pending_empty = None
        fn = (_lib.lib.gpt_embedding_forward_partial if ids.dtype == np.int32
              else _lib.lib.gpt_embedding_forward_partial_i64)
        self._access.write(_lib.call, fn, self._handle.get(), iptr(ids), batch, seq,
                           None if positions is None else iptr(positions), start, flags, fptr(result), result.size)
        self._pending_training = self.training
        return result

    def forward_finish(self, x: np.ndarray) -> np.ndarray:
        """Phase two of a two-phase forward (``gpt_embedding_forward_finish``), in place:
        ``x`` (a writeable, C-contiguous float32 [batch, seq, embed_dim] array with phase
        one's batch and seq) holds the sum over the ranks of their :meth:`forward_partial`
        results; the positions, the layer norm and dropout are applied to it and it is
        returned. After a training phase one, :meth:`backward` follows (with
        ``grad_output`` replicated on every rank: each rank adds into its own token rows;
        the position and layer norm gradients come out identical everywhere). Raises
        ``RuntimeError`` (``BadState``) without a pending phase one, ``ValueError`` for
        another shape; nothing is changed then."""
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"x must be a float32 array [batch, seq, {self.embed_dim}], "
                             f"got {getattr(x, 'shape', type(x).__name__)}")
        x = out_array(x, x.shape, _lib.DTYPE_F32)
        if not x.size and not self._library_takes_empty_calls():
            def empty() -> None:
                self._handle.get()
                pending = self._pending_empty
                if pending is None:
                    raise GPTEmbeddingStateError("gpt_embedding_forward_finish: no pending empty phase one for "
                                                 f"an empty x of shape {list(x.shape)}", 7)
                if pending != x.shape[:2]:
                    raise ValueError(f"gpt_embedding_forward_finish: x has batch, seq {list(x.shape[:2])}, phase "
                                     f"one had {list(pending)}")
                self._pending_empty = None
                if self._pending_training:
                    self._last_shape = pending
            self._access.write(empty)
            return x
        self._access.write(_lib.call, _lib.lib.gpt_embedding_forward_finish, self._handle.get(), x.shape[0],
                           x.shape[1], fptr(x), x.size)
        if self._pending_training:
            self._last_shape = (x.shape[0], x.shape[1])
        return x

    def _norm_flag(self, use_layer_norm: Optional[bool]) -> int:
        """The forward flag for ``use_layer_norm``: none for ``None`` (the configuration's
        default), ``LAYER_NORM`` for true, ``NO_LAYER_NORM`` for false when the
        configuration's default is on (else none: off is already the default)."""
        if use_layer_norm is None:
            return 0
        if use_layer_norm:
            return _lib.LAYER_NORM
        return _lib.NO_LAYER_NORM if self._config.layer_norm else 0

    def backward(self, grad_output: ArrayLike) -> None:
        """Adds the gradients of the latest training forward into the layer's gradients.

        ``grad_output`` is [batch, seq, embed_dim] with the forward's batch and seq: a
        float32, bfloat16 (``ml_dtypes.bfloat16``) or float16 numpy array -- typically the
        forward's output dtype; the library widens 16-bit values exactly
        (``gpt_embedding_backward_typed``) -- or nested lists (float32). Other dtypes raise
        ``ValueError`` rather than change precision silently. Gradients are float32 and
        accumulate in float32 whatever the table's dtype. Repeated ids accumulate; the
        padding row receives nothing; dropout uses exactly the forward's mask. Gradients
        accumulate across calls until :meth:`zero_grad`. Raises ``RuntimeError``
        (``BadState``) when no training forward ran, ``ValueError`` for a wrong shape or
        dtype."""
        shape = None if self._last_shape is None else (*self._last_shape, self.embed_dim)
        g, code = typed_array(grad_output, "grad_output", shape)
        if g.ndim != 3:
            raise ValueError(f"grad_output must have shape [batch, seq, {self.embed_dim}], got {list(g.shape)}")
        if not g.size and not self._library_takes_empty_calls():
            # The backward of an empty training forward adds nothing. Without any training
            # forward, the library's error (checked here, as it would).
            if self._last_shape is None:
                self._access.read(self._handle.get)
                raise GPTEmbeddingStateError("gpt_embedding_backward: no training forward to differentiate: call "
                                             "forward with training first (an eval forward keeps nothing)", 7)
            return
        if code == _lib.DTYPE_F32:
            self._access.write(_lib.call, _lib.lib.gpt_embedding_backward, self._handle.get(), fptr(g),
                               g.shape[0], g.shape[1])
        else:
            self._access.write(_lib.call, _lib.lib.gpt_embedding_backward_typed, self._handle.get(), code,
                               g.ctypes.data_as(ctypes.c_void_p), g.shape[0], g.shape[1])

    def zero_grad(self) -> None:
        """Sets every gradient to zero (only the rows backward touched are cleared, unless a
        gradient view was handed out)."""
        self._access.write(_lib.call, _lib.lib.gpt_embedding_zero_grad, self._handle.get())

    # -- parameters ------------------------------------------------------------------

    def num_parameters(self) -> int:
        """The number of trainable parameters (the layer norm's 2 * embed_dim included)."""
        n = ctypes.c_int64()
        self._access.read(_lib.call, _lib.lib.gpt_embedding_num_parameters, self._handle.get(), ctypes.byref(n))
        return n.value

    def parameter_names(self) -> List[str]:
        """The state-dict keys of this layer: ``token_embedding.weight``,
        ``position_embedding.weight`` (learned positions only), ``layer_norm.weight``,
        ``layer_norm.bias``."""
        names = list(_PARAMS)
        if self._config.position_encoding != "learned":
            names.remove("position_embedding.weight")
        return names

    def _check_name(self, name: str) -> None:
        if name not in self.parameter_names():
            raise KeyError(f"{name!r} is not a parameter of this layer; it has {', '.join(self.parameter_names())}")

    def _shape(self, name: str) -> Tuple[int, ...]:
        self._check_name(name)
        rows, cols = ctypes.c_int64(), ctypes.c_int64()
        self._access.read(_lib.call, _lib.lib.gpt_embedding_parameter_shape, self._handle.get(), _PARAMS[name],
                          ctypes.byref(rows), ctypes.byref(cols))
        return _shape_of(name, rows.value, cols.value)

    def _dtype_code(self, name: str) -> int:
        self._check_name(name)
        code = ctypes.c_int()
        self._access.read(_lib.call, _lib.lib.gpt_embedding_parameter_dtype, self._handle.get(), _PARAMS[name],
                          ctypes.byref(code))
        return code.value

    def parameter_dtype(self, name: str) -> np.dtype:
        """The numpy dtype a parameter is stored in (``gpt_embedding_parameter_dtype``):
        float32, ``ml_dtypes.bfloat16`` or float16 for the tables, float32 for the layer
        norm vectors; uint8 (raw blocks) for a token table in a ggml block format."""
        code = self._dtype_code(name)
        if code >= _lib.DTYPE_GGML:
            return np.dtype(np.uint8)
        return numpy_dtype(code)

    def get_parameter(self, name: str) -> np.ndarray:
        """A float32 **copy** of a parameter (``gpt_embedding_get_parameter``): bfloat16 and
        float16 widened exactly, a quantized table dequantized bit for bit as ggml does."""
        self._check_name(name)
        return self._copy(name, _lib.lib.gpt_embedding_get_parameter)

    def is_mapped(self, name: str) -> bool:
        """Whether a parameter's values live in a private mapping of the checkpoint file
        (:meth:`from_pretrained` with ``mmap=True``; ``gpt_embedding_parameter_mapped``) or
        in the layer's own memory. Writes to a mapped table never reach the file."""
        self._check_name(name)
        mapped = ctypes.c_int()
        self._access.read(_lib.call, _lib.lib.gpt_embedding_parameter_mapped, self._handle.get(), _PARAMS[name],
                          ctypes.byref(mapped))
        return bool(mapped.value)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """**Copies** of the parameters in their stored dtype (float32; the tables of a
        bfloat16 or float16 layer as ``ml_dtypes.bfloat16`` / float16 arrays), keyed as
        :meth:`parameter_names`; the layer norm vectors have shape [embed_dim], the tables
        [rows, embed_dim]."""
        return {name: self._parameter_copy(name) for name in self.parameter_names()}

    def _parameter_copy(self, name: str) -> np.ndarray:
        if self._dtype_code(name) == _lib.DTYPE_F32:
            return self._copy(name, _lib.lib.gpt_embedding_get_parameter)

        def copy() -> np.ndarray:  # the stored bits, copied as they are (no conversion)
            a, _ = self._typed_data(name)
            return a.copy()
        return self._access.write(copy)

    def _typed_data(self, name: str) -> Tuple[np.ndarray, _View]:
        """An array over a parameter's storage in its dtype (``gpt_embedding_parameter_data_typed``)
        and its holder. The caller holds the write lock (handing out the address needs
        exclusive access)."""
        data, code, rows, cols = ctypes.c_void_p(), ctypes.c_int(), ctypes.c_int64(), ctypes.c_int64()
        _lib.call(_lib.lib.gpt_embedding_parameter_data_typed, self._handle.get(), _PARAMS[name], ctypes.byref(data),
                  ctypes.byref(code), ctypes.byref(rows), ctypes.byref(cols))
        block = _lib.GGML_BLOCKS.get(code.value - _lib.DTYPE_GGML)
        if block is not None:
            # Raw blocks: rows of cols / block size blocks.
            _, size, nbytes = block
            holder = _View(self, data.value, (rows.value, cols.value // size * nbytes), np.dtype(np.uint8).str)
            return np.asarray(holder), holder
        if code.value not in DTYPE_NAMES:
            raise GPTEmbeddingStateError(f"{name}: the library reports dtype {code.value}, unknown to this package", 0)
        return view_array(self, data.value, _shape_of(name, rows.value, cols.value), code.value)

    def grads(self) -> Dict[str, np.ndarray]:
        """**Copies** of the gradients, with the keys of :meth:`state_dict` (zeros before
        the first backward; a frozen table, :meth:`frozen_parameter_names`, has none)."""
        frozen = self.frozen_parameter_names()
        return {name: self._copy(name, _lib.lib.gpt_embedding_get_gradient)
                for name in self.parameter_names() if name not in frozen}

    def _copy(self, name: str, fn: Callable[..., int]) -> np.ndarray:
        a = np.empty(self._shape(name), dtype=np.float32)
        self._access.read(_lib.call, fn, self._handle.get(), _PARAMS[name], fptr(a), a.size)
        return a

    def load_state_dict(self, state: Dict[str, ArrayLike], strict: bool = True) -> None:
        """Copies parameters in (``gpt_embedding_set_parameter``). Values may be any real
        dtype: float64 (and integers, lists) is converted to float32 by numpy, bfloat16
        (``ml_dtypes``) and float16 are widened to float32 exactly; the library then rounds
        them to the stored dtype, to nearest even, for a bfloat16 or float16 table. With
        ``strict`` (default) the keys must be exactly :meth:`parameter_names`
        (``KeyError`` otherwise); without it unknown keys are ignored and missing ones left
        as they are. Every shape is checked before anything is written (``ValueError``)."""
        names = self.parameter_names()
        unknown = [k for k in state if k not in names]
        missing = [k for k in names if k not in state]
        if strict and (unknown or missing):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unknown}")
        arrays = {}
        for name in names:
            if name in state:
                value = np.asarray(state[name])
                if value.dtype.kind not in "fiu" and array_dtype_code(value) != _lib.DTYPE_BF16:
                    raise ValueError(f"{name} must hold real numbers, got dtype {value.dtype}")
                arrays[name] = float_array(np.ascontiguousarray(value, dtype=np.float32), name, self._shape(name))
        for name, a in arrays.items():
            self._access.write(_lib.call, _lib.lib.gpt_embedding_set_parameter, self._handle.get(), _PARAMS[name],
                               fptr(a), a.size)

    def parameter(self, name: str) -> np.ndarray:
        """A writeable **view** of a parameter in its stored dtype
        (``gpt_embedding_parameter_data_typed``, no copy: float32, ``ml_dtypes.bfloat16`` or
        float16): writing to it changes the layer (tie the token table to an output head,
        run an optimizer in place; values written to a 16-bit view are numpy's own casts).
        For a mapped table (:meth:`from_pretrained` with ``mmap=True``) writes make private
        copies of the pages and never reach the file. The array's ``.base`` chain keeps
        this layer alive, so the view never outlives the memory; :meth:`close` refuses while
        views exist."""
        self._check_name(name)

        def get() -> np.ndarray:
            a, holder = self._typed_data(name)
            self._views.add(holder)
            return a
        return self._access.write(get)

    def gradient(self, name: str) -> np.ndarray:
        """A writeable **view** of a gradient, always float32 (``gpt_embedding_gradient_data``;
        allocates the gradients if no backward ran yet). Backward adds into this memory, so
        an output head tied to the token table can add its own gradient here too."""
        return self._view(name, _lib.lib.gpt_embedding_gradient_data)

    def named_parameters(self) -> List[Tuple[str, np.ndarray, np.ndarray]]:
        """``(name, parameter view, gradient view)`` for every parameter: what an optimizer
        needs, e.g. ``for _, p, g in layer.named_parameters(): p -= lr * g``."""
        return [(name, self.parameter(name), self.gradient(name)) for name in self.parameter_names()]

    def _view(self, name: str, fn: Callable[..., int]) -> np.ndarray:
        shape = self._shape(name)
        data, n = _lib.c_float_p(), ctypes.c_int64()
        self._access.write(_lib.call, fn, self._handle.get(), _PARAMS[name], ctypes.byref(data), ctypes.byref(n))
        if n.value != int(np.prod(shape)):
            raise GPTEmbeddingStateError(f"{name}: the library reports {n.value} floats for shape {list(shape)}", 0)
        holder = _View(self, ctypes.cast(data, ctypes.c_void_p).value, shape)
        self._views.add(holder)
        return np.asarray(holder)

    def touched_rows(self) -> np.ndarray:
        """The token rows (int32, ascending) whose gradient backward wrote since the last
        :meth:`zero_grad`: a sparse optimizer can update just these rows."""
        def query() -> np.ndarray:
            n = ctypes.c_int64()
            _lib.call(_lib.lib.gpt_embedding_touched_rows, self._handle.get(), None, 0, ctypes.byref(n))
            rows = np.empty(n.value, dtype=np.int32)
            _lib.call(_lib.lib.gpt_embedding_touched_rows, self._handle.get(), rows.ctypes.data_as(_lib.c_int32_p),
                      rows.size, ctypes.byref(n))
            return rows
        return self._access.read(query)

    def memory_bytes(self) -> int:
        """Bytes the layer owns now: tables, gradients (once allocated), training state."""
        n = ctypes.c_int64()
        self._access.read(_lib.call, _lib.lib.gpt_embedding_sizeof, self._handle.get(), ctypes.byref(n))
        return n.value

    # -- weights in and out (library functions beyond the 0.1.0 header) ---------------

    def load_safetensors(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Loads the tables (and the layer norm, if present) from a safetensors file: the
        library's names or Hugging Face GPT-2's (``wte.weight``, ``wpe.weight``, with or
        without ``transformer.``); F32, F16 or BF16. All or nothing: a bad file raises
        ``ValueError`` naming the tensor and the problem, ``OSError`` when the file cannot
        be read) and changes nothing. Optimizer state saved with
        ``save_safetensors(..., optimizer=True)`` is restored too (moments, master weights,
        step counts), so that :class:`~gpt_embedding.AdamW` resumes bit for bit; a parameter
        whose state the file lacks keeps its state (a 16-bit table's master weights are
        re-taken from the loaded table)."""
        self._access.write(_lib.call, _optional("gpt_embedding_load_safetensors"), self._handle.get(),
                           _path(path))

    def save_safetensors(self, path: Union[str, "os.PathLike[str]"], gpt2_names: bool = False,
                         optimizer: bool = False) -> None:
        """Saves the parameters as safetensors, each in its stored dtype (a bfloat16 table
        stays BF16, a float16 one F16; the layer norm vectors are F32), readable by the
        official ``safetensors`` package and torch (the tables as ``wte.weight`` /
        ``wpe.weight`` with ``gpt2_names``). The file is written to a temporary name and
        renamed, so a failure leaves no partial file.

        With ``optimizer=True`` the AdamW state is saved too (``GPT_EMBEDDING_SAVE_OPTIMIZER``:
        tensors ``optimizer.<name>.exp_avg``, ``.exp_avg_sq`` and, for 16-bit tables,
        ``.master``, all F32; the step counts in the header's metadata), and
        :meth:`load_safetensors` restores it, so training resumes bit for bit. The
        hyperparameters (``param_groups``) are not in the file: they belong to the code that
        builds the :class:`~gpt_embedding.AdamW`."""
        if not isinstance(optimizer, (bool, np.bool_)):
            raise TypeError(f"optimizer must be True or False, got {optimizer!r}")
        flags = (_lib.SAVE_GPT2_NAMES if gpt2_names else 0) | (_lib.SAVE_OPTIMIZER if optimizer else 0)
        self._access.read(_lib.call, _optional("gpt_embedding_save_safetensors"), self._handle.get(),
                          _path(path), flags)

    def save_gguf(self, path: Union[str, "os.PathLike[str]"], table_type: str = "keep") -> None:
        """Saves the layer as a GGUF file that llama.cpp and the ``gguf`` package read
        (``gpt_embedding_save_gguf``): ``token_embd.weight`` in ``table_type``, the learned
        position table, BLOOM's ``token_embd_norm`` when the layer norm applies by default,
        and the ``general.architecture`` whose input stage is this layer's (``gpt2``,
        ``bloom``, ``gemma``, ``granite`` or ``llama``; a layer none describes, e.g.
        sinusoidal positions, raises ``ValueError``).

        ``table_type``: ``"keep"`` (the stored dtype, or a quantized table's blocks
        unchanged), ``"f32"``, ``"f16"``, ``"bf16"``, or ``"q8_0"``, ``"q4_0"``, ``"q4_1"``,
        ``"q5_0"``, ``"q5_1"``: quantized byte for byte as ``gguf.quants.quantize`` does
        (``embed_dim`` a multiple of 32, finite values). Dropout, the padding row and
        optimizer state are not part of a GGUF file. The file is written to a temporary
        name and renamed, so a failure leaves no partial file."""
        if not isinstance(table_type, str) or table_type not in _lib.GGUF_TABLE_TYPES:
            raise ValueError(f"table_type = {table_type!r}: expected one of {', '.join(map(repr, _lib.GGUF_TABLE_TYPES))}")
        self._access.read(_lib.call, _optional("gpt_embedding_save_gguf"), self._handle.get(), _path(path),
                          _lib.GGUF_TABLE_TYPES[table_type], 0)

    # -- lifetime ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return not self._handle.value

    def close(self) -> None:
        """Frees the C layer now. Raises ``GPTEmbeddingStateError`` while parameter or
        gradient views are alive (they point into its memory); closing twice is fine. Any
        later call raises ``GPTEmbeddingStateError("the layer is closed")``."""
        def free() -> None:
            if len(self._views):
                raise GPTEmbeddingStateError(
                    f"cannot close: {len(self._views)} parameter/gradient view(s) still point into this layer; "
                    "delete them first", 7)
            self._hv = 0
            self._handle.free()
        self._access.write(free)

    def __enter__(self) -> "GPTEmbedding":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            try:
                handle.free()  # views keep the layer alive, so none exists here
            except Exception:  # noqa: BLE001 - interpreter shutdown may have torn down _lib
                pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"training={self.training}"
        return f"GPTEmbedding({self._config!r}, {state})"


def _shape_of(name: str, rows: int, cols: int) -> Tuple[int, ...]:
    """The numpy shape of a parameter: [cols] for the layer norm vectors."""
    return (cols,) if name.startswith("layer_norm") else (rows, cols)


def _open_options(dtype: Any, mmap: Any, overrides: Dict[str, Any]) -> _lib.OpenOptions:
    """``gpt_embedding_open_options`` for :meth:`GPTEmbedding.from_pretrained`: the
    library's defaults (``gpt_embedding_open_options_init``) with the given fields changed.
    Python checks only what the C fields cannot hold (and that ``dropout`` and
    ``layer_norm_eps`` are not negative: a negative value is the C spelling of "from
    config.json", which Python spells ``None``); the library checks the values."""
    for key in overrides:
        if key not in OPEN_OVERRIDES:
            raise TypeError(f"from_pretrained() got an unexpected keyword argument {key!r}; "
                            f"overrides: {', '.join(OPEN_OVERRIDES)}")
    o = _lib.OpenOptions()
    _lib.call(_lib.lib.gpt_embedding_open_options_init, ctypes.byref(o), ctypes.sizeof(o))
    o.dtype = _lib.DTYPE_KEEP if dtype is None else dtype_code(dtype, "dtype")
    if not isinstance(mmap, (bool, np.bool_)):
        raise TypeError(f"mmap must be True or False, got {mmap!r}")
    o.mmap = 1 if mmap else 0
    if "num_threads" in overrides:
        o.num_threads = _int("num_threads", overrides["num_threads"])
    if "seed" in overrides:
        o.seed = _int("seed", overrides["seed"])
    for key in ("dropout", "layer_norm_eps"):  # absent or None: -1, config.json's value
        if overrides.get(key) is not None:
            value = _float(key, overrides[key])
            if value < 0:
                raise ValueError(f"{key} = {value}: must not be negative (None: from config.json)")
            setattr(o, key, value)
    if "scale_embeddings" in overrides:
        o.scale_embeddings = 1 if overrides["scale_embeddings"] else 0
    if "max_seq_len" in overrides:
        o.max_seq_len = _int("max_seq_len", overrides["max_seq_len"])
    if "padding_idx" in overrides and overrides["padding_idx"] is not None:
        padding = _int("padding_idx", overrides["padding_idx"])
        if padding < 0:
            raise ValueError(f"padding_idx = {padding}: must be in [0, vocab_size) or None (no padding row)")
        o.padding_idx = padding
    encoding = overrides.get("position_encoding")
    if overrides.get("use_sinusoidal"):
        if encoding not in (None, "sinusoidal"):
            raise ValueError(f"use_sinusoidal=True contradicts position_encoding={encoding!r}")
        encoding = "sinusoidal"
    if encoding is not None:
        if encoding not in _ENCODINGS:
            raise ValueError(f"position_encoding = {encoding!r}: expected None (from the file), "
                             + ", ".join(repr(k) for k in _ENCODINGS))
        o.position_encoding = _ENCODINGS[encoding]
    if "by_tensor_names" in overrides:
        flag = overrides["by_tensor_names"]
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"by_tensor_names must be True or False, got {flag!r}")
        o.by_tensor_names = 1 if flag else 0
    if overrides.get("shard") is not None:
        shard = overrides["shard"]
        try:
            rank, world = (operator.index(v) for v in shard)
        except (TypeError, ValueError):
            raise TypeError(f"shard must be a pair of integers (rank, world), got {shard!r}") from None
        for name, v in (("shard rank", rank), ("shard world", world)):
            if not -(1 << 31) <= v < (1 << 31):
                raise ValueError(f"{name} = {v}: out of the 32-bit range of the C field")
        o.shard_rank, o.shard_world = rank, world
    if "shard_rule" in overrides:
        rule = overrides["shard_rule"]
        if rule not in SHARD_RULES:
            raise ValueError(f"shard_rule = {rule!r}: expected one of {', '.join(map(repr, SHARD_RULES))}")
        o.shard_rule = SHARD_RULES[rule]
    if overrides.get("family") is not None:
        family = overrides["family"]
        if not isinstance(family, str):
            raise TypeError(f"family must be a model_type string such as 'llama', got {family!r}")
        if "\0" in family:
            raise ValueError(f"family = {family!r}: contains a NUL character")
        o.family = family.encode("utf-8")  # kept alive by the structure until the call returns
    return o


def shard_range(vocab_size: int, rank: int, world: int, rule: str = "balanced") -> Tuple[int, int]:
    """The rows ``(start, end)`` rank ``rank`` of ``world`` holds of a vocabulary of
    ``vocab_size`` rows (``gpt_embedding_shard_range``): contiguous ranges, rank 0 first.
    ``rule`` ``"balanced"`` (sizes differ by at most one row) or ``"megatron"`` (Megatron-LM's
    equal split: ``vocab_size`` must be divisible by ``world``). Raises ``ValueError`` for a
    rank outside ``[0, world)``, more ranks than rows, or a vocabulary the rule cannot split."""
    if rule not in SHARD_RULES:
        raise ValueError(f"rule = {rule!r}: expected one of {', '.join(map(repr, SHARD_RULES))}")
    values = [operator.index(v) for v in (vocab_size, rank, world)]
    for name, v, bits in zip(("vocab_size", "rank", "world"), values, (63, 31, 31)):
        if not -(1 << bits) <= v < (1 << bits):
            raise ValueError(f"{name} = {v}: out of the {bits + 1}-bit range of the C argument")
    start, end = ctypes.c_int64(), ctypes.c_int64()
    _lib.call(_lib.lib.gpt_embedding_shard_range, values[0], values[1], values[2], SHARD_RULES[rule],
              ctypes.byref(start), ctypes.byref(end))
    return start.value, end.value


def _optional(name: str) -> Callable[..., int]:
    if not _lib.has(name):
        raise NotImplementedError(f"{_lib.library_path} does not export {name}")
    return getattr(_lib.lib, name)
