"""Directory locks on object storage: a lease object taken and renewed by compare-and-swap.

The lease is the object ``<directory>/.lock`` (the local backend's lock file name, so a
copied store carries no foreign name). Its bytes are ``{"holder": ..., "lease": s, "n": i}``
while held and ``{"holder": null}`` once released; bytes that are not such a record (the
empty ``.lock`` a local store leaves) count as released.

- Taking it: create it if absent (``If-None-Match: *``), or replace a released record
  (``If-Match``).
- Holding it: a daemon thread rewrites it every ``lease / 3`` seconds (``If-Match`` on the
  ETag it last wrote; ``n`` grows, so every renewal changes the ETag). At interpreter
  exit an ``atexit`` hook stops and joins every renewal thread: left to run into
  finalization, one caught inside a request would be ended mid-way through obstore's
  Rust frames and abort the process. A lease still held then is left to expire.
- Expiry without clocks: a waiter that sees the same ETag for a whole lease, timed by its
  own monotonic clock, knows the holder stopped renewing, and takes the lease by
  ``If-Match`` on that ETag. No wall clocks are compared, so skew between machines
  cannot shorten a lease; the price is that a lease abandoned long ago still costs a
  newcomer one lease of waiting.

A holder that stalls past its lease (a GC pause, SIGSTOP, a network partition longer than
the lease) loses exclusion: another process may take the lease while the stalled one is
still inside its critical section, and both may write for a moment. Each object stays
whole (every PUT is atomic) and compare-and-swap writes stay correct, but a multi-step
change is no longer exclusive. The stalled holder learns it at its next renewal, which
fails by CAS (it then stops renewing), and on leaving the lock, which raises
``StorageError`` (errno ENOLCK) so the caller knows its section was not exclusive.
"""

from __future__ import annotations

import atexit
import errno
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import orjson

from .._errors import LockTimeoutError, StorageError


