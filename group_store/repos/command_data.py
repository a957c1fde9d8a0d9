"""File twins of the command data store's SQLAlchemy repositories (seed 000).

Switch by construction: ``CommandDataRepository(SessionLocal())`` becomes
``CommandDataRepository(Store("state"))`` (or a directory path); every method,
argument, return value and quirk stays. Layout under the store::

    command_data/<command_name>/records.json      one file per command
    chunked_command_responses/<session_id>.jsonl  one log per session
    command_registry/records.json                 {command_name: enabled}
    command_auth/records.json

Differences from the SQL tables: ``get_all`` returns entries by ``data_key``
(the order SQLite's unique index gives; a test compares the twin with SQLite);
times are naive UTC as in the seed and keep microseconds; ``delete``,
``delete_all`` and ``delete_expired`` return what they removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from group_store import Record, Store, Table

__all__ = [
    "ChunkedCommandResponseRepository",
    "CommandAuth",
    "CommandAuthRepository",
    "CommandData",
    "CommandDataRepository",
    "CommandRegistryRepository",
]

if TYPE_CHECKING:
    import os

StoreArg: TypeAlias = "Store | str | os.PathLike[str]"


def _store(store: StoreArg) -> Store:
    return store if isinstance(store, Store) else Store(store)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


@dataclass
class CommandData:
    """One entry, as the seed's model: times are naive UTC datetimes."""

    command_name: str
    data_key: str
    data: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None

    @classmethod
    def _from_record(cls, record: Record) -> CommandData:
        expires = record.expires_at
        return cls(
            command_name=record["command_name"],
            data_key=record["data_key"],
            data=record["data"],
            created_at=_naive_utc(record.created_at),
            updated_at=_naive_utc(record.updated_at),
            expires_at=None if expires is None else _naive_utc(expires),
        )


class CommandDataRepository:
    """Key-value entries per (command_name, data_key), with an optional expiry.

    As in the seed, ``get()`` and ``get_all()`` return expired entries until
    ``delete_expired()`` removes them; check ``entry.expires_at`` yourself.
    """

    def __init__(self, db: StoreArg) -> None:
        self.table = Table(
            _store(db), "command_data", fields=("command_name", "data_key", "data"), key=("command_name", "data_key")
        )

    def save(self, command_name: str, data_key: str, data: str, expires_at: datetime | None = None) -> CommandData:
        """Store or overwrite the entry; ``expires_at`` is naive UTC (aware is converted).

        Raises:
            SchemaError: if command_name is empty or a name is not a string.
        """
        aware = None if expires_at is None else self._aware(expires_at)
        record = {"command_name": command_name, "data_key": data_key, "data": data}
        return CommandData._from_record(self.table.upsert(record, expires_at=aware))

    @staticmethod
    def _aware(moment: datetime) -> datetime:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment

    def get(self, command_name: str, data_key: str) -> CommandData | None:
        """The entry, expired or not, or ``None``."""
        record = self.table.get(command_name, data_key, include_expired=True)
        return None if record is None else CommandData._from_record(record)

    def get_all(self, command_name: str) -> list[CommandData]:
        """Every entry of the command, expired ones included, by data_key (the order SQLite's unique index gives)."""
        records = self.table.find({"command_name": command_name}, include_expired=True)
        return [CommandData._from_record(record) for record in records]

    def delete(self, command_name: str, data_key: str) -> bool:
        """Delete one entry; ``True`` if there was one (expired or not)."""
        return self.table.delete_where({"command_name": command_name, "data_key": data_key}) > 0

    def delete_all(self, command_name: str) -> int:
        """Delete every entry of the command; return how many."""
        return self.table.delete_where({"command_name": command_name})

    def delete_expired(self) -> int:
        """Delete every entry, of every command, whose ``expires_at`` has passed; return how many."""
        return self.table.delete_expired()


class ChunkedCommandResponseRepository:
    """Streamed response chunks per session, in arrival order (one JSON Lines log per session)."""

    def __init__(self, db: StoreArg) -> None:
        self.store = _store(db).narrow("chunked_command_responses")

    def append_chunk(self, session_id: str, chunk: str) -> None:
        """Add ``chunk`` after the session's earlier chunks (one atomic append)."""
        self.store.append(session_id, [chunk])

    def get_chunks(self, session_id: str) -> list[str]:
        """The session's chunks in order (``[]`` for an unknown session)."""
        chunks: list[str] = self.store.get(session_id, [])
        return chunks

    def delete_session(self, session_id: str) -> None:
        """Remove the session's chunks."""
        self.store.delete(session_id)


class CommandRegistryRepository:
    """Which commands are enabled."""

    def __init__(self, db: StoreArg) -> None:
        self.table = Table(
            _store(db), "command_registry", fields=("command_name", "enabled"), key=("command_name",), shards=1
        )

    def get_all(self) -> dict[str, bool]:
        """``{command_name: enabled}`` for every registered command."""
        return {record["command_name"]: record["enabled"] for record in self.table.find()}

    def set_enabled(self, command_name: str, enabled: bool) -> None:
        """Enable or disable a command (registering it if new)."""
        self.table.upsert({"command_name": command_name, "enabled": bool(enabled)})

    def ensure_registered(self, command_names: Iterable[str]) -> None:
        """Register new commands as enabled; existing entries are not changed."""
        names = list(command_names)
        with self.table.lock():
            known = self.get_all()
            for name in dict.fromkeys(names):
                if name not in known:
                    self.table.insert({"command_name": name, "enabled": True})


@dataclass
class CommandAuth:
    """OAuth status of a command's provider, as the seed's model."""

    command_name: str
    provider: str
    needs_auth: bool = False
    auth_error: str | None = None


class CommandAuthRepository:
    """``CommandAuth`` records by (command_name, provider).

    The seed shows only the model; this small repository is the file twin's own API.
    """

    def __init__(self, db: StoreArg) -> None:
        self.table = Table(
            _store(db),
            "command_auth",
            fields=("command_name", "provider", "needs_auth", "auth_error"),
            key=("command_name", "provider"),
            partition_by=(),
            shards=1,
        )

    def save(self, auth: CommandAuth) -> None:
        """Store or overwrite the record."""
        self.table.upsert(vars(auth))

    def get(self, command_name: str, provider: str) -> CommandAuth | None:
        """The record, or ``None``."""
        record = self.table.get(command_name, provider)
        return None if record is None else self._auth(record)

    def get_all(self) -> list[CommandAuth]:
        """Every record, by command then provider."""
        return [self._auth(record) for record in self.table.find()]

    def needing_auth(self) -> list[CommandAuth]:
        """The records whose OAuth flow must be completed (the app's "authentication required" badge)."""
        return [self._auth(record) for record in self.table.find({"needs_auth": True})]

    def delete(self, command_name: str, provider: str) -> bool:
        """Delete the record; ``True`` if there was one."""
        return self.table.delete(command_name, provider)

    @staticmethod
    def _auth(record: dict[str, Any]) -> CommandAuth:
        return CommandAuth(**record)
