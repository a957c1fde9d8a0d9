"""The background write queue shared by a DataStore and all its narrowed views."""

from __future__ import annotations

import atexit
import logging
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .._engine.engine import Engine
from .._errors import StoreClosedError
from .._format.layout import Location
from ..storage._fsync import leave_signals_to_the_main_thread
from .handle import WriteHandle, settled

logger = logging.getLogger("group_store")

DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024
_IDLE_SECONDS = 1.0
_MAX_BATCH = 4096
# What one queued operation costs beyond its payload bytes, counted in pending_bytes:
# its _Op, its WriteHandle, its Location and key strings, the payload's bytes header,
# and its _latest dict and deque slots. Measured with tracemalloc at about 420 bytes for
# a save to a short key (tests/test_writer.py::test_back_pressure_bounds_memory_of_tiny_saves);
# rounded up, so that the bound stays a bound for longer keys and deeper views.
_OP_COST = 640
# The same for each append merged into a queued one: its bytes object and list slot.
_PART_COST = 64
# Unreported failures kept for flush(); beyond this many only a count (memory stays bounded
# however many fire-and-forget writes fail).
_KEPT_FAILURES = 100


class _Kind(Enum):
    SAVE = "save"
    APPEND = "append"
    CALL = "call"
    BARRIER = "barrier"