class LeaseObjects(Protocol):
    """The three conditional operations a lease needs, on whole object keys."""

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or ``None`` if absent."""

    def create(self, key: str, data: bytes) -> str | None:
        """Create the object if absent; its new ETag, or ``None`` if it exists."""

    def replace(self, key: str, data: bytes, e_tag: str) -> str | None:
        """Replace the object if its ETag is ``e_tag``; its new ETag, or ``None`` otherwise."""


class _Held:
    """One lease this process holds (Invariant: only its renewal thread and the releasing
    thread, after joining the renewal thread, touch ``e_tag``)."""

    def __init__(self, key: str, e_tag: str, holder: str, lease: float) -> None:
        self.key = key
        self.e_tag = e_tag
        self.holder = holder
        self.lease = lease
        self.depth = 1
        self.lost = False
        self.stop = threading.Event()
        self.renewer: threading.Thread | None = None


class Leases:
    """Re-entrant per-thread directory locks made of lease objects (see the module docstring)."""

    def __init__(
        self,
        objects: LeaseObjects,
        *,
        lease: float,
        locator: Callable[[str], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease <= 0:
            raise ValueError("lease must be positive")
        self._objects = objects
        self._lease = lease
        self._locator = locator
        self._clock = clock
        self._mutex = threading.Lock()
        self._local: dict[str, threading.RLock] = {}
        self._held: dict[str, _Held] = {}
        # The ETag of the released record this process last wrote per key: while the
        # object is still in that state, a take is one conditional PUT with no GET first.
        # Safe whoever wrote since: If-Match holds only if the object is that released record.
        self._released: dict[str, str] = {}

    @contextmanager
    def hold(self, key: str, timeout: float | None) -> Iterator[None]:
        """Hold the lease ``key`` (an object key) for the ``with`` body.

        Raises:
            LockTimeoutError: not acquired within ``timeout`` seconds.
            StorageError: the lease was lost while held (errno ENOLCK; raised on leaving
                the body, unless the body itself raised), or the storage refused.
        """
        deadline = None if timeout is None else self._clock() + timeout
        with self._mutex:
            local = self._local.setdefault(key, threading.RLock())
        # Threads of this process queue on the RLock, so only one of them polls the object.
        if not local.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise LockTimeoutError("lock not acquired within the timeout", path=self._locator(key))
        try:
            held = self._held.get(key)
            if held is not None:
                # Re-entry: this thread owns ``local``, so the lease it holds is its own.
                held.depth += 1
                try:
                    yield
                finally:
                    held.depth -= 1
                return
            held = self._acquire(key, deadline)
            self._held[key] = held
            try:
                yield
            except BaseException:
                del self._held[key]
                self._release(held, quiet=True)
                raise
            del self._held[key]
            self._release(held, quiet=False)
        finally:
            local.release()

    def _acquire(self, key: str, deadline: float | None) -> _Held:
        holder = uuid.uuid4().hex
        record = _record(holder, self._lease, 0)
        watched: tuple[str, float] | None = None  # (ETag seen, when it was first seen)
        delay = 0.005
        released = self._released.pop(key, None)
        if released is not None:
            e_tag = self._objects.replace(key, record, released)
            if e_tag is not None:
                return self._start(key, e_tag, holder)
        while True:
            current = self._objects.get(key)
            if current is None:
                e_tag = self._objects.create(key, record)
            else:
                data, seen = current
                lease = _held_for(data)
                if watched is None or watched[0] != seen:
                    watched = (seen, self._clock())
                expired = lease is not None and self._clock() - watched[1] >= lease
                e_tag = self._objects.replace(key, record, seen) if lease is None or expired else None
            if e_tag is not None:
                return self._start(key, e_tag, holder)
            now = self._clock()
            if deadline is not None and now >= deadline:
                raise LockTimeoutError("lock not acquired within the timeout", path=self._locator(key))
            pause = random.uniform(delay / 2, delay)
            if deadline is not None:
                pause = min(pause, deadline - now)
            time.sleep(pause)
            delay = min(delay * 2, 0.1, self._lease / 4)

    def _start(self, key: str, e_tag: str, holder: str) -> _Held:
        held = _Held(key, e_tag, holder, self._lease)
        held.renewer = threading.Thread(target=self._renew, args=(held,), name="group_store-s3-lease", daemon=True)
        with _RENEWING_MUTEX:
            _RENEWING.add(held)
        held.renewer.start()
        return held

    def _renew(self, held: _Held) -> None:
        renewed_at = self._clock()
        n = 0
        while not held.stop.wait(held.lease / 3):
            n += 1
            try:
                e_tag = self._objects.replace(held.key, _record(held.holder, held.lease, n), held.e_tag)
            except StorageError:
                # A transient failure: try again at the next tick while the lease may still stand.
                if self._clock() - renewed_at >= held.lease:
                    held.lost = True
                    return
                continue
            if e_tag is None:
                held.lost = True
                return
            held.e_tag, renewed_at = e_tag, self._clock()

    def _release(self, held: _Held, *, quiet: bool) -> None:
        _stop_renewing(held)
        try:
            free = None if held.lost else self._objects.replace(held.key, _FREE, held.e_tag)
        except StorageError:
            # Left unreleased, the lease expires by itself; the body's own error matters more.
            if quiet:
                return
            raise
        if free is not None:
            self._released[held.key] = free
        elif not quiet:
            raise StorageError(
                "the lock's lease was lost while held (a stall past the lease): the section was not exclusive",
                path=self._locator(held.key),
                errno=errno.ENOLCK,
            )


_FREE = orjson.dumps({"holder": None})

# Every lease whose renewal thread may be running, for the exit hook.
_RENEWING: set[_Held] = set()
_RENEWING_MUTEX = threading.Lock()


def _stop_renewing(held: _Held) -> None:
    held.stop.set()
    if held.renewer is not None and held.renewer is not threading.current_thread():
        held.renewer.join()
    with _RENEWING_MUTEX:
        _RENEWING.discard(held)


@atexit.register
def _stop_every_renewal() -> None:
    # atexit runs before the interpreter finalizes, while a thread can still finish a request.
    with _RENEWING_MUTEX:
        renewing = list(_RENEWING)
    for held in renewing:
        _stop_renewing(held)


def _record(holder: str, lease: float, n: int) -> bytes:
    return orjson.dumps({"holder": holder, "lease": lease, "n": n})


def _held_for(data: bytes) -> float | None:
    """The lease a record claims, or ``None`` if it is released (or not a record at all)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("holder"), str):
        return None
    lease = value.get("lease")
    if isinstance(lease, bool) or not isinstance(lease, int | float) or lease <= 0:
        return None
    return float(lease)
