"""The storage seam: the only operations group_store performs on stored bytes.

``Storage`` is the contract a backend implements; ``LocalStorage`` keeps a store in a
directory tree, ``MemoryStorage`` in this process's memory, ``S3Storage`` in an
S3-compatible bucket (the ``s3`` extra). Names are imported on first use (PEP 562), so importing the seam's
types loads no backend.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ._base import Kind as Kind
    from ._base import Listing as Listing
    from ._base import Storage as Storage
    from ._base import Tail as Tail
    from ._base import Version as Version
    from ._base import Versioned as Versioned
    from ._local import LocalStorage as LocalStorage
    from ._memory import MemoryStorage as MemoryStorage
    from ._s3 import S3Storage as S3Storage

_EXPORTS = {
    "Kind": "._base",
    "Listing": "._base",
    "Storage": "._base",
    "Tail": "._base",
    "Version": "._base",
    "Versioned": "._base",
    "LocalStorage": "._local",
    "MemoryStorage": "._memory",
    "S3Storage": "._s3",
}

__all__ = ["Kind", "Listing", "LocalStorage", "MemoryStorage", "S3Storage", "Storage", "Tail", "Version", "Versioned"]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(_importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
