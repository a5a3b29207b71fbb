"""Loading libgpt_embedding and declaring its C API for ctypes (``include/gpt_embedding.h``).

Every function of the header gets its ``argtypes`` and ``restype`` here, once, from one
table (:data:`SIGNATURES`); nothing else in the package touches ctypes declarations.

Where the library is looked for, in order (the first that loads wins):

1. ``$GPT_EMBEDDING_LIB`` -- a file, or a folder holding ``libgpt_embedding.so``. When it is
   set, nothing else is tried, so an override never silently falls back to another copy.
2. the package folder (``gpt_embedding/libgpt_embedding.so``: the copy that
   ``pip install ./bindings/python`` bundles),
3. the repository's build folder ``.build/release/`` found relative to this file (a
   checkout after ``swift build -c release --product gpt_embedding`` or ``make lib``),
4. the system's search path (``LD_LIBRARY_PATH``, ``ld.so.cache``, ``/usr/lib``...) for
   ``libgpt_embedding.so.<major>`` and ``libgpt_embedding.so`` (``make install``).

If none loads, the error lists every path tried with the reason and what to do. A library
is refused (``OSError``) when its ``gpt_embedding_config`` has another size than
:class:`Config` or its major version differs from the package's.

Configs are filled by the sized entry points (``gpt_embedding_config_init``,
``gpt_embedding_preset``, ``gpt_embedding_layer_config``) with ``ctypes.sizeof(Config)``:
see :func:`default_config`. The library also exports ``gpt_embedding_default_config``,
``gpt_embedding_preset_config`` and ``gpt_embedding_get_config`` with their 0.1 meaning
(they fill the 72-byte struct of the 0.1 and 0.2 headers, for programs built against
those; the 0.3 header spells these names as macros over the sized functions). This
package never calls them.

ctypes' ``CDLL`` releases the GIL for the duration of every call, so layers run in parallel
from Python threads. No maths happens in this package: every number comes from the library.
"""
from __future__ import annotations

import ctypes
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._version import __version__
from .errors import error_for

ENV_VAR = "GPT_EMBEDDING_LIB"
LIB_NAME = "libgpt_embedding.so"
#: The library major version this package is written for (the package version's major).
EXPECTED_MAJOR = int(__version__.split(".")[0])
_HERE = os.path.dirname(os.path.abspath(__file__))
_BUILD_HINT = (
    "Build it from the repository root with `swift build -c release --product gpt_embedding` "
    "(or `make lib`); or `pip install ./bindings/python` after building, which bundles it; "
    f"or set {ENV_VAR} to the library file or the folder that holds it."
)


def candidates(env: Optional[str] = None, package_dir: str = _HERE) -> List[str]:
    """The paths (or bare names, for the system search) tried in order. ``env`` is the
    value of ``$GPT_EMBEDDING_LIB``; when it is set it is the only candidate."""
    if env:
        return [os.path.join(env, LIB_NAME) if os.path.isdir(env) else env]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(package_dir))))
    return [
        os.path.join(package_dir, LIB_NAME),  # bundled by pip install
        os.path.join(repo, ".build", "release", LIB_NAME),  # a checkout after the README's build
        f"{LIB_NAME}.{EXPECTED_MAJOR}",  # make install: the SONAME, via the system search path
        LIB_NAME,
    ]


def load(paths: Sequence[str], env_set: bool = False) -> ctypes.CDLL:
    """Loads the first of ``paths`` that exists and loads; otherwise raises ``OSError``
    listing every path with the reason it failed and what to do."""
    tried: List[str] = []
    for path in paths:
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path}: no such file")
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            where = path if os.sep in path else f"{path} (system search path)"
            tried.append(f"{where}: {e}")
    origin = f" (from {ENV_VAR}, which replaces the default search)" if env_set else ""
    raise OSError(f"libgpt_embedding.so could not be loaded{origin}. Tried:\n  "
                  + "\n  ".join(tried) + "\n" + _BUILD_HINT)


# ---------------------------------------------------------------------------------------
# The header's types and constants
# ---------------------------------------------------------------------------------------

c_float_p = ctypes.POINTER(ctypes.c_float)
c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_int64_p = ctypes.POINTER(ctypes.c_int64)
handle_t = ctypes.c_void_p  # gpt_embedding * (opaque)


