"""A LangGraph thread's files: the on-disk layout, and reading one namespace.

One directory per thread, and one per subgraph namespace inside it (the root
namespace ``""`` is the thread directory itself). Every file of a namespace is
in its own directory, so a change takes one directory lock::

    <thread_id>/
      thread.json           {"thread_id": ...}: the thread exists while this is live (its expiry is the TTL)
      head.jsonl            the newest checkpoint, whole, on line 1 (checkpoint, metadata, parent,
                            every channel value); its pending writes on the lines after
      index.jsonl           every checkpoint id of the namespace, ascending, one per line
      <checkpoint_id>.json  each older checkpoint: checkpoint, metadata, parent, the channel values
                            it introduced ("values"), where the others are ("values_from"), its
                            pending writes
      ns/<checkpoint_ns>/   a subgraph namespace: its own head, index and checkpoint files

A channel value is stored once per channel and version, in the file of the
checkpoint that introduced it; later checkpoints name that one in
``values_from``. The head carries every value it uses, so reading the newest
checkpoint is one file.

Invariants (the tests in tests/integrations/ check each):

- Only appends and new files on the hot path: ``put_writes`` appends a line to
  ``head.jsonl``; a put appends its id to ``index.jsonl``, writes the old head
  (and its writes) to the old checkpoint's new file, then replaces the head
  by removing ``head.jsonl`` and appending the new one. (Replacing a file in
  place is what is slow on ext4: the rename makes it flush the new data
  first, ``auto_da_alloc``.) A reader that finds no head, in that moment or
  after a crash there, falls back to the index and the checkpoint files,
  where the old head already is: it sees the old newest checkpoint.
- ``index.jsonl`` names every checkpoint of the namespace, sorted (appended
  before the head moves, otherwise rewritten atomically); it may name one a
  killed put never finished, which readers skip.
- A thread is started by writing ``thread.json`` after removing whatever an
  expired thread of that id left; it is deleted heads first, then
  ``thread.json``, then the rest. Reads of the newest checkpoint read only the
  head, unless the head says its thread has a TTL (then ``thread.json`` too);
  every other read checks ``thread.json``.
- Every change of a namespace holds its directory's lock (a subgraph
  namespace: the thread's first, when ``thread.json`` changes), so threads
  and processes sharing the files serialize. Reads take no lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import orjson
from langgraph.checkpoint.base import writes_sort_key

from group_store import InvalidArgumentError, KeyNotFoundError, Store

from ._codec import ValueCodec

MARKER = "thread"
HEAD = "head"
INDEX = "index"
TOMBSTONES = "tombstones"
NAMESPACES = "ns"
RESERVED = frozenset({MARKER, HEAD, INDEX, TOMBSTONES})
BOOKKEEPING = frozenset({"checkpoint_id", "expires", "count", "pruned"})

Record = dict[str, Any]


class StoredCheckpoint(NamedTuple):
    """A checkpoint as read back: decoded, with its channel values and pending writes."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    parent_checkpoint_id: str | None
    pending_writes: list[tuple[str, str, Any]]


class Candidate(NamedTuple):
    """A checkpoint that ``list`` may return, before its files are read."""

    checkpoint_id: str
    thread_id: str
    checkpoint_ns: str


def namespace_view(thread: Store, checkpoint_ns: str) -> Store:
    """The directory of ``checkpoint_ns`` in ``thread`` (the root namespace is the thread's own)."""
    return thread if checkpoint_ns == "" else thread.narrow(NAMESPACES, checkpoint_ns)


def check_id(checkpoint_id: str) -> None:
    """Refuse a checkpoint id that would name one of the saver's own files."""
    if not isinstance(checkpoint_id, str) or checkpoint_id in RESERVED:
        raise InvalidArgumentError(f"a checkpoint id cannot be {checkpoint_id!r} (a name this saver uses)")


