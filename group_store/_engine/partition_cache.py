"""Parsed partition files a table has read, and how to know they are still current.

A table rereads a partition file on every call, so another process's write is
never missed; parsing it again is what this cache saves. Two checks:

- By status: an entry read from disk may keep the file's descriptor open (a
  pin). While it is open no other file can get its inode number, so if a
  ``stat`` of the path shows the same device, inode, size, mtime and ctime, the
  path still names the very file that was read (every group_store write
  replaces a file by rename, which gives a new inode). One ``stat`` instead of
  opening and reading.
- By bytes: otherwise the file is read (safely, never following a symlink) and
  compared with the cached bytes; only different bytes are parsed.

Descriptors: pins are one process-wide budget shared by every table's cache,
``pin_budget()`` descriptors at most (32, or an eighth of the soft
``RLIMIT_NOFILE`` if that is less), however many tables exist. The least
recently used pinned entry gives its pin up for a new one; it keeps its parsed
records and is checked by bytes until it is pinned again. Before the budget, each
table pinned up to 128 descriptors: with ``ulimit -n 64`` one ``find({})`` over
100 partitions failed with EMFILE, and so did every later write in the process.

Entries hold no data a caller can change: stored records are never mutated,
only replaced (callers get copies).
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import weakref
from collections import OrderedDict
from typing import Any

Identity = tuple[int, int, int, int, int]
Slot = tuple[str, str]

MAX_PINNED_DESCRIPTORS = 32

# One lock for every cache and the pins: an eviction changes another cache's entry, and
# the critical sections are a few dictionary operations (file work happens outside).
_lock = threading.Lock()


def identity(status: os.stat_result) -> Identity:
    """What must match for a path to still name a pinned file unchanged."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


class _Entry:
    __slots__ = ("identity", "pin", "raw", "records")

    def __init__(self, raw: bytes, records: dict[str, Any], pin: int | None, ident: Identity | None) -> None:
        self.raw = raw
        self.records = records
        self.pin = pin
        # None while unpinned: without the open descriptor an equal status proves nothing.
        self.identity = ident


class _Pins:
    """The entries holding a descriptor, in all caches, least recently used first. Guarded by ``_lock``."""

    def __init__(self) -> None:
        self.entries: OrderedDict[_Entry, None] = OrderedDict()
        self.budget: int | None = None

    def limit(self) -> int:
        if self.budget is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            share = MAX_PINNED_DESCRIPTORS if soft == resource.RLIM_INFINITY else soft // 8
            self.budget = max(1, min(MAX_PINNED_DESCRIPTORS, share))
        return self.budget

    def add(self, entry: _Entry, closing: list[int]) -> None:
        """Count ``entry``'s pin, unpinning the least recently used beyond the budget."""
        self.entries[entry] = None
        while len(self.entries) > self.limit():
            self.release(next(iter(self.entries)), closing)

    def touch(self, entry: _Entry) -> None:
        self.entries.move_to_end(entry)

    def release(self, entry: _Entry, closing: list[int]) -> None:
        """Unpin ``entry``: its descriptor goes to ``closing`` (closed by the caller, after the lock)."""
        if entry.pin is None:
            return
        # Identity first: a check racing with this sees None and reads the file instead.
        entry.identity = None
        closing.append(entry.pin)
        entry.pin = None
        self.entries.pop(entry, None)


_pins = _Pins()


def pin_budget() -> int:
    """How many descriptors all table caches of this process keep open at most."""
    with _lock:
        return _pins.limit()


def pinned_descriptors() -> int:
    """How many descriptors the table caches of this process keep open now."""
    with _lock:
        return len(_pins.entries)


class PartitionCache:
    """At most ``capacity`` parsed partition files (least recently used dropped); pins come from ``_pins``."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[Slot, _Entry] = OrderedDict()
        weakref.finalize(self, _release_all, self._entries)

    def current(self, slot: Slot, path: str) -> dict[str, Any] | None:
        """The cached records if a ``stat`` of ``path`` shows the pinned file unchanged, else ``None``."""
        with _lock:
            entry = self._entries.get(slot)
            if entry is None or entry.identity is None:
                return None
        try:
            status = os.stat(path)
        except OSError:
            return None
        with _lock:
            # Still cached and pinned after the stat: the inode could not have been reused meanwhile.
            if self._entries.get(slot) is not entry or identity(status) != entry.identity:
                return None
            self._entries.move_to_end(slot)
            _pins.touch(entry)
            return entry.records

    def same_bytes(self, slot: Slot, raw: bytes) -> dict[str, Any] | None:
        """The cached records if they were parsed from exactly ``raw``."""
        with _lock:
            entry = self._entries.get(slot)
        return entry.records if entry is not None and entry.raw == raw else None

    def store(self, slot: Slot, raw: bytes, records: dict[str, Any], pin: int | None = None,
              status: os.stat_result | None = None) -> None:  # fmt: skip
        """Remember ``records`` parsed from ``raw`` (taking ownership of the ``pin`` descriptor, if any)."""
        entry = _Entry(raw, records, pin, None if status is None or pin is None else identity(status))
        closing: list[int] = []
        with _lock:
            old = self._entries.pop(slot, None)
            if old is not None:
                _pins.release(old, closing)
            self._entries[slot] = entry
            while len(self._entries) > self._capacity:
                _pins.release(self._entries.popitem(last=False)[1], closing)
            if pin is not None:
                _pins.add(entry, closing)
        _close_all(closing)

    def forget(self, slot: Slot) -> None:
        """Drop a file's entry (it was deleted)."""
        closing: list[int] = []
        with _lock:
            entry = self._entries.pop(slot, None)
            if entry is not None:
                _pins.release(entry, closing)
        _close_all(closing)


def _release_all(entries: OrderedDict[Slot, _Entry]) -> None:
    """A cache was collected: give its pins back."""
    closing: list[int] = []
    with _lock:
        for entry in entries.values():
            _pins.release(entry, closing)
        entries.clear()
    _close_all(closing)


def _reset_after_fork() -> None:
    # The child's copies of the descriptors stay pinned (and counted); only the lock,
    # which another thread may have held at the fork, must be fresh.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _close_all(descriptors: list[int]) -> None:
    for fd in descriptors:
        with contextlib.suppress(OSError):
            os.close(fd)
