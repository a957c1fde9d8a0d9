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

import hashlib
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Generic, TypeVar

from .._datastore import DataStore
from .._errors import InvalidArgumentError, KeyNotFoundError
from .._store import Store
from .._table import Table

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

T = TypeVar("T")
Built = TypeVar("Built")
StoreArg = DataStore | str | os.PathLike[str]


@dataclass(frozen=True)
class UserKey:
    app_name: str
    user_id: str


@dataclass(frozen=True)
class SessionKey:
    app_name: str
    user_id: str
    session_id: str


@dataclass(frozen=True)
class MemoryKey:
    app_name: str
    user_id: str
    memory_id: str


@dataclass
class Session:
    """A session with its state and events (oldest first)."""

    id: str
    app_name: str
    user_id: str
    state: dict[str, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> SessionKey:
        return SessionKey(self.app_name, self.user_id, self.id)


@dataclass
class MemoryEntry:
    id: str
    app_name: str
    user_id: str
    memory: str
    topics: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass
class CheckpointTuple:
    """A checkpoint with the config that names it, its metadata, its parent's config and its pending writes."""

    config: dict[str, Any]
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    parent_config: dict[str, Any] | None
    pending_writes: list[dict[str, Any]]


class _Twin(ABC, Generic[Built]):
    """Tables on one DataStore, worked on in its writer thread."""

    def __init__(self, store: StoreArg) -> None:
        self._owns_store = not isinstance(store, DataStore)
        self.data_store = store if isinstance(store, DataStore) else DataStore(store)
        self._built: Built | None = None

    def _tables(self, store: Store) -> Built:
        # Built once (on the first call, in the writer thread), so the tables' caches last.
        if self._built is None:
            self._built = self._build(store)
        return self._built

    @staticmethod
    @abstractmethod
    def _build(store: Store) -> Built:
        """This twin's tables on ``store``."""

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await self.data_store.run_sync(partial(function, *args))

    async def close(self) -> None:
        """Close the DataStore if this store opened it from a path (the Go stores' Close)."""
        if self._owns_store:
            await self.data_store.aclose()


def _table(
    store: Store, name: str, fields: Sequence[str], key: Sequence[str], partition_by: Sequence[str] | None = None
) -> Table:
    return Table(store, name, fields=fields, key=key, partition_by=partition_by)


class SessionStore(_Twin[dict[str, Table]]):
    """Sessions with events, app/user/session state and summaries.

    Differences from the Go store: sessions are returned as ``Session``
    dataclasses; ``state`` holds the session's own state (read app and user
    state with ``list_app_states``/``list_user_states``); events are JSON
    values stored as given (no state-delta merging and no summarizer:
    ``create_session_summary`` takes the summary text).
    """

    def __init__(self, store: StoreArg, *, event_limit: int = 0) -> None:
        super().__init__(store)
        if isinstance(event_limit, bool) or not isinstance(event_limit, int) or event_limit < 0:
            raise InvalidArgumentError(f"event_limit must be an int >= 0 (0 = unlimited), not {event_limit!r}")
        self.event_limit = event_limit

    @staticmethod
    def _build(store: Store) -> dict[str, Table]:
        return {
            "sessions": _table(
                store, "sessions", ("app_name", "user_id", "session_id"), ("app_name", "user_id", "session_id")
            ),
            "app": _table(store, "app_states", ("app_name", "key", "value"), ("app_name", "key")),
            "user": _table(
                store, "user_states", ("app_name", "user_id", "key", "value"), ("app_name", "user_id", "key")
            ),
            "session": _table(
                store,
                "session_states",
                ("app_name", "user_id", "session_id", "key", "value"),
                ("app_name", "user_id", "session_id", "key"),
            ),
            "summaries": _table(
                store,
                "session_summaries",
                ("app_name", "user_id", "session_id", "filter_key", "summary", "topics"),
                ("app_name", "user_id", "session_id", "filter_key"),
            ),
        }

    @staticmethod
    def _events(store: Store, key: SessionKey) -> Store:
        return store.narrow("session_events", key.app_name, key.user_id)

    async def create_session(self, key: SessionKey, state: Mapping[str, Any] | None = None) -> Session:
        """Create a session (a new uuid4 id when ``key.session_id`` is empty) with its initial state.

        Raises:
            DuplicateKeyError: if the session exists.
        """
        if not key.session_id:
            key = SessionKey(key.app_name, key.user_id, uuid.uuid4().hex)
        return await self._run(self._create, key, dict(state or {}))

    def _create(self, key: SessionKey, state: dict[str, Any], store: Store) -> Session:
        tables = self._tables(store)
        row = tables["sessions"].insert(vars(key))
        for name, value in state.items():
            tables["session"].upsert({**vars(key), "key": name, "value": value})
        return Session(key.session_id, key.app_name, key.user_id, state, [], row.created_at, row.updated_at)

    async def get_session(self, key: SessionKey, *, event_num: int = 0) -> Session | None:
        """The session with its state and events (only the newest ``event_num`` if > 0), or ``None``."""
        return await self._run(self._get, key, event_num)

    def _get(self, key: SessionKey, event_num: int, store: Store) -> Session | None:
        tables = self._tables(store)
        row = tables["sessions"].get(key.app_name, key.user_id, key.session_id)
        if row is None:
            return None
        state = {r["key"]: r["value"] for r in tables["session"].find(vars(key))}
        events = (
            self._events(store, key).get(key.session_id, []) if event_num <= 0 else self._last(store, key, event_num)
        )
        return Session(key.session_id, key.app_name, key.user_id, state, events, row.created_at, row.updated_at)

    def _last(self, store: Store, key: SessionKey, count: int) -> list[Any]:
        try:
            return self._events(store, key).read(key.session_id, last=count)
        except KeyNotFoundError:
            return []

    async def list_sessions(self, user_key: UserKey) -> list[Session]:
        """The user's sessions with state and events, most recently updated first."""
        return await self._run(self._list, user_key)

    def _list(self, user_key: UserKey, store: Store) -> list[Session]:
        rows = self._tables(store)["sessions"].find(vars(user_key), order_by="updated_at", descending=True)
        keys = [SessionKey(r["app_name"], r["user_id"], r["session_id"]) for r in rows]
        return [s for s in (self._get(k, 0, store) for k in keys) if s is not None]

    async def delete_session(self, key: SessionKey) -> None:
        """Delete the session with its events, state and summaries (no error if missing)."""
        await self._run(self._delete, key)

    def _delete(self, key: SessionKey, store: Store) -> None:
        tables = self._tables(store)
        with tables["sessions"].lock(key.app_name, key.user_id):
            self._events(store, key).delete(key.session_id)
            tables["session"].delete_where(vars(key))
            tables["summaries"].delete_where(vars(key))
            tables["sessions"].delete(key.app_name, key.user_id, key.session_id)

    async def append_event(self, session: Session, event: Any) -> None:
        """Persist ``event`` after the session's others (pruning the oldest beyond ``event_limit``)
        and add it to ``session.events``.

        Raises:
            KeyNotFoundError: if the session does not exist.
            SerializationError: if the event is not JSON data.
        """
        await self._run(self._append, session.key, event)
        session.events.append(event)
        if self.event_limit:
            del session.events[: -self.event_limit]

    def _append(self, key: SessionKey, event: Any, store: Store) -> None:
        sessions = self._tables(store)["sessions"]
        with sessions.lock(key.app_name, key.user_id):
            if sessions.get(key.app_name, key.user_id, key.session_id) is None:
                raise KeyNotFoundError("no such session", key=repr(key), path=sessions._core.path)
            self._events(store, key).append(key.session_id, [event], max_items=self.event_limit or None)
            sessions.upsert(vars(key))  # moves updated_at

    # -- state ---------------------------------------------------------------

    async def update_app_state(self, app_name: str, state: Mapping[str, Any]) -> None:
        """Set the app's state keys (others are kept)."""
        await self._run(self._put_state, "app", {"app_name": app_name}, dict(state))

    async def list_app_states(self, app_name: str) -> dict[str, Any]:
        """The app's state."""
        return await self._run(self._list_state, "app", {"app_name": app_name})

    async def delete_app_state(self, app_name: str, key: str) -> None:
        """Remove one key of the app's state."""
        await self._run(self._delete_state, "app", {"app_name": app_name}, key)

    async def update_user_state(self, user_key: UserKey, state: Mapping[str, Any]) -> None:
        """Set the user's state keys (others are kept)."""
        await self._run(self._put_state, "user", vars(user_key), dict(state))

    async def list_user_states(self, user_key: UserKey) -> dict[str, Any]:
        """The user's state."""
        return await self._run(self._list_state, "user", vars(user_key))

    async def delete_user_state(self, user_key: UserKey, key: str) -> None:
        """Remove one key of the user's state."""
        await self._run(self._delete_state, "user", vars(user_key), key)

    async def update_session_state(self, key: SessionKey, state: Mapping[str, Any]) -> None:
        """Set the session's state keys (others are kept).

        Raises:
            KeyNotFoundError: if the session does not exist.
        """
        await self._run(self._put_session_state, key, dict(state))

    def _put_session_state(self, key: SessionKey, state: dict[str, Any], store: Store) -> None:
        sessions = self._tables(store)["sessions"]
        if sessions.get(key.app_name, key.user_id, key.session_id) is None:
            raise KeyNotFoundError("no such session", key=repr(key), path=sessions._core.path)
        self._put_state("session", vars(key), state, store)

    def _put_state(self, level: str, owner: dict[str, str], state: dict[str, Any], store: Store) -> None:
        table = self._tables(store)[level]
        for name, value in state.items():
            table.upsert({**owner, "key": name, "value": value})

    def _list_state(self, level: str, owner: dict[str, str], store: Store) -> dict[str, Any]:
        return {r["key"]: r["value"] for r in self._tables(store)[level].find(owner)}

    def _delete_state(self, level: str, owner: dict[str, str], key: str, store: Store) -> None:
        self._tables(store)[level].delete(*owner.values(), key)

    # -- summaries -----------------------------------------------------------

    async def create_session_summary(
        self, session: Session, filter_key: str, summary: str, topics: Sequence[str] = ()
    ) -> None:
        """Store the summary of the session's events under ``filter_key`` (``""``: the whole session)."""
        record = {**vars(session.key), "filter_key": filter_key, "summary": summary, "topics": list(topics)}
        await self._run(lambda store: self._tables(store)["summaries"].upsert(record))

    async def get_session_summary_text(self, session: Session, filter_key: str = "") -> tuple[str, bool]:
        """``(summary, True)``, or ``("", False)`` when there is none for ``filter_key``."""
        key = session.key
        found = await self._run(
            lambda store: self._tables(store)["summaries"].get(key.app_name, key.user_id, key.session_id, filter_key)
        )
        return ("", False) if found is None else (found["summary"], True)


class MemoryStore(_Twin[Table]):
    """Memories per user, with idempotent adds and word search.

    Differences from the Go store: a memory's id is 32 hex digits of the
    SHA-256 of (app, user, content) rather than a UUID built from that hash.
    """

    @staticmethod
    def _build(store: Store) -> Table:
        return _table(
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


class ShortMemoryStore(_Twin[Table]):
    """Short-lived values per memory type, each with a TTL.

    As the Go store: ``get`` drops an expired entry it meets, ``count`` counts
    live entries and ``cleanup`` removes every expired one.
    """

    @staticmethod
    def _build(store: Store) -> Table:
        return _table(store, "short_memories", ("memory_type", "key", "value"), ("memory_type", "key"))

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


_CHECKPOINT_FIELDS = (
    "lineage_id",
    "checkpoint_ns",
    "checkpoint_id",
    "sequence",
    "parent_checkpoint_id",
    "checkpoint",
    "metadata",
    "writes",
)


class CheckpointStore(_Twin[Table]):
    """Graph checkpoints per lineage and namespace, with their pending writes.

    A config is ``{"configurable": {"lineage_id", "checkpoint_ns", "checkpoint_id"}}``
    (``checkpoint_ns`` defaults to ``""``). A checkpoint is a dict with an ``"id"``.
    A checkpoint and its writes are one record in one file, so ``put_full`` is
    atomic. Checkpoints are ordered by a per-lineage sequence number (the
    order they were first put), not by time.
    """

    @staticmethod
    def _build(store: Store) -> Table:
        key = ("lineage_id", "checkpoint_ns", "checkpoint_id")
        # Namespaces may be "" (the default one), so only the lineage names a directory.
        return _table(store, "checkpoints", _CHECKPOINT_FIELDS, key, partition_by=("lineage_id",))

    @staticmethod
    def _configurable(config: Mapping[str, Any]) -> tuple[str, str, str]:
        try:
            configurable = config["configurable"]
            return (
                configurable["lineage_id"],
                configurable.get("checkpoint_ns", ""),
                configurable.get("checkpoint_id", ""),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidArgumentError(f"a config needs configurable.lineage_id, not {config!r}") from exc

    @staticmethod
    def _config(lineage: str, ns: str, checkpoint_id: str) -> dict[str, Any]:
        return {"configurable": {"lineage_id": lineage, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}

    async def put(
        self, config: Mapping[str, Any], checkpoint: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Store (or overwrite) a checkpoint and return its config.

        ``config``'s checkpoint_id, if it names another checkpoint, becomes the parent.
        """
        return await self.put_full(config, checkpoint, metadata, ())

    async def put_writes(self, config: Mapping[str, Any], writes: Sequence[Mapping[str, Any]], task_id: str) -> None:
        """Store a task's pending writes (``{"channel", "value"}`` each) for the checkpoint in ``config``.

        Each write is keyed by (task_id, its index), so a retry overwrites rather than duplicates.
        """
        lineage, ns, checkpoint_id = self._configurable(config)
        items = [{**w, "task_id": task_id} for w in writes]
        await self._run(self._put, lineage, ns, checkpoint_id, None, None, None, items)

    async def put_full(
        self,
        config: Mapping[str, Any],
        checkpoint: Mapping[str, Any],
        metadata: Mapping[str, Any] | None,
        pending_writes: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """Store a checkpoint and its writes (``{"task_id", "channel", "value"}`` each) in one atomic file write."""
        lineage, ns, parent = self._configurable(config)
        checkpoint_id = checkpoint.get("id")
        if not isinstance(checkpoint_id, str) or not checkpoint_id:
            raise InvalidArgumentError(f"a checkpoint needs a string 'id', not {checkpoint_id!r}")
        parent_id = parent if parent and parent != checkpoint_id else None
        args = (lineage, ns, checkpoint_id, dict(checkpoint), dict(metadata or {}), parent_id, list(pending_writes))
        await self._run(self._put, *args)
        return self._config(lineage, ns, checkpoint_id)

    def _put(
        self,
        lineage: str,
        ns: str,
        checkpoint_id: str,
        checkpoint: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        parent_id: str | None,
        writes: list[Mapping[str, Any]],
        store: Store,
    ) -> None:
        table = self._tables(store)
        with table.lock(lineage):
            current = table.get(lineage, ns, checkpoint_id)
            if current is None:
                sequence = 1 + max((r["sequence"] for r in table.find({"lineage_id": lineage})), default=0)
                current_writes: dict[str, Any] = {}
            else:
                sequence, current_writes = current["sequence"], current["writes"]
            counters: dict[str, int] = {}
            for write in writes:
                task = str(write.get("task_id", ""))
                index = counters.get(task, 0)
                counters[task] = index + 1
                current_writes[f"{task}:{index:06d}"] = {
                    "task_id": task,
                    "channel": write["channel"],
                    "value": write.get("value"),
                }
            if current is not None and checkpoint is None:
                # Writes alone keep the checkpoint they are for.
                checkpoint, metadata, parent_id = (
                    current["checkpoint"],
                    current["metadata"],
                    current["parent_checkpoint_id"],
                )
            record = {
                "lineage_id": lineage,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint_id,
                "sequence": sequence,
                "parent_checkpoint_id": parent_id,
                "checkpoint": checkpoint,
                "metadata": metadata if metadata is not None else {},
                "writes": current_writes,
            }
            table.upsert(record)

    async def get_tuple(self, config: Mapping[str, Any]) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the lineage/namespace's newest if it names none; ``None`` if absent."""
        lineage, ns, checkpoint_id = self._configurable(config)
        if checkpoint_id:
            found = await self._run(lambda store: self._tables(store).get(lineage, ns, checkpoint_id))
            return None if found is None or found["checkpoint"] is None else self._tuple(found)
        newest = await self.list(config, limit=1)
        return newest[0] if newest else None

    async def list(
        self, config: Mapping[str, Any], *, before: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> list[CheckpointTuple]:
        """The lineage/namespace's checkpoints, newest first; only those older than ``before``'s, at most ``limit``."""
        lineage, ns, _ = self._configurable(config)
        records = await self._run(
            lambda store: self._tables(store).find(
                {"lineage_id": lineage, "checkpoint_ns": ns}, order_by="sequence", descending=True
            )
        )
        records = [r for r in records if r["checkpoint"] is not None]
        if before is not None:
            _, _, before_id = self._configurable(before)
            cutoff = next((r["sequence"] for r in records if r["checkpoint_id"] == before_id), None)
            records = [r for r in records if cutoff is not None and r["sequence"] < cutoff]
        if limit is not None and limit > 0:
            records = records[:limit]
        return [self._tuple(r) for r in records]

    async def delete_lineage(self, lineage_id: str) -> None:
        """Delete every checkpoint and write of the lineage."""
        await self._run(lambda store: self._tables(store).delete_where({"lineage_id": lineage_id}))

    def _tuple(self, record: Mapping[str, Any]) -> CheckpointTuple:
        lineage, ns, parent = record["lineage_id"], record["checkpoint_ns"], record["parent_checkpoint_id"]
        return CheckpointTuple(
            config=self._config(lineage, ns, record["checkpoint_id"]),
            checkpoint=record["checkpoint"],
            metadata=record["metadata"],
            parent_config=None if parent is None else self._config(lineage, ns, parent),
            pending_writes=[record["writes"][name] for name in sorted(record["writes"])],
        )
