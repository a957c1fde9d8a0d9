"""Import of an archive into a store, entry by entry through the store.

Every entry is written under its directory's lock, by atomic replace, with exactly
the archived expiry, so at every moment each key holds its old or its new value.
The import as a whole is not atomic.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .._api.composition import resolve
from .._api.view import View
from .._engine.engine import Engine, boundary
from .._engine.inventory import EntryKind, ErrorHandler, read_entry, scan_tree, warn
from .._errors import CorruptEntryError, GroupStoreError
from .._format.codec import encode_document, encode_lines, split_log
from .._format.expiry import Clock, digest, encode_sidecar, index_line
from .._format.keys import encode_segment, is_hashed_name
from .._format.layout import DIRECTORY_KEY_FILE, EXPIRY_INDEX, Location, encode_directory, join
from ._archive import archive_kind, extract_tar, jsonl_records

Progress = Callable[[int], None]
_LOCK_BATCH = 256  # entries written per hold of a directory's lock, so other writers get their turn


@dataclass(frozen=True)
class _Incoming:
    """One entry to import: its bytes as the store writes them and its exact expiry."""

    segments: tuple[str, ...]
    key: str
    kind: EntryKind
    payload: bytes
    expiry: float | None


def _tar_entries(archive: Path, extracted: Path, report: ErrorHandler) -> Iterator[_Incoming]:
    engine, _, _ = resolve(extracted)
    for scan in scan_tree(engine, "", report):
        for name in [*scan.unsafe, *(foreign.name for foreign in scan.foreign), *scan.temps]:
            member = join(scan.directory, name)
            report(CorruptEntryError(f"archive member {member!r} is not a store file; skipped", path=archive))
        for name in sorted(scan.entries):
            try:
                entry = read_entry(engine, scan, name, True, 0.0)
                if entry is None:
                    continue
                entry.value()  # only what loads exactly is imported
            except GroupStoreError as exc:
                report(exc)
                continue
            payload = entry.raw if entry.kind == "document" else entry.raw[: split_log(entry.raw)[1]]
            expiry = None if entry.expires_at is None else entry.expires_at.timestamp()
            yield _Incoming(entry.segments, entry.key, entry.kind, payload, expiry)


def _jsonl_entries(archive: Path, report: ErrorHandler) -> Iterator[_Incoming]:
    for record in jsonl_records(archive, report):
        *segments, key = record.address
        expiry = None if record.expires_at is None else record.expires_at.timestamp()
        try:
            if record.kind == "document":
                payload = encode_document(key, record.value)
            else:
                payload = encode_lines(key, record.value)
        except GroupStoreError as exc:
            report(exc)
            continue
        yield _Incoming(tuple(segments), key, record.kind, payload, expiry)


def import_store(
    archive: str | os.PathLike[str],
    destination: View | str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    clock: Clock | None = None,
    durable: bool | None = None,
    on_error: ErrorHandler | None = None,
) -> int:
    """Load ``archive`` (a local file) into ``destination``: a store or view (written
    through its backend, below its directory) or a path (the local store there, created
    if missing); return the number of entries written.

    Every entry is written through the store, under its directory's lock and by
    atomic replace: a document with exactly its archived expiry (an entry archived
    without one has none afterwards, whatever the destination held), a log replaced
    whole. A document replacing a log, or a log replacing a document, is written
    before the old one is removed, so a reader sees the old or the new entry and a
    key present before and after is never missing. Entries of the destination that
    the archive does not hold are kept. With ``durable``, each write is fsynced
    (default: as the store given is; not for a path).

    Not atomic as a whole: a crash or an error midway leaves some entries imported
    and the others as they were (importing again completes it).

    A ``.tar.gz`` is extracted into a private temporary directory, never into
    ``destination``, and its entries are written from there. Members that are not
    store files, entries whose JSON is invalid or cannot be loaded exactly, bad
    ``.jsonl`` records, and entries the destination refuses (a symlink in the way,
    a document where the store keeps a log...) are passed to ``on_error`` (default: a
    warning on logger ``group_store``) and skipped; the rest is imported.

    Raises:
        CorruptEntryError: for an archive that is damaged or not ours, or a ``.tar.gz``
            holding an absolute path, ``..``, a link or a device (nothing is written then).
        InvalidArgumentError: for an archive name that is neither ``.tar.gz`` nor ``.jsonl``.
        StorageError: if the archive cannot be read.
    """
    report = warn if on_error is None else on_error
    source = Path(archive)
    kind = archive_kind(source)
    engine, base, base_keys = resolve(destination, clock)
    if durable is not None and durable != engine.durable:
        engine = Engine(engine.storage, engine.clock, durable=durable)
    target = _Target(engine, base, base_keys)
    if kind == "jsonl":
        return _write_all(target, _jsonl_entries(source, report), progress, report)
    with tempfile.TemporaryDirectory(prefix="group-store-import-") as private:
        extract_tar(source, Path(private))
        return _write_all(target, _tar_entries(source, Path(private), report), progress, report)


@dataclass(frozen=True)
class _Target:
    """Where an import writes: an engine, and the directory and keys entries go below."""

    engine: Engine
    directory: str
    keys: tuple[str, ...]


def _write_all(target: _Target, incoming: Iterator[_Incoming], progress: Progress | None, report: ErrorHandler) -> int:
    engine = target.engine
    count = 0
    by_directory = itertools.groupby(incoming, key=lambda item: item.segments)
    for relative, group in by_directory:
        segments = (*target.keys, *relative)
        try:
            directory = join(target.directory, encode_directory(relative)) if relative else target.directory
        except GroupStoreError as exc:
            report(exc)
            continue
        while batch := list(itertools.islice(group, _LOCK_BATCH)):
            try:
                lock = engine.lock(directory)
                lock.__enter__()
            except GroupStoreError as exc:
                report(exc)
                continue
            try:
                for item in batch:
                    count += _write_one(engine, directory, segments, item, report)
                    if progress:
                        progress(1)
            finally:
                lock.__exit__(None, None, None)
    return count


def _write_one(engine: Engine, directory: str, segments: tuple[str, ...], item: _Incoming, report: ErrorHandler) -> int:
    try:
        loc = engine.location(directory, segments, item.key)
        with boundary(item.key, engine.storage, directory, loc.document):
            if item.kind == "document":
                import_document(engine, loc, item.payload, item.expiry)
            else:
                import_log(engine, loc, item.payload)
    except GroupStoreError as exc:
        report(exc)
        return 0
    return 1


def import_document(engine: Engine, loc: Location, payload: bytes, expiry: float | None) -> None:
    """Make ``loc`` the document ``payload`` with exactly ``expiry``, whatever it held.

    The caller holds the directory lock. Over a document this is ``Engine.save``.
    Over a log, the sidecar (if any) is written first, then the document, and the
    log is removed last: readers prefer a document, so they see the old log until
    the new document is in place, and then the new document.
    """
    storage, durable = engine.storage, engine.durable
    document_kind, log_kind = storage.kinds(loc.directory, (loc.document, loc.log))
    if log_kind is not None and document_kind is not None:
        # A crash left both; readers see the document, so the log is already shadowed.
        storage.remove(loc.directory, loc.log, durable=durable)
    elif log_kind is not None:
        _write_key_files(engine, loc)
        if expiry is None:
            storage.remove(loc.directory, loc.sidecar, durable=durable)  # inert while no document exists
        else:
            # As Engine.save orders it: the index record first (early, never late), then the sidecar.
            engine.append_lines(loc.directory, EXPIRY_INDEX, index_line(loc.name, expiry))
            storage.write(loc.directory, loc.sidecar, encode_sidecar({digest(payload): expiry}), durable=durable)
        storage.write(loc.directory, loc.document, payload, durable=durable)
        storage.remove(loc.directory, loc.log, durable=durable)
        return
    engine.save(loc, payload, expiry)


def import_log(engine: Engine, loc: Location, payload: bytes) -> None:
    """Make ``loc`` the log ``payload`` (complete lines), whatever it held.

    The caller holds the directory lock. The log is replaced in one atomic write;
    a document it replaces is removed after it (then its sidecar), so readers see
    the old document until the new log is the only entry.
    """
    storage, durable = engine.storage, engine.durable
    _write_key_files(engine, loc)
    storage.write(loc.directory, loc.log, payload, durable=durable)
    if storage.remove(loc.directory, loc.document, durable=durable):
        storage.remove(loc.directory, loc.sidecar, durable=durable)


def _write_key_files(engine: Engine, loc: Location) -> None:
    """The key files of hashed names on the way to ``loc`` (``Engine.save`` writes them itself)."""
    directory = ""
    for segment in loc.directory_keys:
        name = encode_segment(segment)
        directory = join(directory, name)
        if is_hashed_name(name):
            _write_if_changed(engine, directory, DIRECTORY_KEY_FILE, segment)
    if is_hashed_name(loc.name):
        _write_if_changed(engine, loc.directory, loc.key_file, loc.key)


def _write_if_changed(engine: Engine, directory: str, name: str, text: str) -> None:
    data = text.encode("utf-8")
    if engine.storage.read(directory, name) != data:
        engine.storage.write(directory, name, data, durable=engine.durable)
