"""What a store holds, as frozen records: ``tree`` (the hierarchy) and ``stats`` (totals).

The command line's ``tree`` and ``stats`` print these; nothing here prints or writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .._api.composition import resolve
from .._engine.inventory import ErrorHandler, read_entries, read_entry, scan_tree, undecodable_names, warn
from .._errors import GroupStoreError
from .._format.expiry import Clock
from ._walk import StoreOrPath


@dataclass(frozen=True)
class TreeEntry:
    """One live entry of a ``TreeNode``: its key, kind, size in bytes and expiry (aware UTC)."""

    key: str
    kind: str
    size: int
    expires_at: datetime | None


@dataclass(frozen=True)
class TreeNode:
    """One store directory: its name, live entries (by key), sub-stores (by encoded name) and totals.

    Attributes:
        name: The last ``narrow()`` key; for the root, the store's local path or locator.
        segments: The ``narrow()`` keys from the root of the tree.
        total_entries, total_size: Counted over this node and every node below it.
    """

    name: str
    segments: tuple[str, ...]
    entries: tuple[TreeEntry, ...]
    children: tuple[TreeNode, ...]
    total_entries: int
    total_size: int


@dataclass(frozen=True)
class StoreTree:
    """``tree()``: the root node, and how many names did not decode as keys (left out)."""

    root: TreeNode
    undecodable: int


def tree(store: StoreOrPath, *, clock: Clock | None = None, on_error: ErrorHandler | None = None) -> StoreTree:
    """The hierarchy under ``store`` (a store or view, or a path) with its live entries.

    A directory or entry that cannot be read is passed to ``on_error`` (default: a
    warning on logger ``group_store``) and left out; the rest is shown. Expiry is by
    ``clock`` (default: the store's; the wall clock for a path).
    """
    report = warn if on_error is None else on_error
    engine, directory, base = resolve(store, clock)
    root_path = engine.storage.local_path(directory)
    root_name = str(root_path) if root_path is not None else engine.storage.locator(directory)
    now = engine.clock()
    found: dict[tuple[str, ...], tuple[list[TreeEntry], list[tuple[str, ...]]]] = {}
    undecodable = 0
    for scan in scan_tree(engine, directory, report, base):
        undecodable += len(undecodable_names(scan))
        entries = [
            TreeEntry(entry.key, entry.kind, len(entry.raw), entry.expires_at)
            for entry in read_entries(engine, scan, False, now, report)
        ]
        segments = scan.segments[len(base) :]
        found[segments] = (entries, [])
        if segments:
            found[segments[:-1]][1].append(segments)
    # Built leaves first and iteratively: a store can be nested deeper than the recursion limit.
    nodes: dict[tuple[str, ...], TreeNode] = {}
    for segments in reversed(found):
        entries, child_segments = found[segments]
        children = tuple(nodes.pop(child) for child in child_segments)
        nodes[segments] = TreeNode(
            segments[-1] if segments else root_name,
            segments,
            tuple(entries),
            children,
            len(entries) + sum(child.total_entries for child in children),
            sum(entry.size for entry in entries) + sum(child.total_size for child in children),
        )
    return StoreTree(nodes[()], undecodable)


@dataclass(frozen=True)
class StoreStats:
    """``stats()``: counts over a store's subtree (expired entries included in the counts).

    Attributes:
        directories: Store directories (the root included).
        documents, logs: Entries of each kind.
        log_items: Lines across every log.
        bytes: Bytes of the data files.
        with_ttl: Entries with an expiry; expired_unswept: those already past it.
        temporary_files: Leftover temporary files in the store's exact pattern.
    """

    directories: int = 0
    documents: int = 0
    logs: int = 0
    log_items: int = 0
    bytes: int = 0
    with_ttl: int = 0
    expired_unswept: int = 0
    temporary_files: int = 0


def stats(store: StoreOrPath, *, clock: Clock | None = None, on_error: ErrorHandler | None = None) -> StoreStats:
    """Counts over ``store``'s subtree (a store or view, or a path); an entry or directory
    that cannot be read is passed to ``on_error`` (default: a warning) and not counted."""
    report = warn if on_error is None else on_error
    engine, directory, base = resolve(store, clock)
    now = engine.clock()
    counts = dict.fromkeys(StoreStats.__dataclass_fields__, 0)
    for scan in scan_tree(engine, directory, report, base):
        counts["directories"] += 1
        counts["temporary_files"] += len(scan.temps)
        for name in scan.entries:
            try:
                entry = read_entry(engine, scan, name, True, now)
            except GroupStoreError as exc:
                report(exc)
                continue
            if entry is None:
                continue
            counts["documents" if entry.kind == "document" else "logs"] += 1
            counts["bytes"] += len(entry.raw)
            if entry.kind == "log":
                counts["log_items"] += entry.raw.count(b"\n")
            if entry.expires_at is not None:
                counts["with_ttl"] += 1
                counts["expired_unswept"] += entry.expires_at.timestamp() <= now
    return StoreStats(**counts)
