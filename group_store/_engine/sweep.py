"""The sweep: delete expired entries, guided by each directory's expiry index.

It takes each directory's lock itself, one directory at a time (never two at once,
so no lock-order deadlock), and reads each candidate's expiry again under that
lock, so an entry re-saved with a later expiry while it ran is never removed.

Ownership: a sweep deletes or rewrites only what the store can prove it wrote,
and only in directories whose names decode (``Engine.child_directories``, the
rule listings use; it never descends into any other): files named exactly as
``temp_name`` makes them, sidecars exactly as ``encode_sidecar`` writes them whose
names decode (removed, or rewritten without bindings of bytes no longer on disk),
key files of hashed names that hold their key (``is_own_key_file``), the index (a
regular file named ``.expiry.jsonl``), and the data of an entry such a sidecar
binds to a past time. Everything else is left where it is.

Bad entries (a malformed or symlinked sidecar or index, an unreadable key file or
directory) are skipped and reported (a warning on logger ``group_store`` naming the
key and the file); the sweep carries on. A refusal to delete or write (the file
system refusing a change the sweep decided on) is raised.

What to remove is decided by the pure planner (``group_store._format.sweep_plan``);
this module reads what the planner asks for and carries the plan out. A dry run
reads the same (without locks, so nothing is created) and reports the plan instead.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import NamedTuple

from .._errors import CorruptEntryError, StorageError, UnsafeFileError
from .._format.expiry import parse_index
from .._format.keys import is_hashed_name
from .._format.layout import (
    DOCUMENT_SUFFIX,
    EXPIRY_INDEX,
    KEY_SUFFIX,
    SIDECAR_SUFFIX,
    DirectoryContents,
    classify,
)
from .._format.layout import join as join_directory
from .._format.sweep_plan import DirectoryPlan, SidecarRead, plan_directory, to_read
from ..storage._base import Kind
from .engine import Engine, boundary, report_skipped

_BAD_ENTRY = (CorruptEntryError, StorageError, UnsafeFileError)
_OPERATION = "sweep()"


class SweptEntry(NamedTuple):
    """An expired entry a sweep removed (or, in a dry run, would remove)."""

    directory_keys: tuple[str, ...]
    key: str
    expiry: float


def sweep(engine: Engine, directory: str, directory_keys: tuple[str, ...]) -> int:
    """Delete expired entries and the store's crash leftovers (orphaned or stale
    sidecars, orphaned key files, temporary files) in ``directory`` and below;
    return the number of expired entries removed (``sweep_entries`` names them).

    Raises:
        StorageError: if the file system refuses a removal or the index rewrite.
    """
    return len(sweep_entries(engine, directory, directory_keys, dry_run=False))


def sweep_entries(
    engine: Engine, directory: str, directory_keys: tuple[str, ...], *, dry_run: bool
) -> list[SweptEntry]:
    """The sweep of ``directory`` and below; returns the expired entries it removed, depth
    first and by key within a directory. With ``dry_run`` nothing is changed, no lock is
    taken (so no lock file or directory is created) and the entries that would be removed
    are returned: the same plan, made from a listing that may be overtaken by writers.

    Each directory is swept under its lock, and each entry's expiry is read
    again there, so an entry re-saved with a later expiry is never removed.
    A directory that cannot be listed or locked is reported and skipped (with
    what is below it).

    Raises:
        StorageError: if the file system refuses a removal or the index rewrite.
    """
    storage = engine.storage
    removed: list[SweptEntry] = []
    pending = [(directory, directory_keys)]
    while pending:
        current, keys = pending.pop()
        with ExitStack() as held:
            try:
                with boundary(None, storage, current):
                    if current and storage.kind(*_split(current)) is not Kind.DIRECTORY:
                        continue  # removed meanwhile
                if not dry_run:
                    held.enter_context(engine.lock(current))
                with boundary(None, storage, current):
                    contents = classify(storage.scan(current))
            except (StorageError, UnsafeFileError) as exc:
                report_skipped(_OPERATION, exc)
                continue
            plan = plan_sweep_directory(engine, current, contents)
            if not dry_run:
                _carry_out(engine, current, plan)
            removed.extend(SweptEntry(keys, item.key, item.expiry) for item in plan.expired)
            children = engine.child_directories(current, contents, _OPERATION)
        pending.extend((join_directory(current, name), (*keys, key)) for name, key in reversed(children))
    return removed


def plan_sweep_directory(engine: Engine, directory: str, contents: DirectoryContents) -> DirectoryPlan:
    """Read what the planner needs in ``directory`` (the lock held, unless a dry run) and plan.

    Reads only the sidecars the index says may have expired, plus any it does not list.
    A bad entry (an unreadable sidecar, document or key file) is reported and left alone.
    """
    storage = engine.storage
    index, index_usable = _read_index(engine, directory, contents)
    now = engine.clock()  # one instant per directory: the plan's reads and its verdicts agree
    parsed = parse_index(index or b"")
    wanted = to_read(contents, index, now, parsed=parsed)
    sidecars: dict[str, SidecarRead | None] = {}
    for name in wanted.sidecars:
        names = [name + DOCUMENT_SUFFIX, name + SIDECAR_SUFFIX]
        if is_hashed_name(name):
            names.append(name + KEY_SUFFIX)
        try:
            with boundary(None, storage, directory, name + SIDECAR_SUFFIX):
                found = storage.read_many(directory, names)
        except _BAD_ENTRY as exc:
            report_skipped(_OPERATION, exc)
            sidecars[name] = None
            continue
        sidecars[name] = SidecarRead(found[1], found[0], found[2] if len(found) > 2 else None)
    key_files: dict[str, bytes | None] = {}
    for name in wanted.key_files:
        try:
            with boundary(None, storage, directory, name + KEY_SUFFIX):
                key_files[name] = storage.read(directory, name + KEY_SUFFIX)
        except _BAD_ENTRY as exc:
            report_skipped(_OPERATION, exc)
            key_files[name] = None
    plan = plan_directory(contents, index, index_usable, now, sidecars, key_files, parsed=parsed)
    for name, key in plan.foreign_sidecars:
        foreign = CorruptEntryError(
            "sidecar not written by the store; left as it is",
            key=key,
            path=storage.locator(directory, name + SIDECAR_SUFFIX),
        )
        report_skipped(_OPERATION, foreign)
    return plan


def _carry_out(engine: Engine, directory: str, plan: DirectoryPlan) -> None:
    """Do what ``plan`` says, in its order (the lock held)."""
    storage, durable = engine.storage, engine.durable

    def remove(name: str) -> None:
        with boundary(None, storage, directory, name):
            storage.remove(directory, name, durable=durable)

    for name in plan.temps:
        remove(name)
    for entry in plan.expired:
        # The data goes before its sidecar: a crash between leaves an orphan, never a live copy.
        remove(entry.name + DOCUMENT_SUFFIX)
        remove(entry.name + SIDECAR_SUFFIX)
        if is_hashed_name(entry.name):
            remove(entry.name + KEY_SUFFIX)  # proven: the name decoded through it
    for name in plan.dropped_sidecars:
        remove(name + SIDECAR_SUFFIX)
    for name, compacted in plan.rewritten_sidecars:
        # One atomic replace that keeps the document's own binding: either state reads the same.
        with boundary(None, storage, directory, name + SIDECAR_SUFFIX):
            storage.write(directory, name + SIDECAR_SUFFIX, compacted, durable=durable)
    for name in plan.key_files:
        remove(name + KEY_SUFFIX)
    if plan.index == b"":
        remove(EXPIRY_INDEX)
    elif plan.index is not None:
        with boundary(None, storage, directory, EXPIRY_INDEX):
            storage.write(directory, EXPIRY_INDEX, plan.index, durable=durable)


def _read_index(engine: Engine, directory: str, contents: DirectoryContents) -> tuple[bytes | None, bool]:
    """The index bytes (``None`` if absent) and whether the sweep may replace or remove it.

    A non-regular or unreadable index is reported and left alone; every sidecar is
    then checked, which is what a missing index means anyway.
    """
    try:
        return engine.read_index(directory, contents), True
    except (StorageError, UnsafeFileError) as exc:
        report_skipped(_OPERATION, exc)
        return None, False


def _split(directory: str) -> tuple[str, str]:
    parent, _, name = directory.rpartition("/")
    return parent, name
