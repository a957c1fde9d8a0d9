"""Genie's memory store on files: memories per user, idempotent adds, word search."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from group_store import KeyNotFoundError, Store, Table

from ._base import MemoryKey, Twin, UserKey, table


@dataclass
class MemoryEntry:
    id: str
    app_name: str
    user_id: str
    memory: str
    topics: list[str]
    created_at: datetime
    updated_at: datetime


class MemoryStore(Twin[Table]):
    """Memories per user, with idempotent adds and word search.

    Differences from the Go store: a memory's id is 32 hex digits of the
    SHA-256 of (app, user, content) rather than a UUID built from that hash.
    """

    @staticmethod
    def _build(store: Store) -> Table:
        return table(
            store,
            "memories",
            ("app_name", "user_id", "memory_id", "memory", "topics"),
            ("app_name", "user_id", "memory_id"),
        )

    @staticmethod
    def memory_id(user_key: UserKey, content: str) -> str:
        """The id ``add_memory`` gives ``content``: the same content of the same user is one memory."""
        return hashlib.sha256(f"{user_key.app_name}\0{user_key.user_id}\0{content}".encode()).hexdigest()[:32]

    async def add_memory(self, user_key: UserKey, content: str, topics: Sequence[str] = ()) -> None:
        """Add a memory, or refresh the topics of the same content (idempotent)."""
        record = {
            **vars(user_key),
            "memory_id": self.memory_id(user_key, content),
            "memory": content,
            "topics": list(topics),
        }
        await self._run(lambda store: self._tables(store).upsert(record))

    async def update_memory(self, memory_key: MemoryKey, content: str, topics: Sequence[str] = ()) -> None:
        """Replace a memory's content and topics (its id stays).

        Raises:
            KeyNotFoundError: if there is no such memory.
        """

        def change(current: Mapping[str, Any] | None) -> dict[str, Any]:
            if current is None:
                raise KeyNotFoundError("no such memory", key=repr(memory_key))
            return {**current, "memory": content, "topics": list(topics)}

        key = (memory_key.app_name, memory_key.user_id, memory_key.memory_id)
        await self._run(lambda store: self._tables(store).modify(key, change))

    async def delete_memory(self, memory_key: MemoryKey) -> None:
        """Delete a memory (no error if missing)."""
        await self._run(lambda store: self._tables(store).delete(*vars(memory_key).values()))

    async def clear_memories(self, user_key: UserKey) -> None:
        """Delete all of the user's memories."""
        await self._run(lambda store: self._tables(store).delete_where(vars(user_key)))

    async def read_memories(self, user_key: UserKey, limit: int = 0) -> list[MemoryEntry]:
        """The user's memories, most recently updated first; at most ``limit`` if > 0."""
        records = await self._run(
            lambda store: self._tables(store).find(
                vars(user_key),
                order_by=("updated_at", "created_at"),
                descending=True,
                limit=limit if limit > 0 else None,
            )
        )
        return [self._entry(r) for r in records]

    async def search_memories(self, user_key: UserKey, query: str) -> list[MemoryEntry]:
        """The user's memories sharing a word with ``query`` (case-insensitive), most recently updated first."""
        words = _words(query)
        if not words:
            return []
        return [m for m in await self.read_memories(user_key) if words & _words(m.memory)]

    @staticmethod
    def _entry(record: Any) -> MemoryEntry:
        return MemoryEntry(
            record["memory_id"],
            record["app_name"],
            record["user_id"],
            record["memory"],
            record["topics"],
            record.created_at,
            record.updated_at,
        )


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.casefold()))
