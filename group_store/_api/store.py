"""``Store``: the synchronous store, writing directly in the caller's thread."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from .._engine.engine import MISSING, Engine
from .._errors import KeyNotFoundError
from .._format.expiry import Clock
from ..storage._base import Storage
from .composition import open_storage
from .view import Ttl, View

if TYPE_CHECKING:
    import os


class Store(View):
    """A hierarchical JSON file store with blocking methods.

    The same files as ``DataStore``; every method returns when the work is on
    disk (fsynced with ``durable=True``). Safe to share between threads and
    processes: writes take the directory's lock.

    Opened on a local directory (``Store(path)``) or on any backend
    (``Store(storage=...)``): exactly one of the two. ``file_mode`` and ``dir_mode``
    apply to a local directory only.

    Raises (at construction):
        InvalidArgumentError: for both a path and a storage, neither, or anything else.
    """

    def __init__(
        self,
        root_path: str | os.PathLike[str] | None = None,
        durable: bool = False,
        *,
        storage: Storage | None = None,
        clock: Clock = time.time,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
    ) -> None:
        backend = open_storage(root_path, storage, file_mode=file_mode, dir_mode=dir_mode)
        super().__init__(Engine(backend, clock, durable=durable), ())

    @classmethod
    def _sharing(cls, engine: Engine, segments: tuple[str, ...]) -> Store:
        """A ``Store`` on another store's engine (a DataStore's, for ``run_sync``) at ``segments``.

        Built by ``__init__`` on the engine's storage, then given the engine itself: what
        the engine has learned (the format check) is shared, not paid for again per call.
        """
        store = cls(storage=engine.storage, durable=engine.durable, clock=engine.clock)
        store._engine = engine
        store._place(segments)
        return store

    def narrow(self, *keys: str) -> Store:
        """A view of the sub-store under ``keys`` (usable as a context manager), sharing this store's engine.

        Raises:
            InvalidKeyError: for no key, or an empty or non-string one.
        """
        return self._narrowed(keys)

    def save(self, key: str, data: Any, *, ttl: Ttl = None, expires_at: datetime | None = None) -> None:
        """Write ``data`` as the document ``key``; no TTL clears an old expiry.

        Raises:
            SerializationError: if ``data`` cannot be stored faithfully (nothing is written).
            EntryKindError: if ``key`` holds a log.
            InvalidKeyError, InvalidArgumentError: for a bad key, ttl or expires_at.
            StorageError, UnsafeFileError: if the file system refuses (the old value stays).
        """
        loc, payload, expiry = self._document(key, data, ttl, expires_at)
        self._engine.save(loc, payload, expiry)

    def append(self, key: str, items: Sequence[Any], *, max_items: int | None = None) -> None:
        """Append ``items`` to the log ``key`` in one write, keeping the newest ``max_items``.

        Raises:
            SerializationError: if any item cannot be stored (nothing is written).
            EntryKindError: if ``key`` holds a document.
        """
        loc, lines, count = self._lines(key, items, max_items)
        if count:
            self._engine.append(loc, lines, count, max_items)

    def load(self, key: str) -> Any:
        """The document's value, or a log's items as a list.

        Raises:
            KeyNotFoundError: if missing or expired.
            CorruptEntryError: if the file is not valid JSON.
        """
        return self._engine.load(self._location(key))

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``load()`` but returns ``default`` for a missing or expired key."""
        try:
            return self.load(key)
        except KeyNotFoundError:
            return default

    def read(self, key: str, *, last: int | None = None) -> list[Any]:
        """A log's items, oldest first (the newest ``last`` only, if given).

        Raises:
            KeyNotFoundError: if there is no such log. EntryKindError: if it is a document.
        """
        self._check_last(key, last)
        return self._engine.read_log(self._location(key), last)

    def exists(self, key: str) -> bool:
        """True if ``key`` holds a live document or a log."""
        return self._engine.exists(self._location(key))

    def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` if it held a live entry."""
        return self._engine.delete(self._location(key))

    def update(
        self,
        key: str,
        function: Callable[[Any], Any],
        default: Any = MISSING,
        *,
        ttl: Ttl = None,
        expires_at: datetime | None = None,
    ) -> Any:
        """Atomically replace the value with ``function(value)`` and return it.

        Atomic across threads and processes (the directory lock is held while
        ``function`` runs, so keep it short). A missing key starts from a copy of
        ``default``. The expiry is kept unless ``ttl`` or ``expires_at`` is given.
        On storage whose locks are not cheap (S3) it is a compare-and-swap loop
        instead, where ``function`` may run more than once (``Engine.update``).

        Raises:
            KeyNotFoundError: if missing and no ``default``.
            InvalidArgumentError: if ``function`` is async (or returns an awaitable):
                it must be synchronous; nothing is written.
            Whatever ``function`` raises; nothing is written then.
        """
        self._check_update_function(key, function)
        loc = self._location(key)
        expiry = self._update_expiry(key, ttl, expires_at)
        return self._engine.update(loc, function, default, expiry)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this directory's lock, the one every write here takes, for a multi-step change.

        Excludes other threads and processes; re-entrant in one thread (writes in
        the ``with`` body take it again). Waits as long as it takes. Holding two: a
        parent's lock before a child's, never the other way round (the rules are the
        ``Storage`` docstring's).
        """
        with self._engine.lock(self._directory):
            yield

    def keys(self) -> list[str]:
        """The live entry keys at this level, decoded and sorted."""
        return self._engine.keys(self._directory, self._segments)

    def children(self) -> list[str]:
        """The narrowed sub-store names at this level, decoded and sorted."""
        return self._engine.children(self._directory)

    def expires_at(self, key: str) -> datetime | None:
        """When ``key`` expires (aware UTC), or ``None``.

        Raises:
            KeyNotFoundError: if missing or expired.
        """
        return self._as_datetime(self._engine.expires_at(self._location(key)))

    def sweep(self) -> int:
        """Delete expired entries in this subtree (and leftovers of crashes); return how many entries."""
        from .._engine.sweep import sweep  # imported on first use: most processes never sweep

        return sweep(self._engine, self._directory, self._segments)

    def flush(self) -> None:
        """Nothing to wait for: every write has returned when it is on disk (kept for parity with DataStore)."""

    def close(self) -> None:
        """Nothing to release (kept for parity with DataStore)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
