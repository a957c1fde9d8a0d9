"""The awaitable result of a queued write."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator
from typing import Any, Generic, TypeVar

import anyio
from anyio.lowlevel import EventLoopToken, current_token

T = TypeVar("T")


class WriteHandle(Generic[T]):
    """Resolves when the write it stands for is on disk (fsynced if the store is durable).

    ``await handle`` returns the write's result or raises its error; awaiting is
    optional (fire-and-forget is fine: nothing is dropped, and the error is also
    raised by the next ``flush()``). Cancellation: cancelling an ``await`` stops
    only the waiting; the write itself still happens. Works under asyncio and
    trio, from any task, any number of times; ``result()`` waits from plain threads.
    """

    __slots__ = ("_error", "_event", "_state_lock", "_value", "_waiters")

    def __init__(self) -> None:
        self._state_lock = threading.Lock()
        self._event = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._waiters: list[tuple[EventLoopToken, anyio.Event]] = []

    def done(self) -> bool:
        """True once the write has finished, successfully or not."""
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> T:
        """Block this thread until done; return the result or raise the error.

        Raises:
            TimeoutError: if ``timeout`` seconds pass first.
        """
        if not self._event.wait(timeout):
            raise TimeoutError("the write has not finished yet")
        return self._outcome()

    def exception(self) -> BaseException | None:
        """The error of a finished write, or ``None``."""
        return self._error

    def _outcome(self) -> T:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]

    def _settle(self, value: Any, error: BaseException | None) -> None:
        """Finish the handle from any thread and wake every waiting task."""
        with self._state_lock:
            self._value, self._error = value, error
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for token, event in waiters:
            # That event loop has ended (or is closing): nobody is left to wake, and the
            # writer thread that calls this must never die of it.
            with contextlib.suppress(anyio.RunFinishedError, RuntimeError):
                token.backend_class.run_sync_soon(event.set, (), token.native_token)

    async def _wait(self) -> T:
        if not self._event.is_set():
            event = anyio.Event()
            with self._state_lock:
                registered = not self._event.is_set()
                if registered:
                    entry = (current_token(), event)
                    self._waiters.append(entry)
            if registered:
                try:
                    await event.wait()
                finally:
                    with self._state_lock:
                        if entry in self._waiters:
                            self._waiters.remove(entry)
        return self._outcome()

    def __await__(self) -> Generator[Any, None, T]:
        return self._wait().__await__()

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("failed" if self._error else "done")
        return f"<WriteHandle {state}>"


def settled(value: Any = None) -> WriteHandle[Any]:
    """A handle that is already done (for writes with nothing to do)."""
    handle: WriteHandle[Any] = WriteHandle()
    handle._settle(value, None)
    return handle