class Config(ctypes.Structure):
    """``gpt_embedding_config``: scalar fields only, append-only, ``struct_size`` first.
    Always start from :func:`default_config` (``gpt_embedding_config_init``) or
    ``gpt_embedding_preset`` so ``struct_size`` is right."""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("position_encoding", ctypes.c_int32),
        ("vocab_size", ctypes.c_int64),
        ("embed_dim", ctypes.c_int64),
        ("max_seq_len", ctypes.c_int64),
        ("padding_idx", ctypes.c_int64),
        ("seed", ctypes.c_uint64),
        ("dropout", ctypes.c_float),
        ("layer_norm_eps", ctypes.c_float),
        ("init_std", ctypes.c_float),
        ("scale_embeddings", ctypes.c_int32),
        ("num_threads", ctypes.c_int32),
        ("weight_dtype", ctypes.c_int32),  # 0.2: in what was tail padding; the size is unchanged
        # 0.3 (Hugging Face model families); the struct grew from 72 to 88 bytes:
        ("token_scale", ctypes.c_float),  # multiplier of token rows; 0 = derived from scale_embeddings
        ("layer_norm", ctypes.c_int32),  # 1: forwards apply the layer norm unless told NO_LAYER_NORM
        ("position_offset", ctypes.c_int64),  # position p reads row p + position_offset
        # 0.4 (vocabulary parallelism); 88 -> 104 bytes:
        ("shard_start", ctypes.c_int64),  # the layer holds rows [shard_start, shard_end) of the table;
        ("shard_end", ctypes.c_int64),  # shard_end 0 = the whole vocabulary
    ]


class OpenOptions(ctypes.Structure):
    """``gpt_embedding_open_options``; fill it with ``gpt_embedding_open_options_init``."""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("dtype", ctypes.c_int32),
        ("mmap", ctypes.c_int32),
        ("num_threads", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("dropout", ctypes.c_float),
        ("layer_norm_eps", ctypes.c_float),
        ("scale_embeddings", ctypes.c_int32),
        ("position_encoding", ctypes.c_int32),
        ("max_seq_len", ctypes.c_int64),
        ("padding_idx", ctypes.c_int64),
        ("by_tensor_names", ctypes.c_int32),  # 0.3: 1 = ignore a folder's config.json
        # 0.4: open one shard of the token table (64 -> 80 bytes)
        ("reserved_0_3", ctypes.c_int32),  # the 0.3 struct's tail padding, named
        ("shard_rank", ctypes.c_int32),
        ("shard_world", ctypes.c_int32),  # 0 = the whole table
        ("shard_rule", ctypes.c_int32),  # enum gpt_embedding_shard_rule
        # 0.6: a model family without config.json (80 -> 88 bytes)
        ("reserved_0_4", ctypes.c_int32),  # the 0.4 struct's tail padding, named
        ("family", ctypes.c_char_p),  # NULL or a model_type ("llama", ...)
    ]


class AdamWOptions(ctypes.Structure):
    """``gpt_embedding_adamw_options`` (64 bytes): scalar fields only, append-only,
    ``struct_size`` first. Always fill it with ``gpt_embedding_adamw_options_init``
    (:func:`default_adamw_options`), then change fields."""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("params", ctypes.c_uint32),  # bit mask of enum gpt_embedding_param: the parameter group
        ("lr", ctypes.c_double),
        ("beta1", ctypes.c_double),
        ("beta2", ctypes.c_double),
        ("eps", ctypes.c_double),
        ("weight_decay", ctypes.c_double),
        ("grad_scale", ctypes.c_double),
        ("decay_params", ctypes.c_uint32),  # bit mask: the parameters weight decay applies to
        ("lazy", ctypes.c_int32),  # 1: only the table rows backward touched
    ]


