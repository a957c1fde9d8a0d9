"""``DataStore``: the async store with a background write queue (asyncio and trio)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio

from .._engine.engine import MISSING, Engine
from .._errors import KeyNotFoundError
from .._format.codec import decode_document
from .._format.expiry import Clock, is_expired
from .._format.layout import Location
from ..storage._base import Storage
from .composition import open_storage
from .handle import WriteHandle, settled
from .loop import checkpoint
from .store import Store
from .view import Ttl, View
from .writer import DEFAULT_MAX_PENDING_BYTES, Writer, WriterStatistics

if TYPE_CHECKING:
    import os

T = TypeVar("T")


class DataStore(View):
    """A hierarchical JSON file store whose saves return at once and are written in the background.

    ``save()`` and ``append()`` serialize their data immediately (later
    mutation of the object is not stored) and return a ``WriteHandle``: await
    it to know the write is on disk, or ignore it. One writer thread serves the
    store and every view ``narrow()`` makes of it; it is started on the first
    write and needs no ``async with`` (but leaving one, or ``aclose()``, waits for
    every queued write). Reads see queued writes. See ``Writer`` for the queue's
    contract: coalescing, ordering, back-pressure (``max_pending_bytes``, 64 MiB
    by default), close and failure.

    Reads run inline on the event loop thread by default: reading one small
    local file costs a few syscalls, less than the thread hop that would hide
    it (see the README's benchmark). On a file system where a read may stall
    (NFS, a spinning disk under load) pass ``inline_reads=False`` and every
    read takes one worker-thread hop instead.

    Opened on a local directory (``DataStore(path)``) or on any backend
    (``DataStore(storage=...)``): exactly one of the two. ``file_mode`` and
    ``dir_mode`` apply to a local directory only.

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
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        inline_reads: bool = True,
    ) -> None:
        backend = open_storage(root_path, storage, file_mode=file_mode, dir_mode=dir_mode)
        engine = Engine(backend, clock, durable=durable)
        super().__init__(engine, ())
        self._writer = Writer(engine, max_pending_bytes)
        self._owns_writer = True
        self._inline_reads = inline_reads

    def narrow(self, *keys: str) -> DataStore:
        """A view of the sub-store under ``keys``, sharing this store's writer.

        Use it plainly or as ``async with``; leaving the ``async with`` waits for
        every queued write (it does not close the parent store).

        Raises:
            InvalidKeyError: for no key, or an empty or non-string one.
        """
        view = self._narrowed(keys)
        view._owns_writer = False  # the writer (shared by the copy) stays the root store's to close
        return view

    # -- writes ------------------------------------------------------------

    def save(self, key: str, data: Any, *, ttl: Ttl = None, expires_at: datetime | None = None) -> WriteHandle[None]:
        """Queue ``data`` as the document ``key``; returns at once with an awaitable handle.

        ``data`` is serialized now. No TTL clears an old expiry.

        Raises:
            SerializationError: at the call, if ``data`` cannot be stored (nothing is queued).
            InvalidKeyError, InvalidArgumentError: at the call, for a bad key, ttl or expires_at.
            StoreClosedError: after ``aclose()``.
        The handle raises EntryKindError, StorageError or UnsafeFileError if the write fails.
        """
        loc, payload, expiry = self._document(key, data, ttl, expires_at)
        return self._writer.save(loc, payload, expiry)

    def append(self, key: str, items: Sequence[Any], *, max_items: int | None = None) -> WriteHandle[None]:
        """Queue ``items`` for the log ``key`` (one write; the newest ``max_items`` kept).

        Raises:
            SerializationError: at the call, if any item cannot be stored (nothing is queued).
        """
        loc, lines, count = self._lines(key, items, max_items)
        if not count:
            return settled()
        return self._writer.append(loc, lines, count, max_items)

    async def delete(self, key: str) -> bool:
        """Remove ``key`` (in order with queued writes); ``True`` if it held a live entry."""
        loc = self._location(key)
        result: bool = await self._writer.call(partial(self._engine.delete, loc), loc)
        return result

    async def update(
        self,
        key: str,
        function: Callable[[Any], Any],
        default: Any = MISSING,
        *,
        ttl: Ttl = None,
        expires_at: datetime | None = None,
    ) -> Any:
        """Atomically replace the value with ``function(value)`` and return the new value.

        ``function`` runs in the writer thread with the directory lock held,
        after every write issued before; keep it short and non-blocking. Atomic
        across tasks, threads and processes. A missing key starts from a copy of
        ``default``; the expiry is kept unless ``ttl`` or ``expires_at`` is given.
        On storage whose locks are not cheap (S3) it is a compare-and-swap loop
        instead, where ``function`` may run more than once (``Engine.update``).

        Raises:
            KeyNotFoundError: if missing and no ``default``.
            InvalidArgumentError: if ``function`` is async: it must be synchronous
                (checked at the call, before anything is queued; an awaitable result
                is refused too, and nothing is written).
            Whatever ``function`` raises; nothing is written then.
        """
        self._check_update_function(key, function)
        loc = self._location(key)
        expiry = self._update_expiry(key, ttl, expires_at)
        work = partial(self._engine.update, loc, function, default, expiry)
        return await self._writer.call(work, loc)

    async def sweep(self) -> int:
        """Delete expired entries in this subtree (and crash leftovers); return how many entries."""
        from .._engine.sweep import sweep  # imported on first use: most processes never sweep

        count: int = await self._writer.call(partial(sweep, self._engine, self._directory, self._segments))
        return count

    async def run_sync(self, function: Callable[[Store], T]) -> T:
        """Run ``function(store)`` in the writer thread, with a blocking ``Store`` on this view's files.

        It runs after every write issued before it and before any issued after,
        so several reads and writes in ``function`` see no other write of this
        DataStore in between (take ``store.lock()`` inside to exclude other
        processes too). Keep it short: it holds up the write queue.

        Raises:
            Whatever ``function`` raises. StoreClosedError: after ``aclose()``.
        """
        store = Store._sharing(self._engine, self._segments)
        result: T = await self._writer.call(partial(function, store))
        return result

    async def flush(self) -> None:
        """Wait until every save and append issued so far is on disk.

        Raises:
            GroupStoreError: the first write that failed since the last flush and
                whose handle no caller has awaited or inspected (``result()``,
                ``exception()``); the count of others is in its notes. A failure
                already delivered through its handle is not raised again.
        """
        await self._writer.barrier()
        self._raise_failures()

    def _raise_failures(self) -> None:
        failures, dropped = self._writer.take_failures()
        if failures:
            first = failures[0]
            others = len(failures) - 1 + dropped
            if others:
                first.add_note(f"{others} more write(s) failed since the last flush")
            raise first

    async def aclose(self) -> None:
        """Write everything queued and stop the writer (a view only flushes).

        Runs to completion even if cancelled. Further writes raise StoreClosedError.

        Raises:
            GroupStoreError: as ``flush()``: the first unreported failure whose
                handle no caller has awaited or inspected.
        """
        if self._owns_writer:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._writer.close)
            self._raise_failures()
        else:
            await self.flush()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self.aclose()
            return
        # Another error is on its way out: still write everything, but do not mask it
        # (failed writes were logged and their handles hold the errors).
        try:
            await self.aclose()
        except Exception as close_error:
            if exc is not None:
                exc.add_note(f"group_store: writes also failed while closing: {close_error}")

    def statistics(self) -> WriterStatistics:
        """A snapshot of the write queue shared by this store and its views."""
        return self._writer.statistics()

    # -- reads -------------------------------------------------------------

    async def _read(self, function: Callable[..., T], *args: Any) -> T:
        # Inline only where the backend says a read returns in microseconds: on object
        # storage a read is a network round trip, which must not block the event loop.
        if not (self._inline_reads and self._engine.storage.blocking_io_is_cheap):
            return await anyio.to_thread.run_sync(function, *args)
        result = function(*args)
        # Still a checkpoint: a loop of loads lets other tasks run and can be cancelled.
        await checkpoint()
        return result

    async def _settled_document(self, loc: Location) -> tuple[bytes, float | None] | None:
        """Queued document bytes for ``loc``, or ``None`` once disk holds its latest state."""
        pending = self._writer.pending(loc)
        if isinstance(pending, tuple):
            return pending
        if pending is not None:
            await pending
        return None

    async def load(self, key: str) -> Any:
        """The document's value (or a log's items as a list), including queued writes.

        Raises:
            KeyNotFoundError: if missing or expired.
            CorruptEntryError: if the file is not valid JSON.
        """
        loc = self._location(key)
        queued = await self._settled_document(loc)
        if queued is not None:
            if is_expired(queued[1], self._engine.clock()):
                raise self._engine.not_found(loc)
            return decode_document(key, self._engine.storage.locator(loc.directory, loc.document), queued[0])
        return await self._read(self._engine.load, loc)

    async def get(self, key: str, default: Any = None) -> Any:
        """Like ``load()`` but returns ``default`` for a missing or expired key."""
        try:
            return await self.load(key)
        except KeyNotFoundError:
            return default

    async def read(self, key: str, *, last: int | None = None) -> list[Any]:
        """A log's items, oldest first (the newest ``last`` only, if given), including queued appends.

        Raises:
            KeyNotFoundError: if there is no such log. EntryKindError: if it is a document.
        """
        self._check_last(key, last)
        loc = self._location(key)
        await self._settled_document(loc)
        return await self._read(self._engine.read_log, loc, last)

    async def exists(self, key: str) -> bool:
        """True if ``key`` holds a live document or a log (queued writes included)."""
        loc = self._location(key)
        queued = await self._settled_document(loc)
        if queued is not None:
            return not is_expired(queued[1], self._engine.clock())
        return await self._read(self._engine.exists, loc)

    async def expires_at(self, key: str) -> datetime | None:
        """When ``key`` expires (aware UTC), or ``None``.

        Raises:
            KeyNotFoundError: if missing or expired.
        """
        loc = self._location(key)
        queued = await self._settled_document(loc)
        if queued is not None:
            if is_expired(queued[1], self._engine.clock()):
                raise self._engine.not_found(loc)
            return self._as_datetime(queued[1])
        return self._as_datetime(await self._read(self._engine.expires_at, loc))

    async def keys(self) -> list[str]:
        """The live entry keys at this level, decoded and sorted (after queued writes land)."""
        await self._writer.barrier()
        return await self._read(self._engine.keys, self._directory, self._segments)

    async def children(self) -> list[str]:
        """The narrowed sub-store names at this level, decoded and sorted (after queued writes land)."""
        await self._writer.barrier()
        return await self._read(self._engine.children, self._directory)
