"""The awaitable result of a queued write."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Generator
from typing import Any, Generic, TypeVar

import anyio
from anyio.lowlevel import EventLoopToken, current_token

T = TypeVar("T")

# One lock for every handle's slow paths (registering a waiter, settling). A handle
# stays a few plain fields until someone waits: a lock and an event per handle cost
# about 1 KB each, and a burst of fire-and-forget saves holds one handle per queued
# write. The critical sections are a few field writes, so sharing the lock costs
# nothing measurable (the per-handle lock it replaces was taken just as often).
_guard = threading.Lock()


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
    """

    __slots__ = ("_done", "_error", "_event", "_observed", "_value", "_waiters")

    def __init__(self) -> None:
        self._done = False
        self._observed = False
        self._value: Any = None
        self._error: BaseException | None = None
        # Created only when someone waits (see _guard).
        self._event: threading.Event | None = None
        self._waiters: list[tuple[EventLoopToken, anyio.Event]] | None = None

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
            event = self._event
        if event is not None:
            event.set()
        for token, loop_event in waiters or ():
            # That event loop has ended (or is closing): nobody is left to wake, and the
            # writer thread that calls this must never die of it.
            with contextlib.suppress(anyio.RunFinishedError, RuntimeError):
                token.backend_class.run_sync_soon(loop_event.set, (), token.native_token)

    async def _wait(self) -> T:
        if not self._done:
            event = anyio.Event()
            entry = (current_token(), event)
            with _guard:
                registered = not self._done
                if registered:
                    if self._waiters is None:
                        self._waiters = []
                    self._waiters.append(entry)
            if registered:
                try:
                    await event.wait()
                finally:
                    with _guard:
                        if self._waiters is not None and entry in self._waiters:
                            self._waiters.remove(entry)
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
