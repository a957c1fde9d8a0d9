"""Single-file archives of a store: ``.tar.gz`` (the files as they are) or ``.jsonl`` (one record per entry).

Both round-trip keys, logs and expiries exactly. Lock files and temporary files are
never archived. ``.tar.gz`` members are written in sorted order with fixed owner,
mode and time, so exporting equal stores gives byte-identical archives. Reading
an archive (for diff and import, ``_import``) never writes outside a private
temporary directory, and every value is parsed exactly.
"""

from __future__ import annotations

import gzip
import io
import os
import secrets
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from .._api.composition import resolve
from .._api.view import View
from .._engine.engine import Engine, boundary
from .._engine.inventory import EntryKind, ErrorHandler, read_entry, scan_tree, walk_entries, warn
from .._errors import CorruptEntryError, GroupStoreError, InvalidArgumentError, StorageError
from .._format.codec import InexactJSONError, loads_exact
from .._format.layout import DOCUMENT_SUFFIX, EXPIRY_INDEX, LOCK_NAME, LOG_SUFFIX, is_temp_name, join
from ..storage._base import Kind

ARCHIVE_FORMAT = 1
Progress = Callable[[int], None]

# The index is an accelerator grown by every TTL save: archiving it would make equal
# stores export unequal bytes. An imported store has none, and its first sweep checks
# every sidecar and writes a fresh one.
_LEFT_OUT = frozenset({LOCK_NAME, EXPIRY_INDEX})


@dataclass(frozen=True)
class Record:
    """One entry, wherever it was read from (a store directory or an archive)."""

    address: tuple[str, ...]
    kind: EntryKind
    value: Any
    expires_at: datetime | None


def archive_kind(path: Path) -> str:
    name = path.name
    if name.endswith(".tar.gz") or name.endswith(".tgz"):
        return "tar"
    if name.endswith(".jsonl"):
        return "jsonl"
    raise InvalidArgumentError("an archive must end in .tar.gz, .tgz or .jsonl", path=path)


# -- export ------------------------------------------------------------------------------


def _store_files(engine: Engine, root: str, report: ErrorHandler) -> Iterator[tuple[str, str, str]]:
    """(directory, name, archive name) of every archivable regular file under ``root``, in
    sorted order, read through the store's backend. A directory that cannot be listed is
    reported and skipped."""
    storage = engine.storage
    pending = [(root, "")]
    while pending:
        directory, relative = pending.pop()
        try:
            with boundary(None, storage, directory):
                listing = sorted(storage.scan(directory))
        except GroupStoreError as exc:
            report(exc)
            continue
        subdirectories = []
        for name, kind in listing:
            member = f"{relative}/{name}" if relative else name
            if kind is Kind.DIRECTORY:
                subdirectories.append((join(directory, name), member))
            elif kind is Kind.FILE and name not in _LEFT_OUT and not is_temp_name(name):
                yield directory, name, member
        pending.extend(reversed(subdirectories))


def _is_entry_file(name: str) -> bool:
    """True for a document or log file (``NAME.json``, ``NAME.jsonl``), not a sidecar, key file or index."""
    stem, dot, suffix = PurePosixPath(name).name.partition(".")
    return bool(stem) and f"{dot}{suffix}" in (DOCUMENT_SUFFIX, LOG_SUFFIX)


