"""Deleting, copying, pruning and retaining checkpoints, and sweeping expired threads.

Retention drops the oldest checkpoints of a namespace. One that introduced
channel values newer checkpoints still use becomes a *tombstone*: its file
keeps only those values (``{"values": ..., "channel_versions": ...}``) and its
id goes to ``tombstones.jsonl``. Tombstones are collected (values no kept
checkpoint uses are dropped, empty tombstones deleted) once a quarter of the
limit has been dropped since the last collection, since collecting reads every
kept checkpoint; ``prune`` and ``delete_for_runs`` collect at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import orjson

from group_store import Store

from ._codec import ValueCodec
from ._space import (
    BOOKKEEPING,
    HEAD,
    INDEX,
    MARKER,
    NAMESPACES,
    RESERVED,
    TOMBSTONES,
    Record,
    Space,
    delete_tree,
    head_to_file,
    read_log,
    replace_log,
)


class Upkeep:
    """The operations on whole threads and on old checkpoints (a base of ``CheckpointFiles``)."""

    def __init__(self, codec: ValueCodec, ttl: float | timedelta | None) -> None:
        self.codec = codec
        self.ttl = ttl

    def space(self, root: Store, thread_id: str, checkpoint_ns: str) -> Space:
        return Space(self.codec, root.narrow(thread_id), thread_id, checkpoint_ns)

    def _spaces(self, root: Store, thread_id: str) -> list[Space]:
        thread = root.narrow(thread_id)
        return [Space(self.codec, thread, thread_id, ns) for ns in ["", *thread.narrow(NAMESPACES).children()]]

    def replace_head(self, space: Space, head: Record, writes: list[dict[str, Any]]) -> None:
        """Replace ``head.jsonl`` (its lock held) by removing it and appending the new lines: never a
        rename over an existing file. A reader in between finds no head and falls back to the files."""
        space.view.delete(HEAD)
        space.view.append(HEAD, [head, *writes])
        space.set_head(head, writes)

    @staticmethod
    def insert_ids(space: Space, ids: Iterable[str]) -> None:
        """Add ids to the index, keeping it sorted (rewritten atomically unless they go last)."""
        current = space.ids()
        known = set(current)
        new = sorted({checkpoint_id for checkpoint_id in ids if checkpoint_id not in known})
        if not new:
            return
        if not current or new[0] > current[-1]:
            space.view.append(INDEX, new)
        else:
            replace_log(space.view, INDEX, sorted(known | set(new)))

    @staticmethod
    def tombstone_ids(space: Space) -> list[str]:
        return [line for line in read_log(space.view, TOMBSTONES) if isinstance(line, str)]

    # -- whole threads -----------------------------------------------------

    def delete_thread(self, root: Store, thread_id: str) -> None:
        """Remove the thread: its heads, then ``thread.json``, then every other file."""
        thread = root.narrow(thread_id)
        if not thread.keys() and not thread.children():
            return  # nothing there: do not create a directory just to lock it
        with thread.lock():
            for space in self._spaces(root, thread_id):
                space.view.delete(HEAD)
            thread.delete(MARKER)
            delete_tree(thread)

    def copy_thread(self, root: Store, source_id: str, target_id: str) -> None:
        """Copy every checkpoint of ``source_id`` into ``target_id`` (the target's own are kept)."""
        source = root.narrow(source_id)
        if source_id == target_id or not source.exists(MARKER):
            return
        target = root.narrow(target_id)
        while True:
            # Every lock this copy takes, taken up front in the seam's one order (a parent
            # before its children, siblings in path order), so crossing copies and any other
            # writer cannot deadlock with it: the source, the target, the target's existing
            # directories (cleared if the target is fresh) and the target namespaces the copy
            # writes. They come from lock-free listings: if one appeared before the locks were
            # all held, start again with it included.
            planned = self._copy_plan(root, source, target, source_id, target_id)
            with ExitStack() as held:
                for view in sorted(planned.values(), key=lambda view: view.locator.split("/")):
                    held.enter_context(view.lock())
                if not source.exists(MARKER):
                    return
                if not self._copy_plan(root, source, target, source_id, target_id).keys() <= planned.keys():
                    continue
                pairs = [
                    (space, self.space(root, target_id, space.checkpoint_ns)) for space in self._spaces(root, source_id)
                ]
                self._copy_locked(target, target_id, pairs)
                return

    def _copy_plan(
        self, root: Store, source: Store, target: Store, source_id: str, target_id: str
    ) -> dict[tuple[str, ...], Store]:
        """Every directory ``copy_thread`` may lock, by its ``narrow()`` keys."""
        views = [source, *_directories_under(target)]
        views += [self.space(root, target_id, space.checkpoint_ns).view for space in self._spaces(root, source_id)]
        return {view.segments: view for view in views}

    def _copy_locked(self, target: Store, target_id: str, pairs: list[tuple[Space, Space]]) -> None:
        """``copy_thread``'s work, with every lock it takes already held."""
        fresh = not target.exists(MARKER)
        if fresh:
            delete_tree(target)  # what an expired thread of that id left
        heads = [self._copy_files(origin, copy) for origin, copy in pairs]
        if fresh or self.ttl is not None:
            target.save(MARKER, {"thread_id": target_id}, ttl=self.ttl)
        # Heads last: until then the copied checkpoints are reachable through the index only.
        for (_, copy), new_head in zip(pairs, heads, strict=True):
            if new_head is not None:
                record, writes = new_head
                with copy.view.lock():
                    self.replace_head(copy, {**record, **({"expires": True} if self.ttl else {})}, writes)

    def _copy_files(self, origin: Space, copy: Space) -> tuple[Record, list[dict[str, Any]]] | None:
        """Copy a namespace's files, the source head also as a file; return the target's new head, if newer."""
        ids = origin.ids()
        if not ids:
            return None
        head = origin.head()
        with copy.view.lock():
            for key in origin.view.keys():
                if key not in RESERVED:
                    record = origin.view.get(key)
                    if record is not None:
                        copy.view.save(key, record)
            head_writes = origin.writes(head) if head is not None else []
            if head is not None:
                copy.view.save(head["checkpoint_id"], head_to_file(head, head_writes))
            tombstones = self.tombstone_ids(origin)
            if tombstones:
                copy.view.append(TOMBSTONES, tombstones)
            self.insert_ids(copy, ids)
            current = copy.head()
            if head is None or (current is not None and current["checkpoint_id"] >= head["checkpoint_id"]):
                return None
            if current is not None:
                copy.view.save(current["checkpoint_id"], head_to_file(current, copy.writes(current)))
            return {key: item for key, item in head.items() if key not in BOOKKEEPING - {"checkpoint_id"}}, head_writes

    def sweep(self, root: Store) -> int:
        """Delete expired markers (``Store.sweep``), then every thread left without one; return how many threads."""
        root.sweep()
        removed = 0
        for thread_id in root.children():
            thread = root.narrow(thread_id)
            if thread.exists(MARKER) or (not thread.keys() and not thread.children()):
                continue
            with thread.lock():
                if not thread.exists(MARKER):
                    delete_tree(thread)
                    removed += 1
        return removed

    # -- old checkpoints ---------------------------------------------------

    def prune(self, root: Store, thread_ids: Sequence[str], strategy: str) -> None:
        """``"keep_latest"``: keep each namespace's newest checkpoint; ``"delete"``: delete the threads.

        Raises:
            ValueError: for another strategy (nothing is changed).
        """
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(root, thread_id)
                continue
            thread = root.narrow(thread_id)
            if not thread.exists(MARKER):
                continue
            with thread.lock():
                for space in self._spaces(root, thread_id):
                    with space.view.lock():
                        self._keep_only_newest(space)

    def _keep_only_newest(self, space: Space) -> None:
        ids = space.ids()
        newest = self.materialized(space, ids)
        if newest is None:
            return
        record, writes = newest
        self.replace_head(space, record, writes)  # self-contained: every value inline
        for key in space.view.keys():
            if key not in RESERVED:
                space.view.delete(key)
        space.view.delete(TOMBSTONES)
        replace_log(space.view, INDEX, [record["checkpoint_id"]])

    def materialized(self, space: Space, ids: Sequence[str]) -> tuple[Record, list[dict[str, Any]]] | None:
        """The newest live checkpoint among ``ids`` as a self-contained head record, with its writes."""
        for checkpoint_id in reversed(ids):
            record = space.record(checkpoint_id)
            if record is not None and "checkpoint" in record:
                head = {key: item for key, item in record.items() if key not in BOOKKEEPING and key != "pending_writes"}
                head = {"checkpoint_id": checkpoint_id, **head, "values": space.values(record), "values_from": {}}
                if self.ttl is not None or record.get("expires"):
                    head["expires"] = True
                return head, space.writes(record)
        return None

    def delete_for_runs(self, root: Store, run_ids: Sequence[str]) -> None:
        """Delete every checkpoint (and its writes) whose metadata ``run_id`` is one of ``run_ids``, in every thread."""
        wanted = set(run_ids)
        if not wanted:
            return
        for thread_id in root.children():
            thread = root.narrow(thread_id)
            if not thread.exists(MARKER):
                continue
            with thread.lock():
                for space in self._spaces(root, thread_id):
                    with space.view.lock():
                        self._delete_runs(space, wanted)

    def _delete_runs(self, space: Space, wanted: set[str]) -> None:
        ids = space.ids()
        doomed = set()
        for checkpoint_id in ids:
            record = space.record(checkpoint_id)
            metadata = None if record is None else record.get("metadata")
            if metadata is not None:
                # A private copy: decoding works in place, and the record may be saved again.
                run_id = self.codec.decode(orjson.loads(orjson.dumps(metadata))).get("run_id")
                if run_id in wanted:
                    doomed.add(checkpoint_id)
        if not doomed:
            return
        kept = [checkpoint_id for checkpoint_id in ids if checkpoint_id not in doomed]
        head = space.head()
        if head is not None and head["checkpoint_id"] in doomed:
            self.bury(space, [head["checkpoint_id"]])  # (its values may still be used)
            newest = self.materialized(space, kept)
            if newest is None:
                space.view.delete(HEAD)
                space.set_head(None)
            else:
                self.replace_head(space, *newest)
        self.bury(space, sorted(doomed - ({head["checkpoint_id"]} if head is not None else set())))
        replace_log(space.view, INDEX, kept)
        self.collect(space, kept)

    def retain(self, space: Space, new_head: Record, limit: int) -> None:
        """Before ``new_head`` is saved: drop the oldest checkpoints beyond ``limit``.

        The head keeps the count (a put under the limit reads no index) and how
        many were dropped since tombstones were last collected.
        """
        old = space.head() or {}
        new_id = new_head["checkpoint_id"]
        count = old.get("count")
        if count is None:
            count = len({*space.ids(), new_id})
        elif new_id != old.get("checkpoint_id"):
            count += 1
        pruned = old.get("pruned", 0)
        if count > limit:
            ids = sorted({*space.ids(), new_id})
            doomed, kept = ids[:-limit], ids[-limit:]
            self.bury(space, doomed)
            replace_log(space.view, INDEX, kept)
            count, pruned = len(kept), pruned + len(doomed)
            if pruned >= max(1, limit // 4):
                space.set_head(new_head)
                self.collect(space, kept)
                pruned = 0
        new_head["count"], new_head["pruned"] = count, pruned

    def bury(self, space: Space, doomed: Iterable[str]) -> None:
        """Delete checkpoints' files; one that introduced values becomes a tombstone holding only those.

        The head is never deleted here (only its file, if one exists, is written as a tombstone).
        """
        buried = []
        for checkpoint_id in doomed:
            record = space.record(checkpoint_id)
            if record is None:
                continue
            inherited = record.get("values_from", {})
            own = {c: v for c, v in record.get("values", {}).items() if c not in inherited}
            if own and "checkpoint" in record:
                versions = Space.versions(record)
                tombstone = {"values": own, "channel_versions": {c: versions.get(c) for c in own}}
                space.view.save(checkpoint_id, tombstone)
                buried.append(checkpoint_id)
            elif not space.is_head(record):
                space.view.delete(checkpoint_id)
        if buried:
            space.view.append(TOMBSTONES, buried)

    def collect(self, space: Space, kept: Sequence[str]) -> None:
        """Strip from tombstones every value no kept checkpoint uses; delete the empty ones."""
        tombstones = self.tombstone_ids(space)
        if not tombstones:
            return
        used: set[tuple[str, str]] = set()
        for checkpoint_id in kept:
            record = space.record(checkpoint_id)
            if record is not None:
                used.update((source, channel) for channel, source in record.get("values_from", {}).items())
        survivors = []
        for tombstone in dict.fromkeys(tombstones):
            record = space.view.get(tombstone)
            if record is None or "checkpoint" in record:
                continue  # gone, or a checkpoint again (put anew): not a tombstone now
            values = {c: v for c, v in record["values"].items() if (tombstone, c) in used}
            if not values:
                space.view.delete(tombstone)
                continue
            if values != record["values"]:
                versions = record.get("channel_versions", {})
                space.view.save(tombstone, {"values": values, "channel_versions": {c: versions.get(c) for c in values}})
            survivors.append(tombstone)
        replace_log(space.view, TOMBSTONES, survivors)


def _directories_under(view: Store) -> list[Store]:
    """``view`` and every sub-store below it that exists now."""
    found = [view]
    for child in view.children():
        found += _directories_under(view.narrow(child))
    return found
