"""Checking and converting numpy arguments before they reach the C API."""
from __future__ import annotations

import ctypes
import sys
from typing import Any, Callable, Optional, Tuple

import numpy as np

from . import _lib

# ---------------------------------------------------------------------------------------
# Element types (enum gpt_embedding_dtype)
# ---------------------------------------------------------------------------------------

#: The dtype names the package accepts and reports -> ``enum gpt_embedding_dtype``.
DTYPES = {"float32": _lib.DTYPE_F32, "bfloat16": _lib.DTYPE_BF16, "float16": _lib.DTYPE_F16}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
_ACCEPTED = ('"float32", "bfloat16" or "float16" (or np.float32, ml_dtypes.bfloat16, np.float16 '
             'and their np.dtype)')


def bfloat16() -> Any:
    """``ml_dtypes.bfloat16``, the numpy bfloat16 of JAX and ONNX, imported on first use (a
    float32-only program never needs it)."""
    try:
        import ml_dtypes
    except ImportError:
        raise ImportError("bfloat16 arrays need the ml_dtypes package (the numpy bfloat16 of JAX and ONNX): "
                          "pip install ml_dtypes") from None
    return ml_dtypes.bfloat16


def _code_of_numpy(dt: np.dtype) -> Optional[int]:
    """The enum value of a numpy dtype, or None when it is not one of the three (native byte
    order only: a big-endian float32 is not what the library reads)."""
    if dt == np.float32:
        return _lib.DTYPE_F32
    if dt == np.float16:
        return _lib.DTYPE_F16
    if dt.name == "bfloat16" and dt == np.dtype(bfloat16()):
        return _lib.DTYPE_BF16
    return None


def dtype_code(value: Any, name: str) -> int:
    """``enum gpt_embedding_dtype`` of a dtype argument: one of the names of :data:`DTYPES`
    or a numpy dtype (or type) of those. Anything else raises ValueError naming the value
    and the accepted ones (``TypeError`` is kept for non-dtype objects numpy rejects too)."""
    if isinstance(value, str):
        if value in DTYPES:
            return DTYPES[value]
        raise ValueError(f"{name} = {value!r} is not a supported dtype: expected {_ACCEPTED}")
    code = None
    if value is not None and not isinstance(value, (bool, int, float)):
        try:
            dt = np.dtype(value)
        except TypeError:
            dt = None
        if dt is not None:
            code = _code_of_numpy(dt)
    if code is None:
        raise ValueError(f"{name} = {value!r} is not a supported dtype: expected {_ACCEPTED}")
    return code


def dtype_name(value: Any, name: str) -> str:
    """The canonical name (``"float32"``, ``"bfloat16"``, ``"float16"``) of a dtype argument."""
    return DTYPE_NAMES[dtype_code(value, name)]


def numpy_dtype(code: int) -> np.dtype:
    """The numpy dtype of an ``enum gpt_embedding_dtype`` value."""
    if code == _lib.DTYPE_F32:
        return np.dtype(np.float32)
    if code == _lib.DTYPE_F16:
        return np.dtype(np.float16)
    if code == _lib.DTYPE_BF16:
        return np.dtype(bfloat16())
    raise ValueError(f"the library reports dtype {code}, which this package does not know")


def array_dtype_code(a: np.ndarray) -> Optional[int]:
    """The enum value of an array's dtype, or None when the library cannot take it."""
    return _code_of_numpy(a.dtype)