@contextmanager
def _atomic_output(target: Path) -> Iterator[io.BufferedWriter]:
    """A file that appears at ``target`` complete, or not at all (temp file, then rename)."""
    temp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(temp, "xb") as out:
            yield out
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def export_store(
    source: View | str | os.PathLike[str],
    archive: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    on_error: ErrorHandler | None = None,
) -> int:
    """Write ``source`` (a store or view: its subtree, read through its backend; a path: the
    local store there) to ``archive``, a local file; return the number of entries
    (documents and logs) written, counted the same way for both formats. ``progress``
    is called with 1 per entry.

    The archive appears complete or not at all (written to a temporary file, then
    renamed). A file or directory that cannot be read, and (``.jsonl``) an entry whose
    sidecar is malformed or whose JSON is invalid or cannot be loaded exactly, is
    passed to ``on_error`` (default: a warning on logger ``group_store``) and left
    out; the rest is exported.

    Raises:
        InvalidArgumentError: for an archive name that is neither ``.tar.gz`` nor ``.jsonl``.
    """
    report = warn if on_error is None else on_error
    target = Path(archive)
    kind = archive_kind(target)
    engine, directory, segments = resolve(source)
    count = 0
    if kind == "tar":
        # Level 6, as gzip and tar czf default to (tarfile's default 9 is several times
        # slower), behind a large buffer so zlib sees big chunks, not 512-byte blocks.
        # mtime=0 in the gzip header too: equal stores give byte-identical archives.
        # No file name in the gzip header either (it would differ between archive names).
        with (
            _atomic_output(target) as raw,
            gzip.GzipFile("", "wb", compresslevel=6, fileobj=raw, mtime=0) as compressed,
            io.BufferedWriter(compressed, 1 << 20) as buffered,
            tarfile.open(fileobj=buffered, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            for directory_name, name, member in _store_files(engine, directory, report):
                try:
                    with boundary(None, engine.storage, directory_name, name):
                        data = engine.storage.read(directory_name, name)
                except GroupStoreError as exc:
                    report(exc)
                    continue
                if data is None:
                    continue  # removed since the listing
                info = tarfile.TarInfo(member)
                info.size, info.mode, info.mtime = len(data), 0o600, 0
                tar.addfile(info, io.BytesIO(data))
                if _is_entry_file(member):
                    count += 1
                    if progress:
                        progress(1)
        return count
    with _atomic_output(target) as out:
        out.write(orjson.dumps({"group_store_archive": ARCHIVE_FORMAT}, option=orjson.OPT_APPEND_NEWLINE))
        for entry in walk_entries(engine, directory, segments, include_expired=True, on_error=report):
            try:
                value = entry.value()
            except GroupStoreError as exc:
                report(exc)
                continue
            record = {
                "path": list(entry.segments),
                "key": entry.key,
                "kind": entry.kind,
                "value": value,
                "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
            }
            out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
            if progress:
                progress(1)
    return count


# -- reading archives --------------------------------------------------------------------


def jsonl_records(archive: Path, report: ErrorHandler) -> Iterator[Record]:
    """The records of a ``.jsonl`` archive, each value parsed exactly; a bad line is reported and skipped.

    Raises:
        CorruptEntryError: if the header line is not ours.
        StorageError: if the archive cannot be read.
    """
    try:
        file = open(archive, "rb")  # noqa: SIM115 - closed below; opened here so a refusal is typed at once
    except OSError as exc:
        raise StorageError(exc.strerror or str(exc), path=archive, errno=exc.errno) from exc
    with file:
        try:
            header = orjson.loads(file.readline() or b"null")
        except orjson.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("group_store_archive") != ARCHIVE_FORMAT:
            raise CorruptEntryError("not a group_store .jsonl archive (bad header line)", path=archive)
        for number, line in enumerate(file, 2):
            if not line.strip():
                continue
            try:
                record = _record(line)
            except (orjson.JSONDecodeError, InexactJSONError, KeyError, TypeError, ValueError) as exc:
                report(CorruptEntryError(f"bad archive record on line {number} (skipped): {exc}", path=archive))
                continue
            yield record


def _record(line: bytes) -> Record:
    record = loads_exact(line)
    path, key, kind, expires = record["path"], record["key"], record["kind"], record["expires_at"]
    if not isinstance(path, list) or not all(isinstance(part, str) for part in path) or not isinstance(key, str):
        raise TypeError("path must be a list of strings and key a string")
    if kind not in ("document", "log") or (kind == "log" and not isinstance(record["value"], list)):
        raise ValueError(f"kind must be 'document' or 'log' (a log's value a list), not {kind!r}")
    expiry = None
    if expires is not None:
        expiry = datetime.fromisoformat(expires)
        if expiry.tzinfo is None:
            raise ValueError(f"expires_at must carry a time zone: {expires!r}")
    return Record((*path, key), kind, record["value"], expiry)


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    if not (member.isfile() or member.isdir()):
        raise CorruptEntryError(f"archive member {member.name!r} is a link or device; refused", path=archive)
    parts = PurePosixPath(member.name).parts
    if member.name.startswith("/") or ".." in parts:
        raise CorruptEntryError(f"archive member {member.name!r} leaves the archive's root; refused", path=archive)


def extract_tar(archive: Path, destination: Path) -> None:
    """Extract ``archive`` into the private directory ``destination``, refusing the whole
    archive (before anything else is done with it) for absolute paths, ``..``, links or devices.

    Raises:
        CorruptEntryError: for a refused member or a damaged archive.
        StorageError: if the archive cannot be read.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(archive, member)
            for member in members:
                # The "data" filter refuses the same again, and strips modes we do not want.
                tar.extract(member, destination, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CorruptEntryError(f"damaged or not a tar archive: {exc}", path=archive) from exc
    except OSError as exc:
        raise StorageError(exc.strerror or str(exc), path=archive, errno=exc.errno) from exc


# -- reading any side of a diff ----------------------------------------------------------


def records(
    source: View | str | os.PathLike[str],
    on_error: ErrorHandler | None = None,
    unreadable: set[tuple[str, ...]] | None = None,
) -> Iterator[Record]:
    """Every entry of a store (or view), a store directory or an archive, expired ones
    included, in address order (addresses relative to the store or view).

    An entry that cannot be read or parsed exactly is passed to ``on_error``
    (default: a warning on logger ``group_store``) and skipped; its address is
    added to ``unreadable`` if given.

    Raises:
        CorruptEntryError: for a damaged archive, or a ``.tar.gz`` with an escaping member.
    """
    report = warn if on_error is None else on_error
    if isinstance(source, View) or Path(source).is_dir():
        yield from _store_records(*resolve(source), report, unreadable)
        return
    location = Path(source)
    if archive_kind(location) == "jsonl":
        yield from sorted(jsonl_records(location, report), key=lambda record: record.address)
        return
    with tempfile.TemporaryDirectory(prefix="group-store-") as directory:
        extract_tar(location, Path(directory))
        yield from _store_records(*resolve(directory), report, unreadable)


def _store_records(
    engine: Engine,
    directory: str,
    segments: tuple[str, ...],
    report: ErrorHandler,
    unreadable: set[tuple[str, ...]] | None,
) -> Iterator[Record]:
    base = len(segments)
    for scan in scan_tree(engine, directory, report, segments):
        found: list[Record] = []
        for name in scan.entries:
            try:
                entry = read_entry(engine, scan, name, True, 0.0)
                if entry is not None:
                    found.append(Record(entry.address[base:], entry.kind, entry.value(), entry.expires_at))
            except GroupStoreError as exc:
                report(exc)
                if unreadable is not None:
                    unreadable.add((*scan.segments[base:], scan.entries[name]))
        yield from sorted(found, key=lambda record: record.address)
