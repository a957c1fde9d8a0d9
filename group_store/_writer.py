"""The background write queue shared by a DataStore and all its narrowed views."""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ._engine import Engine
from ._errors import StoreClosedError
from ._handle import WriteHandle
from ._layout import Location

logger = logging.getLogger("group_store")

DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024
_IDLE_SECONDS = 1.0
_MAX_BATCH = 4096


class _Kind(Enum):
    SAVE = "save"
    APPEND = "append"
    CALL = "call"
    BARRIER = "barrier"


class _Op:
    __slots__ = (
        "completion",
        "count",
        "expiry",
        "function",
        "handles",
        "kind",
        "loc",
        "max_items",
        "parts",
        "payload",
    )

    def __init__(self, kind: _Kind, loc: Location | None = None, payload: bytes = b"") -> None:
        self.kind = kind
        self.loc = loc
        self.payload = payload
        self.parts: list[bytes] = [payload]
        self.expiry: float | None = None
        self.count = 0
        self.max_items: int | None = None
        self.function: Callable[[], Any] | None = None
        self.handles: list[WriteHandle[Any]] = []
        # Resolves (never fails) once the op has run; reads wait on it for read-your-writes.
        self.completion: WriteHandle[None] = WriteHandle()


@dataclass(frozen=True)
class WriterStatistics:
    """A snapshot of the write queue (see ``DataStore.statistics()``)."""

    pending_operations: int
    pending_bytes: int
    max_pending_bytes: int
    operations_written: int
    writes_coalesced: int
    unreported_failures: int


