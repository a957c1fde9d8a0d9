"""Directory locks that exclude other threads and other processes.

A directory's lock is a thread ``RLock`` in front of an ``flock`` (filelock's
``lock_descriptor``) on a descriptor of the directory's ``.lock`` file. The
descriptor is opened once and kept between acquires, so an uncontended acquire
costs four system calls (in the root; measured) instead of the ~40 of a ``FileLock``.
Kept descriptors live in one bounded ``LockTable`` per process, ``process_locks``,
keyed by absolute directory path, so the number of lock descriptors a process
holds does not grow with the number of store objects. This module does no
file-system work of its own (the storage opens and checks the descriptor, see
``LocalStorage.lock``).

After ``fork`` the child starts with no locks: descriptors inherited from the
parent share its flocks (per open file description), so the child opens its own.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict

from filelock import lock_descriptor, unlock_descriptor

IDLE_LOCK_DESCRIPTORS = 32
"""Lock descriptors a process keeps open while no thread holds or awaits their lock."""
# Polling a contended flock: filelock's 50 ms default would dominate contended updates.
_POLL_SECONDS = 0.001
_generation = 0
"""Counts forks: a descriptor opened in an earlier generation belongs to the parent process."""


def _forked() -> None:
    global _generation
    _generation += 1
    process_locks.forget_inherited()


os.register_at_fork(after_in_child=_forked)


class DirectoryLock:
    """One directory's lock: a thread ``RLock``, then an ``flock`` on a kept descriptor.

    It has to be two locks: ``flock`` belongs to an open file description, and
    every thread of this process shares the one kept descriptor (the writer
    thread and callers share locks, so it cannot be per thread), so ``flock``
    alone would let a second thread walk straight in. The thread lock serializes
    this process's threads, and is re-entrant per thread; the ``flock`` then
    serializes processes. Storage objects of this process on the same directory
    path share one lock (and one thread holding it through one store re-enters it
    through another); on different paths to one directory they hold separate
    descriptors, which exclude each other as processes do.

    ``fd`` and ``identity`` change only with ``thread_lock`` held, or under the
    table's guard while no thread uses the lock; ``users`` only under that guard.
    """

    __slots__ = ("depth", "fd", "generation", "identity", "thread_lock", "users")

    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0
        """How many times the thread holding ``thread_lock`` entered; the flock is held while > 0."""
        self.fd: int | None = None
        self.identity: tuple[int, int] | None = None
        """``(st_dev, st_ino)`` of ``fd``: compared with what ``.lock`` names now, to notice a replaced file."""
        self.generation = _generation
        self.users = 0
        """Threads between ``LockTable.checkout`` and ``checkin``: a lock in use is never closed."""

    def attach(self, fd: int, identity: tuple[int, int]) -> None:
        """Keep ``fd`` (a freshly opened ``.lock``) as this lock's descriptor."""
        self.fd, self.identity, self.generation = fd, identity, _generation

    def is_inherited(self) -> bool:
        """True if the kept descriptor was opened before a fork (it shares its flock with the parent)."""
        return self.fd is not None and self.generation != _generation

    def flock(self, deadline: float | None = None) -> bool:
        """Wait for the flock on the kept descriptor (the caller holds ``thread_lock``), until
        ``deadline`` (``time.monotonic()``; forever if ``None``). Returns whether it was taken.

        Raises:
            OSError: if the file system refuses to lock.
        """
        assert self.fd is not None
        if deadline is None:
            return lock_descriptor(self.fd, poll_interval=_POLL_SECONDS)
        while not lock_descriptor(self.fd, blocking=False):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)
        return True

    def release(self) -> None:
        """Drop the flock (not the thread lock); an inherited descriptor is closed unlocked instead,
        since unlocking it would release the parent process's lock."""
        if self.fd is None:
            return
        if self.is_inherited():
            self.close()
            return
        try:
            unlock_descriptor(self.fd)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Drop the flock, if this process holds it, and close the kept descriptor
        (the caller made sure no other thread holds or waits for the lock)."""
        fd, inherited = self.fd, self.is_inherited()
        self.fd = self.identity = None
        if fd is None:
            return
        if not inherited:
            # Explicitly: closing alone drops an flock only with the last descriptor of
            # its open file description, and a child forked since may hold a copy.
            with contextlib.suppress(OSError):
                unlock_descriptor(fd)
        with contextlib.suppress(OSError):
            os.close(fd)


class LockTable:
    """Directory locks by key, keeping at most ``capacity`` idle descriptors open.

    Least recently used locks that no thread holds or waits for are closed when the
    table grows past ``capacity``; locks in use are never closed (closing would drop
    a held flock), so the table exceeds ``capacity`` only while more directories
    than that are locked or awaited at once.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._locks: OrderedDict[str, DirectoryLock] = OrderedDict()
        self._guard = threading.Lock()

    def checkout(self, directory: str) -> DirectoryLock:
        """The lock of ``directory``, marked in use until ``checkin``."""
        with self._guard:
            lock = self._locks.get(directory)
            if lock is None:
                lock = self._locks[directory] = DirectoryLock()
            else:
                self._locks.move_to_end(directory)
            lock.users += 1
            if len(self._locks) > self.capacity:
                self._evict()
            return lock

    def checkin(self, lock: DirectoryLock) -> None:
        """End a ``checkout``."""
        with self._guard:
            lock.users -= 1
            if len(self._locks) > self.capacity:
                self._evict()

    def open_descriptors(self) -> int:
        """How many lock descriptors are open now."""
        with self._guard:
            return sum(lock.fd is not None for lock in self._locks.values())

    def close_all(self) -> None:
        """Close every descriptor and forget every lock (the caller knows none is in use)."""
        with self._guard:
            for lock in self._locks.values():
                lock.close()
            self._locks.clear()

    def forget_inherited(self) -> None:
        """In a child just forked: start afresh, closing the child's copies of the kept
        descriptors (their flocks stay the parent's) and dropping locks that threads of
        the parent held, which no thread of the child will ever release.

        A lock the forking thread itself held stays with that thread until it leaves
        its ``with`` block, unlocking nothing; its next acquire uses a new lock.
        """
        self._guard = threading.Lock()  # the parent's may have been held by another thread
        for lock in self._locks.values():
            lock.close()
        self._locks = OrderedDict()

    def _evict(self) -> None:
        excess = len(self._locks) - self.capacity
        for directory in [directory for directory, lock in self._locks.items() if lock.users == 0][:excess]:
            self._locks.pop(directory).close()


process_locks = LockTable(IDLE_LOCK_DESCRIPTORS)
"""Every directory lock of this process, by the directory's absolute path."""
