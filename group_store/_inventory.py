"""Walking a store: every entry of a subtree with its kind, bytes and expiry.

The tools (verify, diff, export, snapshots, the CLI) read stores through this,
never through file names, so they all agree on what an entry is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from ._codec import decode_document, decode_log
from ._engine import Engine, boundary
from ._expiry import Clock, is_expired, to_datetime
from ._layout import DIRECTORY_KEY_FILE, KEY_SUFFIX, Location, classify, join
from ._local import LocalStorage

EntryKind = Literal["document", "log"]


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
    path: Path
    raw: bytes
    expires_at: datetime | None

    @property
    def address(self) -> tuple[str, ...]:
        """``segments`` followed by ``key``: the words a command line names it with."""
        return (*self.segments, self.key)

    def value(self) -> Any:
        """The parsed value: a document's JSON, or a log's items as a list.

        Raises:
            CorruptEntryError: if the bytes are not valid JSON.
        """
        if self.kind == "document":
            return decode_document(self.key, self.path, self.raw)
        return decode_log(self.key, self.path, self.raw)


def engine_for(root: str | os.PathLike[str], clock: Clock = time.time) -> Engine:
    """A read-only-use engine on ``root`` (nothing is created by walking)."""
    return Engine(LocalStorage(Path(root)), clock, durable=False)


def walk_directories(engine: Engine, directory: str = "") -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every store directory below ``directory`` (included), depth first, sorted by name,
    with its decoded ``narrow()`` keys. Directories whose names do not decode are skipped."""
    pending: list[tuple[str, tuple[str, ...]]] = [(directory, ())]
    while pending:
        current, segments = pending.pop()
        yield current, segments
        with boundary(None, engine.storage, current):
            names = classify(engine.storage.scan(current)).directories
        children = []
        for name in names:
            child = join(current, name)
            key = engine.decode_name(child, name, DIRECTORY_KEY_FILE)
            if key is not None:
                children.append((child, (*segments, key)))
        pending.extend(sorted(children, reverse=True))


def walk(root: str | os.PathLike[str], *, include_expired: bool = False, clock: Clock = time.time) -> Iterator[Entry]:
    """Every entry under ``root`` (a store root or any directory in one), sorted by address.

    Expired entries are left out unless ``include_expired``. Files that are not
    entries (foreign names, temporary files, symlinks) are skipped.

    Raises:
        CorruptEntryError: for a malformed sidecar.
        UnsafeFileError: for a symlinked or non-regular data file.
    """
    engine = engine_for(root, clock)
    now = clock()
    for directory, segments in walk_directories(engine):
        with boundary(None, engine.storage, directory):
            contents = classify(engine.storage.scan(directory))
        found: list[Entry] = []
        for name in contents.documents | contents.logs:
            key = engine.decode_name(directory, name, name + KEY_SUFFIX)
            if key is None:
                continue
            loc = Location(directory, name, key, segments)
            if name in contents.documents:
                document = engine.read_document(loc)
                if document is None or (is_expired(document[1], now) and not include_expired):
                    continue
                raw, expiry = document
                expires = None if expiry is None else to_datetime(expiry)
                path = engine.storage.path(directory, loc.document)
                found.append(Entry(segments, key, "document", path, raw, expires))
            else:
                raw_log = engine.storage.read(directory, loc.log)
                if raw_log is not None:
                    path = engine.storage.path(directory, loc.log)
                    found.append(Entry(segments, key, "log", path, raw_log, None))
        yield from sorted(found, key=lambda entry: entry.key)
