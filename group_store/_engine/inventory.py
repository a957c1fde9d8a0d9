"""Walking a store: every entry of a subtree with its kind, bytes and expiry, and which files are the store's.

The tools (verify, fmt, diff, export, import, snapshots, the CLI) read stores
through this, never through file names, so they all agree on what an entry is and
on what is foreign. A file is the store's only if the store provably wrote it: a
document or log whose name decodes to a key, its key file (a hashed name whose
text matches the hash), its sidecar, the exact temporary-name pattern, the lock and
the expiry index, all in a directory whose own name decodes. Everything else is
foreign: listed by ``verify``, skipped by import, never changed.

Operations over many entries never stop at one bad entry: each error is passed to
an ``on_error`` callback (by default a warning on the ``group_store`` logger) and
the walk carries on. A callback that raises turns the walk strict again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from .._errors import GroupStoreError
from .._format.codec import decode_document, decode_log
from .._format.expiry import is_expired, is_own_sidecar, to_datetime
from .._format.keys import decode_segment, is_hashed_name
from .._format.layout import (
    DIRECTORY_KEY_FILE,
    DOCUMENT_SUFFIX,
    EXPIRY_INDEX,
    FORMAT_MARKER,
    KEY_SUFFIX,
    LOCK_NAME,
    LOG_SUFFIX,
    SIDECAR_SUFFIX,
    Location,
    classify,
    decode_format_marker,
    is_temp_name,
    join,
)
from ..storage._base import Kind, Listing
from .engine import Engine, boundary, check_format_marker

EntryKind = Literal["document", "log"]
ErrorHandler = Callable[[GroupStoreError], None]

logger = logging.getLogger("group_store")
_STORE_SUFFIXES = frozenset(suffix[1:] for suffix in (DOCUMENT_SUFFIX, LOG_SUFFIX, SIDECAR_SUFFIX, KEY_SUFFIX))


def warn(error: GroupStoreError) -> None:
    """The default ``on_error``: a warning on logger ``group_store`` naming the key and file."""
    logger.warning("skipped: %s", error)


def ignore(error: GroupStoreError) -> None:
    """An ``on_error`` that drops the error (the caller reports it elsewhere)."""


@dataclass(frozen=True)
class Entry:
    """One entry of a store as it is on disk.

    Attributes:
        segments: The ``narrow()`` keys of its directory, relative to the walked root.
        key: Its key.
        kind: ``"document"`` (a ``.json`` file) or ``"log"`` (a ``.jsonl`` file).
        path: Its data file.
        raw: The data file's bytes.
        expires_at: Its expiry (aware UTC), or ``None``.
    """

    segments: tuple[str, ...]
    key: str
    kind: EntryKind
    path: str
    raw: bytes
    expires_at: datetime | None

    @property
    def address(self) -> tuple[str, ...]:
        """``segments`` followed by ``key``: the words a command line names it with."""
        return (*self.segments, self.key)

    def value(self) -> Any:
        """The parsed value: a document's JSON, or a log's items as a list.

        Raises:
            CorruptEntryError: if the bytes are not valid JSON or cannot be loaded exactly.
        """
        if self.kind == "document":
            return decode_document(self.key, self.path, self.raw)
        return decode_log(self.key, self.path, self.raw)


@dataclass(frozen=True)
class Foreign:
    """A name in a store directory that the store did not write (never changed by any tool).

    ``undecodable`` marks a data file or directory whose name has a store suffix (or
    none, for a directory) but does not decode as a key: what another writer (Group
    Genie) names its entries, and what ``group-store migrate`` renames.
    """

    name: str
    reason: str
    undecodable: bool = False


@dataclass
class DirectoryScan:
    """One store directory's names, sorted by who owns them.

    Attributes:
        directory: The encoded directory path (``""`` is the walked root).
        segments: Its decoded ``narrow()`` keys.
        entries: Encoded name -> key, for documents and logs whose names decode.
        documents, logs, sidecars: Encoded names (without suffix) present as such.
        children: Sub-directories whose names decode: (encoded path, segments).
        foreign: Names the store did not write.
        unsafe: Symlinks, FIFOs, sockets and devices (never opened).
        temps: Leftover temporary files in the store's exact pattern.
        orphan_sidecars: Names whose sidecar is exactly what the store writes but has no document.
        orphan_key_files: Hashed names whose key file matches but has no entry.
        both: Names that are both a document and a log (``load()`` reads the document).
    """

    directory: str
    segments: tuple[str, ...]
    entries: dict[str, str] = field(default_factory=dict)
    documents: set[str] = field(default_factory=set)
    logs: set[str] = field(default_factory=set)
    sidecars: set[str] = field(default_factory=set)
    children: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    foreign: list[Foreign] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)
    orphan_sidecars: list[str] = field(default_factory=list)
    orphan_key_files: list[str] = field(default_factory=list)
    both: list[str] = field(default_factory=list)


def _decoder(engine: Engine, directory: str, on_error: ErrorHandler, failed: set[str]) -> Callable[[str], str | None]:
    """``Engine.decode_name`` for the files of ``directory``, each name read at most once.
    A key file that cannot be read is reported and its name added to ``failed``: it is
    neither an entry nor foreign (nobody knows which)."""
    cache: dict[str, str | None] = {}

    def decode(name: str) -> str | None:
        if not is_hashed_name(name):
            return decode_segment(name)  # reads nothing: the fast path of every listing
        if name not in cache:
            try:
                with boundary(None, engine.storage, directory, name + KEY_SUFFIX):
                    cache[name] = engine.decode_name(directory, name, name + KEY_SUFFIX)
            except GroupStoreError as exc:
                on_error(exc)
                failed.add(name)
                cache[name] = None
        return cache[name]

    return decode


def scan_directory(
    engine: Engine, directory: str, segments: tuple[str, ...], listing: list[Listing], on_error: ErrorHandler
) -> DirectoryScan:
    """Sort ``listing`` (of ``directory``) by ownership; reads key files and orphan sidecars only."""
    scan = DirectoryScan(directory, segments)
    contents = classify(listing)
    failed: set[str] = set()
    decode = _decoder(engine, directory, on_error, failed)
    own_hidden = {LOCK_NAME, EXPIRY_INDEX}
    if directory and is_hashed_name(directory.rpartition("/")[2]):
        own_hidden.add(DIRECTORY_KEY_FILE)  # this directory was entered because its key file matched
    for name, kind in listing:
        if kind is Kind.OTHER:
            scan.unsafe.append(name)
        elif kind is Kind.DIRECTORY:
            if name in contents.directories:
                _scan_child(engine, scan, name, on_error)
            else:
                scan.foreign.append(Foreign(name, "a directory whose name is not an encoded key"))
        elif name.startswith("."):
            if is_temp_name(name):
                scan.temps.append(name)
            elif name == FORMAT_MARKER:
                _scan_format_marker(engine, scan, on_error)
            elif name not in own_hidden:
                scan.foreign.append(Foreign(name, "a hidden file the store does not write"))
        elif name.partition(".")[2] not in _STORE_SUFFIXES:
            scan.foreign.append(Foreign(name, "not a store file (unknown suffix)"))
    for name in sorted(contents.documents | contents.logs):
        key = decode(name)
        if key is None and name not in failed:
            for suffix, present in ((DOCUMENT_SUFFIX, contents.documents), (LOG_SUFFIX, contents.logs)):
                if name in present:
                    scan.foreign.append(Foreign(name + suffix, _undecodable(name), undecodable=True))
            continue
        if key is not None:
            scan.entries[name] = key
    scan.documents = {name for name in contents.documents if name in scan.entries}
    scan.logs = {name for name in contents.logs if name in scan.entries}
    scan.both = sorted(scan.documents & scan.logs)
    scan.sidecars = {name for name in contents.sidecars if name in scan.documents}
    for name in sorted(contents.sidecars - scan.documents):
        _scan_orphan_sidecar(engine, scan, name, decode, failed, on_error)
    for name in sorted(contents.key_files - scan.entries.keys()):
        if is_hashed_name(name) and decode(name) is not None:
            scan.orphan_key_files.append(name)
        elif name not in failed:
            scan.foreign.append(Foreign(name + KEY_SUFFIX, "a key file the store did not write"))
    scan.children.sort()
    return scan


def _undecodable(name: str) -> str:
    if is_hashed_name(name):
        return "a hashed name without its matching key file"
    return "a name that is not an encoded key (another tool's? see group-store migrate)"


def _scan_child(engine: Engine, scan: DirectoryScan, name: str, on_error: ErrorHandler) -> None:
    child = join(scan.directory, name)
    try:
        with boundary(None, engine.storage, child, DIRECTORY_KEY_FILE):
            key = engine.decode_name(child, name, DIRECTORY_KEY_FILE)
    except GroupStoreError as exc:
        on_error(exc)
        return
    if key is None:
        scan.foreign.append(Foreign(name, "a directory " + _undecodable(name), undecodable=True))
    else:
        scan.children.append((child, (*scan.segments, key)))


def _scan_format_marker(engine: Engine, scan: DirectoryScan, on_error: ErrorHandler) -> None:
    """The format marker is the store's in any directory (a sub-store may have been opened
    as a store of its own) when it is one in the store's form; a newer one stops the walk.

    Raises:
        FormatVersionError: for a marker newer than this library knows (not passed to
            ``on_error``: nothing under it can be read safely).
    """
    try:
        with boundary(None, engine.storage, scan.directory, FORMAT_MARKER):
            raw = engine.storage.read(scan.directory, FORMAT_MARKER)
    except GroupStoreError as exc:
        on_error(exc)
        return
    if raw is None or decode_format_marker(raw) is None:
        if raw is not None:
            scan.foreign.append(Foreign(FORMAT_MARKER, "a hidden file the store does not write"))
        return
    check_format_marker(raw, engine.storage.locator(scan.directory, FORMAT_MARKER))


def _scan_orphan_sidecar(
    engine: Engine,
    scan: DirectoryScan,
    name: str,
    decode: Callable[[str], str | None],
    failed: set[str],
    on_error: ErrorHandler,
) -> None:
    """A sidecar without a document is the store's (a crash between a delete's two
    removals) only under a name that decodes and in exactly the form it writes."""
    sidecar = name + SIDECAR_SUFFIX
    if decode(name) is None:
        if name not in failed:
            scan.foreign.append(Foreign(sidecar, _undecodable(name)))
        return
    try:
        with boundary(None, engine.storage, scan.directory, sidecar):
            raw = engine.storage.read(scan.directory, sidecar)
    except GroupStoreError as exc:
        on_error(exc)
        return
    if raw is not None and is_own_sidecar(raw):
        scan.orphan_sidecars.append(name)
    elif raw is not None:
        scan.foreign.append(Foreign(sidecar, "a .meta.json without a document, not in the store's sidecar form"))


def scan_tree(
    engine: Engine, directory: str = "", on_error: ErrorHandler | None = None, segments: tuple[str, ...] = ()
) -> Iterator[DirectoryScan]:
    """Every store directory below ``directory`` (included; its ``narrow()`` keys from the
    store root are ``segments``), depth first, sorted by encoded name, with its names
    sorted by ownership.

    Directories whose names do not decode are not entered. A directory that cannot
    be listed is passed to ``on_error`` (default: a warning) and skipped with its subtree.
    """
    report = warn if on_error is None else on_error
    pending: list[tuple[str, tuple[str, ...]]] = [(directory, segments)]
    while pending:
        current, keys = pending.pop()
        try:
            with boundary(None, engine.storage, current):
                listing = engine.storage.scan(current)
        except GroupStoreError as exc:
            report(exc)
            continue
        scan = scan_directory(engine, current, keys, listing, report)
        yield scan
        pending.extend(reversed(scan.children))


def walk_directories(
    engine: Engine, directory: str = "", on_error: ErrorHandler | None = None
) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every store directory below ``directory`` (included), depth first, sorted by name,
    with its decoded ``narrow()`` keys. Directories whose names do not decode are skipped;
    one that cannot be listed is passed to ``on_error`` (default: a warning) and skipped."""
    for scan in scan_tree(engine, directory, on_error):
        yield scan.directory, scan.segments


