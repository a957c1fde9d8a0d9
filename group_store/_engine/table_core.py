"""The file work behind ``Table`` and ``AsyncTable``: partition files read, changed and written under lock.

Every method here is blocking. ``Table`` calls them in the caller's thread;
``AsyncTable`` runs them in its DataStore's writer thread, in order with that
store's queued writes. See ``_schema`` for the layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from enum import Enum
from operator import itemgetter
from typing import Any, TypeVar

import orjson

from .._errors import CorruptEntryError, DuplicateKeyError, KeyNotFoundError, SchemaError
from .._format.codec import decode_document, encode_document
from .._format.layout import Location, encode_directory
from .._format.schema import META_FIELDS, TableSchema, iso, matches
from ..storage._base import Versioned
from .engine import Engine, boundary
from .partition_cache import PartitionCache

Wrapper = dict[str, Any]
"""One record as stored: ``{"created_at", "updated_at", ["expires_at"], "record"}``."""
_Item = tuple[int, str, tuple[str, ...], dict[str, Any]]
"""A record of a ``write_records`` batch: its index, id, key and checked fields."""
R = TypeVar("R")

# Parsed partition files kept per table (memory only: what makes a repeated read one
# ``stat`` locally, the pinned descriptors, is the backend's process-wide budget).
_CACHED_PARTITIONS = 128
_REMEMBERED_PLACES = 4096


class Keep(Enum):
    """``modify()``'s marker for "leave the record's expiry as it is"."""

    EXPIRY = "keep"


class Record(dict[str, Any]):
    """A record's fields (a plain ``dict`` to read and compare), with the table's times as attributes.

    Attributes:
        created_at: When the record was first written (aware UTC).
        updated_at: When it was last written (aware UTC).
        expires_at: When it expires (aware UTC), or ``None``.
    """

    __slots__ = ("_times",)

    def __init__(self, fields: Mapping[str, Any], times: Mapping[str, Any]) -> None:
        super().__init__(fields)
        # The stored spellings, parsed only when asked for (most callers never ask).
        self._times: tuple[str, str, str | None] = (times["created_at"], times["updated_at"], times.get("expires_at"))

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self._times[0])

    @property
    def updated_at(self) -> datetime:
        return datetime.fromisoformat(self._times[1])

    @property
    def expires_at(self) -> datetime | None:
        text = self._times[2]
        return None if text is None else datetime.fromisoformat(text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Record, (dict(self), dict(zip(META_FIELDS, self._times, strict=True))))