class Call(ctypes.Structure):
    """``gpt_embedding_call`` (0.5): one forward and its backward, with the state a backward
    needs kept by the caller (``gpt_embedding_forward_call`` / ``gpt_embedding_backward_call``).
    Fill it with ``gpt_embedding_call_init`` (:func:`new_call`), then set the fields. The
    pointer fields are ``c_void_p`` (addresses as integers: ``arr.ctypes.data``)."""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),  # TRAINING, LAYER_NORM, NO_LAYER_NORM
        ("index_dtype", ctypes.c_int32),  # INDEX_I32 / INDEX_I64
        ("reserved", ctypes.c_int32),
        ("ids", ctypes.c_void_p),  # const void *: [batch, seq] of index_dtype
        ("positions", ctypes.c_void_p),  # const void *, or NULL: start_position + t
        ("batch", ctypes.c_int64),
        ("seq", ctypes.c_int64),
        ("start_position", ctypes.c_int64),
        ("dropout_seed", ctypes.c_uint64),
        ("dropout_offset", ctypes.c_uint64),
        ("mean", ctypes.c_void_p),  # float *: [batch * seq], written by a normalising forward
        ("rstd", ctypes.c_void_p),  # float *: [batch * seq]
        # Borrowed tables (NULL: the layer's own), each with its element count.
        ("token_embedding", ctypes.c_void_p),  # const void *: [rows, D] of the table's dtype
        ("token_embedding_len", ctypes.c_int64),
        ("position_embedding", ctypes.c_void_p),  # const void *: [max_seq_len, D]
        ("position_embedding_len", ctypes.c_int64),
        ("layer_norm_weight", ctypes.c_void_p),  # const float *: [D]
        ("layer_norm_weight_len", ctypes.c_int64),
        ("layer_norm_bias", ctypes.c_void_p),  # const float *: [D]
        ("layer_norm_bias_len", ctypes.c_int64),
    ]


class Grads(ctypes.Structure):
    """``gpt_embedding_grads`` (0.5): the caller's float32 gradient buffers for
    ``gpt_embedding_backward_call`` (NULL = not wanted). Fill it with
    ``gpt_embedding_grads_init`` (:func:`new_grads`). Pointers are ``c_void_p``."""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("token_embedding", ctypes.c_void_p),  # float *: [rows, D], +=
        ("token_embedding_len", ctypes.c_int64),
        ("position_embedding", ctypes.c_void_p),  # float *: [max_seq_len, D], +=
        ("position_embedding_len", ctypes.c_int64),
        ("layer_norm_weight", ctypes.c_void_p),  # float *: [D], +=
        ("layer_norm_weight_len", ctypes.c_int64),
        ("layer_norm_bias", ctypes.c_void_p),  # float *: [D], +=
        ("layer_norm_bias_len", ctypes.c_int64),
        ("token_rows", ctypes.c_void_p),  # float *: [batch * seq, D], = (each token's row gradient)
        ("token_rows_len", ctypes.c_int64),
    ]


# gpt_embedding_call.index_dtype: GPT_EMBEDDING_INDEX_I32 / _I64
INDEX_I32, INDEX_I64 = 0, 1
# Flags of gpt_embedding_forward.
TRAINING = 1  # GPT_EMBEDDING_TRAINING
LAYER_NORM = 2  # GPT_EMBEDDING_LAYER_NORM
NO_LAYER_NORM = 4  # GPT_EMBEDDING_NO_LAYER_NORM (0.3): not even when config.layer_norm is 1
# enum gpt_embedding_position_encoding
POSITION_LEARNED, POSITION_SINUSOIDAL, POSITION_NONE = 0, 1, 2
# enum gpt_embedding_dtype; GPT_EMBEDDING_DTYPE_KEEP (gpt_embedding_open_options.dtype)
DTYPE_F32, DTYPE_BF16, DTYPE_F16, DTYPE_KEEP = 0, 1, 2, -1
# gpt_embedding_save_gguf's table types (0.6): GPT_EMBEDDING_GGUF_KEEP and the writable ggml ids
GGUF_TABLE_TYPES = {"keep": -1, "f32": 0, "f16": 1, "bf16": 30, "q8_0": 8, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7}

# GPT_EMBEDDING_DTYPE_GGML (0.6): a token table in ggml's block type t reports DTYPE_GGML + t
DTYPE_GGML = 256
# ggml's block formats a token table may keep: type id -> (name, elements per block, bytes per block)
GGML_BLOCKS = {2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20), 6: ("q5_0", 32, 22), 7: ("q5_1", 32, 24),
               8: ("q8_0", 32, 34), 10: ("q2_k", 256, 84), 11: ("q3_k", 256, 110), 12: ("q4_k", 256, 144),
               13: ("q5_k", 256, 176), 14: ("q6_k", 256, 210), 20: ("iq4_nl", 32, 18), 23: ("iq4_xs", 256, 136)}
