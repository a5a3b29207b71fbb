"""Checking and converting numpy arguments before they reach the C API."""
from __future__ import annotations

import ctypes
from typing import Any, Optional, Tuple

import numpy as np

from . import _lib


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


def out_array(out: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """A caller's output array: float32, C-contiguous, writeable, exactly `shape`."""
    if not isinstance(out, np.ndarray):
        raise ValueError("out must be a numpy array")
    if out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable, C-contiguous float32 array")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out must have shape {list(shape)}, got {list(out.shape)}")
    return out


def fptr(a: np.ndarray) -> "ctypes._Pointer[ctypes.c_float]":
    return a.ctypes.data_as(_lib.c_float_p)


def iptr(a: np.ndarray) -> "ctypes._Pointer[Any]":
    return a.ctypes.data_as(_lib.c_int32_p if a.dtype == np.int32 else _lib.c_int64_p)


class _View:
    """Exposes library memory to numpy. numpy keeps this object as the array's base, and it
    keeps the owning layer alive, so a view can never outlive the memory it shows."""

    def __init__(self, owner: object, address: int, shape: Tuple[int, ...]) -> None:
        self.owner = owner
        self.__array_interface__ = {"data": (address, False), "shape": shape, "typestr": np.dtype(np.float32).str, "version": 3}


def aligned_empty(shape: Tuple[int, ...], alignment: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous float32 array whose data starts on an `alignment`-byte
    boundary. numpy only guarantees 16 bytes; the library writes large outputs with 32-byte
    streaming stores when the buffer allows it, and falls back to slower ones otherwise."""
    count = 1
    for n in shape:
        count *= n
    raw = np.empty(count * 4 + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + count * 4].view(np.float32).reshape(shape)
