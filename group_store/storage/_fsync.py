"""Parallel fan-out for group commits: a few helper threads of our own that never refuse work.

A durable batch fsyncs its temporary files concurrently (the file system folds
concurrent fsyncs into few journal commits). Rejected alternative:
``concurrent.futures.ThreadPoolExecutor``. Its exit hook runs in
``threading._shutdown``, before any ``atexit`` hook, and from then on it
refuses new work, so the atexit drain of a durable DataStore (the moment the
fan-out matters most) failed every queued write. The helpers here are plain
daemon threads: they keep working during ``atexit``.

Invariant: the calling thread works through the items too, and waits only for
items a helper has actually taken. So a call never depends on a helper being
alive (after ``fork()`` there are none; at shutdown none may start): it only
loses parallelism. Helpers exit after a second without work, so an idle
process holds no fsync threads.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_HELPERS = 15
"""Helper threads at most (plus the calling thread): 16 fsyncs in flight."""

_IDLE_SECONDS = 1.0


# Process-directed signals a program handles (Ctrl-C, kill, hangups, its own user signals).
_APPLICATION_SIGNALS = frozenset(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")
    if hasattr(signal, name)
)


def leave_signals_to_the_main_thread() -> None:
    """Block the application's signals in the calling (background) thread.

    The kernel delivers a process-directed signal to any thread that does not block
    it, but Python runs signal handlers only in the main thread. If a thread of ours
    takes SIGINT while the main thread sleeps in an event loop's select() (asyncio
    sets no wakeup descriptor for its Ctrl-C handler), the handler runs only when
    something else wakes the loop: Ctrl-C during ``await store.flush()`` hung. Every
    thread group_store starts calls this first, so such signals go to the main thread.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _APPLICATION_SIGNALS)


class _Job(Generic[T, R]):
    """One fan-out: items are taken by index, by whichever thread asks first."""

    __slots__ = ("_function", "_items", "_lock", "_next", "_unfinished", "done", "results")

    def __init__(self, function: Callable[[T], R], items: Sequence[T]) -> None:
        self._function = function
        self._items = items
        self._lock = threading.Lock()
        self._next = 0
        self._unfinished = len(items)
        self.results: list[R | None] = [None] * len(items)
        self.done = threading.Event()

    def work(self) -> None:
        """Run items until none is left to take (then return at once)."""
        count = len(self._items)
        while True:
            with self._lock:
                index = self._next
                if index >= count:
                    return
                self._next = index + 1
            try:
                self.results[index] = self._function(self._items[index])
            finally:
                # Counted even if ``function`` raised, so the caller's wait always ends.
                with self._lock:
                    self._unfinished -= 1
                    if not self._unfinished:
                        self.done.set()


class _Helpers:
    """The helper threads of this process and their shared queue of jobs."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job[object, object]] = queue.SimpleQueue()
        self._alive = 0

    def offer(self, job: _Job[T, R], helpers: int) -> None:
        """Let up to ``helpers`` helper threads join ``job`` (starting threads as needed)."""
        with self._guard:
            for _ in range(helpers):
                self._jobs.put(job)  # type: ignore[arg-type]
            while self._alive < min(helpers, MAX_HELPERS):
                thread = threading.Thread(target=self._serve, name="group_store-fsync", daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # no new threads (interpreter shutdown): the caller does the work
                    return
                self._alive += 1

    def _serve(self) -> None:
        leave_signals_to_the_main_thread()
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self._guard:
                    # Checked under the guard that offer() holds while it posts, so a job
                    # posted now either is seen here or sees this thread gone and starts one.
                    if self._jobs.empty():
                        self._alive -= 1
                        return
                continue
            job.work()


_helpers = _Helpers()


def _reset_after_fork() -> None:
    # The child has none of the parent's threads; its guard may have been held mid-fork.
    global _helpers
    _helpers = _Helpers()


os.register_at_fork(after_in_child=_reset_after_fork)


def fan_out(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[function(item) for item in items]``, computed by up to 16 threads; in item order.

    ``function`` must return its failures rather than raise them. Works during
    ``atexit`` and after ``fork()`` (with fewer threads, at worst only this one).
    """
    if len(items) <= 1:
        return [function(item) for item in items]
    job = _Job(function, items)
    _helpers.offer(job, min(len(items) - 1, MAX_HELPERS))
    job.work()
    job.done.wait()
    return job.results  # type: ignore[return-value]
