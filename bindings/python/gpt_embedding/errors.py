"""Exceptions of the gpt_embedding package.

Every failed library call raises a :class:`GPTEmbeddingError` carrying the library's
status code (``status``, an ``int`` from ``enum gpt_embedding_status``), its name
(``status_name``) and the library's message (``message``, read from
``gpt_embedding_last_error()`` on the calling thread right after the call). The concrete
class also derives from the built-in exception a Python user expects, so both styles of
``except`` work::

    try:
        layer(np.array([[50300]]))
    except IndexError as e:            # like PyTorch for an out-of-range index
        print(e.status, e.message)

=======================================  ==============================================
status                                   raised as
=======================================  ==============================================
``_INVALID_ARGUMENT``, ``_INVALID_CONFIG``,  :class:`GPTEmbeddingValueError` (``ValueError``)
``_SIZE_OVERFLOW``, ``_BUFFER_TOO_SMALL``,
``_BAD_FILE``
``_OUT_OF_RANGE``                        :class:`GPTEmbeddingIndexError` (``IndexError``)
``_OUT_OF_MEMORY``                       :class:`GPTEmbeddingMemoryError` (``MemoryError``)
``_BAD_STATE``, ``_INVALID_HANDLE``      :class:`GPTEmbeddingStateError` (``RuntimeError``)
``_IO``                                  :class:`GPTEmbeddingIOError` (``OSError``)
anything else                            :class:`GPTEmbeddingError` (``RuntimeError``)
=======================================  ==============================================
"""
from __future__ import annotations

__all__ = [
    "GPTEmbeddingError", "GPTEmbeddingValueError", "GPTEmbeddingIndexError", "GPTEmbeddingMemoryError",
    "GPTEmbeddingStateError", "GPTEmbeddingIOError", "STATUS_NAMES", "error_for",
]

#: ``enum gpt_embedding_status`` of the header; the values never change.
STATUS_NAMES = {
    0: "GPT_EMBEDDING_OK",
    1: "GPT_EMBEDDING_ERROR_NULL_POINTER",
    2: "GPT_EMBEDDING_ERROR_INVALID_ARGUMENT",
    3: "GPT_EMBEDDING_ERROR_INVALID_CONFIG",
    4: "GPT_EMBEDDING_ERROR_OUT_OF_RANGE",
    5: "GPT_EMBEDDING_ERROR_SIZE_OVERFLOW",
    6: "GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL",
    7: "GPT_EMBEDDING_ERROR_BAD_STATE",
    8: "GPT_EMBEDDING_ERROR_OUT_OF_MEMORY",
    9: "GPT_EMBEDDING_ERROR_INVALID_HANDLE",
    10: "GPT_EMBEDDING_ERROR_VERSION_MISMATCH",
    11: "GPT_EMBEDDING_ERROR_IO",
    12: "GPT_EMBEDDING_ERROR_BAD_FILE",
    13: "GPT_EMBEDDING_ERROR_UNSUPPORTED_CPU",
}


class GPTEmbeddingError(RuntimeError):
    """A call into libgpt_embedding failed.

    Attributes:
        message: the library's message, naming the function, the bad value and where it is.
        status: the library's status code (a positive ``int``).
        status_name: the symbolic name of ``status``.
    """

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.status_name = STATUS_NAMES.get(status, f"status {status}")

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # picklable although __init__ takes two arguments
        return (type(self), (self.message, self.status))


class GPTEmbeddingValueError(GPTEmbeddingError, ValueError):
    """A bad argument or configuration field (the message names it and its value)."""


class GPTEmbeddingIndexError(GPTEmbeddingError, IndexError):
    """A token id or position outside its table (the message names it and its [b, t])."""


class GPTEmbeddingMemoryError(GPTEmbeddingError, MemoryError):
    """The library could not allocate memory."""


class GPTEmbeddingStateError(GPTEmbeddingError):
    """The call is not allowed in the layer's state (e.g. backward without a training
    forward, or a closed layer)."""


class GPTEmbeddingIOError(GPTEmbeddingError, OSError):
    """A file could not be read or written."""

    def __init__(self, message: str, status: int = 0) -> None:
        GPTEmbeddingError.__init__(self, message, status)

    def __str__(self) -> str:
        return self.message


_CLASSES = {
    2: GPTEmbeddingValueError,
    3: GPTEmbeddingValueError,
    4: GPTEmbeddingIndexError,
    5: GPTEmbeddingValueError,
    6: GPTEmbeddingValueError,
    7: GPTEmbeddingStateError,
    8: GPTEmbeddingMemoryError,
    9: GPTEmbeddingStateError,
    11: GPTEmbeddingIOError,
    12: GPTEmbeddingValueError,
}


def error_for(status: int, message: str) -> GPTEmbeddingError:
    """The exception for a failed call: the class for ``status`` carrying ``message``."""
    return _CLASSES.get(status, GPTEmbeddingError)(message, status)
