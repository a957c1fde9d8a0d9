"""Consistency check of a store on disk (``verify``) and canonical rewriting (``fmt``).

Neither ever changes a value or a file the store did not write. A document or log
line that cannot be loaded exactly (a duplicate key, an integer beyond 64 bits) is
reported and never rewritten; foreign files are listed and never touched; ``fix``
removes only leftovers in the store's exact forms (see ``_inventory``). One bad
entry or directory is reported and the check carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from .._api.composition import resolve
from .._engine.engine import Engine, boundary
from .._engine.inventory import DirectoryScan, ErrorHandler, ignore, scan_directory, scan_tree, warn
from .._errors import CorruptEntryError, GroupStoreError
from .._format.codec import InexactJSONError, decode_document, encode_document, parse_document, parse_line, split_log
from .._format.expiry import Clock, decode_sidecar, encode_sidecar, is_own_sidecar, live_bindings, own_sidecar_bindings
from .._format.layout import KEY_SUFFIX, SIDECAR_SUFFIX, Location
from ..storage._base import Storage
from ._walk import StoreOrPath

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    """One thing ``verify_store`` found.

    Attributes:
        kind: ``invalid-json``, ``inexact-json`` (valid JSON that cannot be loaded
            exactly), ``corrupt-log-line``, ``inexact-log-line``, ``torn-log``,
            ``non-canonical``, ``orphan-sidecar``, ``malformed-sidecar``,
            ``orphan-key-file``, ``stale-binding`` (a sidecar that also binds bytes
            no longer on disk; reported only by ``fix=True``, which drops them),
            ``temp-file``, ``document-and-log`` (a name that is both a document and
            a log, as Group Genie 0.0.2 then 0.0.4 left it; never fixed: which one is
            wanted is the user's call), ``foreign-file`` (a file or directory the
            store did not write), ``unsafe-file`` (a symlink, FIFO, socket or device)
            or ``unreadable`` (a file or directory that could not be read or locked;
            the detail names the error).
        path: The file or directory concerned.
        detail: A human sentence.
        fixable: Whether ``fix=True`` repairs it without losing data.
        fixed: Whether this run repaired it.
    """

    kind: str
    path: str
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
        InexactJSONError: for a line that cannot be loaded exactly (it is never re-encoded).
    """
    lines, _ = split_log(raw)
    return b"".join(orjson.dumps(parse_line(line)[0], option=orjson.OPT_APPEND_NEWLINE) for line in lines)


Repair = Callable[[], object]


