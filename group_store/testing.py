"""Helpers for testing code that uses group_store."""

from __future__ import annotations

from datetime import timedelta

from .tools._snapshot import StoreSnapshot as StoreSnapshot
from .tools._snapshot import UnmatchedMaskWarning as UnmatchedMaskWarning
from .tools._snapshot import remove_snapshot as remove_snapshot
from .tools._snapshot import snapshot_directory_name as snapshot_directory_name
from .tools._snapshot import unused_snapshots as unused_snapshots


class FakeClock:
    """A clock for ``clock=``: time stands still until ``advance()`` moves it.

    Example::

        clock = FakeClock()
        store = Store(tmp_path, clock=clock)
        store.save("k", 1, ttl=60)
        clock.advance(61)
        assert not store.exists("k")
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float | timedelta) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
