"""A store's files in tests that inspect them: on disk (local backend only), or through its backend."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from group_store.storage import Storage


class _Located(Protocol):
    @property
    def root_path(self) -> Path | None: ...


def root_of(view: _Located) -> Path:
    """``view.root_path``, which these tests know is local (a store on ``tmp_path``)."""
    root = view.root_path
    assert root is not None, "a local store was expected"
    return root


class _Stored(Protocol):
    @property
    def storage(self) -> Storage: ...

    @property
    def _directory(self) -> str: ...


def stored(view: _Stored, name: str) -> bytes | None:
    """The bytes of file ``name`` in ``view``'s directory, read through its backend (any backend)."""
    return view.storage.read(view._directory, name)


def store_bytes(view: _Stored, name: str, data: bytes) -> None:
    """Replace file ``name`` in ``view``'s directory with ``data`` through its backend (any backend)."""
    view.storage.write(view._directory, name, data, durable=False)
