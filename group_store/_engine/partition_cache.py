"""Parsed partition files a table has read, and how to know they are still current.

A table rereads a partition file on every call, so another process's write is
never missed; parsing it again is what this cache saves. Two checks:

- By version: an entry read through ``Storage.read_versions`` keeps the file's
  version token, and ``Storage.is_current`` says whether the file is still in that
  state (the local backend: one ``stat``, the token pinning the inode so an equal
  status proves the same file). No read at all.
- By bytes: otherwise the file is read again and compared with the cached bytes;
  only different bytes are parsed.

Descriptors are the backend's business: the local backend keeps its pins in one
process-wide budget (``group_store.storage._pins``), and a token whose pin was
given up is simply not current, so the entry falls back to the check by bytes.

Entries hold no data a caller can change: stored records are never mutated,
only replaced (callers get copies).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from ..storage._base import Version

Slot = tuple[str, str]

# One lock per process: the critical sections are a few dictionary operations.
_lock = threading.Lock()


class Entry(NamedTuple):
    """A partition file's bytes, its parsed records and the version they were read at
    (``None``: our own write, whose version is unknown, so checked by bytes)."""

    raw: bytes
    records: dict[str, Any]
    version: Version | None


class PartitionCache:
    """At most ``capacity`` parsed partition files (least recently used dropped)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[Slot, Entry] = OrderedDict()

    def get(self, slot: Slot) -> Entry | None:
        """The entry of ``slot``, marked recently used, or ``None``."""
        with _lock:
            entry = self._entries.get(slot)
            if entry is not None:
                self._entries.move_to_end(slot)
            return entry

    def same_bytes(self, slot: Slot, raw: bytes) -> dict[str, Any] | None:
        """The cached records if they were parsed from exactly ``raw``."""
        with _lock:
            entry = self._entries.get(slot)
        return entry.records if entry is not None and entry.raw == raw else None

    def store(self, slot: Slot, raw: bytes, records: dict[str, Any], version: Version | None = None) -> None:
        """Remember ``records`` parsed from ``raw`` (read at ``version``, if known)."""
        with _lock:
            self._entries.pop(slot, None)
            self._entries[slot] = Entry(raw, records, version)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def forget(self, slot: Slot) -> None:
        """Drop a file's entry (it was deleted)."""
        with _lock:
            self._entries.pop(slot, None)
