"""Reading a store entry by entry (``walk``), and its sweep as a library call (``sweep``).

Both take a store (a ``Store``, ``DataStore`` or a view of one: its own subtree, read
through its backend) or a path (a local store opened there), as every tool does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

from .._api.composition import resolve
from .._api.view import View
from .._engine.inventory import Entry, ErrorHandler, scan_directory, walk_entries
from .._engine.inventory import ignore as _ignore
from .._engine.inventory import undecodable_names as _undecodable
from .._engine.sweep import sweep_entries
from .._format.expiry import Clock, to_datetime

if TYPE_CHECKING:
    import os

# A string: os is imported for type checking only (the layering rule keeps os in the local backend).
StoreOrPath: TypeAlias = "View | str | os.PathLike[str]"


def walk(
    store: StoreOrPath,
    *,
    include_expired: bool = False,
    clock: Clock | None = None,
    on_error: ErrorHandler | None = None,
) -> Iterator[Entry]:
    """Every entry under ``store`` (a store or view: its subtree; a path: the local store
    root or any directory in one), sorted by key within each directory, directories depth
    first. ``Entry.segments`` are relative to where the walk starts.

    Expired entries are left out unless ``include_expired`` (expired by ``clock``: by
    default the store's clock, or the wall clock for a path). Files that are not entries
    (foreign names, temporary files, symlinks) are skipped. An entry or a directory that
    cannot be read (a malformed sidecar, a symlinked or unreadable file, a directory that
    cannot be listed) is passed to ``on_error`` with its typed error (``CorruptEntryError``,
    ``UnsafeFileError``, ``StorageError``, each naming key and file) and skipped; the
    default logs a warning on logger ``group_store``. Pass a callback that raises to stop
    at the first one. A value is parsed only by ``Entry.value()``, which raises for invalid
    JSON. A DataStore's queued writes are not waited for (flush it first).

    Raises:
        InvalidArgumentError: for something that is neither a store nor a path.
    """
    engine, directory, segments = resolve(store, clock)
    return walk_entries(engine, directory, segments, include_expired=include_expired, on_error=on_error)


def undecodable_names(store: StoreOrPath) -> tuple[str, ...]:
    """The names at this level of ``store`` (files with a store suffix, directories) that do
    not decode as keys, so ``keys()`` and ``children()`` leave them out: another writer's
    (Group Genie's, say; ``migrate_store`` renames them). Nothing is created.

    Raises:
        StorageError, UnsafeFileError: if the directory cannot be listed.
    """
    from .._engine.engine import boundary

    engine, directory, segments = resolve(store)
    with boundary(None, engine.storage, directory):
        listing = engine.storage.scan(directory)
    return tuple(_undecodable(scan_directory(engine, directory, segments, listing, _ignore)))


@dataclass(frozen=True)
class SweepReport:
    """What ``sweep`` removed (or, with ``dry_run``, would remove).

    Attributes:
        dry_run: Whether nothing was changed.
        expired: The addresses (``narrow()`` keys relative to the swept store, then the
            key) of the expired entries, depth first and by key within a directory.
        expiries: Their expiries (aware UTC), in the same order.
    """

    dry_run: bool
    expired: tuple[tuple[str, ...], ...]
    expiries: tuple[datetime, ...]

    @property
    def count(self) -> int:
        """How many expired entries were (or would be) removed."""
        return len(self.expired)


def sweep(store: StoreOrPath, *, dry_run: bool = True, clock: Clock | None = None) -> SweepReport:
    """Delete the expired entries (and crash leftovers) of ``store``'s subtree, or with
    ``dry_run`` (the default) only say which entries would go.

    The dry run and the sweep make the same plan (``group_store._format.sweep_plan``);
    the dry run takes no lock and changes nothing (no lock file is created), so a writer
    may overtake it. The sweep is ``Store.sweep()``: each directory under its lock, each
    expiry read again there. ``clock`` defaults to the store's (the wall clock for a path).

    Raises:
        StorageError: if the file system refuses a removal the sweep decided on.
    """
    engine, directory, base = resolve(store, clock)
    swept = sweep_entries(engine, directory, base, dry_run=dry_run)
    return SweepReport(
        dry_run,
        tuple((*entry.directory_keys[len(base) :], entry.key) for entry in swept),
        tuple(to_datetime(entry.expiry) for entry in swept),
    )