def ids_array(value: Any, name: str) -> np.ndarray:
    """int32 or int64, C-contiguous, 1-D or 2-D. C-contiguous int32 and int64 arrays pass
    through untouched (no copy); other integer dtypes, strided arrays (e.g. ``x[:, :-1]``)
    and lists are converted (a copy). Floats, bools and anything else raise ValueError."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            raise ValueError(f"{name} must be an integer array (int32 or int64), got dtype {value.dtype}")
        if value.dtype != np.int32 and value.dtype != np.int64:  # also non-native byte order
            value = _to_int64(value, name)
        elif not value.flags.c_contiguous:
            value = np.ascontiguousarray(value)
    else:
        try:
            value = np.asarray(value)
        except (ValueError, OverflowError) as e:  # ragged lists, ints beyond 64 bits
            raise ValueError(f"{name} must be a rectangular [batch, seq] array of integers: {e}") from None
        if value.size and value.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integers, got {value.dtype}")
        value = _to_int64(value, name) if value.size else np.ascontiguousarray(value, dtype=np.int64)
    if value.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape [batch, seq] (or [seq]), got {list(value.shape)}")
    return value


def _to_int64(value: np.ndarray, name: str) -> np.ndarray:
    """A C-contiguous int64 copy of an integer array. Unsigned values beyond int64 cannot
    be ids or positions of any table: they raise IndexError instead of wrapping around."""
    if value.dtype.kind == "u" and value.dtype.itemsize >= 8 and value.size:
        too_big = np.argwhere(value > np.iinfo(np.int64).max)
        if too_big.size:
            where = ", ".join(str(int(i)) for i in too_big[0])
            raise IndexError(f"{name}: value {int(value[tuple(too_big[0])])} at [{where}] is out of range")
    return np.ascontiguousarray(value, dtype=np.int64)


def int64_arg(value: Any, name: str) -> int:
    """A Python integer argument that goes to an ``int64_t`` parameter: ctypes would
    silently wrap values outside the 64-bit range, so they raise here."""
    import operator
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if not -(1 << 63) <= v < (1 << 63):
        raise ValueError(f"{name} = {v} is out of the 64-bit range")
    return v


def float_array(value: Any, name: str, shape: Optional[Tuple[int, ...]] = None) -> np.ndarray:
    """float32, C-contiguous, of `shape` when given. Lists are converted; numpy arrays must
    already be float32 (no silent change of precision); strided ones are copied."""
    if isinstance(value, np.ndarray):
        if value.dtype != np.float32:
            raise ValueError(f"{name} must be float32, got {value.dtype}; use .astype(np.float32)")
        if not value.flags.c_contiguous:
            value = np.ascontiguousarray(value)
    else:
        value = np.ascontiguousarray(value, dtype=np.float32)
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(value.shape)}")
    return value


def typed_array(value: Any, name: str, shape: Optional[Tuple[int, ...]] = None) -> Tuple[np.ndarray, int]:
    """An input the library reads in its own dtype: a float32, bfloat16 (ml_dtypes) or
    float16 numpy array (strided ones are copied, keeping the dtype), or nested lists (made
    float32). Returns the C-contiguous array and its ``enum gpt_embedding_dtype``. Other
    dtypes raise ValueError: nothing changes precision silently."""
    if isinstance(value, np.ndarray):
        code = array_dtype_code(value)
        if code is None:
            raise ValueError(f"{name} must be float32, bfloat16 or float16, got {value.dtype}; "
                             "use .astype(np.float32)")
        if not value.flags.c_contiguous:
            value = np.ascontiguousarray(value)
    else:
        value, code = np.ascontiguousarray(value, dtype=np.float32), _lib.DTYPE_F32
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(value.shape)}")
    return value, code


def out_array(out: np.ndarray, shape: Tuple[int, ...], code: int = _lib.DTYPE_F32) -> np.ndarray:
    """A caller's output array: of the dtype ``code``, C-contiguous, writeable, exactly
    `shape`."""
    if not isinstance(out, np.ndarray):
        raise ValueError("out must be a numpy array")
    want = DTYPE_NAMES[code]
    if array_dtype_code(out) != code or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writeable, C-contiguous {want} array, got a"
                         f"{'' if out.flags.writeable else ' read-only'}"
                         f"{'' if out.flags.c_contiguous else ' strided'} {out.dtype} array")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out must have shape {list(shape)}, got {list(out.shape)}")
    return out


def _address_reader() -> Callable[[np.ndarray], int]:
    """The fastest correct way to read an array's data address as an int.

    ``a.ctypes.data`` builds a helper object and ``a.__array_interface__`` a dict (1-2 µs
    each, most of a decode step's Python overhead); on CPython the address is the first
    field after the object header of numpy's ``PyArrayObject_fields`` (``char *data``, the
    field ``PyArray_DATA`` reads in every compiled extension, so numpy's ABI keeps it
    there), read with one ``c_void_p.from_address`` (~0.2 µs). The offset is checked at
    import against ``a.ctypes.data`` on arrays of several kinds; anywhere it does not hold
    (another interpreter, another layout) the reader is ``a.ctypes.data``."""
    def slow(a: np.ndarray) -> int:
        return a.ctypes.data

    if sys.implementation.name != "cpython":
        return slow
    offset = object.__basicsize__  # PyObject_HEAD (16 bytes; more on free-threaded builds)
    from_address = ctypes.c_void_p.from_address

    def fast(a: np.ndarray) -> int:
        return from_address(id(a) + offset).value

    base = np.arange(64, dtype=np.float64).reshape(8, 8)
    probes = [np.empty(3, np.float32), base, base[1:, ::2], base.T, base[3], np.arange(10, dtype=np.int32)[2:],
              np.frombuffer(bytearray(32), np.int64), np.empty((2, 0), np.int64)]
    try:
        if all(fast(p) == p.ctypes.data for p in probes):
            return fast
    except Exception:  # noqa: BLE001 - any surprise: the documented way
        pass
    return slow


#: ``address(a)``: the data address of a numpy array as an int (see :func:`_address_reader`).
address: Callable[[np.ndarray], int] = _address_reader()

#: Outputs smaller than this many bytes are allocated with ``np.empty`` (16-byte aligned,
#: ~0.5 µs); larger ones with :func:`aligned_empty` (64-byte aligned, a few µs), where the
#: library's streaming stores pay off.
ALIGNED_MIN_BYTES = 1 << 16


def fptr(a: np.ndarray) -> "ctypes._Pointer[ctypes.c_float]":
    return a.ctypes.data_as(_lib.c_float_p)


def iptr(a: np.ndarray) -> "ctypes._Pointer[Any]":
    return a.ctypes.data_as(_lib.c_int32_p if a.dtype == np.int32 else _lib.c_int64_p)


class _View:
    """Exposes library memory to numpy. numpy keeps this object as the array's base, and it
    keeps the owning layer alive, so a view can never outlive the memory it shows.
    ``typestr`` is numpy's for float32 and float16; bfloat16, which the array interface
    cannot name, is exposed as uint16 and re-viewed (the re-view's base chain still ends
    here)."""

    def __init__(self, owner: object, address: int, shape: Tuple[int, ...], typestr: str = "<f4") -> None:
        self.owner = owner
        self.__array_interface__ = {"data": (address, False), "shape": shape, "typestr": typestr, "version": 3}


def view_array(owner: object, address: int, shape: Tuple[int, ...], code: int) -> Tuple[np.ndarray, _View]:
    """A numpy array of dtype ``code`` over library memory at ``address``, and its holder."""
    typestr = {_lib.DTYPE_F32: np.dtype(np.float32).str, _lib.DTYPE_F16: np.dtype(np.float16).str,
               _lib.DTYPE_BF16: np.dtype(np.uint16).str}[code]
    holder = _View(owner, address, shape, typestr)
    a = np.asarray(holder)
    return (a.view(bfloat16()) if code == _lib.DTYPE_BF16 else a), holder


def aligned_empty(shape: Tuple[int, ...], alignment: int = 64, dtype: Any = np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array of `dtype` (float32 by default) whose data starts
    on an `alignment`-byte boundary. numpy only guarantees 16 bytes; the library writes large
    outputs with 32-byte streaming stores when the buffer allows it, and falls back to
    slower ones otherwise."""
    dtype = np.dtype(dtype)
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = -address(raw) % alignment
    return raw[start:start + nbytes].view(dtype).reshape(shape)