class Writer:
    """One background thread that performs a store's writes in order.

    Contract (each clause has a test in tests/test_writer.py):

    - Order: operations run in the order they were issued, except that a save
      to a key whose previous save is still queued replaces that save's bytes
      (coalescing: only the newest bytes are written and every handle of the
      key resolves); appends to one log queued back to back are merged into one
      write. Merged calls return the same handle, so memory grows with the keys
      queued, not with the calls. A delete, update or sweep is a fence: no later
      save is merged into a save issued before it.
    - Read-your-writes: ``pending(loc)`` exposes the newest queued operation of
      a key so reads can serve or wait for it.
    - Back-pressure: queued payload bytes are bounded by ``max_pending_bytes``;
      a save or append that would exceed it blocks its caller until the writer
      has caught up (a single payload larger than the bound is still accepted).
    - Close: ``close()`` stops new writes, performs everything queued and waits
      for it; nothing is cancelled or dropped. Interpreter exit closes every
      writer still open.
    - Failure: a failed write settles its handles with the error and is kept
      for the next ``take_failures()`` (flush); the store keeps working.
    - Threads: the thread starts on the first write and exits after being idle
      for a second, so a forgotten store leaks no thread.
    """

    def __init__(self, engine: Engine, max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES) -> None:
        self._engine = engine
        self._max_pending_bytes = max_pending_bytes
        self._condition = threading.Condition()
        self._queue: deque[_Op] = deque()
        # Invariant: an op is in _mergeable only while it is queued and not yet taken by the thread.
        self._mergeable: dict[tuple[str, str], _Op] = {}
        # Invariant: _latest maps a key to its newest op that has not finished running.
        self._latest: dict[tuple[str, str], _Op] = {}
        self._fences: list[_Op] = []
        self._pending_bytes = 0
        self._failures: list[BaseException] = []
        self._written = 0
        self._coalesced = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        _open_writers.add(self)

    # -- issuing -----------------------------------------------------------

    def _admit(self, size: int) -> None:
        """Wait for room in the queue. Caller holds the condition."""
        if self._closed:
            raise StoreClosedError("the DataStore is closed; no more writes")
        if threading.current_thread() is self._thread:
            return  # the writer never waits for itself
        while self._pending_bytes and self._pending_bytes + size > self._max_pending_bytes:
            self._start_thread()
            self._condition.wait()
            if self._closed:
                raise StoreClosedError("the DataStore is closed; no more writes")

    def _enqueue(self, op: _Op) -> None:
        self._queue.append(op)
        self._pending_bytes += len(op.payload)
        if op.loc is not None:
            self._latest[(op.loc.directory, op.loc.name)] = op
        self._start_thread()
        self._condition.notify_all()

    def save(self, loc: Location, payload: bytes, expiry: float | None) -> WriteHandle[None]:
        """Queue a document save (coalesced with a queued save of the same key)."""
        key = (loc.directory, loc.name)
        with self._condition:
            self._admit(len(payload))
            op = self._mergeable.get(key)
            if op is not None and op.kind is _Kind.SAVE:
                self._pending_bytes += len(payload) - len(op.payload)
                op.payload, op.expiry = payload, expiry
                op.parts = [payload]
                self._coalesced += 1
                # Saves merged into one write share its handle: a burst of saves to K keys
                # holds K handles, not one per save (memory stays bounded by the keys).
                return op.handles[0]
            handle: WriteHandle[None] = WriteHandle()
            op = _Op(_Kind.SAVE, loc, payload)
            op.expiry = expiry
            op.handles.append(handle)
            self._mergeable[key] = op
            self._enqueue(op)
        return handle

    def append(self, loc: Location, lines: bytes, count: int, max_items: int | None) -> WriteHandle[None]:
        """Queue a log append (merged with a queued append to the same log and bound)."""
        key = (loc.directory, loc.name)
        with self._condition:
            self._admit(len(lines))
            op = self._mergeable.get(key)
            if op is not None and op.kind is _Kind.APPEND and op.max_items == max_items:
                # Collected as parts and joined once when written: += would copy the
                # whole pending log on every append (quadratic in a burst of appends).
                op.parts.append(lines)
                op.count += count
                self._pending_bytes += len(lines)
                self._coalesced += 1
                return op.handles[0]
            handle: WriteHandle[None] = WriteHandle()
            op = _Op(_Kind.APPEND, loc, lines)
            op.count, op.max_items = count, max_items
            op.handles.append(handle)
            self._mergeable[key] = op
            self._enqueue(op)
        return handle

    def call(self, function: Callable[[], Any], loc: Location | None = None) -> WriteHandle[Any]:
        """Queue ``function`` to run in order with the writes (a fence); its result settles the handle.

        ``loc`` names the key it changes; ``None`` means it may change any key.
        """
        handle: WriteHandle[Any] = WriteHandle()
        with self._condition:
            self._admit(0)
            op = _Op(_Kind.CALL, loc)
            op.function = function
            op.handles.append(handle)
            self._mergeable.clear()
            if loc is None:
                self._fences.append(op)
            self._enqueue(op)
        return handle

    def barrier(self) -> WriteHandle[None]:
        """A handle that settles once every operation issued before it has run."""
        with self._condition:
            if not self._queue and not self._latest and not self._fences:
                op = _Op(_Kind.BARRIER)
                op.completion._settle(None, None)
                return op.completion
            op = _Op(_Kind.BARRIER)
            self._enqueue(op)
            return op.completion

    def pending(self, loc: Location) -> tuple[bytes, float | None] | WriteHandle[None] | None:
        """What a read of ``loc`` must honour: the newest queued document bytes and
        expiry, a handle to wait for, or ``None`` if disk is up to date."""
        with self._condition:
            if self._fences:
                return self._fences[-1].completion
            op = self._latest.get((loc.directory, loc.name))
            if op is None:
                return None
            if op.kind is _Kind.SAVE:
                return op.payload, op.expiry
            return op.completion

    def take_failures(self) -> list[BaseException]:
        """The write errors since the last call, oldest first."""
        with self._condition:
            failures, self._failures = self._failures, []
            return failures

    def statistics(self) -> WriterStatistics:
        """A snapshot of the queue."""
        with self._condition:
            return WriterStatistics(
                pending_operations=len(self._queue),
                pending_bytes=self._pending_bytes,
                max_pending_bytes=self._max_pending_bytes,
                operations_written=self._written,
                writes_coalesced=self._coalesced,
                unreported_failures=len(self._failures),
            )

    def close(self) -> None:
        """Refuse new writes, perform everything queued, and wait for it."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            thread = self._thread
            if thread is None and self._queue:
                thread = self._start_thread()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        _open_writers.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the thread --------------------------------------------------------

    def _start_thread(self) -> threading.Thread | None:
        """Start the thread if it is not running. Caller holds the condition."""
        if self._thread is None and self._queue:
            self._thread = threading.Thread(target=self._run, name="group_store-writer", daemon=True)
            self._thread.start()
        return self._thread

    def _run(self) -> None:
        while True:
            with self._condition:
                if not self._queue and not self._closed:
                    self._condition.wait(_IDLE_SECONDS)
                if not self._queue:
                    self._thread = None
                    self._condition.notify_all()
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), _MAX_BATCH))]
                for op in batch:
                    if op.loc is not None and self._mergeable.get((op.loc.directory, op.loc.name)) is op:
                        del self._mergeable[(op.loc.directory, op.loc.name)]
            outcomes = self._perform(batch)
            with self._condition:
                for op, (_, error) in zip(batch, outcomes, strict=True):
                    self._pending_bytes -= sum(len(part) for part in op.parts)
                    self._written += op.kind is not _Kind.BARRIER
                    if op.loc is not None and self._latest.get((op.loc.directory, op.loc.name)) is op:
                        del self._latest[(op.loc.directory, op.loc.name)]
                    if op in self._fences:
                        self._fences.remove(op)
                    if error is not None and op.kind is not _Kind.CALL:
                        self._failures.append(error)
                self._condition.notify_all()
            for op, (value, error) in zip(batch, outcomes, strict=True):
                for handle in op.handles:
                    handle._settle(value, error)
                op.completion._settle(None, None)

    def _perform(self, batch: list[_Op]) -> list[tuple[Any, BaseException | None]]:
        """Run a batch, holding each directory's lock across consecutive writes to it.

        Consecutive saves to one directory go to the engine together, so a durable
        store commits them with one group fsync instead of one per save.
        """
        outcomes: list[tuple[Any, BaseException | None]] = []
        held: AbstractContextManager[None] | None = None
        held_directory: str | None = None
        position = 0
        try:
            while position < len(batch):
                op = batch[position]
                if op.kind is _Kind.BARRIER:
                    outcomes.append((None, None))
                    position += 1
                    continue
                directory = op.loc.directory if op.kind is not _Kind.CALL and op.loc else None
                if held is not None and directory != held_directory:
                    held.__exit__(None, None, None)
                    held = held_directory = None
                run = self._save_run(batch, position) if op.kind is _Kind.SAVE else [op]
                try:
                    if directory is not None and held is None:
                        lock = self._engine.lock(directory)
                        lock.__enter__()
                        held, held_directory = lock, directory
                    if op.kind is _Kind.SAVE:
                        items = [(o.loc, o.payload, o.expiry) for o in run if o.loc is not None]
                        outcomes.extend((None, error) for error in self._engine.save_many(items))
                    else:
                        outcomes.append((self._perform_one(op), None))
                except BaseException as exc:
                    # Even SystemExit from an update() function belongs to its caller: the
                    # writer thread must survive to settle every other handle.
                    outcomes.extend((None, exc) for _ in run)
                for o, (_, error) in zip(run, outcomes[-len(run) :], strict=True):
                    if error is not None and o.kind is not _Kind.CALL:
                        logger.warning("group_store: write failed: %s", error)
                position += len(run)
        finally:
            if held is not None:
                held.__exit__(None, None, None)
        return outcomes

    @staticmethod
    def _save_run(batch: list[_Op], start: int) -> list[_Op]:
        """The saves from ``start`` on that share its directory (each key once)."""
        first = batch[start]
        assert first.loc is not None
        run, names = [first], {first.loc.name}
        for op in batch[start + 1 :]:
            if op.kind is not _Kind.SAVE or op.loc is None or op.loc.directory != first.loc.directory:
                break
            if op.loc.name in names:
                break
            run.append(op)
            names.add(op.loc.name)
        return run

    def _perform_one(self, op: _Op) -> Any:
        if op.kind is _Kind.APPEND:
            assert op.loc is not None
            self._engine.append(op.loc, b"".join(op.parts), op.count, op.max_items)
            return None
        assert op.function is not None
        return op.function()


_open_writers: weakref.WeakSet[Writer] = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    # Normal interpreter exit writes everything still queued (nothing is dropped).
    for writer in list(_open_writers):
        writer.close()