class _Checker:
    def __init__(self, engine: Engine, fix: bool) -> None:
        self.engine = engine
        self.fix = fix
        self.problems: list[Problem] = []
        self.entries = 0

    def report(self, kind: str, directory: str, name: str, detail: str, repair: Repair | None) -> None:
        problem = Problem(kind, self.engine.storage.locator(directory, name), detail, fixable=repair is not None)
        if repair is not None and self.fix:
            try:
                with boundary(None, self.engine.storage, directory, name):
                    repair()
            except GroupStoreError as exc:
                problem = Problem(kind, problem.path, f"{detail}; the repair failed: {exc}", fixable=True)
            else:
                problem = Problem(kind, problem.path, detail, fixable=True, fixed=True)
        self.problems.append(problem)

    def unreadable(self, error: GroupStoreError) -> None:
        path = error.path if error.path is not None else self.engine.storage.locator("")
        problem = Problem("unreadable", path, error.detail, fixable=False)
        if problem not in self.problems:  # a directory is scanned twice with fix (before and under its lock)
            self.problems.append(problem)

    def check_directory(self, scan: DirectoryScan) -> None:
        directory, storage = scan.directory, self.engine.storage
        for name in sorted(scan.unsafe):
            self.report("unsafe-file", directory, name, "a symlink, FIFO, socket or device: never read", None)
        for foreign in sorted(scan.foreign, key=lambda item: item.name):
            self.report("foreign-file", directory, foreign.name, f"{foreign.reason}: never touched", None)
        for name in scan.both:
            detail = f"both {name}.json and {name}.jsonl exist: load() reads the document, read() the log"
            self.report("document-and-log", directory, name + ".json", detail, None)
        for name in sorted(scan.temps):
            self.report("temp-file", directory, name, "leftover temporary file", _remove(storage, directory, name))
        for name in sorted(scan.entries):
            loc = Location(directory, name, scan.entries[name], scan.segments)
            try:
                if name in scan.documents:
                    self.check_document(loc, name in scan.sidecars)
                if name in scan.logs:
                    self.check_log(loc)
                if name in scan.sidecars:
                    self.check_sidecar(loc)
            except GroupStoreError as exc:
                self.unreadable(exc)
        for name in scan.orphan_sidecars:
            sidecar = name + SIDECAR_SUFFIX
            self.report(
                "orphan-sidecar", directory, sidecar, "sidecar without document", _remove(storage, directory, sidecar)
            )
        for name in scan.orphan_key_files:
            path = name + KEY_SUFFIX
            self.report("orphan-key-file", directory, path, "key file without entry", _remove(storage, directory, path))

    def check_document(self, loc: Location, has_sidecar: bool) -> None:
        self.entries += 1
        storage = self.engine.storage
        with boundary(loc.key, storage, loc.directory, loc.document):
            raw = storage.read(loc.directory, loc.document)
        if raw is None:
            return
        try:
            _, canonical = parse_document(raw)
        except InexactJSONError as exc:
            detail = f"valid JSON that cannot be loaded exactly: {exc}; never rewritten"
            self.report("inexact-json", loc.directory, loc.document, detail, None)
            return
        except orjson.JSONDecodeError as exc:
            self.report("invalid-json", loc.directory, loc.document, f"not valid JSON: {exc}", None)
            return
        if canonical:
            return
        if has_sidecar and not _own_sidecar(self.engine, loc):
            detail = "not in canonical layout; not rewritten: its sidecar is not in the store's exact form"
            self.report("non-canonical", loc.directory, loc.document, detail, None)
            return
        repair = _bind(rewrite_document, self.engine, loc)
        self.report("non-canonical", loc.directory, loc.document, "not in canonical layout", repair)

    def check_log(self, loc: Location) -> None:
        self.entries += 1
        storage = self.engine.storage
        with boundary(loc.key, storage, loc.directory, loc.log):
            raw = storage.read(loc.directory, loc.log)
        if raw is None:
            return
        lines, covered = split_log(raw)
        for number, line in enumerate(lines, 1):
            try:
                parse_line(line)
            except InexactJSONError as exc:
                detail = f"line {number} is valid JSON that cannot be loaded exactly: {exc}; never rewritten"
                self.report("inexact-log-line", loc.directory, loc.log, detail, None)
                return
            except orjson.JSONDecodeError as exc:
                self.report("corrupt-log-line", loc.directory, loc.log, f"line {number} is not valid JSON: {exc}", None)
                return
        repair = _bind(rewrite_log, self.engine, loc)
        if covered != len(raw):
            detail = f"last line torn ({len(raw) - covered} bytes without a newline)"
            self.report("torn-log", loc.directory, loc.log, detail, repair)
        elif canonical_log(raw) != raw:
            self.report("non-canonical", loc.directory, loc.log, "not compact JSON Lines", repair)

    def check_sidecar(self, loc: Location) -> None:
        storage = self.engine.storage
        with boundary(loc.key, storage, loc.directory, loc.sidecar):
            document, raw = storage.read_many(loc.directory, (loc.document, loc.sidecar))
        try:
            decode_sidecar(raw or b"")
        except ValueError as exc:
            # Not removed: the store cannot prove it wrote these bytes. Removing it by
            # hand keeps the data and drops only an expiry nobody can read.
            detail = f"unreadable: {exc}; the entry's expiry is unknown, so loading it raises"
            self.report("malformed-sidecar", loc.directory, loc.sidecar, detail, None)
            return
        # Only with fix (under the lock): every save over existing data leaves one such
        # binding, harmless to reads, so a plain verify of a store in use stays clean.
        if self.fix and document is not None and raw is not None and _compacted(raw, document) != raw:
            repair = _bind(drop_stale_bindings, self.engine, loc)
            self.report("stale-binding", loc.directory, loc.sidecar, "binds data no longer on disk", repair)


