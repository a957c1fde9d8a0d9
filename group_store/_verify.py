"""Consistency check of a store on disk (``verify``) and canonical rewriting (``fmt``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

from ._codec import encode_document, split_log
from ._engine import Engine, boundary
from ._expiry import Clock, decode_sidecar
from ._inventory import engine_for, walk_directories
from ._keys import is_hashed_name
from ._layout import DIRECTORY_KEY_FILE, KEY_SUFFIX, Location, classify, is_temp_name, join
from ._storage import Kind, Storage

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    """One thing ``verify_store`` found.

    Attributes:
        kind: ``invalid-json``, ``corrupt-log-line``, ``torn-log``, ``non-canonical``,
            ``orphan-sidecar``, ``malformed-sidecar``, ``orphan-key-file``,
            ``temp-file``, ``undecodable-name`` or ``unsafe-file``.
        path: The file or directory concerned.
        detail: A human sentence.
        fixable: Whether ``fix=True`` repairs it without losing data.
        fixed: Whether this run repaired it.
    """

    kind: str
    path: Path
    detail: str
    fixable: bool
    fixed: bool = False


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify_store`` checked and found."""

    directories: int
    entries: int
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True if nothing is left unrepaired."""
        return all(problem.fixed for problem in self.problems)


def canonical_log(raw: bytes) -> bytes:
    """A log's complete lines re-encoded compactly (blank lines and a torn tail dropped).

    Raises:
        orjson.JSONDecodeError: for an invalid line.
    """
    lines, _ = split_log(raw)
    return b"".join(orjson.dumps(orjson.loads(line), option=orjson.OPT_APPEND_NEWLINE) for line in lines)


class _Checker:
    def __init__(self, engine: Engine, fix: bool) -> None:
        self.engine = engine
        self.fix = fix
        self.problems: list[Problem] = []
        self.entries = 0

    def report(self, kind: str, directory: str, name: str, detail: str, repair: Callable[[], object] | None) -> None:
        problem = Problem(kind, self.engine.storage.path(directory, name), detail, fixable=repair is not None)
        if repair is not None and self.fix:
            repair()
            problem = replace(problem, fixed=True)
        self.problems.append(problem)

    def check_directory(self, directory: str) -> None:
        storage = self.engine.storage
        listing = storage.scan(directory)
        contents = classify(listing)
        for name, kind in listing:
            if kind is Kind.OTHER:
                self.report("unsafe-file", directory, name, "a symlink, FIFO or device: never read", None)
            elif name.startswith("."):
                if is_temp_name(name) and kind is Kind.FILE:
                    self.report(
                        "temp-file", directory, name, "leftover temporary file", _remove(storage, directory, name)
                    )
            elif kind is Kind.DIRECTORY:
                if self.engine.decode_name(join(directory, name), name, DIRECTORY_KEY_FILE) is None:
                    self.report("undecodable-name", directory, name, "directory name is not an encoded key", None)
            elif not _is_store_file(name):
                self.report("undecodable-name", directory, name, "file is not a store entry", None)
        for name in sorted(contents.documents | contents.logs):
            key = self.engine.decode_name(directory, name, name + KEY_SUFFIX)
            if key is None:
                suffix = ".json" if name in contents.documents else ".jsonl"
                self.report("undecodable-name", directory, name + suffix, "name is not an encoded key", None)
                continue
            loc = Location(directory, name, key, ())
            if name in contents.documents:
                self.check_document(loc)
            if name in contents.logs:
                self.check_log(loc)
        for name in sorted(contents.sidecars):
            self.check_sidecar(directory, name, name in contents.documents)
        for name in sorted(contents.key_files - contents.documents - contents.logs):
            if is_hashed_name(name):
                path = name + KEY_SUFFIX
                self.report(
                    "orphan-key-file", directory, path, "key file without entry", _remove(storage, directory, path)
                )

    def check_document(self, loc: Location) -> None:
        self.entries += 1
        raw = self.engine.storage.read(loc.directory, loc.document)
        if raw is None:
            return
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.report("invalid-json", loc.directory, loc.document, f"not valid JSON: {exc}", None)
            return
        canonical = encode_document(loc.key, value)
        if canonical != raw:
            self.report(
                "non-canonical",
                loc.directory,
                loc.document,
                "not in canonical layout",
                lambda: rewrite_document(self.engine, loc),
            )

    def check_log(self, loc: Location) -> None:
        self.entries += 1
        storage = self.engine.storage
        raw = storage.read(loc.directory, loc.log)
        if raw is None:
            return
        lines, covered = split_log(raw)
        for number, line in enumerate(lines, 1):
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                self.report("corrupt-log-line", loc.directory, loc.log, f"line {number} is not valid JSON: {exc}", None)
                return
        if covered != len(raw):
            self.report(
                "torn-log",
                loc.directory,
                loc.log,
                f"last line torn ({len(raw) - covered} bytes without a newline)",
                lambda: rewrite_log(self.engine, loc),
            )
        elif canonical_log(raw) != raw:
            self.report(
                "non-canonical", loc.directory, loc.log, "not compact JSON Lines", lambda: rewrite_log(self.engine, loc)
            )

    def check_sidecar(self, directory: str, name: str, has_document: bool) -> None:
        storage = self.engine.storage
        sidecar = name + ".meta.json"
        if not has_document:
            self.report(
                "orphan-sidecar", directory, sidecar, "sidecar without document", _remove(storage, directory, sidecar)
            )
            return
        try:
            decode_sidecar(storage.read(directory, sidecar) or b"")
        except ValueError as exc:
            # Removing it keeps the data and drops only an expiry nobody can read.
            self.report(
                "malformed-sidecar", directory, sidecar, f"unreadable: {exc}", _remove(storage, directory, sidecar)
            )


def _is_store_file(name: str) -> bool:
    stem, _, suffix = name.partition(".")
    return bool(stem) and suffix in {"json", "jsonl", "meta.json", KEY_SUFFIX[1:]}


def _remove(storage: Storage, directory: str, name: str) -> Callable[[], None]:
    def remove() -> None:
        storage.remove(directory, name)

    return remove


def rewrite_document(engine: Engine, loc: Location) -> bool:
    """Rewrite a document canonically, keeping its expiry; ``True`` if the bytes changed.

    The caller holds the directory lock.
    """
    found = engine.read_document(loc)
    if found is None:
        return False
    canonical = encode_document(loc.key, orjson.loads(found[0]))
    if canonical == found[0]:
        return False
    engine.save(loc, canonical, found[1])
    return True


def rewrite_log(engine: Engine, loc: Location) -> bool:
    """Rewrite a log as compact lines (a torn tail cut); ``True`` if the bytes changed.

    The caller holds the directory lock.
    """
    raw = engine.storage.read(loc.directory, loc.log)
    if raw is None:
        return False
    canonical = canonical_log(raw)
    if canonical == raw:
        return False
    engine.storage.write(loc.directory, loc.log, canonical, durable=engine.durable)
    return True


def verify_store(
    root: str | os.PathLike[str], *, fix: bool = False, progress: Progress | None = None, clock: Clock = time.time
) -> VerifyReport:
    """Check every file of the store under ``root``; with ``fix``, repair what can be
    repaired without losing data (each directory under its lock).

    Finds invalid JSON, torn log tails, corrupt log lines, orphaned or malformed
    sidecars, orphaned key files, leftover temporary files, names that do not
    decode, symlinks and other non-regular files, and non-canonical formatting.
    Invalid JSON, corrupt log lines, foreign names and unsafe files are reported, never touched.
    """
    engine = engine_for(root, clock)
    checker = _Checker(engine, fix)
    directories = 0
    for directory, _ in walk_directories(engine):
        directories += 1
        with boundary(None, engine.storage, directory):
            if fix:
                with engine.lock(directory):
                    checker.check_directory(directory)
            else:
                checker.check_directory(directory)
        if progress is not None:
            progress(1)
    return VerifyReport(directories, checker.entries, tuple(checker.problems))


def format_store(root: str | os.PathLike[str], *, progress: Progress | None = None, clock: Clock = time.time) -> int:
    """Rewrite every valid document and log under ``root`` canonically; return how many files changed.

    Expiries are kept (each sidecar is re-bound to the new bytes). Invalid files are left as they are.
    """
    engine = engine_for(root, clock)
    changed = 0
    for directory, _ in walk_directories(engine):
        with boundary(None, engine.storage, directory), engine.lock(directory):
            contents = classify(engine.storage.scan(directory))
            for name in sorted(contents.documents | contents.logs):
                key = engine.decode_name(directory, name, name + KEY_SUFFIX)
                if key is None:
                    continue
                loc = Location(directory, name, key, ())
                try:
                    if name in contents.documents:
                        changed += rewrite_document(engine, loc)
                    if name in contents.logs:
                        changed += rewrite_log(engine, loc)
                except (orjson.JSONDecodeError, ValueError):
                    continue  # invalid files are verify's to report, not fmt's to guess at
        if progress is not None:
            progress(1)
    return changed
