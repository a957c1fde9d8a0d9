"""Async file twins of Genie's GORM stores (seed 001): sessions, memories, short memories, checkpoints.

Switch by construction: ``db.NewSessionStore(ctx, gormDB, db.WithSessionStoreEventLimit(100))``
becomes ``SessionStore(DataStore("state"), event_limit=100)`` (or a directory
path); the methods are the Go methods in snake_case, with the context argument
dropped and errors raised instead of returned. All four can share one
DataStore. Each call is one hop to the DataStore's writer thread, where it runs
in order with that store's queued writes, holding the directory locks of what
it changes, so several processes can share the directory. Layout::

    sessions/<app>/<user>/records.json                   session rows
    session_events/<app>/<user>/<session>.jsonl          events, oldest first, at most event_limit
    app_states/<app>/records.json, user_states/<app>/<user>/records.json,
    session_states/<app>/<user>/<session>/records.json   state key/values
    session_summaries/<app>/<user>/<session>/records.json  summaries by filter key
    memories/<app>/<user>/records.json                   memories by id
    short_memories/<memory_type>/records.json            values with their expiry
    checkpoints/<lineage>/records.json                   checkpoints with their writes

Differences from the Go stores are listed in each class.
"""

from __future__ import annotations

from ._base import MemoryKey as MemoryKey
from ._base import SessionKey as SessionKey
from ._base import UserKey as UserKey
from ._checkpoints import CheckpointStore as CheckpointStore
from ._checkpoints import CheckpointTuple as CheckpointTuple
from ._memories import MemoryEntry as MemoryEntry
from ._memories import MemoryStore as MemoryStore
from ._sessions import Session as Session
from ._sessions import SessionStore as SessionStore
from ._short_memories import ShortMemoryStore as ShortMemoryStore

__all__ = [
    "CheckpointStore",
    "CheckpointTuple",
    "MemoryEntry",
    "MemoryKey",
    "MemoryStore",
    "Session",
    "SessionKey",
    "SessionStore",
    "ShortMemoryStore",
    "UserKey",
]
