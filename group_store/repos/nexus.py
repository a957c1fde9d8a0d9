"""File twin of Nexus session persistence (seed 003): bounded message history per session tag.

Switch by construction: ``NexusStore(Path("data/nexus.db"))`` becomes
``NexusStore(Path("data/nexus"))``, a directory (or a ``Store``). Layout::

    messages/<session_tag>.jsonl   the tag's messages, oldest first, at most MAX_MESSAGES lines
    ids.jsonl                      the id sequence (its last line is the last id handed out)

Ids are global and increasing across tags, like ``AUTOINCREMENT``: never
reused, not even after ``clear_all()``. Each append holds the directory's lock
while it takes an id, appends and prunes, so threads and processes sharing the
directory lose nothing. Reads take no lock (appends are atomic to readers).
Differences from the SQLite table: none in results; ``get_history`` reads the
tag's file (at most MAX_MESSAGES lines), never the other tags'.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from group_store import KeyNotFoundError, Store

__all__ = ["DB_PATH", "DEFAULT_SESSION_TAG", "MAX_MESSAGES", "NexusMessage", "NexusStore", "nexus_store"]

_DEFAULT_DB_DIR = Path("data")
DB_PATH: Path = _DEFAULT_DB_DIR / "nexus"
MAX_MESSAGES = 500  # per session tag; read at each append, so it can be changed at run time like the seed's
DEFAULT_SESSION_TAG = "nexus"

# The id log is cut back to its last line every this many ids, so reading it stays cheap.
_ID_LOG_COMPACT_EVERY = 1024


class NexusMessage(TypedDict):
    id: int
    role: str
    content: str
    timestamp: str
    session_tag: str


class NexusStore:
    """File-backed persistence for Nexus conversations.

    Usage::

        store = NexusStore(Path("data/nexus"))
        store.append("user", "hi")
        msgs = store.get_history()  # -> list[NexusMessage]
        store.clear()
    """

    def __init__(self, db_path: Path | str | Store | None = None) -> None:
        self._db_path = db_path if isinstance(db_path, Store) else Path(db_path or DB_PATH)
        self._store: Store | None = None
        self._open_lock = threading.Lock()

    def _get_store(self) -> Store:
        # Opened on first use, as the seed connects lazily: the module singleton touches no disk.
        with self._open_lock:
            if self._store is None:
                self._store = self._db_path if isinstance(self._db_path, Store) else Store(self._db_path)
            return self._store

    def close(self) -> None:
        """Forget the open store (idempotent; the next call reopens it)."""
        with self._open_lock:
            self._store = None

    def append(
        self,
        role: str,
        content: str,
        *,
        timestamp: str | None = None,
        session_tag: str = DEFAULT_SESSION_TAG,
    ) -> int:
        """Add a message and return its id; prunes the tag's oldest messages beyond ``MAX_MESSAGES``.

        Raises:
            InvalidKeyError: for an empty or non-string session tag.
        """
        ts = timestamp or datetime.now(UTC).strftime("%H:%M:%S")
        store = self._get_store()
        messages = store.narrow("messages")
        with store.lock():
            row_id = self._next_id(store)
            message = NexusMessage(id=row_id, role=role, content=content, timestamp=ts, session_tag=session_tag)
            messages.append(session_tag, [message], max_items=MAX_MESSAGES)
        return row_id

    @staticmethod
    def _next_id(store: Store) -> int:
        try:
            last: list[int] = store.read("ids", last=1)
        except KeyNotFoundError:
            last = []
        row_id = (last[0] if last else 0) + 1
        compact = row_id % _ID_LOG_COMPACT_EVERY == 0
        store.append("ids", [row_id], max_items=1 if compact else None)
        return row_id

    def get_history(self, session_tag: str = DEFAULT_SESSION_TAG, limit: int = 200) -> list[NexusMessage]:
        """The newest ``limit`` messages of the tag, oldest first (a negative limit: all, as SQL's LIMIT)."""
        try:
            history: list[NexusMessage] = (
                self._get_store().narrow("messages").read(session_tag, last=None if limit < 0 else limit)
            )
        except KeyNotFoundError:
            return []
        return history

    def message_count(self, session_tag: str = DEFAULT_SESSION_TAG) -> int:
        """How many messages the tag holds."""
        return len(self.get_history(session_tag, limit=-1))

    def clear(self, session_tag: str = DEFAULT_SESSION_TAG) -> int:
        """Delete the tag's messages; return how many."""
        store = self._get_store()
        with store.lock():
            count = self.message_count(session_tag)
            store.narrow("messages").delete(session_tag)
        return count

    def clear_all(self) -> int:
        """Delete every message of every tag; return how many (ids keep counting up)."""
        store = self._get_store()
        with store.lock():
            return sum(self.clear(tag) for tag in store.narrow("messages").keys())


nexus_store = NexusStore()
