"""Test helpers: a Storage that stops an operation between two of its storage calls.

``StoppingStorage`` wraps a real ``LocalStorage`` and raises ``StoppedError`` instead of
performing its n-th mutating call (write, write_many, append, remove), which leaves
on disk exactly what a crash at that step would (the calls before it are complete,
the rest never ran). Because ``StoppedError`` is not an ``OSError``, the store's error
boundary lets it through untranslated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from group_store import Store
from group_store._format.expiry import Clock
from group_store.storage import Storage
from group_store.storage._local import LocalStorage

MUTATING = frozenset({"write", "write_many", "append", "remove"})


class StoppedError(Exception):
    """Raised in place of the mutating call a crash would have prevented."""


class StoppingStorage:
    """Delegates to ``inner``; the mutating call numbered ``stop_at`` (from 0) raises ``StoppedError``.

    ``calls`` counts the mutating calls performed. ``refuse`` maps a storage method
    name to a predicate of its arguments; a call it accepts raises ``PermissionError``
    (an unreadable directory, as chmod 000 would give a non-root user).
    """

    def __init__(self, inner: LocalStorage, stop_at: int | None = None) -> None:
        self._inner = inner
        self.stop_at = stop_at
        self.calls = 0
        self.refuse: dict[str, Callable[..., bool]] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        refuse = self.refuse.get(name)
        if name not in MUTATING and refuse is None:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if refuse is not None and refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied (injected)", self._inner.locator(*args[:1]))
            if name in MUTATING:
                if self.calls == self.stop_at:
                    raise StoppedError(f"stopped before {name}{args[:2]}")
                self.calls += 1
            return attribute(*args, **kwargs)

        return call


# A virtual subclass: it delegates every method (by __getattr__) to a real Storage.
Storage.register(StoppingStorage)


def store_on(storage: Any, clock: Clock) -> Store:
    """A ``Store`` on ``storage`` (non-durable)."""
    return Store(storage=cast(Storage, storage), clock=clock)


def stopping_store(root: Path, clock: Clock, stop_at: int | None = None) -> tuple[Store, StoppingStorage]:
    """A store on ``root`` whose storage stops at mutating call ``stop_at``."""
    storage = StoppingStorage(LocalStorage(root), stop_at)
    return store_on(storage, clock), storage