class _Op:
    __slots__ = (
        "completion",
        "count",
        "epoch",
        "expiry",
        "function",
        "handle",
        "kind",
        "loc",
        "max_items",
        "parts",
        "payload",
        "taken",
    )

    def __init__(self, kind: _Kind, handle: WriteHandle[Any] | None, loc: Location | None = None,
                 payload: bytes = b"") -> None:  # fmt: skip
        self.kind = kind
        self.loc = loc
        self.payload = payload
        # Appends merged into this one, joined once when written (None until a merge).
        self.parts: list[bytes] | None = None
        self.expiry: float | None = None
        self.count = 0
        self.max_items: int | None = None
        self.function: Callable[[], Any] | None = None
        self.handle = handle
        # Resolves (never fails) once the op has run; reads wait on it for read-your-writes.
        # Created only when someone asks (under the condition, while the op is findable).
        self.completion: WriteHandle[None] | None = None
        # The fence epoch it was issued in, and whether the thread has taken it (see _mergeable()).
        self.epoch = 0
        self.taken = False


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
    - Back-pressure: ``pending_bytes`` counts each queued operation as its payload
      plus ``_OP_COST`` bytes (the measured memory of its queue entry, handle and
      location), and is bounded by ``max_pending_bytes``: a save or append that
      would exceed it blocks its caller until the writer has caught up (a single
      payload larger than the bound is still accepted). So the queue's memory is
      bounded however small the writes: 300,000 saves of ``1`` hold no more than
      the bound (plus the writer's in-flight batch bookkeeping).
    - Close: ``close()`` stops new writes, performs everything queued and waits
      for it; nothing is cancelled or dropped. Interpreter exit closes every
      writer still open, durable ones included (their parallel fsyncs do not
      depend on concurrent.futures, which stops at shutdown: see ``_fsync``).
    - Failure: a failed write settles its handle with the error; if no caller
      has seen that outcome (awaited the handle, or called ``result()`` or
      ``exception()`` on it) by the next ``take_failures()`` (flush, close), it
      is reported there, once. Merged saves share one handle, so one look
      covers them all. The store keeps working.
    - Threads: the thread starts on the first write and exits after being idle
      for a second, so a forgotten store leaks no thread.
    """

    def __init__(self, engine: Engine, max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES) -> None:
        self._engine = engine
        self._max_pending_bytes = max_pending_bytes
        self._condition = threading.Condition()
        self._queue: deque[_Op] = deque()
        # Invariant: _latest maps a key to its newest op that has not finished running.
        self._latest: dict[Location, _Op] = {}
        # Bumped by every call() (a fence): an op of an older epoch takes no more merges.
        self._epoch = 0
        self._fences: list[_Op] = []
        self._pending_bytes = 0
        # Failed writes not yet reported, with their handles (kept before the handle settles,
        # so the error is taken from here); at most _KEPT_FAILURES (the rest are only counted).
        self._failed: list[tuple[WriteHandle[Any], BaseException]] = []
        self._failures_dropped = 0
        self._written = 0
        self._coalesced = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        _open_writers.add(self)

    # -- issuing -----------------------------------------------------------

    def _admit(self, size: int) -> None:
        """Wait for room in the queue. Caller holds the condition."""
        if not self._closed and (self._pending_bytes + size <= self._max_pending_bytes or not self._pending_bytes):
            return  # room (the common case: one comparison, not the checks below)
        if self._closed:
            raise StoreClosedError("the DataStore is closed; no more writes")
        thread = self._thread
        if thread is not None and thread.ident == threading.get_ident():
            return  # the writer never waits for itself
        while self._pending_bytes and self._pending_bytes + size > self._max_pending_bytes:
            self._start_thread()
            self._condition.wait()
            if self._closed:
                raise StoreClosedError("the DataStore is closed; no more writes")

    def _enqueue(self, op: _Op) -> None:
        op.epoch = self._epoch
        self._queue.append(op)
        self._pending_bytes += _charge(op)
        if op.loc is not None:
            self._latest[op.loc] = op
        self._start_thread()
        self._condition.notify_all()

    def _mergeable(self, loc: Location, kind: _Kind) -> _Op | None:
        """The queued op of ``kind`` a new write to ``loc`` may merge into. Caller holds the condition."""
        op = self._latest.get(loc)
        if op is None or op.kind is not kind or op.taken or op.epoch != self._epoch:
            return None
        return op

    def save(self, loc: Location, payload: bytes, expiry: float | None) -> WriteHandle[None]:
        """Queue a document save (coalesced with a queued save of the same key)."""
        payload = _compact(payload)
        with self._condition:
            self._admit(_OP_COST + len(payload))
            op = self._mergeable(loc, _Kind.SAVE)
            if op is not None:
                self._pending_bytes += len(payload) - len(op.payload)
                op.payload, op.expiry = payload, expiry
                self._coalesced += 1
                # Saves merged into one write share its handle: a burst of saves to K keys
                # holds K handles, not one per save (memory stays bounded by the keys).
                return op.handle  # type: ignore[return-value]
            handle: WriteHandle[None] = WriteHandle()
            op = _Op(_Kind.SAVE, handle, loc, payload)
            op.expiry = expiry
            self._enqueue(op)
        return handle

    def append(self, loc: Location, lines: bytes, count: int, max_items: int | None) -> WriteHandle[None]:
        """Queue a log append (merged with a queued append to the same log and bound)."""
        lines = _compact(lines)
        with self._condition:
            self._admit(_OP_COST + len(lines))
            op = self._mergeable(loc, _Kind.APPEND)
            if op is not None and op.max_items == max_items:
                # Collected as parts and joined once when written: += would copy the
                # whole pending log on every append (quadratic in a burst of appends).
                if op.parts is None:
                    op.parts = [op.payload]
                op.parts.append(lines)
                op.count += count
                self._pending_bytes += _PART_COST + len(lines)
                self._coalesced += 1
                return op.handle  # type: ignore[return-value]
            handle: WriteHandle[None] = WriteHandle()
            op = _Op(_Kind.APPEND, handle, loc, lines)
            op.count, op.max_items = count, max_items
            self._enqueue(op)
        return handle

    def call(self, function: Callable[[], Any], loc: Location | None = None) -> WriteHandle[Any]:
        """Queue ``function`` to run in order with the writes (a fence); its result settles the handle.

        ``loc`` names the key it changes; ``None`` means it may change any key.
        """
        handle: WriteHandle[Any] = WriteHandle()
        with self._condition:
            self._admit(_OP_COST)
            op = _Op(_Kind.CALL, handle, loc)
            op.function = function
            self._epoch += 1
            if loc is None:
                self._fences.append(op)
            self._enqueue(op)
        return handle

    def barrier(self) -> WriteHandle[None]:
        """A handle that settles once every operation issued before it has run."""
        with self._condition:
            if not self._queue and not self._latest and not self._fences:
                return settled()
            op = _Op(_Kind.BARRIER, None)
            completion = op.completion = WriteHandle()
            # Not admitted: a flush never waits for room (it is how room is made).
            self._enqueue(op)
            return completion

    @staticmethod
    def _completion(op: _Op) -> WriteHandle[None]:
        """The op's completion handle, made on first request. Caller holds the condition."""
        if op.completion is None:
            op.completion = WriteHandle()
        return op.completion

    def pending(self, loc: Location) -> tuple[bytes, float | None] | WriteHandle[None] | None:
        """What a read of ``loc`` must honour: the newest queued document bytes and
        expiry, a handle to wait for, or ``None`` if disk is up to date."""
        with self._condition:
            if self._fences:
                return self._completion(self._fences[-1])
            op = self._latest.get(loc)
            if op is None:
                return None
            if op.kind is _Kind.SAVE:
                return op.payload, op.expiry
            return self._completion(op)

    def take_failures(self) -> tuple[list[BaseException], int]:
        """The write errors no caller has seen since the last call, oldest first,
        and how many more failed beyond those kept."""
        with self._condition:
            failed, self._failed = self._failed, []
            dropped, self._failures_dropped = self._failures_dropped, 0
        return [error for handle, error in failed if not handle._observed], dropped

    def _keep_failure(self, handle: WriteHandle[Any], error: BaseException) -> None:
        """Remember a failed write for take_failures(). Caller holds the condition."""
        if len(self._failed) >= _KEPT_FAILURES:
            self._failed = [kept for kept in self._failed if not kept[0]._observed]
        if len(self._failed) >= _KEPT_FAILURES:
            self._failures_dropped += 1
            return
        self._failed.append((handle, error))

    def statistics(self) -> WriterStatistics:
        """A snapshot of the queue."""
        with self._condition:
            return WriterStatistics(
                pending_operations=len(self._queue),
                pending_bytes=self._pending_bytes,
                max_pending_bytes=self._max_pending_bytes,
                operations_written=self._written,
                writes_coalesced=self._coalesced,
                unreported_failures=sum(not handle._observed for handle, _ in self._failed) + self._failures_dropped,
            )

    def close(self) -> None:
        """Refuse new writes, perform everything queued, and wait for it."""
        inline = False
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            thread = self._thread
            if thread is None and self._queue:
                thread = self._start_thread()
                if thread is None:
                    # No thread could start (see _start_thread): this one drains the queue
                    # itself, as the writer (so it never waits for itself).
                    thread = self._thread = threading.current_thread()
                    inline = True
        if inline:
            self._run()
        elif thread is not None and thread is not threading.current_thread():
            thread.join()
        _open_writers.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the thread --------------------------------------------------------

    def _start_thread(self) -> threading.Thread | None:
        """Start the thread if it is not running. Caller holds the condition."""
        if self._thread is None and self._queue:
            thread = self._thread = threading.Thread(target=self._run, name="group_store-writer", daemon=True)
            try:
                thread.start()
            except RuntimeError:
                # Python 3.12+ starts no thread once interpreter shutdown has begun (atexit
                # hooks included): the op stays queued, and close() writes it in its own thread.
                self._thread = None
        return self._thread

    def _run(self) -> None:
        leave_signals_to_the_main_thread()
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
                    op.taken = True
            outcomes = self._perform(batch)
            with self._condition:
                for op, (_, error) in zip(batch, outcomes, strict=True):
                    self._pending_bytes -= _charge(op)
                    self._written += op.kind is not _Kind.BARRIER
                    if op.loc is not None and self._latest.get(op.loc) is op:
                        del self._latest[op.loc]
                    if op.function is not None and op.loc is None:
                        self._fences.remove(op)
                    if error is not None and op.kind is not _Kind.CALL and op.handle is not None:
                        _release_frames(error)
                        self._keep_failure(op.handle, error)
                self._condition.notify_all()
            # Read after the op left _latest and _fences under the condition: no completion
            # can be created for it any more, so none is missed here.
            for op, (value, error) in zip(batch, outcomes, strict=True):
                if op.handle is not None:
                    op.handle._settle(value, error)
                if op.completion is not None:
                    op.completion._settle(None, None)
            del batch, outcomes

    def _perform(self, batch: list[_Op]) -> list[tuple[Any, BaseException | None]]:
        """Run a batch, holding each directory's lock across consecutive writes to it.

        Each engine mutation takes its lock itself; holding it across a run only makes
        the re-entries cheap (no flock per write). One lock at a time: the held one is
        released before the next directory's is taken.

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
            lines = op.payload if op.parts is None else b"".join(op.parts)
            self._engine.append(op.loc, lines, op.count, op.max_items)
            return None
        assert op.function is not None
        return op.function()


def _charge(op: _Op) -> int:
    """What ``op`` counts in pending_bytes (see _OP_COST)."""
    if op.parts is None:
        return _OP_COST + len(op.payload)
    return _OP_COST + (len(op.parts) - 1) * _PART_COST + sum(len(part) for part in op.parts)


def _compact(data: bytes) -> bytes:
    """An exact-size copy of ``data``, to be held in the queue.

    orjson returns bytes whose allocation keeps its whole output buffer: 4 KiB for
    the two bytes of ``1\\n``, about 13 times the length for a 5 KB document. A
    burst of queued saves held those buffers (7.5 KB per tiny save); one memcpy
    per write is far cheaper than the write itself.
    """
    return bytes(memoryview(data))


def _release_frames(error: BaseException) -> None:
    """Drop the locals of the frames a kept error's traceback holds (the batch that
    failed, its payloads); the traceback still shows where it failed."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


_open_writers: weakref.WeakSet[Writer] = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    # Normal interpreter exit writes everything still queued (nothing is dropped).
    for writer in list(_open_writers):
        writer.close()
