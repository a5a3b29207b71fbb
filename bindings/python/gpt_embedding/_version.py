"""The package version: the one place it is written (pyproject.toml reads it from here).

It follows the C library's version (``GPT_EMBEDDING_VERSION_STRING`` in
``include/gpt_embedding.h``); the loader refuses a library whose major version differs.
"""

__version__ = "0.6.0"
