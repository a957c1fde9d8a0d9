"""Parsed partition files a table has read, and how to know they are still current.

A table rereads a partition file on every call, so another process's write is
never missed; parsing it again is what this cache saves. Two checks:

- By status: an entry read from disk keeps the file's descriptor open. While it
  is open no other file can get its inode number, so if a ``stat`` of the path
  shows the same device, inode, size, mtime and ctime, the path still names the
  very file that was read (every group_store write replaces a file by rename,
  which gives a new inode). One ``stat`` instead of opening and reading.
- By bytes: otherwise the file is read (safely, never following a symlink) and
  compared with the cached bytes; only different bytes are parsed.

Entries hold no data a caller can change: stored records are never mutated,
only replaced (callers get copies).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any

Identity = tuple[int, int, int, int, int]
Slot = tuple[str, str]


def identity(status: os.stat_result) -> Identity:
    """What must match for a path to still name a pinned file unchanged."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


class _Entry:
    __slots__ = ("identity", "pin", "raw", "records")

    def __init__(self, raw: bytes, records: dict[str, Any], pin: int | None, ident: Identity | None) -> None:
        self.raw = raw
        self.records = records
        self.pin = pin
        self.identity = ident


class PartitionCache:
    """At most ``capacity`` parsed partition files (least recently used dropped), each pinning one descriptor."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[Slot, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._pins: set[int] = set()
        weakref.finalize(self, _close_all, self._pins)

    def current(self, slot: Slot, path: str) -> dict[str, Any] | None:
        """The cached records if a ``stat`` of ``path`` shows the pinned file unchanged, else ``None``."""
        with self._lock:
            entry = self._entries.get(slot)
        if entry is None or entry.identity is None:
            return None
        try:
            status = os.stat(path)
        except OSError:
            return None
        with self._lock:
            # Still cached (so still pinned) after the stat: the inode could not have been reused meanwhile.
            if self._entries.get(slot) is not entry or identity(status) != entry.identity:
                return None
            self._entries.move_to_end(slot)
            return entry.records

    def same_bytes(self, slot: Slot, raw: bytes) -> dict[str, Any] | None:
        """The cached records if they were parsed from exactly ``raw``."""
        with self._lock:
            entry = self._entries.get(slot)
        return entry.records if entry is not None and entry.raw == raw else None

    def store(self, slot: Slot, raw: bytes, records: dict[str, Any], pin: int | None = None,
              status: os.stat_result | None = None) -> None:  # fmt: skip
        """Remember ``records`` parsed from ``raw`` (taking ownership of the ``pin`` descriptor, if any)."""
        entry = _Entry(raw, records, pin, None if status is None else identity(status))
        with self._lock:
            dropped = [self._entries.pop(slot, None)]
            self._entries[slot] = entry
            while len(self._entries) > self._capacity:
                dropped.append(self._entries.popitem(last=False)[1])
            if pin is not None:
                self._pins.add(pin)
            closing = [e.pin for e in dropped if e is not None and e.pin is not None]
            self._pins.difference_update(closing)
        _close_all(closing)

    def forget(self, slot: Slot) -> None:
        """Drop a file's entry (it was deleted)."""
        with self._lock:
            entry = self._entries.pop(slot, None)
            pin = None if entry is None else entry.pin
            if pin is not None:
                self._pins.discard(pin)
        if pin is not None:
            _close_all([pin])


def _close_all(descriptors: set[int] | list[int]) -> None:
    for fd in list(descriptors):
        with contextlib.suppress(OSError):
            os.close(fd)
