"""Genie's short-memory store on files: values per memory type, each with a TTL."""

from __future__ import annotations

from datetime import timedelta

from group_store import Store, Table

from ._base import Twin, table


class ShortMemoryStore(Twin[Table]):
    """Short-lived values per memory type, each with a TTL.

    As the Go store: ``get`` drops an expired entry it meets, ``count`` counts
    live entries and ``cleanup`` removes every expired one.
    """

    @staticmethod
    def _build(store: Store) -> Table:
        return table(store, "short_memories", ("memory_type", "key", "value"), ("memory_type", "key"))

    async def set(self, memory_type: str, key: str, value: str, ttl: timedelta | float) -> None:
        """Store ``value`` for ``ttl`` (a timedelta or seconds).

        Raises:
            InvalidArgumentError: for a negative ttl.
        """
        record = {"memory_type": memory_type, "key": key, "value": value}
        await self._run(lambda store: self._tables(store).upsert(record, ttl=ttl))

    async def get(self, memory_type: str, key: str) -> tuple[str, bool]:
        """``(value, True)``, or ``("", False)`` if missing or expired (an expired entry is deleted)."""
        return await self._run(self._get, memory_type, key)

    def _get(self, memory_type: str, key: str, store: Store) -> tuple[str, bool]:
        table = self._tables(store)
        record = table.get(memory_type, key)
        if record is not None:
            return record["value"], True
        with table.lock(memory_type):
            # Checked again under the lock: another process may have just set it anew.
            if table.get(memory_type, key) is None and table.get(memory_type, key, include_expired=True) is not None:
                table.delete(memory_type, key)
        return "", False

    async def delete(self, memory_type: str, key: str) -> None:
        """Remove an entry (no error if missing)."""
        await self._run(lambda store: self._tables(store).delete(memory_type, key))

    async def count(self, memory_type: str) -> int:
        """How many live entries the memory type holds."""
        return await self._run(lambda store: self._tables(store).count({"memory_type": memory_type}))

    async def cleanup(self) -> int:
        """Remove every expired entry of every memory type; return how many."""
        return await self._run(lambda store: self._tables(store).delete_expired())