class TableCore:
    """One table's records on an ``Engine``, below the view at ``segments``."""

    def __init__(self, engine: Engine, segments: tuple[str, ...], schema: TableSchema) -> None:
        self.engine = engine
        self.schema = schema
        self.segments = (*segments, schema.name)
        self.path = engine.storage.locator(encode_directory(self.segments))
        self._cache = PartitionCache(_CACHED_PARTITIONS)
        self._places: dict[tuple[tuple[str, ...], str], Location] = {}

    # -- placement and raw partition I/O ---------------------------------------

    def directory(self, partition: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        """The encoded directory and narrow() keys of a partition."""
        segments = (*self.segments, *partition)
        return encode_directory(segments), segments

    def lock(self, partition: tuple[str, ...] = ()) -> AbstractContextManager[None]:
        """The lock of a partition directory (``()``: the table's root)."""
        return self.engine.lock(self.directory(partition)[0])

    def place(self, key: tuple[str, ...]) -> tuple[Location, str]:
        """The partition file holding ``key`` and the record's id in it."""
        record_id = self.schema.record_id(key)
        slot = (self.schema.partition(key), self.schema.shard(record_id))
        loc = self._places.get(slot)
        if loc is None:
            # Encoding names costs more than the read it leads to; a bounded memo of recent files.
            if len(self._places) >= _REMEMBERED_PLACES:
                self._places.clear()
            directory, segments = self.directory(slot[0])
            loc = self._places[slot] = self.engine.location(directory, segments, slot[1])
        return loc, record_id

    def read(self, loc: Location) -> dict[str, Wrapper]:
        """The partition file's records (empty if there is no file). Callers must not mutate the result.

        Raises:
            CorruptEntryError: if the file is not a JSON object of record wrappers.
            UnsafeFileError: if the file or a directory on its way is a symlink or not regular.
            StorageError: if the file system refuses (EMFILE included), naming the file.
        """
        slot = (loc.directory, loc.name)
        storage = self.engine.storage
        entry = self._cache.get(slot)
        # boundary: EMFILE too is typed, naming the file.
        with boundary(None, storage, loc.directory, loc.document):
            if (
                entry is not None
                and entry.version is not None
                and storage.is_current(loc.directory, loc.document, entry.version)
            ):
                return entry.records
            found = storage.read_versioned(loc.directory, loc.document)
        if found is None:
            self._cache.forget(slot)
            return {}
        records = self._cache.same_bytes(slot, found.data) or self._parse(loc, found.data)
        self._cache.store(slot, found.data, records, found.version)
        return records

    def read_for_change(self, loc: Location) -> dict[str, Wrapper]:
        """A private copy of the partition's records, to change and ``write()`` (caller holds the lock).

        Raises:
            CorruptEntryError: as ``read()``.
        """
        # A shallow copy is enough: stored wrappers are never changed in place, only replaced.
        return dict(self.read(loc))

    def _parse(self, loc: Location, raw: bytes) -> dict[str, Wrapper]:
        path = self.engine.storage.locator(loc.directory, loc.document)
        records = decode_document(loc.key, path, raw)
        if not isinstance(records, dict) or not all(
            isinstance(w, dict) and isinstance(w.get("record"), dict) for w in records.values()
        ):
            raise CorruptEntryError(f"table {self.schema.name!r}: not a partition file of records", path=path)
        return records

    def write(self, loc: Location, records: dict[str, Wrapper]) -> None:
        """Replace the partition file atomically (remove it when empty); caller holds the lock.

        Raises:
            SerializationError: if a record cannot be stored as JSON (the file is unchanged).
            StorageError, UnsafeFileError: if the file system refuses (the file is unchanged).
        """
        if records:
            payload = encode_document(loc.key, records)
            self.engine.save(loc, payload, None)
            # Our own write needs no parse on the next read. ``records`` holds only private
            # copies (``_wrapper`` makes them), so no caller can change what is cached. The
            # bytes are copied to their exact size: orjson's own keep its whole output buffer
            # (4 KiB for a one-record file), and the cache holds them for as long as it lives.
            self._cache.store((loc.directory, loc.name), bytes(memoryview(payload)), records)
        else:
            self.engine.delete(loc)
            self._cache.forget((loc.directory, loc.name))

    def change(self, loc: Location, mutate: Callable[[dict[str, Wrapper]], tuple[R, bool]]) -> R:
        """Apply ``mutate`` to a private copy of the partition's records (in place) and, if it
        says it changed them, write them back in id order; return its result. Nothing is
        written if it raises or changed nothing.

        Where locks are cheap, under the partition directory's lock (``mutate`` runs once;
        an emptied file is removed). Elsewhere (object storage) as a compare-and-swap loop
        on the file (``Engine.swap``): no lock is taken, ``mutate`` may run more than once
        (it must have no other effects), and an emptied file stays, holding ``{}`` (an
        object store has no conditional delete to remove it safely).

        Raises:
            StorageError: errno EBUSY, where locks are not cheap, when contended past
                ``CAS_ATTEMPTS``; what ``write()`` raises; what ``mutate`` raises.
        """
        engine = self.engine
        if engine.storage.locks_are_cheap:
            with engine.lock(loc.directory):
                records = self.read_for_change(loc)
                result, changed = mutate(records)
                if changed:
                    # Ids and fields in a fixed order, so equal tables are equal files and diffs stay small.
                    self.write(loc, dict(sorted(records.items())))
                return result
        written: tuple[bytes, dict[str, Wrapper]] | None = None  # the last attempt's, the one that won

        def compute(found: Versioned | None) -> tuple[bytes | None, R]:
            nonlocal written
            records = {} if found is None else dict(self._parse(loc, found.data))
            result, changed = mutate(records)
            if not changed:
                written = None
                return None, result
            ordered = dict(sorted(records.items()))
            written = (encode_document(loc.key, ordered), ordered)
            return written[0], result

        result = engine.swap(loc, compute, f"table {self.schema.name!r}")
        if written is not None:
            self._cache.store((loc.directory, loc.name), bytes(memoryview(written[0])), written[1])
        return result

    def partitions(self, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
        """Every partition below ``prefix``, in key order."""
        if len(prefix) == len(self.schema.partition_by):
            yield prefix
            return
        for child in self.engine.children(self.directory(prefix)[0]):
            yield from self.partitions((*prefix, child))

    def files(self, partition: tuple[str, ...]) -> Iterator[Location]:
        """The partition files a partition directory may hold."""
        directory, segments = self.directory(partition)
        for name in self.schema.shard_names():
            yield self.engine.location(directory, segments, name)

    # -- records ---------------------------------------------------------------

    def now(self) -> str:
        """The current time, spelled as stored."""
        return iso(self.engine.clock())

    @staticmethod
    def is_live(wrapper: Wrapper, now: str) -> bool:
        """False once the record's expiry has come."""
        expires = wrapper.get("expires_at")
        return expires is None or expires > now

    @staticmethod
    def to_record(wrapper: Wrapper) -> Record:
        """A caller's copy of a stored record."""
        return Record(orjson.loads(orjson.dumps(wrapper["record"])), wrapper)

    @staticmethod
    def to_records(wrappers: list[Wrapper]) -> list[Record]:
        """Callers' copies of stored records (one orjson round trip for all)."""
        copies = orjson.loads(orjson.dumps([wrapper["record"] for wrapper in wrappers]))
        return [Record(copy, wrapper) for copy, wrapper in zip(copies, wrappers, strict=True)]

    def key(self, values: Sequence[Any]) -> tuple[str, ...]:
        """Check a primary key given as positional values."""
        return self.schema.check_key(values, self.path)

    def get(self, key: tuple[str, ...], include_expired: bool) -> Record | None:
        """The record with ``key``, or ``None`` (also when expired, unless ``include_expired``)."""
        loc, record_id = self.place(key)
        wrapper = self.read(loc).get(record_id)
        if wrapper is None:
            return None
        if not include_expired and "expires_at" in wrapper and not self.is_live(wrapper, self.now()):
            return None
        return self.to_record(wrapper)

    def write_record(
        self,
        record: Mapping[str, Any],
        expiry: float | None,
        change: Callable[[Wrapper | None, dict[str, Any]], dict[str, Any]],
    ) -> Record:
        """Store ``change(old wrapper or None, checked record)`` under the record's key, under the lock.

        The table keeps ``created_at`` of a live record and sets ``updated_at``;
        ``expiry`` (epoch seconds or ``None``) replaces the old one.
        """
        return self.write_records([record], expiry, change)[0]

    def write_records(
        self,
        records: Sequence[Mapping[str, Any]],
        expiry: float | None,
        change: Callable[[Wrapper | None, dict[str, Any]], dict[str, Any]],
    ) -> list[Record]:
        """``write_record`` for many records: one locked rewrite per partition file they fall in.

        Each file is all-or-nothing: if one of its records fails, none of that file's is written.
        """
        checked = [self.schema.check_record(record, self.path) for record in records]
        by_file: dict[Location, list[_Item]] = {}
        for index, fields in enumerate(checked):
            key = self.schema.key_of(fields, self.path)
            loc, record_id = self.place(key)
            by_file.setdefault(loc, []).append((index, record_id, key, fields))
        results: list[Record | None] = [None] * len(checked)
        for loc, items in by_file.items():

            def apply(stored_records: dict[str, Wrapper], items: list[_Item] = items) -> tuple[None, bool]:
                now = self.now()
                for index, record_id, key, fields in items:
                    old = stored_records.get(record_id)
                    if old is not None and not self.is_live(old, now):
                        old = None
                    wrapper = self._wrapper(old, change(old, fields), key, now, expiry)
                    stored_records[record_id] = wrapper
                    results[index] = self.to_record(wrapper)
                return None, True

            self.change(loc, apply)
        return [result for result in results if result is not None]

    def _wrapper(
        self, old: Wrapper | None, changed: Mapping[str, Any], key: tuple[str, ...], now: str, expiry: float | None
    ) -> Wrapper:
        checked = self.schema.check_record(changed, self.path)
        stored = {field: checked[field] for field in self.schema.fields if field in checked}
        if self.schema.key_of(stored, self.path) != key:
            raise SchemaError(f"table {self.schema.name!r}: a change may not alter the primary key", path=self.path)
        wrapper: Wrapper = {"created_at": old["created_at"] if old else now}
        if expiry is not None:
            wrapper["expires_at"] = iso(expiry)
        # A private copy (the caller keeps its objects), checked to load back equal.
        wrapper["record"] = orjson.loads(encode_document(str(list(key)), stored))
        wrapper["updated_at"] = now
        return wrapper

    def insert(self, record: Mapping[str, Any], expiry: float | None) -> Record:
        """Store a new record.

        Raises:
            DuplicateKeyError: if a live record has its key (nothing is written).
        """

        def new(old: Wrapper | None, fields: dict[str, Any]) -> dict[str, Any]:
            if old is not None:
                key = self.schema.key_of(fields, self.path)
                loc, _ = self.place(key)
                path = self.engine.storage.locator(loc.directory, loc.document)
                detail = f"table {self.schema.name!r}: a record with this key exists"
                raise DuplicateKeyError(detail, key=str(list(key)), path=path)
            return fields

        return self.write_record(record, expiry, new)

    def modify(
        self,
        key: tuple[str, ...],
        function: Callable[[Record | None], Mapping[str, Any] | None],
        expiry: float | Keep | None,
    ) -> Record | None:
        """Replace the record with ``function(current record or None)`` under the lock; ``None`` deletes it.

        ``function`` gets a private copy; it may raise to abort (nothing is written then).
        ``Keep.EXPIRY`` keeps the record's expiry (as ``Store.update()`` does).
        """
        loc, record_id = self.place(key)

        def apply(records: dict[str, Wrapper]) -> tuple[Record | None, bool]:
            now = self.now()
            old = records.get(record_id)
            if old is not None and not self.is_live(old, now):
                old = None
            current = None if old is None else self.to_record(old)
            new_expiry = expiry
            if isinstance(new_expiry, Keep):
                kept = None if current is None else current.expires_at
                new_expiry = None if kept is None else kept.timestamp()
            result = function(current)
            if result is None:
                return None, records.pop(record_id, None) is not None
            checked = self.schema.check_record(result, self.path)
            if self.schema.key_of(checked, self.path) != key:
                raise SchemaError(f"table {self.schema.name!r}: a change may not alter the primary key", path=self.path)
            wrapper = self._wrapper(old, checked, key, now, new_expiry)
            records[record_id] = wrapper
            return self.to_record(wrapper), True

        return self.change(loc, apply)

    def delete(self, key: tuple[str, ...]) -> bool:
        """Remove the record; ``True`` if it was live."""
        loc, record_id = self.place(key)

        def apply(records: dict[str, Wrapper]) -> tuple[bool, bool]:
            wrapper = records.pop(record_id, None)
            return wrapper is not None and self.is_live(wrapper, self.now()), wrapper is not None

        return self.change(loc, apply)

    # -- queries ---------------------------------------------------------------

    def scan(self, where: Mapping[str, Any]) -> Iterator[tuple[Location, dict[str, Wrapper]]]:
        """Every partition file that may hold records matching ``where`` (pinned partitions only)."""
        for partition in self.partitions(self.schema.where_key(where)):
            for loc in self.files(partition):
                records = self.read(loc)
                if records:
                    yield loc, records

    def find(
        self,
        where: Mapping[str, Any],
        order_by: Sequence[str],
        descending: bool,
        limit: int | None,
        include_expired: bool,
    ) -> list[Record]:
        """Matching records, in primary-key order unless ``order_by`` says otherwise."""
        self.schema.check_fields(list(where), self.path)
        self.schema.check_fields(order_by, self.path, meta=True)
        pinned = self._pinned_key(where)
        if pinned is not None:
            found = self.get(pinned, include_expired)
            return [found] if found is not None and matches(found, where) and limit != 0 else []
        hits = self.matching(where, include_expired)
        self._sort_by_key(hits)
        if order_by:
            hits.sort(key=lambda w: tuple(self._sort_value(w, field) for field in order_by), reverse=descending)
        elif descending:
            hits.reverse()
        if limit is not None:
            hits = hits[:limit]
        return self.to_records(hits)

    def matching(self, where: Mapping[str, Any], include_expired: bool) -> list[Wrapper]:
        """The stored wrappers of the records matching ``where``, unordered (callers must not change them)."""
        now = self.now()
        # Partition fields that pick the files to read hold in every record of those files.
        pinned_fields = self.schema.partition_by[: len(self.schema.where_key(where))]
        rest = {field: value for field, value in where.items() if field not in pinned_fields}
        return [
            wrapper
            for _, records in self.scan(where)
            for wrapper in records.values()
            if (not rest or matches(wrapper["record"], rest))
            and (include_expired or "expires_at" not in wrapper or self.is_live(wrapper, now))
        ]

    def count(self, where: Mapping[str, Any], include_expired: bool) -> int:
        """How many records match ``where`` (nothing is copied).

        Raises:
            SchemaError: for an unknown field in ``where``.
        """
        self.schema.check_fields(list(where), self.path)
        pinned = self._pinned_key(where)
        if pinned is not None:
            found = self.get(pinned, include_expired)
            return int(found is not None and matches(found, where))
        return len(self.matching(where, include_expired))

    def _sort_by_key(self, hits: list[Wrapper]) -> None:
        pick = itemgetter(*self.schema.key)
        try:
            hits.sort(key=lambda w: pick(w["record"]))
        except (KeyError, TypeError):
            # A hand-edited file may lack a key field or hold a non-string: sort such records first.
            key_fields = self.schema.key
            hits.sort(key=lambda w: tuple(str(w["record"].get(field, "")) for field in key_fields))

    def _pinned_key(self, where: Mapping[str, Any]) -> tuple[str, ...] | None:
        if not all(field in where for field in self.schema.key):
            return None
        try:
            return self.schema.check_key([where[field] for field in self.schema.key], self.path)
        except SchemaError:
            return None

    def _sort_value(self, wrapper: Wrapper, field: str) -> tuple[int, Any]:
        value = wrapper["record"].get(field) if field in self.schema.fields else wrapper.get(field)
        # SQLite's order across types: NULL, then numbers, then text; anything else after, by its JSON.
        if value is None:
            return (0, 0)
        if isinstance(value, int | float):
            return (1, value)
        if isinstance(value, str):
            return (2, value)
        return (3, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))

    def delete_matching(self, where: Mapping[str, Any], rule: Callable[[Wrapper, str], bool]) -> int:
        """Remove every record matching ``where`` for which ``rule(wrapper, now)`` holds; return how many."""
        self.schema.check_fields(list(where), self.path)
        removed = 0
        for loc, seen in list(self.scan(where)):
            now = self.now()
            if not any(matches(w["record"], where) and rule(w, now) for w in seen.values()):
                continue

            def apply(records: dict[str, Wrapper], now: str = now) -> tuple[int, bool]:
                doomed = [rid for rid, w in records.items() if matches(w["record"], where) and rule(w, now)]
                for record_id in doomed:
                    del records[record_id]
                return len(doomed), bool(doomed)

            removed += self.change(loc, apply)
        return removed

    def delete_where(self, where: Mapping[str, Any]) -> int:
        """Remove every record matching ``where``, expired ones too; return how many."""
        return self.delete_matching(where, lambda _wrapper, _now: True)

    def delete_expired(self) -> int:
        """Remove every expired record; return how many."""
        return self.delete_matching({}, lambda wrapper, now: not self.is_live(wrapper, now))

    def not_found(self, key: tuple[str, ...]) -> KeyNotFoundError:
        """The error for a missing record (naming its key and partition file)."""
        loc, _ = self.place(key)
        path: str = self.engine.storage.locator(loc.directory, loc.document)
        return KeyNotFoundError(f"table {self.schema.name!r}: no record", key=str(list(key)), path=path)
