"""Waiting on the caller's event loop without loading anyio's backend under asyncio.

anyio loads its asyncio backend (``anyio._backends._asyncio``, about 40 ms of imports)
on the first call that needs it: ``anyio.lowlevel.checkpoint()``, ``anyio.Event()``,
``current_token()``. A process that only saves, flushes and loads would pay that once
in its first ``await``, more than a thousand loads cost. Under asyncio these two
primitives are asyncio's own (anyio's checkpoint on asyncio *is* ``sleep(0)``, and an
anyio cancel scope cancels the task, which interrupts either the same way); under any
other loop (trio) they are anyio's.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    import asyncio

Wake = Callable[[], None]
"""Wakes one waiting task; safe to call from any thread, any number of times, after its loop ended."""


def running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running a task in this thread, or ``None`` (no loop, or another library's)."""
    # Not imported here: under trio, asyncio may never be loaded at all.
    module = sys.modules.get("asyncio")
    if module is None:
        return None
    loop = module._get_running_loop()
    if loop is None or module.current_task(loop) is None:
        return None
    return loop  # type: ignore[no-any-return]


async def checkpoint() -> None:
    """``anyio.lowlevel.checkpoint()``: let other tasks run and deliver a pending cancellation."""
    module = sys.modules.get("asyncio")
    if module is not None and running_asyncio_loop() is not None:
        await module.sleep(0)
    else:
        await anyio.lowlevel.checkpoint()


class LoopEvent:
    """A one-shot event a task of the current loop waits on and any thread sets (``wake``).

    Made inside the task that will wait (it binds that task's loop).
    """

    __slots__ = ("_asyncio_future", "_event", "_token", "wake")

    def __init__(self) -> None:
        loop = running_asyncio_loop()
        self._asyncio_future: asyncio.Future[None] | None = None
        self._event: anyio.Event | None = None
        if loop is not None:
            future = self._asyncio_future = loop.create_future()

            def wake() -> None:
                # That loop has ended (or is closing): nobody is left to wake.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, future)

        else:
            event = self._event = anyio.Event()
            token = anyio.lowlevel.current_token()

            def wake() -> None:
                with contextlib.suppress(anyio.RunFinishedError, RuntimeError):
                    token.backend_class.run_sync_soon(event.set, (), token.native_token)

        self.wake: Wake = wake

    def is_set(self) -> bool:
        if self._asyncio_future is not None:
            return self._asyncio_future.done()
        assert self._event is not None
        return self._event.is_set()

    async def wait(self, at_most: float) -> None:
        """Wait until set or ``at_most`` seconds passed, whichever comes first."""
        future = self._asyncio_future
        if future is not None:
            # wait() leaves the future alone when it times out or is cancelled.
            await sys.modules["asyncio"].wait((future,), timeout=at_most)
            return
        assert self._event is not None
        with anyio.move_on_after(at_most):
            await self._event.wait()


def _resolve(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)
