"""Upgrading a store in place: names another writer chose, and older formats of our own.

A migration is picked by its ``source`` (``MIGRATIONS``): ``"group-genie"`` renames
what Group Genie wrote; ``"group-store"`` only brings the format marker up to date.
Every migration ends with the format upgrades (``FORMAT_UPGRADES``, one step per
format version, none yet: format 1 is the first), so a later format plugs in as one
function ``upgrade_N(context)`` and ``group-store migrate --from group-store``.

Group Genie (0.0.2 documents ``key.json``, 0.0.4 logs ``key.jsonl``; directories from
``narrow()``) named each segment ``re.sub(r"[^\\w\\-]", "_", key)``. That keeps
letters of any case and script, digits, ``_`` and ``-`` verbatim, so a genie name is
taken as the key itself (``C01ABCDEF`` is the key ``"C01ABCDEF"``; ``_alice_matrix_org``
stays ``"_alice_matrix_org"``: the ``@`` and ``:`` it replaced are lost for good) and
renamed to group_store's encoding of that key. Names already in group_store's
encoding are left alone: genie names never contain ``~`` and plain names
(``[a-z0-9_-]``) are the same in both, so the two sets of names never overlap.

Guarantees: each rename is one atomic ``rename(2)`` under the directory's lock,
after a check that the target is absent, so nothing is overwritten (a collision is
refused and reported; the rest goes on). A crash leaves every name old or new; a
rerun finishes the job; a second run changes nothing. After the renames the store is
formatted (``format_store``: Group Genie's ``json.dump`` layout becomes canonical,
values kept exactly; a value JSON cannot hold exactly, such as ``NaN``, is reported and
left as it is). Not guaranteed: renames are not fsynced (a rerun after a power loss
finishes the job), and another process must not write the store meanwhile (Group
Genie takes no locks).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .._api.composition import resolve
from .._api.view import View
from .._engine.engine import Engine, boundary, check_format_marker
from .._errors import GroupStoreError, InvalidArgumentError, StorageError
from .._format.keys import encode_segment, is_hashed_name
from .._format.layout import (
    DIRECTORY_KEY_FILE,
    DOCUMENT_SUFFIX,
    FORMAT_MARKER,
    FORMAT_VERSION,
    KEY_SUFFIX,
    LOG_SUFFIX,
    encode_format_marker,
    join,
)
from ..storage._base import Kind
from ._verify import format_store

if TYPE_CHECKING:
    import os

# What genie's sanitizer leaves: word characters of any script and "-" (never "." or "~").
_GENIE_NAME = re.compile(r"[\w\-]+")
_DATA_SUFFIXES = (DOCUMENT_SUFFIX, LOG_SUFFIX)


@dataclass(frozen=True)
class Rename:
    """One name to rename: ``source`` to ``target`` (full paths), a ``"file"`` or ``"directory"``."""

    source: Path
    target: Path
    kind: str


@dataclass(frozen=True)
class MigrationReport:
    """What ``migrate_store`` did (or, with ``dry_run``, would do).

    Attributes:
        source: The migration run (``"group-genie"``, ``"group-store"``).
        dry_run: Whether nothing was changed.
        renamed: Renames done (with ``dry_run``: to do), parents before children.
        collisions: Renames refused because the target exists (nothing was overwritten).
        rewritten: Files rewritten canonically (with ``dry_run``: ``None``, not known
            before the renames).
        both: Data files that are both a document and a log after the renames
            (``load()`` reads the document; see ``verify``).
        errors: Entries left as they were because they could not be read or rewritten
            exactly (each message names the file).
        format: The store's format version afterwards (with ``dry_run``: as found, or
            ``None`` for an unmarked store).
    """

    source: str
    dry_run: bool
    renamed: tuple[Rename, ...] = ()
    collisions: tuple[Rename, ...] = ()
    rewritten: int | None = None
    both: tuple[Path, ...] = ()
    errors: tuple[str, ...] = ()
    format: int | None = None

    @property
    def ok(self) -> bool:
        """True if nothing was refused or left unreadable."""
        return not self.collisions and not self.errors


@dataclass
class MigrationContext:
    """What a migration step works on and records into."""

    engine: Engine
    dry_run: bool
    root: str = ""
    renamed: list[Rename] = field(default_factory=list)
    collisions: list[Rename] = field(default_factory=list)
    both: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def error(self, error: GroupStoreError) -> None:
        self.errors.append(str(error))


Migration = Callable[[MigrationContext], None]


def genie_target(name: str) -> str | None:
    """group_store's name for a file or directory name Group Genie wrote, or ``None``
    if ``name`` is not one to rename (already in group_store's encoding, or not genie's).

    ``name`` is a directory name or a file stem without its suffix.
    """
    if not _GENIE_NAME.fullmatch(name):
        return None
    target = encode_segment(name)
    return None if target == name else target


def _split_data_name(name: str) -> tuple[str, str] | None:
    for suffix in _DATA_SUFFIXES:
        stem = name[: -len(suffix)]
        if name.endswith(suffix) and stem and "." not in stem:
            return stem, suffix
    return None


def _from_group_genie(context: MigrationContext) -> None:
    """Rename every file and directory name Group Genie wrote, top down (parents first)."""
    pending = [context.root]
    while pending:
        directory = pending.pop()
        try:
            children = _genie_directory(context, directory)
        except GroupStoreError as exc:
            context.error(exc)
            continue
        pending.extend(reversed(children))


def _genie_directory(context: MigrationContext, directory: str) -> list[str]:
    """Rename the genie names in one directory (its lock held unless a dry run); return
    the sub-directories to visit, by their names after this step."""
    engine, storage = context.engine, context.engine.storage
    with boundary(None, storage, directory):
        if context.dry_run:
            return _genie_renames(context, directory)
        with engine.lock(directory):
            return _genie_renames(context, directory)


def _genie_renames(context: MigrationContext, directory: str) -> list[str]:
    storage = context.engine.storage
    listing = storage.scan(directory)
    children: list[str] = []
    stems: dict[str, set[str]] = {}
    for name, kind in sorted(listing):
        if kind is Kind.DIRECTORY:
            target = genie_target(name)
            if target is None:
                # Only the store's own sub-stores: a foreign directory is never entered (nor locked).
                if context.engine.decode_name(join(directory, name), name, DIRECTORY_KEY_FILE) is not None:
                    children.append(name)
                continue
            done = _rename(context, directory, name, name, target, "directory")
            children.append(target if done and not context.dry_run else name)
        elif kind is Kind.FILE and (split := _split_data_name(name)) is not None:
            stem, suffix = split
            target = genie_target(stem)
            final = stem
            if target is not None and _rename(context, directory, name, stem, target + suffix, "file"):
                final = target
            stems.setdefault(final, set()).add(suffix)
    context.both.extend(
        _local(storage.local_path(directory, stem + DOCUMENT_SUFFIX))
        for stem, found in sorted(stems.items())
        if len(found) == 2
    )
    return [join(directory, child) for child in children]


def _rename(context: MigrationContext, directory: str, name: str, key: str, target: str, kind: str) -> bool:
    """Rename ``name`` (holding ``key``) to ``target`` in ``directory`` unless ``target``
    exists; ``True`` if it was renamed (in a dry run: if it would be).

    A hashed target gets its key file first (beside the file, or inside the directory,
    which the rename carries along): a crash in between leaves a key file that a rerun
    rewrites identically, never a name that does not decode.
    """
    storage = context.engine.storage
    rename = Rename(_local(storage.local_path(directory, name)), _local(storage.local_path(directory, target)), kind)
    if storage.kind(directory, target) is not None:
        context.collisions.append(rename)
        return False
    context.renamed.append(rename)
    if context.dry_run:
        return True
    target_stem = target if kind == "directory" else target.partition(".")[0]
    if is_hashed_name(target_stem):
        home, key_file = (
            (join(directory, name), DIRECTORY_KEY_FILE)
            if kind == "directory"
            else (directory, target_stem + KEY_SUFFIX)
        )
        _write_key_file(context.engine, home, key_file, key.encode("utf-8"))
    # Checked above under the directory's lock, which every group_store writer takes:
    # rename(2) would silently replace a file (or an empty directory) at the target.
    # Path.rename, not a Storage operation: renaming is local-only, as this migration is.
    rename.source.rename(rename.target)
    return True


def _local(path: Path | None) -> Path:
    # migrate_store refuses a store without local files before anything is renamed.
    assert path is not None
    return path


def _write_key_file(engine: Engine, directory: str, name: str, key: bytes) -> None:
    if engine.storage.read(directory, name) != key:
        engine.storage.write(directory, name, key, durable=engine.durable)


def _from_group_store(context: MigrationContext) -> None:
    """Nothing to rename: a store group_store wrote only needs its format upgrades."""


MIGRATIONS: dict[str, Migration] = {"group-genie": _from_group_genie, "group-store": _from_group_store}
"""Every ``source`` ``migrate_store`` accepts."""


def migration_sources() -> tuple[str, ...]:
    """The ``source`` names ``migrate_store`` accepts, sorted (what ``group-store migrate --from`` offers)."""
    return tuple(sorted(MIGRATIONS))


FORMAT_UPGRADES: dict[int, Migration] = {}
"""``{N: step}``: the step that upgrades a store of format ``N`` to ``N + 1`` in place."""


def _upgrade_format(context: MigrationContext) -> int | None:
    """Run the upgrades from the store's format to ``FORMAT_VERSION``; mark it (not in a dry run).

    An unmarked store is of format 1 (every store before the marker existed was).

    Raises:
        FormatVersionError: if the store is in a newer format than this library knows.
    """
    storage = context.engine.storage
    with boundary(None, storage, "", FORMAT_MARKER):
        found = check_format_marker(storage.read("", FORMAT_MARKER), storage.locator("", FORMAT_MARKER))
    version = found or 1
    while version < FORMAT_VERSION:
        FORMAT_UPGRADES[version](context)
        version += 1
        if not context.dry_run:
            with boundary(None, storage, "", FORMAT_MARKER):
                storage.write("", FORMAT_MARKER, encode_format_marker(version), durable=context.engine.durable)
    if context.dry_run:
        return found
    if found is None:
        with boundary(None, storage, "", FORMAT_MARKER):
            storage.write("", FORMAT_MARKER, encode_format_marker(version), durable=context.engine.durable)
    return version


def migrate_store(
    store_or_path: View | str | os.PathLike[str], *, source: str = "group-genie", dry_run: bool = False
) -> MigrationReport:
    """Upgrade the store at ``store_or_path`` (a path, or a ``Store``/view: its subtree) in
    place: rename what ``source`` wrote into group_store's names, format it, and mark it
    with the current format version. Local stores only: renaming old names is a
    file-system operation no other backend offers.

    See the module docstring for what is renamed and the guarantees. With ``dry_run``
    nothing is changed (no lock files, no marker) and the report lists what would be.
    Run it while nothing else writes the store; a DataStore should be flushed first.

    Raises:
        InvalidArgumentError: for an unknown ``source``, or a store that keeps no local
            files (nothing is changed).
        FormatVersionError: if the store is marked with a newer format (nothing is changed).
        StorageError, UnsafeFileError: if the root is not a directory or cannot be read; a directory or entry
            that cannot be read is reported in ``errors`` and the rest goes on.
    """
    migration = MIGRATIONS.get(source)
    if migration is None:
        known = ", ".join(sorted(MIGRATIONS))
        raise InvalidArgumentError(f"unknown migration source {source!r} (known: {known})")
    engine, directory, _ = resolve(store_or_path)
    root = engine.storage.local_path(directory)
    if root is None:
        detail = "migrate_store renames files in place: it needs a local store"
        raise InvalidArgumentError(f"{detail}, not {engine.storage.locator(directory)!r}")
    if not root.is_dir():
        raise StorageError("no store here (not a directory)", path=root, errno=errno.ENOENT)
    context = MigrationContext(engine, dry_run, directory)
    # The format is checked before anything is renamed: a newer store is refused untouched.
    with boundary(None, engine.storage, "", FORMAT_MARKER):
        check_format_marker(engine.storage.read("", FORMAT_MARKER), engine.storage.locator("", FORMAT_MARKER))
    migration(context)
    version = _upgrade_format(context)
    rewritten = None if dry_run else format_store(store_or_path, on_error=context.error)
    return MigrationReport(
        source,
        dry_run,
        tuple(context.renamed),
        tuple(context.collisions),
        rewritten,
        tuple(context.both),
        tuple(context.errors),
        version,
    )
