"""File twin of Director's ``SQLiteDB`` (seed 002): sessions, conversations and context messages.

Switch by construction: ``SQLiteDB("director.db")`` becomes
``DirectorDB("director.db")``, where the path names a directory (or pass a
``Store``). Layout::

    sessions/shard-XX.json                    sessions by id (64 shards)
    conversations/<session_id>/records.json   a session's messages by msg_id
    message_sessions/shard-XX.json            msg_id -> session_id (msg_id is unique, as in SQLite)
    context_messages/shard-XX.json            one context list per session

Results equal the SQLite tables' (a test runs one scenario on both).
``get_conversations`` returns a session's messages in the order they were
last written, which is SQLite's rowid order after ``INSERT OR REPLACE``.
Where SQLite leaves an order open (sessions with equal ``updated_at``), ties
go by session id. ``delete_session`` makes three atomic deletes, as the seed's
three commits are.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from group_store import DuplicateKeyError, GroupStoreError, Record, Store, Table

if TYPE_CHECKING:
    import os

__all__ = ["DirectorDB"]

_SESSION_FIELDS = ("session_id", "video_id", "collection_id", "created_at", "updated_at", "metadata")
_MESSAGE_FIELDS = (
    "session_id",
    "conv_id",
    "msg_id",
    "msg_type",
    "agents",
    "actions",
    "content",
    "status",
    "created_at",
    "updated_at",
    "metadata",
)
_CONTEXT_FIELDS = ("session_id", "context_data", "created_at", "updated_at", "metadata")


class DirectorDB:
    """``SQLiteDB``'s methods, arguments and return values on a directory of JSON files.

    Attributes:
        db_path: The directory, as given.
    """

    db_type = "sqlite"

    def __init__(self, db_path: str | os.PathLike[str] | Store = "director.db") -> None:
        self.db_path = db_path
        self.store = db_path if isinstance(db_path, Store) else Store(db_path)
        self.sessions = Table(self.store, "sessions", fields=_SESSION_FIELDS, key=("session_id",))
        self.conversations = Table(self.store, "conversations", fields=_MESSAGE_FIELDS, key=("session_id", "msg_id"))
        self.context_messages = Table(self.store, "context_messages", fields=_CONTEXT_FIELDS, key=("session_id",))
        # msg_id is the conversations table's primary key in SQLite: this index finds a
        # message's session, so writing it under another session moves it, as there.
        self.message_sessions = Table(self.store, "message_sessions", fields=("msg_id", "session_id"), key=("msg_id",))

    def create_session(
        self,
        session_id: str,
        video_id: str,
        collection_id: str,
        created_at: int | None = None,
        updated_at: int | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Create a session; an existing one is left unchanged (``INSERT OR IGNORE``)."""
        now = int(time.time())
        record = {
            "session_id": session_id,
            "video_id": video_id,
            "collection_id": collection_id,
            "created_at": created_at or now,
            "updated_at": updated_at or now,
            "metadata": metadata or {},
        }
        with suppress(DuplicateKeyError):
            self.sessions.insert(record)

    def get_session(self, session_id: str) -> dict[str, Any]:
        """The session as a dict, or ``{}``."""
        record = self.sessions.get(session_id)
        return {} if record is None else dict(record)

    def get_sessions(self) -> list[dict[str, Any]]:
        """Every session, most recently updated first."""
        return [dict(record) for record in self.sessions.find(order_by="updated_at", descending=True)]

    def add_or_update_msg_to_conv(
        self,
        session_id: str,
        conv_id: str,
        msg_id: str,
        msg_type: str,
        agents: list[str],
        actions: list[str],
        content: list[dict[str, Any]],
        status: str | None = None,
        created_at: int | None = None,
        updated_at: int | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Add a message, or replace the one with ``msg_id`` (``INSERT OR REPLACE``: every field is rewritten)."""
        now = int(time.time())
        # The root's lock, not the conversations table's: the message_sessions index is a
        # sibling table, and two locks are held only parent before child (Storage's rule).
        with self.store.lock():
            owner = self.message_sessions.get(msg_id)
            if owner is not None and owner["session_id"] != session_id:
                self.conversations.delete(owner["session_id"], msg_id)
            self.conversations.upsert(
                {
                    "session_id": session_id,
                    "conv_id": conv_id,
                    "msg_id": msg_id,
                    "msg_type": msg_type,
                    "agents": agents,
                    "actions": actions,
                    "content": content,
                    "status": status,
                    "created_at": created_at or now,
                    "updated_at": updated_at or now,
                    "metadata": metadata or {},
                }
            )
            if owner is None or owner["session_id"] != session_id:
                self.message_sessions.upsert({"msg_id": msg_id, "session_id": session_id})

    def get_conversations(self, session_id: str) -> list[dict[str, Any]]:
        """The session's messages, in the order they were last written (oldest first)."""
        records = self.conversations.find({"session_id": session_id})
        return [dict(record) for record in sorted(records, key=_last_written)]

    def get_context_messages(self, session_id: str) -> Any:
        """The session's context messages, or ``{}`` when there are none (as the seed returns)."""
        record = self.context_messages.get(session_id)
        return {} if record is None else record["context_data"]

    def add_or_update_context_msg(
        self,
        session_id: str,
        context_messages: list[Any],
        created_at: int | None = None,
        updated_at: int | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Set the session's context messages (``INSERT OR REPLACE``)."""
        now = int(time.time())
        self.context_messages.upsert(
            {
                "session_id": session_id,
                "context_data": context_messages,
                "created_at": created_at or now,
                "updated_at": updated_at or now,
                "metadata": metadata or {},
            }
        )

    def delete_conversation(self, session_id: str) -> bool:
        """Delete the session's messages; ``True`` if there were any."""
        with self.store.lock():  # the root's: it also covers the sibling message_sessions table
            messages = self.conversations.find({"session_id": session_id})
            for message in messages:
                self.message_sessions.delete(message["msg_id"])
            return self.conversations.delete_where({"session_id": session_id}) > 0

    def delete_context(self, session_id: str) -> bool:
        """Delete the session's context messages; ``True`` if there were any."""
        return self.context_messages.delete(session_id)

    def delete_session(self, session_id: str) -> tuple[bool, list[str]]:
        """Delete the session and its data; return ``(success, failed_components)`` as the seed does.

        ``failed_components`` names what was not there to delete (``"conversation"``,
        ``"context"``, ``"session"``); ``success`` is False only when all three were missing.
        """
        failed_components = []
        with self.store.lock():
            if not self.delete_conversation(session_id):
                failed_components.append("conversation")
            if not self.delete_context(session_id):
                failed_components.append("context")
            if not self.sessions.delete(session_id):
                failed_components.append("session")
        success = len(failed_components) < 3
        return success, failed_components

    def health_check(self) -> bool:
        """True if the store can be used: its root lock is taken and released (which creates
        the directory if missing, and on first use writes the format marker) through the
        store's backend. Not proven: that a later write has room (ENOSPC) or permission
        on a store whose marker and lock already exist."""
        try:
            with self.store.lock():
                return True
        except (GroupStoreError, OSError):
            return False


def _last_written(record: Record) -> tuple[str, str]:
    # SQLite returns rows in rowid order, and INSERT OR REPLACE gives a replaced row a new rowid.
    return (record.updated_at.isoformat(), record["msg_id"])