def _compacted(raw: bytes, document: bytes) -> bytes | None:
    """The sidecar ``raw`` binding only ``document`` (``None``: it binds it to nothing, so
    it may go); ``raw`` itself if it is not the store's or already binds only that."""
    bindings = own_sidecar_bindings(raw)
    if bindings is None:
        return raw
    live = live_bindings(bindings, document)
    return encode_sidecar(live) if live else None


def drop_stale_bindings(engine: Engine, loc: Location) -> bool:
    """Rewrite the entry's sidecar to bind only the document on disk (or remove it if
    that binds no expiry); ``True`` if it changed. The caller holds the directory lock,
    so no save is between its sidecar and data writes: other bindings are dead.

    Crash safety: one atomic replace (or removal) that keeps the document's own
    binding, so either state reads the same. Sidecars not in the store's exact form,
    and sidecars without a document (orphans), are left to their own checks.
    """
    storage = engine.storage
    document, raw = storage.read_many(loc.directory, (loc.document, loc.sidecar))
    if document is None or raw is None:
        return False
    compacted = _compacted(raw, document)
    if compacted == raw:
        return False
    if compacted is None:
        storage.remove(loc.directory, loc.sidecar, durable=engine.durable)
    else:
        storage.write(loc.directory, loc.sidecar, compacted, durable=engine.durable)
    return True


def _own_sidecar(engine: Engine, loc: Location) -> bool:
    raw = engine.storage.read(loc.directory, loc.sidecar)
    return raw is None or is_own_sidecar(raw)


def _bind(function: Callable[[Engine, Location], bool], engine: Engine, loc: Location) -> Repair:
    return lambda: function(engine, loc)


def _remove(storage: Storage, directory: str, name: str) -> Repair:
    def remove() -> None:
        storage.remove(directory, name, durable=False)

    return remove


def rewrite_document(engine: Engine, loc: Location) -> bool:
    """Rewrite a document canonically, keeping its value and expiry; ``True`` if the bytes changed.

    The caller holds the directory lock.

    Raises:
        CorruptEntryError: for a document that is not valid JSON or cannot be loaded
            exactly, or beside a sidecar that is malformed or not in the store's exact
            form (rewriting the document would rewrite that sidecar too); nothing is written.
    """
    if not _own_sidecar(engine, loc):
        path = engine.storage.locator(loc.directory, loc.sidecar)
        raise CorruptEntryError("not rewritten: its sidecar is not in the store's exact form", key=loc.key, path=path)
    found = engine.read_document(loc)
    if found is None:
        return False
    path = engine.storage.locator(loc.directory, loc.document)
    canonical = encode_document(loc.key, decode_document(loc.key, path, found[0]))
    if canonical == found[0]:
        return False
    engine.save(loc, canonical, found[1])
    return True


def rewrite_log(engine: Engine, loc: Location) -> bool:
    """Rewrite a log as compact lines (a torn tail cut) in one atomic replace, keeping
    every item; ``True`` if the bytes changed. The caller holds the directory lock.

    Raises:
        CorruptEntryError: for a line that is not valid JSON or cannot be loaded exactly
            (nothing is written).
    """
    storage = engine.storage
    raw = storage.read(loc.directory, loc.log)
    if raw is None:
        return False
    try:
        canonical = canonical_log(raw)
    except (orjson.JSONDecodeError, InexactJSONError) as exc:
        path = storage.locator(loc.directory, loc.log)
        raise CorruptEntryError(f"not rewritten: {exc}", key=loc.key, path=path) from exc
    if canonical == raw:
        return False
    storage.write(loc.directory, loc.log, canonical, durable=engine.durable)
    return True