class Space:
    """One namespace directory for the length of one operation; its reads are cached meanwhile.

    Args:
        single_use: Each record becomes a tuple at most once (``get``), so its
            JSON may be decoded in place; otherwise values, which checkpoints
            share through the cache, are copied before decoding.
    """

    def __init__(
        self, codec: ValueCodec, thread: Store, thread_id: str, checkpoint_ns: str, *, single_use: bool = False
    ) -> None:
        self.codec = codec
        self.thread = thread
        self.thread_id = thread_id
        self.checkpoint_ns = checkpoint_ns
        self.view = namespace_view(thread, checkpoint_ns)
        self.single_use = single_use
        self._head: Record | None = None
        self._head_writes: list[dict[str, Any]] = []
        self._head_read = False
        self._records: dict[str, Record | None] = {}

    # -- the head ----------------------------------------------------------

    def head(self) -> Record | None:
        """The newest checkpoint's record (line 1 of ``head.jsonl``), or ``None``."""
        if not self._head_read:
            lines = read_log(self.view, HEAD)
            if lines and isinstance(lines[0], dict) and "checkpoint_id" in lines[0]:
                self._head, self._head_writes = lines[0], lines[1:]
            self._head_read = True
        return self._head

    def set_head(self, head: Record | None, writes: list[dict[str, Any]] | None = None) -> None:
        """What ``head()`` returns from now on (after this operation replaced it)."""
        self._head, self._head_writes, self._head_read = head, writes or [], True

    def is_head(self, record: Record | None) -> bool:
        return record is not None and record is self.head()

    # -- records -----------------------------------------------------------

    def record(self, checkpoint_id: str) -> Record | None:
        """The head if it is ``checkpoint_id``, else that checkpoint's file (a tombstone, maybe)."""
        head = self.head()
        if head is not None and head["checkpoint_id"] == checkpoint_id:
            return head
        if checkpoint_id not in self._records:
            self._records[checkpoint_id] = self.view.get(checkpoint_id)
        return self._records[checkpoint_id]

    @staticmethod
    def versions(record: Record) -> Mapping[str, Any]:
        """A record's channel versions (str, int or float: plain JSON, read as stored)."""
        return record.get("checkpoint", record).get("channel_versions", {})  # type: ignore[no-any-return]

    def owned_value(self, checkpoint_id: str, channel: str) -> Any:
        """The value ``checkpoint_id`` introduced for ``channel`` (a JSON tree), or ``ABSENT``."""
        record = self.record(checkpoint_id)
        if record is None or channel in record.get("values_from", {}):
            return ABSENT
        return record.get("values", {}).get(channel, ABSENT)

    def values(self, record: Record, *, private: bool = False) -> dict[str, Any]:
        """Every channel value of a checkpoint, as JSON trees; with ``private``, the ones other
        checkpoints may share through the cache (those it inherited) are copies."""
        if self.is_head(record):
            return dict(record["values"])  # the head holds them all
        inherited = record.get("values_from", {})
        found = {c: v for c, v in record.get("values", {}).items() if c not in inherited}
        shared = {}
        for channel, source in inherited.items():
            value = self.owned_value(source, channel)
            if value is not ABSENT:
                shared[channel] = value
        if private and shared:
            shared = orjson.loads(orjson.dumps(shared))
        return {**found, **shared}

    def writes(self, record: Record | None) -> list[dict[str, Any]]:
        """A checkpoint's pending writes: in its file, and for the head on the lines of ``head.jsonl``."""
        rows = [] if record is None else list(record.get("pending_writes", ()))
        if self.is_head(record):
            rows.extend(self._head_writes)
        return fold(rows)

    def stored(self, checkpoint_id: str) -> StoredCheckpoint | None:
        """The checkpoint decoded, or ``None`` if it is missing, a tombstone or only writes."""
        record = self.record(checkpoint_id)
        if record is None or "checkpoint" not in record:
            return None
        decode = self.codec.decode
        # Decoding works in place; a record is consumed once here, but values it inherited may
        # serve other checkpoints of the same read (and the head's, the head's children).
        values = self.values(record, private=not self.single_use)
        if self.is_head(record) and not self.single_use:
            values = orjson.loads(orjson.dumps(values))
        checkpoint: dict[str, Any] = decode(record["checkpoint"])
        checkpoint["channel_values"] = {c: decode(v) for c, v in values.items()}
        return StoredCheckpoint(
            self.thread_id,
            self.checkpoint_ns,
            checkpoint_id,
            checkpoint,
            decode(record["metadata"]),
            record.get("parent_checkpoint_id"),
            [(w["task_id"], w["channel"], decode(w["value"])) for w in self.writes(record)],
        )

    # -- ids ---------------------------------------------------------------

    def ids(self) -> list[str]:
        """The namespace's checkpoint ids, ascending (a killed put may have left one that does not exist)."""
        return self.newest_ids(None)[0]

    def newest_ids(self, window: int | None) -> tuple[list[str], bool]:
        """The ids on the last ``window`` lines of the index (all if ``None``), ascending, and whether
        that was every line. The index is sorted, so they are the newest ``window`` checkpoints."""
        try:
            lines = self.view.read(INDEX, last=window)
        except KeyNotFoundError:
            return self._listed_ids(), True
        ids = [line for line in lines if isinstance(line, str)]
        head = self.head()
        if head is not None and (not ids or ids[-1] != head["checkpoint_id"]):
            ids.append(head["checkpoint_id"])
        return sorted(set(ids)), window is None or len(lines) < window

    def _listed_ids(self) -> list[str]:
        """Ids from the directory listing (no index: no checkpoint yet, or it was removed by hand)."""
        head = self.head()
        ids = {head["checkpoint_id"]} if head is not None else set()
        for key in self.view.keys():
            if key not in RESERVED and key not in ids:
                record = self.record(key)
                if record is not None and "checkpoint" in record:
                    ids.add(key)
        return sorted(ids)


ABSENT = object()


def fold(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Writes in ``writes_sort_key`` order; a special write (negative index) replaces an earlier
    one of its task and index, a regular write never replaces one."""
    kept: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        key = (row["task_id"], row["idx"])
        if row["idx"] < 0 or key not in kept:
            kept[key] = dict(row)
    return sorted(kept.values(), key=lambda row: writes_sort_key(row["task_path"], row["task_id"], row["idx"]))


def head_to_file(head: Record, writes: list[dict[str, Any]]) -> Record:
    """The head as an ordinary checkpoint file (only the values it introduced), with ``writes``."""
    inherited = head.get("values_from", {})
    return {
        "checkpoint": head["checkpoint"],
        "metadata": head["metadata"],
        "parent_checkpoint_id": head.get("parent_checkpoint_id"),
        "values": {c: v for c, v in head["values"].items() if c not in inherited},
        "values_from": inherited,
        "pending_writes": writes,
    }


def read_log(view: Store, key: str) -> list[Any]:
    """A log's items, or ``[]`` if there is none."""
    try:
        return view.read(key)
    except KeyNotFoundError:
        return []


def replace_log(view: Store, key: str, items: list[Any]) -> None:
    """Replace a log's lines with ``items`` in one atomic rewrite (``append`` prunes beyond ``max_items``)."""
    if not items:
        view.delete(key)
    elif view.exists(key):
        view.append(key, items, max_items=len(items))
    else:
        view.append(key, items)


def delete_tree(view: Store) -> None:
    """Delete every entry under ``view`` (empty directories stay: the store has no call to remove one)."""
    keys = view.keys()
    if keys:
        with view.lock():
            for key in keys:
                view.delete(key)
    for child in view.children():
        delete_tree(view.narrow(child))
