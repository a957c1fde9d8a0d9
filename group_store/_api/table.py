"""``Table`` and ``AsyncTable``: collections of JSON records with a primary key, on a store."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from .._engine.table_core import Keep, Record, TableCore, Wrapper
from .._errors import InvalidArgumentError
from .._format.expiry import resolve_expiry
from .._format.schema import TableSchema
from .datastore import DataStore
from .store import Store
from .view import Ttl

if TYPE_CHECKING:
    import os

T = TypeVar("T")


class _TableBase:
    """What both tables share: the schema, argument checks and the core (no I/O)."""

    _core: TableCore

    def _setup(
        self,
        store: Store | DataStore,
        name: str,
        fields: Sequence[str],
        key: Sequence[str],
        partition_by: Sequence[str] | None,
        shards: int | None,
    ) -> None:
        self._core = TableCore(
            store._engine, store.segments, TableSchema.build(name, fields, key, partition_by, shards)
        )

    @property
    def schema(self) -> TableSchema:
        """The table's name, fields, key, partitioning and shard count."""
        return self._core.schema

    def _expiry(self, ttl: Ttl, expires_at: datetime | None) -> float | None:
        try:
            return resolve_expiry(self._core.engine.clock(), ttl, expires_at)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc), path=self._core.path) from exc

    def _modify_expiry(self, ttl: Ttl, expires_at: datetime | None) -> float | Keep | None:
        return Keep.EXPIRY if ttl is None and expires_at is None else self._expiry(ttl, expires_at)

    @staticmethod
    def _order(order_by: str | Sequence[str] | None) -> tuple[str, ...]:
        if order_by is None:
            return ()
        return (order_by,) if isinstance(order_by, str) else tuple(order_by)

    @staticmethod
    def _check_limit(limit: int | None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidArgumentError(f"limit must be an int >= 0, not {limit!r}")

    def _upsert_change(self, merge: bool) -> Callable[[Wrapper | None, dict[str, Any]], dict[str, Any]]:
        def change(old: Wrapper | None, fields: dict[str, Any]) -> dict[str, Any]:
            return {**old["record"], **fields} if merge and old is not None else fields

        return change

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.schema.name!r}, {str(self._core.path)!r})"


