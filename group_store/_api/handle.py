"""The awaitable result of a queued write."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

import anyio
from anyio.lowlevel import EventLoopToken, current_token

from .loop import LoopEvent, Wake

T = TypeVar("T")
logger = logging.getLogger("group_store")

# One lock for every handle's slow paths (registering a waiter, settling). A handle
# stays a few plain fields until someone waits: a lock and an event per handle cost
# about 1 KB each, and a burst of fire-and-forget saves holds one handle per queued
# write. The critical sections are a few field writes, so sharing the lock costs
# nothing measurable (the per-handle lock it replaces was taken just as often).
_guard = threading.Lock()

# How often a task waiting for a write wakes up anyway (see WriteHandle._wait).
_POLL_SECONDS = 0.25


def _reset_after_fork() -> None:
    # A writer thread of the parent may have held the guard at the fork; the child has none.
    global _guard
    _guard = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


class WriteHandle(Generic[T]):
    """Resolves when the write it stands for is on disk (fsynced if the store is durable).

    ``await handle`` returns the write's result or raises its error; awaiting is
    optional (fire-and-forget is fine: nothing is dropped, and an error that no
    one has seen is raised by the next ``flush()``). Once an outcome has been
    delivered here (``await``, ``result()`` or ``exception()`` of a finished
    handle), ``flush()`` and ``aclose()`` no longer raise it. Cancellation:
    cancelling an ``await`` stops only the waiting; the write itself still
    happens. Works under asyncio and trio, from any task, any number of times;
    ``result()`` waits from plain threads.

    It also speaks enough of ``asyncio.Future`` for code written against one (Group
    Genie 0.0.2's ``save()`` returned a Future): ``asyncio.wait``, ``gather``,
    ``shield`` and ``wait_for`` take it as the awaitable it is; ``add_done_callback``,
    ``remove_done_callback``, ``done``, ``result``, ``exception``, ``cancelled`` and
    ``cancel`` behave as on a Future, except that a write cannot be cancelled
    (``cancel()`` returns ``False``) and ``result()`` of a pending handle waits for it
    instead of raising ``InvalidStateError``. No thread is started per handle.
    """

    __slots__ = ("_callbacks", "_done", "_error", "_event", "_observed", "_value", "_waiters")

    def __init__(self) -> None:
        self._done = False
        self._observed = False
        self._value: Any = None
        self._error: BaseException | None = None
        # Created only when someone waits (see _guard).
        self._event: threading.Event | None = None
        self._waiters: list[Wake] | None = None
        self._callbacks: list[tuple[Callable[[WriteHandle[T]], object], EventLoopToken | None]] | None = None

    def done(self) -> bool:
        """True once the write has finished, successfully or not."""
        return self._done

    def result(self, timeout: float | None = None) -> T:
        """Block this thread until done; return the result or raise the error.

        Raises:
            TimeoutError: if ``timeout`` seconds pass first.
        """
        if not self._done:
            with _guard:
                if not self._done and self._event is None:
                    self._event = threading.Event()
                event = self._event
            if event is not None and not event.wait(timeout):
                raise TimeoutError("the write has not finished yet")
        return self._outcome()

    def exception(self) -> BaseException | None:
        """The error of a finished write, or ``None`` (also while it is pending)."""
        if self._done:
            self._observed = True
        return self._error

    def cancelled(self) -> bool:
        """Always ``False``: a queued write is never cancelled (see the class docstring)."""
        return False

    def cancel(self, msg: Any = None) -> bool:
        """Refuse, as a finished Future does: a write that was issued will happen. Returns ``False``."""
        return False

    def add_done_callback(self, callback: Callable[[WriteHandle[T]], object]) -> None:
        """Call ``callback(handle)`` once the write has finished (at once if it has).

        Called from an event loop (asyncio or trio), the callback runs in that loop,
        as ``asyncio.Future`` callbacks do; from a plain thread, it runs in the thread
        that finishes the write (the writer's), so keep it short. An exception it
        raises is logged on the ``group_store`` logger (or the loop's handler), never
        raised into the writer.
        """
        try:
            token: EventLoopToken | None = current_token()
        except RuntimeError:
            token = None  # no event loop in this thread
        with _guard:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append((callback, token))
                return
        self._call_back(callback, token)

    def remove_done_callback(self, callback: Callable[[WriteHandle[T]], object]) -> int:
        """Forget every registration of ``callback``; return how many there were."""
        with _guard:
            kept = [entry for entry in self._callbacks or () if entry[0] != callback]
            removed = len(self._callbacks or ()) - len(kept)
            self._callbacks = kept or None
        return removed

    def _call_back(self, callback: Callable[[WriteHandle[T]], object], token: EventLoopToken | None) -> None:
        if token is not None:
            with contextlib.suppress(anyio.RunFinishedError, RuntimeError):  # that loop has ended
                token.backend_class.run_sync_soon(callback, (self,), token.native_token)
            return
        try:
            callback(self)
        except Exception:
            logger.exception("group_store: a WriteHandle done-callback raised")

    def _outcome(self) -> T:
        self._observed = True
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]

    def _settle(self, value: Any, error: BaseException | None) -> None:
        """Finish the handle from any thread and wake every waiting task."""
        with _guard:
            self._value, self._error = value, error
            self._done = True
            waiters, self._waiters = self._waiters, None
            callbacks, self._callbacks = self._callbacks, None
            event = self._event
        if event is not None:
            event.set()
        for callback, token in callbacks or ():
            self._call_back(callback, token)
        for wake in waiters or ():
            wake()  # never raises: the writer thread that calls this must never die of it

    async def _wait(self) -> T:
        if not self._done:
            event = LoopEvent()
            with _guard:
                registered = not self._done
                if registered:
                    if self._waiters is None:
                        self._waiters = []
                    self._waiters.append(event.wake)
            if registered:
                try:
                    # Woken at least every _POLL_SECONDS: Python runs a signal handler
                    # only when the main thread runs bytecode, and a Ctrl-C whose wakeup
                    # never reached the event loop's select() would otherwise wait here
                    # for ever (seen: Ctrl-C during a durable flush hung 1 run in ~10).
                    while not event.is_set():
                        await event.wait(_POLL_SECONDS)
                finally:
                    with _guard:
                        if self._waiters is not None and event.wake in self._waiters:
                            self._waiters.remove(event.wake)
        return self._outcome()

    def __await__(self) -> Generator[Any, None, T]:
        return self._wait().__await__()

    def __repr__(self) -> str:
        state = "pending" if not self._done else ("failed" if self._error else "done")
        return f"<WriteHandle {state}>"


def settled(value: Any = None) -> WriteHandle[Any]:
    """A handle that is already done (for writes with nothing to do)."""
    handle: WriteHandle[Any] = WriteHandle()
    handle._done = True
    handle._value = value
    return handle
