"""Helpers for testing code that uses group_store, and backends of its storage seam.

``FakeClock`` stands time still for TTL tests; ``StorageContract`` is the storage seam's
conformance suite (a pytest class to subclass; it needs pytest and hypothesis);
``UnmatchedMaskWarning`` is what a snapshot mask that matched nothing warns. The names
are imported on first use (PEP 562): importing this package loads neither pytest nor
any store module.
"""

import importlib as _importlib
import sys as _sys
import typing as _typing

if _typing.TYPE_CHECKING:
    from ..tools._snapshot import StoreSnapshot as StoreSnapshot
    from ..tools._snapshot import UnmatchedMaskWarning as UnmatchedMaskWarning
    from ..tools._snapshot import remove_snapshot as remove_snapshot
    from ..tools._snapshot import snapshot_directory_name as snapshot_directory_name
    from ..tools._snapshot import unused_snapshots as unused_snapshots
    from ._clock import FakeClock as FakeClock
    from ._storage_contract import StorageContract as StorageContract

_EXPORTS = {
    "FakeClock": "._clock",
    "StorageContract": "._storage_contract",
    "StoreSnapshot": "..tools._snapshot",
    "UnmatchedMaskWarning": "..tools._snapshot",
    "remove_snapshot": "..tools._snapshot",
    "snapshot_directory_name": "..tools._snapshot",
    "unused_snapshots": "..tools._snapshot",
}

__all__ = [
    "FakeClock",
    "StorageContract",
    "StoreSnapshot",
    "UnmatchedMaskWarning",
    "remove_snapshot",
    "snapshot_directory_name",
    "unused_snapshots",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "StorageContract" and __name__ + module not in _sys.modules:
        # The suite's assertions should explain themselves when a backend fails it; pytest
        # rewrites a module's asserts only if told before the module is first imported.
        import pytest

        pytest.register_assert_rewrite(__name__ + module)
    return getattr(_importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
