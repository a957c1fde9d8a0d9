"""A table's schema and where each record lives (pure, no I/O).

A table is a directory of partition files. The leading primary-key fields
named by ``partition_by`` choose a directory (one ``narrow()`` level each); the
record goes into one document there: ``records`` when the table has one shard,
``shard-XX`` (by a hash of the rest of the key) when it has several. The
document maps the record id (the rest of the key) to a wrapper::

    {"<id>": {"created_at": "...", "expires_at": "...", "record": {...}, "updated_at": "..."}}

Times are ISO-8601 UTC with microseconds, so they sort as strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from .._errors import SchemaError

META_FIELDS = ("created_at", "updated_at", "expires_at")
"""Fields the table keeps for every record, outside the record itself."""

SINGLE_SHARD = "records"


def iso(epoch: float) -> str:
    """The stored spelling of a time: ISO-8601 UTC with microseconds (sorts as text)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class TableSchema:
    """The shape of a table: its name, fields, primary key, partitioning and sharding.

    Raises (at construction):
        SchemaError: if the key is empty or not among the fields, ``partition_by``
            is not a leading part of the key, or ``shards`` is not 1 to 256.
    """

    name: str
    fields: tuple[str, ...]
    key: tuple[str, ...]
    partition_by: tuple[str, ...]
    shards: int

    @classmethod
    def build(
        cls,
        name: str,
        fields: Sequence[str],
        key: Sequence[str],
        partition_by: Sequence[str] | None,
        shards: int | None,
    ) -> TableSchema:
        """Check the arguments of ``Table()`` and fill in the defaults (see ``Table``)."""
        fields_t, key_t = tuple(fields), tuple(key)
        if isinstance(fields, str) or isinstance(key, str):
            raise SchemaError(f"table {name!r}: fields and key are sequences of names, not one string")
        if not key_t:
            raise SchemaError(f"table {name!r}: the primary key needs at least one field")
        if len(set(fields_t)) != len(fields_t):
            raise SchemaError(f"table {name!r}: duplicate field names in {list(fields_t)}")
        for field in key_t:
            if field not in fields_t:
                raise SchemaError(f"table {name!r}: key field {field!r} is not one of the fields {list(fields_t)}")
        partition_t = key_t[:-1] if partition_by is None else tuple(partition_by)
        if partition_t != key_t[: len(partition_t)] or len(partition_t) == len(key_t):
            raise SchemaError(
                f"table {name!r}: partition_by {list(partition_t)} must be leading fields of the key {list(key_t)}, "
                "leaving at least one"
            )
        shard_count = (1 if partition_t else 64) if shards is None else shards
        if isinstance(shard_count, bool) or not isinstance(shard_count, int) or not 1 <= shard_count <= 256:
            raise SchemaError(f"table {name!r}: shards must be an int from 1 to 256, not {shards!r}")
        return cls(name, fields_t, key_t, partition_t, shard_count)

    # -- records -------------------------------------------------------------

    def check_record(self, record: Mapping[str, Any], path: str) -> dict[str, Any]:
        """A plain-dict copy of ``record`` after checking its field names and key values.

        Raises:
            SchemaError: for a field outside the schema, a missing key field or a
                bad key value (see ``check_key``).
        """
        if not isinstance(record, Mapping):
            raise SchemaError(f"table {self.name!r}: a record is a mapping, not {type(record).__name__}", path=path)
        unknown = [field for field in record if field not in self.fields]
        if unknown:
            raise SchemaError(
                f"table {self.name!r}: unknown field(s) {unknown}; the fields are {list(self.fields)}", path=path
            )
        self.key_of(record, path)
        return dict(record)

    def key_of(self, record: Mapping[str, Any], path: str) -> tuple[str, ...]:
        """The primary-key values of ``record``.

        Raises:
            SchemaError: for a missing key field or a value that is not a string
                (a non-empty one for a partition field).
        """
        values = []
        for field in self.key:
            if field not in record:
                raise SchemaError(f"table {self.name!r}: record lacks key field {field!r}", path=path)
            values.append(record[field])
        return self.check_key(values, path)

    def check_key(self, values: Sequence[Any], path: str) -> tuple[str, ...]:
        """``values`` as a primary key.

        Raises:
            SchemaError: if there are not as many values as key fields, or one is not a
                string (a non-empty one for a partition field).
        """
        if len(values) != len(self.key):
            raise SchemaError(
                f"table {self.name!r}: the key is {list(self.key)}, got {len(values)} value(s) {list(values)!r}",
                path=path,
            )
        for index, (field, value) in enumerate(zip(self.key, values, strict=True)):
            # Partition values name directories, so they cannot be empty; the rest name a record in a file.
            if not isinstance(value, str) or (not value and index < len(self.partition_by)):
                kind = (
                    "a non-empty string (it names a partition directory)"
                    if index < len(self.partition_by)
                    else "a string"
                )
                raise SchemaError(f"table {self.name!r}: key field {field!r} must be {kind}, not {value!r}", path=path)
        return tuple(values)

    def check_fields(self, names: Sequence[str], path: str, *, meta: bool = False) -> None:
        """Check names used in ``where=`` or ``order_by=`` (``meta`` also allows the table's own times).

        Raises:
            SchemaError: naming the first unknown field.
        """
        for name in names:
            if name not in self.fields and not (meta and name in META_FIELDS):
                known = list(self.fields) + (list(META_FIELDS) if meta else [])
                raise SchemaError(f"table {self.name!r}: unknown field {name!r}; the fields are {known}", path=path)

    # -- placement -----------------------------------------------------------

    def partition(self, key: tuple[str, ...]) -> tuple[str, ...]:
        """The ``narrow()`` keys of the directory holding ``key``."""
        return key[: len(self.partition_by)]

    def record_id(self, key: tuple[str, ...]) -> str:
        """The record's name inside its partition file: the rest of the key."""
        rest = key[len(self.partition_by) :]
        return rest[0] if len(rest) == 1 else orjson.dumps(list(rest)).decode()

    def shard(self, record_id: str) -> str:
        """The document holding ``record_id`` in its partition directory."""
        if self.shards == 1:
            return SINGLE_SHARD
        # A stable hash (not hash(), which is salted per process) so every process agrees.
        number = int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=2).digest()) % self.shards
        return f"shard-{number:02x}"

    def shard_names(self) -> list[str]:
        """Every document name a partition directory may hold."""
        if self.shards == 1:
            return [SINGLE_SHARD]
        return [f"shard-{number:02x}" for number in range(self.shards)]

    def where_key(self, where: Mapping[str, Any]) -> tuple[str, ...]:
        """The partition ``where`` pins down (its leading partition fields with string values), if any."""
        values = []
        for field in self.partition_by:
            value = where.get(field)
            if not isinstance(value, str) or not value:
                break
            values.append(value)
        return tuple(values)


def matches(record: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """True if every ``where`` field equals the record's (a missing field counts as ``None``)."""
    return all(record.get(field) == value for field, value in where.items())
