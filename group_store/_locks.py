"""Directory locks that exclude other threads and other processes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock


class DirectoryLock:
    """A thread lock in front of a native ``FileLock``.

    It has to be two locks: with ``thread_local=False`` (needed because the
    writer thread and callers share it) FileLock's re-entrancy counter is shared
    by all threads, so it alone would let a second thread walk straight in. The
    thread lock serializes threads of this process; the FileLock (``flock``)
    then serializes processes. Re-entrant in one thread.
    """

    def __init__(self, lock_path: str, mode: int) -> None:
        self._thread_lock = threading.RLock()
        self._file_lock = FileLock(
            lock_path,
            mode=mode,
            thread_local=False,
            fallback_to_soft=False,
            preserve_lock_file=True,
            # filelock polls a held lock; its default 50 ms sleep would dominate contended updates.
            poll_interval=0.001,
        )

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the ``with`` body."""
        with self._thread_lock, self._file_lock:
            yield
