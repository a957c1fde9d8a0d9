"""Single-file archives of a store: ``.tar.gz`` (the files as they are) or ``.jsonl`` (one record per entry).

Both round-trip keys, logs and expiries exactly. Lock files and temporary files are
never archived. ``.tar.gz`` members are written in sorted order with fixed owner,
mode and time, so exporting equal stores gives byte-identical archives.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from ._errors import CorruptEntryError, InvalidArgumentError
from ._expiry import Clock
from ._inventory import EntryKind, walk
from ._layout import LOCK_NAME, is_temp_name
from ._store import Store

ARCHIVE_FORMAT = 1
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Record:
    """One entry, wherever it was read from (a store directory or an archive)."""

    address: tuple[str, ...]
    kind: EntryKind
    value: Any
    expires_at: datetime | None


def _archive_kind(path: Path) -> str:
    name = path.name
    if name.endswith(".tar.gz") or name.endswith(".tgz"):
        return "tar"
    if name.endswith(".jsonl"):
        return "jsonl"
    raise InvalidArgumentError("an archive must end in .tar.gz, .tgz or .jsonl", path=path)


def _store_files(root: str) -> Iterator[tuple[str, str]]:
    """(absolute path, archive name) of every archivable regular file, in sorted order."""
    pending = [("", root)]
    while pending:
        relative, directory = pending.pop()
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        subdirectories = []
        for entry in entries:
            name = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_dir(follow_symlinks=False):
                subdirectories.append((name, entry.path))
            elif entry.is_file(follow_symlinks=False) and entry.name != LOCK_NAME and not is_temp_name(entry.name):
                yield entry.path, name
        pending.extend(reversed(subdirectories))


def export_store(
    source: str | os.PathLike[str], archive: str | os.PathLike[str], *, progress: Progress | None = None
) -> int:
    """Write the store under ``source`` to ``archive``; return the number of files or entries written.

    Raises:
        InvalidArgumentError: for an archive name that is neither ``.tar.gz`` nor ``.jsonl``.
        CorruptEntryError: (``.jsonl`` only) for an entry that is not valid JSON.
    """
    source, target = Path(source), Path(archive)
    count = 0
    if _archive_kind(target) == "tar":
        # Level 6, as gzip and tar czf default to (tarfile's default 9 is several times
        # slower), behind a large buffer so zlib sees big chunks, not 512-byte blocks.
        # mtime=0 in the gzip header too: equal stores give byte-identical archives.
        # No file name in the gzip header either (it would differ between archive names).
        with (
            open(target, "wb") as raw,
            gzip.GzipFile("", "wb", compresslevel=6, fileobj=raw, mtime=0) as compressed,
            io.BufferedWriter(compressed, 1 << 20) as buffered,
            tarfile.open(fileobj=buffered, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            for path, name in _store_files(str(source)):
                with open(path, "rb") as file:
                    data = file.read()
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o600, 0
                tar.addfile(info, io.BytesIO(data))
                count += 1
                if progress:
                    progress(1)
        return count
    with open(target, "wb") as out:
        out.write(orjson.dumps({"group_store_archive": ARCHIVE_FORMAT}, option=orjson.OPT_APPEND_NEWLINE))
        for entry in walk(source, include_expired=True):
            record = {
                "path": list(entry.segments),
                "key": entry.key,
                "kind": entry.kind,
                "value": entry.value(),
                "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
            }
            out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
            if progress:
                progress(1)
    return count


def _jsonl_records(archive: Path) -> Iterator[Record]:
    with open(archive, "rb") as lines:
        header = orjson.loads(lines.readline() or b"null")
        if not isinstance(header, dict) or header.get("group_store_archive") != ARCHIVE_FORMAT:
            raise CorruptEntryError("not a group_store .jsonl archive (bad header line)", path=archive)
        for number, line in enumerate(lines, 2):
            try:
                record = orjson.loads(line)
                expires = record["expires_at"]
                yield Record(
                    (*record["path"], record["key"]),
                    record["kind"],
                    record["value"],
                    datetime.fromisoformat(expires) if expires else None,
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise CorruptEntryError(f"bad archive record on line {number}: {exc}", path=archive) from exc


def _extract_tar(archive: Path, destination: Path, progress: Progress | None) -> int:
    count = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if not (member.isfile() or member.isdir()):
                raise CorruptEntryError(f"archive member {member.name!r} is not a file or directory", path=archive)
            # The "data" filter refuses absolute paths, "..", links and device files.
            tar.extract(member, destination, filter="data")
            if member.isfile():
                os.chmod(destination / member.name, 0o600)
                count += 1
                if progress:
                    progress(1)
    return count


def import_store(
    archive: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    clock: Clock = time.time,
) -> int:
    """Load ``archive`` into the store at ``destination`` (created if missing; existing entries
    with the same keys are replaced); return the number of files or entries read.

    Raises:
        CorruptEntryError: for an archive that is damaged or not ours.
        InvalidArgumentError: for an archive name that is neither ``.tar.gz`` nor ``.jsonl``.
    """
    source, target = Path(archive), Path(destination)
    if _archive_kind(source) == "tar":
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _extract_tar(source, target, progress)
    store = Store(target, clock=clock)
    count = 0
    for record in _jsonl_records(source):
        *segments, key = record.address
        view = store.narrow(*segments) if segments else store
        view.delete(key)
        if record.kind == "log":
            view.append(key, record.value)
        else:
            view.save(key, record.value, expires_at=record.expires_at)
        count += 1
        if progress:
            progress(1)
    return count


@contextmanager
def opened(path: str | os.PathLike[str]) -> Iterator[Path | list[Record]]:
    """A store directory as it is, a ``.tar.gz`` extracted to a temporary directory, or a ``.jsonl``'s records."""
    location = Path(path)
    if location.is_dir():
        yield location
    elif _archive_kind(location) == "jsonl":
        yield list(_jsonl_records(location))
    else:
        with tempfile.TemporaryDirectory(prefix="group-store-") as directory:
            _extract_tar(location, Path(directory), None)
            yield Path(directory)


def records(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Every entry of a store directory or archive, expired ones included, in address order."""
    with opened(path) as source:
        if isinstance(source, list):
            yield from sorted(source, key=lambda record: record.address)
            return
        for entry in walk(source, include_expired=True):
            yield Record(entry.address, entry.kind, entry.value(), entry.expires_at)