# gpt_embedding_open_options.position_encoding: GPT_EMBEDDING_POSITION_FROM_FILE
POSITION_FROM_FILE = -1
# enum gpt_embedding_param
PARAM_ALL, PARAM_TOKEN, PARAM_POSITION, PARAM_LN_WEIGHT, PARAM_LN_BIAS = -1, 0, 1, 2, 3
SAVE_GPT2_NAMES = 1
# enum gpt_embedding_shard_rule
SHARD_BALANCED, SHARD_MEGATRON = 0, 1
SAVE_OPTIMIZER = 2  # GPT_EMBEDDING_SAVE_OPTIMIZER
# GPT_EMBEDDING_PARAMS_ALL (bit mask of every parameter)
PARAMS_ALL = 0xF
# enum gpt_embedding_optimizer_state
STATE_EXP_AVG, STATE_EXP_AVG_SQ, STATE_MASTER = 0, 1, 2

_I = ctypes.c_int
_i64 = ctypes.c_int64

#: name -> (argtypes, restype), in the header's order. Every function of the header is here
#: (the tests check it against the header's prototypes; the 0.1 names the header now spells
#: as macros are not functions of the header, and are deliberately absent).
SIGNATURES: Dict[str, Tuple[List[Any], Any]] = {
    "gpt_embedding_version_number": ([], ctypes.c_uint),
    "gpt_embedding_version_string": ([], ctypes.c_char_p),
    "gpt_embedding_status_string": ([_I], ctypes.c_char_p),
    "gpt_embedding_last_error": ([], ctypes.c_char_p),
    "gpt_embedding_isa": ([], ctypes.c_char_p),
    "gpt_embedding_isa_supported": ([], ctypes.c_char_p),
    "gpt_embedding_config_size": ([], ctypes.c_size_t),
    "gpt_embedding_config_init": ([ctypes.POINTER(Config), ctypes.c_size_t], _I),
    "gpt_embedding_preset": ([ctypes.c_char_p, ctypes.POINTER(Config), ctypes.c_size_t], _I),
    "gpt_embedding_config_validate": ([ctypes.POINTER(Config)], _I),
    "gpt_embedding_config_num_parameters": ([ctypes.POINTER(Config), _I, c_int64_p], _I),
    "gpt_embedding_create": ([ctypes.POINTER(Config), ctypes.POINTER(handle_t)], _I),
    "gpt_embedding_free": ([handle_t], None),
    "gpt_embedding_layer_config": ([handle_t, ctypes.POINTER(Config), ctypes.c_size_t], _I),
    "gpt_embedding_sizeof": ([handle_t, c_int64_p], _I),
    # ids, positions and out as c_void_p: addresses as ints (the fast forward's: they
    # convert fastest) or any ctypes pointer.
    "gpt_embedding_forward": ([handle_t, ctypes.c_void_p, _i64, _i64, ctypes.c_void_p, _i64, ctypes.c_uint32, ctypes.c_void_p, _i64], _I),
    "gpt_embedding_forward_i64": ([handle_t, ctypes.c_void_p, _i64, _i64, ctypes.c_void_p, _i64, ctypes.c_uint32, ctypes.c_void_p, _i64], _I),
    "gpt_embedding_backward": ([handle_t, c_float_p, _i64, _i64], _I),
    "gpt_embedding_forward_typed": ([handle_t, c_int32_p, _i64, _i64, c_int32_p, _i64, ctypes.c_uint32, _I, ctypes.c_void_p, _i64], _I),
    "gpt_embedding_forward_typed_i64": ([handle_t, c_int64_p, _i64, _i64, c_int64_p, _i64, ctypes.c_uint32, _I, ctypes.c_void_p, _i64], _I),
    "gpt_embedding_backward_typed": ([handle_t, _I, ctypes.c_void_p, _i64, _i64], _I),
    "gpt_embedding_zero_grad": ([handle_t], _I),
    "gpt_embedding_touched_rows": ([handle_t, c_int32_p, _i64, c_int64_p], _I),
    "gpt_embedding_num_parameters": ([handle_t, c_int64_p], _I),
    "gpt_embedding_parameter_shape": ([handle_t, _I, c_int64_p, c_int64_p], _I),
    "gpt_embedding_get_parameter": ([handle_t, _I, c_float_p, _i64], _I),
    "gpt_embedding_set_parameter": ([handle_t, _I, c_float_p, _i64], _I),
    "gpt_embedding_get_gradient": ([handle_t, _I, c_float_p, _i64], _I),
    "gpt_embedding_parameter_data": ([handle_t, _I, ctypes.POINTER(c_float_p), c_int64_p], _I),
    "gpt_embedding_parameter_data_typed": ([handle_t, _I, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(_I), c_int64_p, c_int64_p], _I),
    "gpt_embedding_parameter_dtype": ([handle_t, _I, ctypes.POINTER(_I)], _I),
    "gpt_embedding_dtype_name": ([_I], ctypes.c_char_p),
    "gpt_embedding_gradient_data": ([handle_t, _I, ctypes.POINTER(c_float_p), c_int64_p], _I),
    "gpt_embedding_adamw_options_init": ([ctypes.POINTER(AdamWOptions), ctypes.c_size_t], _I),
    "gpt_embedding_adamw_step": ([handle_t, ctypes.POINTER(AdamWOptions)], _I),
    "gpt_embedding_grad_norm_squared": ([handle_t, ctypes.POINTER(ctypes.c_double)], _I),
    "gpt_embedding_optimizer_state_data": ([handle_t, _I, _I, ctypes.POINTER(c_float_p), c_int64_p], _I),
    "gpt_embedding_optimizer_get_step": ([handle_t, _I, c_int64_p], _I),
    "gpt_embedding_optimizer_set_step": ([handle_t, _I, _i64], _I),
    "gpt_embedding_optimizer_reset": ([handle_t], _I),
    "gpt_embedding_sinusoidal_table": ([_i64, _i64, _i64, c_float_p, _i64], _I),
    "gpt_embedding_load_safetensors": ([handle_t, ctypes.c_char_p], _I),
    "gpt_embedding_load_safetensors_buffer": ([handle_t, ctypes.c_void_p, _i64], _I),
    "gpt_embedding_save_safetensors": ([handle_t, ctypes.c_char_p, ctypes.c_uint32], _I),
    "gpt_embedding_save_gguf": ([handle_t, ctypes.c_char_p, ctypes.c_int32, ctypes.c_uint32], _I),
    "gpt_embedding_open_options_init": ([ctypes.POINTER(OpenOptions), ctypes.c_size_t], _I),
    "gpt_embedding_open": ([ctypes.c_char_p, ctypes.POINTER(OpenOptions), ctypes.POINTER(handle_t)], _I),
    "gpt_embedding_parameter_mapped": ([handle_t, _I, ctypes.POINTER(_I)], _I),
    "gpt_embedding_shard_range": ([_i64, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, c_int64_p, c_int64_p], _I),
    "gpt_embedding_forward_partial": ([handle_t, c_int32_p, _i64, _i64, c_int32_p, _i64, ctypes.c_uint32, c_float_p, _i64], _I),
    "gpt_embedding_forward_partial_i64": ([handle_t, c_int64_p, _i64, _i64, c_int64_p, _i64, ctypes.c_uint32, c_float_p, _i64], _I),
    "gpt_embedding_forward_finish": ([handle_t, _i64, _i64, c_float_p, _i64], _I),
    # 0.5: calls with explicit state (pointers as c_void_p: addresses as ints, or byref)
    "gpt_embedding_call_init": ([ctypes.POINTER(Call), ctypes.c_size_t], _I),
    "gpt_embedding_forward_call": ([handle_t, ctypes.POINTER(Call), _I, ctypes.c_void_p, _i64], _I),
    "gpt_embedding_grads_init": ([ctypes.POINTER(Grads), ctypes.c_size_t], _I),
    "gpt_embedding_backward_call": ([handle_t, ctypes.POINTER(Call), _I, ctypes.c_void_p, _i64,
                                     ctypes.POINTER(Grads)], _I),
}