class Table(_TableBase):
    """A collection of JSON records with a primary key, stored as partition files under a ``Store``.

    ``fields`` is the schema: a record may hold only these fields (a missing
    one reads as ``None`` in ``where=``), and the ``key`` fields must be strings.
    Records live under ``store.narrow(name)``: one directory per value of the
    ``partition_by`` fields (by default every key field but the last), holding
    one canonical JSON file (``records.json``) or ``shards`` files
    (``shard-XX.json``; 64 by default when there are no partition fields).
    Each write rewrites one partition file atomically under that directory's
    lock, so tables are safe across threads and processes; a file's size, and
    so the cost of a write, grows with its partition.

    The table keeps ``created_at``, ``updated_at`` and ``expires_at`` for each
    record, outside its fields (see ``Record``). An expired record is hidden
    from reads and removed by ``delete_expired()``.

    Raises (at construction):
        SchemaError: for a bad schema; InvalidKeyError: for a bad ``name``.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str],
        name: str,
        *,
        fields: Sequence[str],
        key: Sequence[str],
        partition_by: Sequence[str] | None = None,
        shards: int | None = None,
    ) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self._setup(self.store, name, fields, key, partition_by, shards)

    def upsert(
        self, record: Mapping[str, Any], *, ttl: Ttl = None, expires_at: datetime | None = None, merge: bool = False
    ) -> Record:
        """Insert ``record`` or replace the record with its key; return what was stored.

        ``merge=True`` keeps the old record's fields that ``record`` leaves out.
        The expiry is set from ``ttl``/``expires_at`` (none clears it).

        Raises:
            SchemaError: for a field outside the schema or a bad key value.
            SerializationError: if a value cannot be stored as JSON.
            InvalidArgumentError: for a bad ttl or expires_at.
        """
        return self._core.write_record(record, self._expiry(ttl, expires_at), self._upsert_change(merge))

    def upsert_many(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        ttl: Ttl = None,
        expires_at: datetime | None = None,
        merge: bool = False,
    ) -> list[Record]:
        """``upsert()`` each record, rewriting each partition file once (for bulk loads).

        Every record is checked before anything is written; each partition file
        is then replaced atomically, so a crash leaves each file all old or all new.

        Raises:
            As ``upsert()``.
        """
        return self._core.write_records(records, self._expiry(ttl, expires_at), self._upsert_change(merge))

    def insert(self, record: Mapping[str, Any], *, ttl: Ttl = None, expires_at: datetime | None = None) -> Record:
        """Store a new record and return it.

        Raises:
            DuplicateKeyError: if a live record has the same key (nothing is written).
            SchemaError, SerializationError, InvalidArgumentError: as ``upsert()``.
        """
        return self._core.insert(record, self._expiry(ttl, expires_at))

    def get(self, *key: str, include_expired: bool = False) -> Record | None:
        """The record with this primary key, or ``None`` (also if expired, unless ``include_expired``).

        Raises:
            SchemaError: if the key has the wrong number of values or a bad one.
        """
        return self._core.get(self._core.key(key), include_expired)

    def delete(self, *key: str) -> bool:
        """Remove the record with this primary key; ``True`` if it was live."""
        return self._core.delete(self._core.key(key))

    def modify(
        self,
        key: Sequence[str],
        function: Callable[[Record | None], Mapping[str, Any] | None],
        *,
        ttl: Ttl = None,
        expires_at: datetime | None = None,
    ) -> Record | None:
        """Atomically replace the record with ``function(current record or None)``; ``None`` deletes it.

        Read-modify-write cycles from several processes never lose an update: locally
        the partition's lock is held while ``function`` runs (keep it short); on object
        storage (``Storage.locks_are_cheap`` false) every change to a partition file is a
        compare-and-swap loop instead, so ``function`` may run more than once (it must
        have no other effects). The record keeps its expiry unless ``ttl`` or
        ``expires_at`` is given.

        Raises:
            SchemaError: if the result changes the key or breaks the schema.
            StorageError: errno EBUSY, on object storage, when contended past the attempts.
            Whatever ``function`` raises; nothing is written then.
        """
        return self._core.modify(self._core.key(list(key)), function, self._modify_expiry(ttl, expires_at))

    def find(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        order_by: str | Sequence[str] | None = None,
        descending: bool = False,
        limit: int | None = None,
        include_expired: bool = False,
    ) -> list[Record]:
        """Records whose fields equal every ``where`` value, in key order or by ``order_by``.

        ``order_by`` names fields (or ``created_at``/``updated_at``/``expires_at``,
        the table's times, where no field has that name); ties keep key order.
        A ``where`` that fixes the partition fields reads only that partition;
        otherwise every partition file is read.

        Raises:
            SchemaError: for an unknown field in ``where`` or ``order_by``.
            InvalidArgumentError: for a bad limit.
        """
        self._check_limit(limit)
        return self._core.find(where or {}, self._order(order_by), descending, limit, include_expired)

    def count(self, where: Mapping[str, Any] | None = None, *, include_expired: bool = False) -> int:
        """How many records match ``where`` (see ``find()``).

        Raises:
            SchemaError: for an unknown field in ``where``.
        """
        return self._core.count(where or {}, include_expired)

    def delete_where(self, where: Mapping[str, Any]) -> int:
        """Remove every record matching ``where`` (expired ones too); return how many."""
        return self._core.delete_where(where)

    def delete_expired(self) -> int:
        """Remove every expired record; return how many."""
        return self._core.delete_expired()

    @contextmanager
    def lock(self, *partition: str) -> Iterator[None]:
        """Hold a partition's lock (no values: the table's root lock) for a multi-step change.

        Table methods re-enter it from the same thread. Take a root lock before a
        partition lock, never the other way round.
        """
        with self._core.lock(tuple(partition)):
            yield


class AsyncTable(_TableBase):
    """``Table`` on a ``DataStore``: the same records and files, with async methods.

    Each call runs in the DataStore's writer thread, after every write queued
    before it (so it sees them) and holding the partition's lock. Constructed
    from a path, it owns its DataStore: ``aclose()`` it or use ``async with``.
    """

    def __init__(
        self,
        store: DataStore | str | os.PathLike[str],
        name: str,
        *,
        fields: Sequence[str],
        key: Sequence[str],
        partition_by: Sequence[str] | None = None,
        shards: int | None = None,
    ) -> None:
        self._owns_store = not isinstance(store, DataStore)
        self.store = store if isinstance(store, DataStore) else DataStore(store)
        # One blocking Table on the same engine, built once: run() hands it out, and its
        # core (schema, partition cache) is this table's, so both see one cache.
        self._table = Table(
            Store._sharing(self.store._engine, self.store.segments),
            name,
            fields=fields,
            key=key,
            partition_by=partition_by,
            shards=shards,
        )
        self._core = self._table._core

    async def run(self, function: Callable[[Table], T]) -> T:
        """Run ``function`` with a blocking ``Table`` on the same files, in the writer thread.

        For multi-step changes: ``function`` may take ``table.lock()`` and make
        several calls; nothing else this DataStore queued runs in between.
        """
        return await self.store.run_sync(lambda _blocking: function(self._table))

    async def _call(self, function: Callable[[], T]) -> T:
        return await self.store.run_sync(lambda _blocking: function())

    async def upsert(
        self, record: Mapping[str, Any], *, ttl: Ttl = None, expires_at: datetime | None = None, merge: bool = False
    ) -> Record:
        """See ``Table.upsert()``."""
        expiry = self._expiry(ttl, expires_at)
        return await self._call(partial(self._core.write_record, record, expiry, self._upsert_change(merge)))

    async def upsert_many(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        ttl: Ttl = None,
        expires_at: datetime | None = None,
        merge: bool = False,
    ) -> list[Record]:
        """See ``Table.upsert_many()``."""
        expiry = self._expiry(ttl, expires_at)
        return await self._call(partial(self._core.write_records, records, expiry, self._upsert_change(merge)))

    async def insert(self, record: Mapping[str, Any], *, ttl: Ttl = None, expires_at: datetime | None = None) -> Record:
        """See ``Table.insert()``."""
        return await self._call(partial(self._core.insert, record, self._expiry(ttl, expires_at)))

    async def get(self, *key: str, include_expired: bool = False) -> Record | None:
        """See ``Table.get()``."""
        return await self._call(partial(self._core.get, self._core.key(key), include_expired))

    async def delete(self, *key: str) -> bool:
        """See ``Table.delete()``."""
        return await self._call(partial(self._core.delete, self._core.key(key)))

    async def modify(
        self,
        key: Sequence[str],
        function: Callable[[Record | None], Mapping[str, Any] | None],
        *,
        ttl: Ttl = None,
        expires_at: datetime | None = None,
    ) -> Record | None:
        """See ``Table.modify()`` (``function`` runs in the writer thread)."""
        expiry = self._modify_expiry(ttl, expires_at)
        return await self._call(partial(self._core.modify, self._core.key(list(key)), function, expiry))

    async def find(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        order_by: str | Sequence[str] | None = None,
        descending: bool = False,
        limit: int | None = None,
        include_expired: bool = False,
    ) -> list[Record]:
        """See ``Table.find()``."""
        self._check_limit(limit)
        order = self._order(order_by)
        return await self._call(partial(self._core.find, where or {}, order, descending, limit, include_expired))

    async def count(self, where: Mapping[str, Any] | None = None, *, include_expired: bool = False) -> int:
        """See ``Table.count()``."""
        return await self._call(partial(self._core.count, where or {}, include_expired))

    async def delete_where(self, where: Mapping[str, Any]) -> int:
        """See ``Table.delete_where()``."""
        return await self._call(partial(self._core.delete_where, where))

    async def delete_expired(self) -> int:
        """See ``Table.delete_expired()``."""
        return await self._call(self._core.delete_expired)

    async def aclose(self) -> None:
        """Close the DataStore if this table made it (else nothing to do)."""
        if self._owns_store:
            await self.store.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
