"""The checkpointer's blocking operations: put, put_writes, get and list (layout and invariants in ``_space``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP

from group_store import SerializationError, Store

from ._codec import ValueCodec
from ._space import (
    ABSENT,
    HEAD,
    INDEX,
    MARKER,
    NAMESPACES,
    Candidate,
    Record,
    Space,
    StoredCheckpoint,
    check_id,
    delete_tree,
    fold,
    head_to_file,
)
from ._upkeep import Upkeep


class CheckpointFiles(Upkeep):
    """The checkpointer's operations on a blocking ``Store``; the saver calls them, inline or in a thread.

    Args:
        codec: Turns values into JSON trees and back.
        ttl: The thread TTL (seconds or a timedelta), counted from its last put.
        max_checkpoints: Keep at most this many checkpoints per thread and namespace.
    """

    def __init__(self, codec: ValueCodec, ttl: float | timedelta | None, max_checkpoints: int | None) -> None:
        super().__init__(codec, ttl)
        self.max_checkpoints = max_checkpoints

    def _touch(self, thread: Store, thread_id: str, *, refresh: bool = True) -> None:
        """Make the thread live: start it afresh (removing an expired one's files) or, if
        ``refresh``, restart its TTL."""
        if (self.ttl is None or not refresh) and thread.exists(MARKER):
            return
        with thread.lock():
            if not thread.exists(MARKER):
                delete_tree(thread)
            elif self.ttl is None or not refresh:
                return
            thread.save(MARKER, {"thread_id": thread_id}, ttl=self.ttl)

    # -- put -------------------------------------------------------------

    def put(
        self,
        root: Store,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint: Mapping[str, Any],
        metadata: Mapping[str, Any],
        parent_id: str | None,
        new_versions: Mapping[str, Any],
    ) -> None:
        """Store a checkpoint: its id in the index, the old head in its file, then the new head."""
        checkpoint_id: str = checkpoint["id"]
        check_id(checkpoint_id)
        space = self.space(root, thread_id, checkpoint_ns)
        if checkpoint_ns:
            self._touch(space.thread, thread_id)
        with space.view.lock():
            # A head means a live thread (delete_thread removes heads first), unless TTLs apply.
            if not checkpoint_ns and (self.ttl is not None or _may_be_expired(space.head())):
                self._touch(space.thread, thread_id)
            values: Mapping[str, Any] = checkpoint["channel_values"]
            rest = {key: item for key, item in checkpoint.items() if key != "channel_values"}
            inherited, inherited_values = self._inherit(
                space, parent_id, rest.get("channel_versions", {}), new_versions
            )
            own = [channel for channel in new_versions if channel in values]  # no value: "empty", no entry

            def build(plain: bool) -> Record:
                encode = self.codec.encode
                return {
                    "checkpoint": encode(rest, plain_ok=plain),
                    "metadata": encode(dict(metadata), plain_ok=plain),
                    "parent_checkpoint_id": parent_id,
                    "values": {channel: encode(values[channel], plain_ok=plain) for channel in own},
                    "values_from": inherited,
                }

            head = space.head()
            if head is not None and checkpoint_id < head["checkpoint_id"]:
                # Older than the head (put out of order): straight to its own file.
                earlier = space.writes(space.record(checkpoint_id))
                save_built(space.view, checkpoint_id, lambda plain: {**build(plain), "pending_writes": earlier})
                self.insert_ids(space, [checkpoint_id])
                return
            stub: Record | None = None  # a file holding writes saved before their checkpoint
            if head is None:
                self.insert_ids(space, [checkpoint_id])
                stub = space.record(checkpoint_id)
                carried = space.writes(stub)
            elif checkpoint_id > head["checkpoint_id"]:
                space.view.append(INDEX, [checkpoint_id])  # the head is the newest: the index stays sorted
                space.view.save(head["checkpoint_id"], head_to_file(head, space.writes(head)))
                stub = space.view.get(checkpoint_id)
                carried = space.writes(stub)
            else:
                carried = space.writes(head)  # the same id again: it replaces the head, keeps its writes

            def build_head(plain: bool) -> Record:
                record = build(plain)
                record["values"] = {**inherited_values, **record["values"]}
                return {"checkpoint_id": checkpoint_id, **record, **({"expires": True} if self.ttl else {})}

            new_head = build_head(True)
            if self.max_checkpoints is not None:
                self.retain(space, new_head, self.max_checkpoints)
            try:
                self.replace_head(space, new_head, carried)
            except SerializationError:
                bookkeeping: Record = {key: new_head[key] for key in ("count", "pruned") if key in new_head}
                self.replace_head(space, {**build_head(False), **bookkeeping}, carried)
            if stub is not None:
                space.view.delete(checkpoint_id)  # its writes are in the head now

    def _inherit(
        self, space: Space, parent_id: str | None, versions: Mapping[str, Any], introduced: Iterable[str]
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """For each channel not introduced now: the checkpoint that introduced its version, and the value."""
        skip = set(introduced)  # introduced now, or emptied now (an "empty" blob in the references)
        sources: dict[str, str] = {}
        found: dict[str, Any] = {}
        parent = space.record(parent_id) if parent_id else None
        parent_versions = Space.versions(parent) if parent is not None else {}
        from_head = space.is_head(parent)
        for channel, version in versions.items():
            if channel in skip:
                continue
            source: str | None = None
            if parent is not None and parent_versions.get(channel) == version:
                source = parent.get("values_from", {}).get(channel, parent_id)
            if source is None:
                source = self._find_owner(space, channel, version)
            if source is None:
                continue
            # The head holds every value it uses: a child of the head reads no other file.
            if from_head and parent is not None and channel in parent["values"]:
                value = parent["values"][channel]
            else:
                value = space.owned_value(source, channel)
            if value is not ABSENT:
                sources[channel], found[channel] = source, value
        return sources, found

    def _find_owner(self, space: Space, channel: str, version: Any) -> str | None:
        """The checkpoint (or tombstone) that introduced ``channel`` at ``version``: the slow path,
        for a checkpoint whose parent lacks that version (LangGraph's own puts never need it)."""
        for checkpoint_id in [*reversed(space.ids()), *self.tombstone_ids(space)]:
            record = space.record(checkpoint_id)
            if record is None or space.owned_value(checkpoint_id, channel) is ABSENT:
                continue
            if Space.versions(record).get(channel) == version:
                return checkpoint_id
        return None

    def put_writes(
        self,
        root: Store,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        """Store a task's writes: special ones (negative index) replace, regular ones are kept if present.

        For the newest checkpoint the writes are appended to ``head.jsonl``; an
        older one's file is rewritten (as is a file holding only writes, for a
        checkpoint not put yet).
        """
        check_id(checkpoint_id)
        space = self.space(root, thread_id, checkpoint_ns)
        # LangGraph may save a task's writes before the checkpoint they belong to (its background
        # executor runs both): the thread must be started then, or that put would clear them.
        if checkpoint_ns:
            self._touch(space.thread, thread_id, refresh=False)
        with space.view.lock():
            if not checkpoint_ns and _may_be_expired(space.head()):
                self._touch(space.thread, thread_id, refresh=False)
            record = space.record(checkpoint_id)
            existing = space.writes(record)
            current = {(row["task_id"], row["idx"]): row for row in existing}
            fresh: list[tuple[dict[str, Any], Any]] = []
            for position, (channel, value) in enumerate(writes):
                index = WRITES_IDX_MAP.get(channel, position)
                if index < 0 or (task_id, index) not in current:
                    fresh.append(
                        ({"task_id": task_id, "task_path": task_path, "idx": index, "channel": channel}, value)
                    )

            def build(plain: bool) -> list[dict[str, Any]]:
                rows = [{**row, "value": self.codec.encode(value, plain_ok=plain)} for row, value in fresh]
                return [row for row in rows if current.get((row["task_id"], row["idx"])) != row]

            rows = build(True)
            if not rows:
                return  # a retried call: nothing new, nothing written
            if not space.is_head(record):
                save_built(
                    space.view,
                    checkpoint_id,
                    lambda plain: {**(record or {}), "pending_writes": fold([*existing, *build(plain)])},
                )
                return
            try:
                space.view.append(HEAD, rows)
            except SerializationError:
                space.view.append(HEAD, build(False))

    # -- reads -----------------------------------------------------------

    def get(
        self, root: Store, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> StoredCheckpoint | None:
        """The checkpoint named, or the namespace's newest if ``checkpoint_id`` is ``None``."""
        space = Space(self.codec, root.narrow(thread_id), thread_id, checkpoint_ns, single_use=True)
        head = space.head()
        if checkpoint_id is None and head is not None and not head.get("expires"):
            return space.stored(head["checkpoint_id"])  # the common case: one file read
        if not space.thread.exists(MARKER):
            return None
        if checkpoint_id is not None:
            return space.stored(checkpoint_id)
        for candidate in reversed(space.ids()):  # (no head: a put killed while replacing it)
            found = space.stored(candidate)
            if found is not None:
                return found
        return None

    def candidates(
        self,
        root: Store,
        thread_id: str | None,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        before_id: str | None,
        window: int | None = None,
        cache: dict[tuple[str, str], Space] | None = None,
    ) -> tuple[list[Candidate], bool]:
        """What ``list`` may return, newest first (by checkpoint id, across threads, as SqliteSaver),
        and whether that is all of them. ``cache`` keeps the namespaces read, for ``load``.

        With ``window``, each namespace contributes the newest ``window`` ids
        (older than ``before_id``) it has: the newest ``window`` overall are among them.
        """
        thread_ids = root.children() if thread_id is None else [thread_id]
        found: list[Candidate] = []
        complete = True
        for tid in thread_ids:
            thread = root.narrow(tid)
            if not thread.exists(MARKER):
                continue
            names = ["", *thread.narrow(NAMESPACES).children()] if checkpoint_ns is None else [checkpoint_ns]
            for ns in names:
                space = Space(self.codec, thread, tid, ns)
                if cache is not None:
                    cache[(tid, ns)] = space
                ids = self._window(space, before_id, window)
                complete = complete and ids[1]
                for cid in ids[0]:
                    if not checkpoint_id or cid == checkpoint_id:
                        found.append(Candidate(cid, tid, ns))
        found.sort(reverse=True)
        return found, complete

    @staticmethod
    def _window(space: Space, before_id: str | None, window: int | None) -> tuple[list[str], bool]:
        """The namespace's newest ``window`` ids older than ``before_id``, widening the index window as needed."""
        size = None if before_id else window  # the ids before a cursor may be anywhere: read them all once
        while True:
            ids, complete = space.newest_ids(None if size is None else size + 4)  # a margin for stale lines
            if before_id:
                ids = [cid for cid in ids if cid < before_id]
            if complete or size is None or len(ids) >= size + 4:
                return ids, complete
            size *= 4

    def load(
        self, root: Store, candidates: Sequence[Candidate], cache: dict[tuple[str, str], Space] | None = None
    ) -> list[StoredCheckpoint | None]:
        """Read the candidates (``None`` for one that no longer exists), one cache per namespace."""
        spaces = {} if cache is None else cache
        found = []
        for candidate in candidates:
            key = (candidate.thread_id, candidate.checkpoint_ns)
            if key not in spaces:
                spaces[key] = self.space(root, *key)
            found.append(spaces[key].stored(candidate.checkpoint_id))
        return found


def _may_be_expired(head: Record | None) -> bool:
    """Whether ``thread.json`` must be checked: no head, or one written with a TTL."""
    return head is None or bool(head.get("expires"))


def save_built(view: Store, key: str, build: Callable[[bool], Any]) -> None:
    """Save ``build(True)``; if the store refuses it (a string with a lone surrogate, say), save
    ``build(False)``, which sends even plain values through the serializer, as the references would."""
    try:
        view.save(key, build(True))
    except SerializationError:
        view.save(key, build(False))