#: Functions a later library may export that this header does not declare; they are
#: declared only when the loaded library has them (see :func:`has`).
OPTIONAL_SIGNATURES: Dict[str, Tuple[List[Any], Any]] = {}


def declare(library: ctypes.CDLL) -> ctypes.CDLL:
    """Sets argtypes and restype of every function; checks the struct size and the version
    before anything else is called (a config of another layout would be misread).
    Raises ``OSError`` for a library this package does not match."""
    missing = [name for name in SIGNATURES if not hasattr(library, name)]
    if missing:
        raise OSError(f"{library._name} is not a matching libgpt_embedding: it does not export "
                      + ", ".join(missing) + ". " + _BUILD_HINT)
    for table, required in ((SIGNATURES, True), (OPTIONAL_SIGNATURES, False)):
        for name, (args, res) in table.items():
            fn = getattr(library, name, None)
            if fn is not None:
                fn.argtypes = args
                fn.restype = res
    size = library.gpt_embedding_config_size()
    if size != ctypes.sizeof(Config):
        raise OSError(f"{library._name}: the library's gpt_embedding_config has {size} bytes, this package's "
                      f"has {ctypes.sizeof(Config)}: the package and the library do not match")
    number = library.gpt_embedding_version_number()
    if number // 10000 != EXPECTED_MAJOR:
        raise OSError(f"{library._name}: library version {library.gpt_embedding_version_string().decode()} "
                      f"has major version {number // 10000}; this package ({__version__}) needs major "
                      f"version {EXPECTED_MAJOR}")
    return library


