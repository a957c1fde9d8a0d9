"""The local directory of a store in tests that inspect its files on disk (local backend only)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class _Located(Protocol):
    @property
    def root_path(self) -> Path | None: ...


def root_of(view: _Located) -> Path:
    """``view.root_path``, which these tests know is local (a store on ``tmp_path``)."""
    root = view.root_path
    assert root is not None, "a local store was expected"
    return root