def verify_store(
    store: StoreOrPath, *, fix: bool = False, progress: Progress | None = None, clock: Clock | None = None
) -> VerifyReport:
    """Check every file of ``store`` (a store or view: its subtree, through its backend; a
    path: the local store there); with ``fix``, repair what can be repaired without losing
    data (each directory under its lock). ``progress`` is called with 1 per directory.

    Finds invalid JSON, JSON that cannot be loaded exactly, torn log tails, corrupt
    log lines, orphaned or malformed sidecars, orphaned key files, leftover temporary
    files, foreign files and directories, symlinks and other non-regular files,
    non-canonical formatting, and files or directories that cannot be read.
    ``fix`` rewrites non-canonical documents and logs (values and expiries kept,
    each file replaced atomically) and removes only what the store provably wrote:
    temporary files in its exact pattern, sidecars in its exact form without a
    document, and key files of hashed names without an entry. Everything else is
    reported and never touched. A directory that cannot be listed or locked is
    reported and the check carries on.

    Raises:
        InvalidArgumentError: for something that is neither a store nor a path.
    """
    engine, directory, segments = resolve(store, clock)
    checker = _Checker(engine, fix)
    directories = 0
    for scan in scan_tree(engine, directory, checker.unreadable, segments):
        directories += 1
        if fix:
            _fix_directory(engine, checker, scan)
        else:
            checker.check_directory(scan)
        if progress is not None:
            progress(1)
    return VerifyReport(directories, checker.entries, tuple(checker.problems))


def _fix_directory(engine: Engine, checker: _Checker, scan: DirectoryScan) -> None:
    """Check and repair one directory under its lock, on a listing taken under it."""
    try:
        with engine.lock(scan.directory):
            with boundary(None, engine.storage, scan.directory):
                listing = engine.storage.scan(scan.directory)
            checker.check_directory(scan_directory(engine, scan.directory, scan.segments, listing, checker.unreadable))
    except GroupStoreError as exc:  # the lock could not be taken (or released): check without fixing
        checker.unreadable(exc)
        checker.fix = False
        try:
            checker.check_directory(scan)
        finally:
            checker.fix = True


def format_store(
    store: StoreOrPath,
    *,
    progress: Progress | None = None,
    clock: Clock | None = None,
    on_error: ErrorHandler | None = None,
) -> int:
    """Rewrite every valid document and log of ``store`` (a store or view, or a path)
    canonically; return how many files changed. ``progress`` is called with 1 per directory.

    Values and expiries are kept (each sidecar is re-bound to the new bytes, and left
    binding only the bytes on disk) and each file is replaced atomically under its
    directory's lock. A file that is not valid
    JSON, cannot be loaded exactly, has a malformed sidecar or cannot be read, and a
    directory that cannot be listed or locked, is passed to ``on_error`` (default: a
    warning on logger ``group_store``) and left as it is; the rest is formatted.
    """
    report = warn if on_error is None else on_error
    engine, directory, segments = resolve(store, clock)
    changed = 0
    for scan in scan_tree(engine, directory, report, segments):
        try:
            with engine.lock(scan.directory):
                changed += _format_directory(engine, scan, report)
        except GroupStoreError as exc:
            report(exc)
        if progress is not None:
            progress(1)
    return changed


def _format_document(engine: Engine, loc: Location) -> bool:
    """``rewrite_document`` then ``drop_stale_bindings`` (a rewrite leaves the old bytes'
    binding behind); ``True`` if either changed a file: an entry counts once."""
    rewritten = rewrite_document(engine, loc)
    return drop_stale_bindings(engine, loc) or rewritten


def _format_directory(engine: Engine, scan: DirectoryScan, report: ErrorHandler) -> int:
    changed = 0
    with boundary(None, engine.storage, scan.directory):
        listing = engine.storage.scan(scan.directory)
    current = scan_directory(engine, scan.directory, scan.segments, listing, ignore)
    for name in sorted(current.entries):
        loc = Location(current.directory, name, current.entries[name], current.segments)
        for present, rewrite, file in (
            (current.documents, _format_document, loc.document),
            (current.logs, rewrite_log, loc.log),
        ):
            if name in present:
                try:
                    with boundary(loc.key, engine.storage, loc.directory, file):
                        changed += rewrite(engine, loc)
                except GroupStoreError as exc:
                    report(exc)
    return changed