_env = os.environ.get(ENV_VAR) or None
lib: ctypes.CDLL = declare(load(candidates(_env), env_set=_env is not None))
#: The path of the loaded library.
library_path: str = lib._name


def call(fn: Callable[..., int], *args: Any) -> None:
    """Calls a status-returning function; on failure raises the status's exception with the
    library's message, read on this thread right after the call (each thread has its own
    message, and nothing else calls the library on this thread in between)."""
    status = fn(*args)
    if status != 0:
        message = lib.gpt_embedding_last_error()
        raise error_for(status, message.decode("utf-8", "replace") if message
                        else lib.gpt_embedding_status_string(status).decode("utf-8", "replace"))


def default_config() -> Config:
    """The library's default configuration in a new :class:`Config`
    (``gpt_embedding_config_init`` with ``ctypes.sizeof(Config)``, which sets
    ``struct_size``)."""
    c = Config()
    call(lib.gpt_embedding_config_init, ctypes.byref(c), ctypes.sizeof(c))
    return c


def default_adamw_options() -> AdamWOptions:
    """``torch.optim.AdamW``'s defaults in a new :class:`AdamWOptions`
    (``gpt_embedding_adamw_options_init`` with ``ctypes.sizeof(AdamWOptions)``, which sets
    ``struct_size``)."""
    o = AdamWOptions()
    call(lib.gpt_embedding_adamw_options_init, ctypes.byref(o), ctypes.sizeof(o))
    return o


def preset_config(name: str) -> Config:
    """A named preset in a new :class:`Config` (``gpt_embedding_preset``); raises
    ``ValueError`` with the library's message for an unknown name."""
    c = Config()
    call(lib.gpt_embedding_preset, str(name).encode(), ctypes.byref(c), ctypes.sizeof(c))
    return c


def layer_config(handle: Any) -> Config:
    """A layer's configuration in a new :class:`Config` (``gpt_embedding_layer_config``)."""
    c = Config()
    call(lib.gpt_embedding_layer_config, handle, ctypes.byref(c), ctypes.sizeof(c))
    return c


def new_call() -> Call:
    """A :class:`Call` filled with the library's defaults (``gpt_embedding_call_init`` with
    ``ctypes.sizeof(Call)``, which sets ``struct_size``)."""
    c = Call()
    call(lib.gpt_embedding_call_init, ctypes.byref(c), ctypes.sizeof(c))
    return c


def new_grads() -> Grads:
    """A :class:`Grads` with every pointer NULL (``gpt_embedding_grads_init``)."""
    g = Grads()
    call(lib.gpt_embedding_grads_init, ctypes.byref(g), ctypes.sizeof(g))
    return g


def has(name: str) -> bool:
    """Whether the loaded library exports ``name``."""
    return getattr(lib, name, None) is not None