def read_entry(engine: Engine, scan: DirectoryScan, name: str, include_expired: bool, now: float) -> Entry | None:
    """The entry ``name`` of a scanned directory as ``load()`` sees it (a live document
    first, else a log), or ``None`` if it is gone or (unless ``include_expired``) expired.

    Raises:
        CorruptEntryError: for a malformed sidecar.
        UnsafeFileError, StorageError: if the file cannot be read safely.
    """
    storage, directory, key = engine.storage, scan.directory, scan.entries[name]
    loc = Location(directory, name, key, scan.segments)
    if name in scan.documents:
        with boundary(key, storage, directory, loc.document):
            document = engine.read_document(loc)
        if document is not None and (include_expired or not is_expired(document[1], now)):
            raw, expiry = document
            expires = None if expiry is None else to_datetime(expiry)
            return Entry(scan.segments, key, "document", storage.locator(directory, loc.document), raw, expires)
    if name in scan.logs:
        with boundary(key, storage, directory, loc.log):
            raw_log = storage.read(directory, loc.log)
        if raw_log is not None:
            return Entry(scan.segments, key, "log", storage.locator(directory, loc.log), raw_log, None)
    return None


def read_entries(
    engine: Engine, scan: DirectoryScan, include_expired: bool, now: float, on_error: ErrorHandler
) -> list[Entry]:
    """The entries of a scanned directory, sorted by key; one that cannot be read is passed to ``on_error``."""
    found: list[Entry] = []
    for name in scan.entries:
        try:
            entry = read_entry(engine, scan, name, include_expired, now)
        except GroupStoreError as exc:
            on_error(exc)
            continue
        if entry is not None:
            found.append(entry)
    return sorted(found, key=lambda entry: entry.key)


def walk_entries(
    engine: Engine,
    directory: str,
    segments: tuple[str, ...],
    *,
    include_expired: bool,
    on_error: ErrorHandler | None = None,
) -> Iterator[Entry]:
    """Every entry in ``directory`` (whose ``narrow()`` keys are ``segments``) and below,
    with ``Entry.segments`` relative to it, sorted by key within each directory,
    directories depth first; see ``group_store.walk``."""
    report = warn if on_error is None else on_error
    now = engine.clock()
    base = len(segments)
    for scan in scan_tree(engine, directory, report, segments):
        for entry in read_entries(engine, scan, include_expired, now, report):
            yield replace(entry, segments=entry.segments[base:]) if base else entry


def undecodable_names(scan: DirectoryScan) -> list[str]:
    """The data files and directories of a scanned directory whose names do not decode as
    keys: entries ``keys()`` and ``children()`` cannot list (another writer's, such as Group
    Genie's, until ``migrate_store`` renames them)."""
    return [foreign.name for foreign in scan.foreign if foreign.undecodable]
