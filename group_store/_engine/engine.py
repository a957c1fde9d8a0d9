"""The synchronous core: every store operation as plain blocking functions.

``Store`` calls these directly; ``DataStore`` runs reads inline on the event loop
(or in a worker thread) and mutations in its writer thread. Reads take no lock
(atomic replace makes every file old or new). Locking has one owner: every mutation
here takes its entry's directory lock itself (``lock()``, re-entrant per thread, so
a caller holding it for a multi-step change, or the writer holding it across a batch,
just re-enters it); the rules for holding two are the ``Storage`` docstring's.

Invariant: every state a mutation leaves on disk between two of its storage calls
(what a crash leaves, and what a lock-free reader meets) reads as the entry's old
or its new state, with that state's expiry. Reads get one consistent view of a
document and its sidecar from ``Storage.read_many`` (a snapshot), so a reader
never combines the data of one state with the sidecar of another.
"""

from __future__ import annotations

import errno
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import CoroutineType
from typing import Any, TypeVar

import orjson

from .._errors import (
    CorruptEntryError,
    EntryKindError,
    FormatVersionError,
    GroupStoreError,
    InvalidArgumentError,
    KeyNotFoundError,
    StorageError,
    UnsafeFileError,
    located,
)
from .._format.codec import decode_document, decode_log, encode_document, ends_whole, split_log
from .._format.expiry import (
    UNBOUND,
    Clock,
    binds_to_an_expiry,
    bound_expiry,
    decode_sidecar,
    encode_sidecar,
    index_line,
    is_expired,
    next_bindings,
)
from .._format.keys import decode_segment, encode_segment, is_hashed_name
from .._format.layout import (
    DIRECTORY_KEY_FILE,
    DOCUMENT_SUFFIX,
    EXPIRY_INDEX,
    FORMAT_MARKER,
    FORMAT_VERSION,
    KEY_SUFFIX,
    LOG_SUFFIX,
    SIDECAR_SUFFIX,
    DirectoryContents,
    Location,
    classify,
    decode_format_marker,
    encode_format_marker,
    join,
    key_for_name,
)
from ..storage._base import Kind, Storage, Version, Versioned

_TAIL_WINDOW = 64 * 1024
"""Bytes read from a log's end first when only its newest items are asked for."""
_REMEMBERED_LOGS = 1024
"""Logs whose state after this engine's last append is remembered (see ``append_lines``)."""

SYNCHRONOUS_UPDATE = (
    "update() needs a synchronous function: it runs in the writer thread with the directory lock held, "
    "so it cannot await; await what you need first, then pass a plain function"
)

MISSING: Any = object()
"""Marks an argument the caller did not pass (``None`` is a valid default)."""

CAS_ATTEMPTS = 64
"""Compare-and-swap attempts an unlocked ``update()`` makes before it gives up."""
_CAS_FIRST_BACKOFF = 0.002
_CAS_MAX_BACKOFF = 0.05
"""Seconds: the bounds of the jittered pause between two compare-and-swap attempts."""
_NEEDS_LOCK: Any = object()

logger = logging.getLogger("group_store")

T = TypeVar("T")


def report_skipped(operation: str, error: GroupStoreError) -> None:
    """Log (warning, logger ``group_store``) that ``operation`` skipped a bad entry and went on.

    The error's message names the key and the file.
    """
    logger.warning("group_store: %s skipped a bad entry: %s", operation, error)


def report_both(storage: Storage, directory: str, name: str) -> None:
    """Log (warning) that ``name`` is both a document and a log; ``load()`` reads the document.

    group_store never writes both (``save`` refuses a log, ``append`` a document); another
    writer did, e.g. Group Genie 0.0.2 (``.json``) and then 0.0.4 (``.jsonl``).
    """
    document, log = storage.locator(directory, name + DOCUMENT_SUFFIX), storage.locator(directory, name + LOG_SUFFIX)
    logger.warning("group_store: both %s and %s exist; load() reads the document, read() the log", document, log)


class boundary:  # noqa: N801 - used as a function: ``with boundary(key, storage, directory, name):``
    """Translate low-level errors into the GroupStoreError tree, naming ``key`` and the file
    (a GroupStoreError from below that lacks either gets them).

    The path is built only when an error is raised: this wraps every operation. A class,
    not a ``@contextmanager`` generator: it costs a third as much per use.
    """

    __slots__ = ("directory", "key", "name", "storage")

    def __init__(self, key: str | None, storage: Storage, directory: str, name: str = "") -> None:
        self.key, self.storage, self.directory, self.name = key, storage, directory, name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        if exc is None:
            return
        key, storage, directory, name = self.key, self.storage, self.directory, self.name
        if isinstance(exc, GroupStoreError):
            if (exc.key is None and key is not None) or exc.path is None:
                raise exc.located(key=key, path=storage.locator(directory, name)) from exc
            return
        if isinstance(exc, OSError):
            # A backend names a file other than the entry's own by its locator (an absolute path,
            # or a URL); a bare name is the OS's own relative spelling and says less than ours.
            name_given = exc.filename if isinstance(exc.filename, str) else ""
            where = name_given if name_given.startswith("/") or "://" in name_given else None
            path = where or str(storage.locator(directory, name))
            raise StorageError(exc.strerror or str(exc), key=key, path=path, errno=exc.errno) from exc


def check_format_marker(raw: bytes | None, path: str) -> int | None:
    """The format version ``raw`` (the marker's bytes, ``None`` if absent) names.

    Raises:
        FormatVersionError: for a marker newer than ``FORMAT_VERSION`` or one that is
            not a marker (a store cannot be read safely if its format is unknown).
    """
    if raw is None:
        return None
    version = decode_format_marker(raw)
    if version is None:
        raise FormatVersionError("the format marker is not one group_store writes; refusing the store", path=path)
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"the store is in format {version}, newer than format {FORMAT_VERSION} that this group_store knows;"
            " upgrade group_store",
            path=path,
        )
    return version


class Engine:
    """Store operations over a ``Storage``, with time from ``clock``.

    The format marker at the storage root is read once per engine (by its first read
    or write) and written by its first write if absent (``check_format``).
    """

    def __init__(self, storage: Storage, clock: Clock, *, durable: bool) -> None:
        self.storage = storage
        self.clock = clock
        self.durable = durable
        # Invariant: _format_read is True once the marker was read and found acceptable;
        # _format_marked once it is known to be on disk (read, or written by us).
        # Races between threads are benign: both read or write the same bytes.
        self._format_read = False
        self._format_marked = False
        # The version each log (and expiry index) had after this engine's last append to
        # it, known to end on a whole line. Read and changed only under the log's directory
        # lock; a stale token costs one tail read, never a wrong cut (append checks it).
        self._appended: dict[tuple[str, str], Version] = {}

    def check_format(self, *, writing: bool) -> None:
        """Refuse a store in an unknown format; before the first write, mark the store's format.

        Costs one read of the marker per engine (none after); a write to an unmarked
        store writes it once. Reads never write it.

        Raises:
            FormatVersionError: if the marker names a newer format or is not a marker.
            StorageError, UnsafeFileError: if the marker cannot be read or written.
        """
        if self._format_marked or (self._format_read and not writing):
            return
        with boundary(None, self.storage, "", FORMAT_MARKER):
            if not self._format_read:
                raw = self.storage.read("", FORMAT_MARKER)
                version = check_format_marker(raw, self.storage.locator("", FORMAT_MARKER))
                self._format_read = True
                self._format_marked = version is not None
            if writing and not self._format_marked:
                self.storage.write("", FORMAT_MARKER, encode_format_marker(), durable=self.durable)
                self._format_marked = True

    def location(self, directory: str, directory_keys: tuple[str, ...], key: str) -> Location:
        """Where ``key`` lives in ``directory``.

        Raises:
            InvalidKeyError: if ``key`` is empty or not a string.
        """
        return Location(directory, encode_segment(key), key, directory_keys)

    @contextmanager
    def lock(self, directory: str, key: str | None = None, *, timeout: float | None = None) -> Iterator[None]:
        """Hold the directory's lock (re-entrant per thread); every mutation below takes it itself.

        Raises:
            LockTimeoutError: if ``timeout`` seconds passed first (naming the lock file).
            StorageError, UnsafeFileError: if the lock cannot be taken (the acquire
                happens inside the error boundary, so a refusal is typed too, and
                names ``key``, the entry it is taken for, if given).
            FormatVersionError: if the store is in a format this library does not know
                (every mutation takes a lock first, so none writes into such a store).
        """
        with boundary(key, self.storage, directory):
            self.check_format(writing=True)
            held = self.storage.lock(directory, timeout=timeout)
            held.__enter__()
        try:
            yield
        finally:
            held.__exit__(None, None, None)

    # -- reads (no lock) ---------------------------------------------------

    def _sidecar_bindings(self, loc: Location, raw: bytes) -> dict[str, float | None]:
        try:
            return decode_sidecar(raw)
        except ValueError as exc:
            path = self.storage.locator(loc.directory, loc.sidecar)
            raise CorruptEntryError(f"malformed sidecar: {exc}", key=loc.key, path=path) from exc

    def read_document(self, loc: Location) -> tuple[bytes, float | None] | None:
        """The document's bytes and expiry, or ``None`` if there is none (expired ones included)."""
        # The document is read before its sidecar (read_many keeps the order): a
        # sidecar written after our data read still binds the bytes we hold.
        raw, sidecar = self.storage.read_many(loc.directory, (loc.document, loc.sidecar))
        if raw is None:
            return None
        if sidecar is None:
            return raw, None
        expiry = bound_expiry(self._sidecar_bindings(loc, sidecar), raw)
        return raw, None if expiry is UNBOUND else expiry  # type: ignore[return-value]

    def _live_document(self, loc: Location) -> tuple[bytes, float | None] | None:
        found = self.read_document(loc)
        if found is None or is_expired(found[1], self.clock()):
            return None
        return found

    def load(self, loc: Location) -> Any:
        """The entry's value: a document's JSON, or a log's items as a list.

        Raises:
            KeyNotFoundError: if missing or expired.
            CorruptEntryError: if the file is not valid JSON.
        """
        with boundary(loc.key, self.storage, loc.directory, loc.document):
            self.check_format(writing=False)
            found = self._live_document(loc)
            if found is not None:
                return decode_document(loc.key, None, found[0])  # the boundary names the document
            raw_log = self.storage.read(loc.directory, loc.log)
            if raw_log is not None:
                return decode_log(loc.key, self.storage.locator(loc.directory, loc.log), raw_log)
            raise self.not_found(loc)

    def not_found(self, loc: Location) -> KeyNotFoundError:
        """The error for a missing or expired ``loc``."""
        return KeyNotFoundError(
            "no such key (or it expired)", key=loc.key, path=self.storage.locator(loc.directory, loc.document)
        )

    def read_log(self, loc: Location, last: int | None) -> list[Any]:
        """A log's items, oldest first; only the newest ``last`` if given.

        Raises:
            KeyNotFoundError: if there is no log.
            EntryKindError: if the key holds a document.
            CorruptEntryError: naming the line, for an invalid line.
        """
        path = self.storage.locator(loc.directory, loc.log)
        with boundary(loc.key, self.storage, loc.directory, loc.log):
            self.check_format(writing=False)
            if last is not None:
                items = self._log_tail(loc, path, last)
                if items is not None:
                    return items
            raw = self.storage.read(loc.directory, loc.log)
            if raw is None:
                if self._live_document(loc) is not None:
                    document = self.storage.locator(loc.directory, loc.document)
                    raise EntryKindError("is a document, not a log", key=loc.key, path=document)
                raise self.not_found(loc)
            return decode_log(loc.key, path, raw, last=last)

    def _log_tail(self, loc: Location, path: str, last: int) -> list[Any] | None:
        """The newest ``last`` items read from the end of the log, growing the window
        until it holds them; ``None`` to fall back to a whole read (no log, or a bad
        line in a partial window, which the whole read reports with its true line number).

        A log only grows by appends or is replaced whole by rename, so one window read
        from one open file is a consistent suffix of that file.
        """
        window = _TAIL_WINDOW
        while True:
            found = self.storage.read_tail(loc.directory, loc.log, window)
            if found is None:
                return None
            raw, size = found
            if len(raw) == size:
                return decode_log(loc.key, path, raw, last=last)
            newline = raw.find(b"\n")
            # The window's first line is cut at its start (unless it begins on a line boundary,
            # which cannot be known): drop it. No newline at all: the window is inside one line.
            body = raw[newline + 1 :] if newline >= 0 else b""
            if len(split_log(body)[0]) >= last:
                try:
                    return decode_log(loc.key, path, body, last=last)
                except CorruptEntryError:
                    return None
            window *= 4

    def exists(self, loc: Location) -> bool:
        """True if the key holds a live document or a log."""
        with boundary(loc.key, self.storage, loc.directory, loc.document):
            self.check_format(writing=False)
            if self._live_document(loc) is not None:
                return True
            return self.storage.kind(loc.directory, loc.log) is Kind.FILE

    def expires_at(self, loc: Location) -> float | None:
        """The live entry's expiry (epoch seconds) or ``None``.

        Raises:
            KeyNotFoundError: if missing or expired.
        """
        with boundary(loc.key, self.storage, loc.directory, loc.document):
            self.check_format(writing=False)
            found = self._live_document(loc)
            if found is not None:
                return found[1]
            if self.storage.kind(loc.directory, loc.log) is Kind.FILE:
                return None
            raise self.not_found(loc)

    def decode_name(self, directory: str, name: str, key_file: str) -> str | None:
        """The key an encoded file or directory name stands for, or ``None`` if it is not ours
        (``key_for_name``: a hashed name needs its key file, read here only for hashed names).

        Raises:
            UnsafeFileError, OSError: if the key file cannot be read.
        """
        if not is_hashed_name(name):
            return key_for_name(name, None)
        return key_for_name(name, self.storage.read(directory, key_file))

    def keys(self, directory: str, directory_keys: tuple[str, ...]) -> list[str]:
        """The live entry keys in ``directory``, decoded and sorted.

        Reads no document, and a sidecar only where the expiry index cannot prove its
        entry live (the sweep's rule, ``to_read``): a document and a proven TTL entry are
        listed from their names, and a malformed one shows when it is read. An entry
        whose sidecar or key file must be read and cannot be (malformed, a symlink,
        unreadable) is left out and reported (``report_skipped``); reading it by its key
        raises the typed error.

        Not guaranteed: after an OS crash or power loss of a store that is not durable,
        the file system may keep a sidecar but lose the index record written before it
        (an index edited by hand can do the same); until that entry's older record is
        due, ``keys()`` may then list it although it expired (``load()`` says it is
        missing; the sweep verifies before it deletes). A torn last record, which only
        such damage leaves, makes the whole index untrusted until a sweep rewrites it.
        """
        with boundary(None, self.storage, directory):
            self.check_format(writing=False)
            contents = classify(self.storage.scan(directory))
        for name in sorted(contents.documents & contents.logs):
            report_both(self.storage, directory, name)
        # Only two kinds of name need a read: a hashed one (its key file) and a document
        # with a sidecar, or a sidecar that is not a regular file (its expiry), unless the
        # expiry index proves it live, as it does for the sweep (``to_read``: the index
        # lists every bound expiry no later than it is). The rest, nearly every name of a
        # listing, decode by themselves, outside any error boundary.
        timed = contents.sidecars | {
            name.removesuffix(SIDECAR_SUFFIX) for name in contents.unsafe if name.endswith(SIDECAR_SUFFIX)
        }
        now = self.clock()
        if timed & contents.documents:
            from .._format.sweep_plan import to_read  # only here: its dataclasses cost 5 ms to import

            try:
                index = self.read_index(directory, contents)
            except (StorageError, UnsafeFileError):
                index = None  # every sidecar is read, as without an index
            timed -= to_read(contents, index, now).trusted.keys()
        keys: list[str] = []
        for name in contents.documents | contents.logs:
            if not is_hashed_name(name) and (name not in timed or name in contents.logs):
                plain_key = decode_segment(name)
                if plain_key is not None:
                    keys.append(plain_key)
                continue
            key: str | None = None
            try:
                with boundary(None, self.storage, directory, name + KEY_SUFFIX):
                    key = self.decode_name(directory, name, name + KEY_SUFFIX)
                if key is None:
                    continue
                if name not in contents.logs and name in timed:
                    loc = Location(directory, name, key, directory_keys)
                    with boundary(key, self.storage, directory, loc.sidecar):
                        found = self.read_document(loc)
                    if found is None or is_expired(found[1], now):
                        continue
            except (CorruptEntryError, StorageError, UnsafeFileError) as exc:
                report_skipped("keys()", exc)
                continue
            keys.append(key)
        keys.sort()
        return keys

    def read_index(self, directory: str, contents: DirectoryContents) -> bytes | None:
        """The bytes of ``directory``'s expiry index, ``None`` if ``contents`` lists none.

        Raises:
            UnsafeFileError: if it is not a regular file. StorageError: if it cannot be read.
        """
        if EXPIRY_INDEX in contents.unsafe:
            path = self.storage.locator(directory, EXPIRY_INDEX)
            raise UnsafeFileError("expiry index is not a regular file; left as it is", path=path)
        if EXPIRY_INDEX not in contents.hidden:
            return None
        with boundary(None, self.storage, directory, EXPIRY_INDEX):
            return self.storage.read(directory, EXPIRY_INDEX)

    def child_directories(self, directory: str, contents: DirectoryContents, operation: str) -> list[tuple[str, str]]:
        """The sub-directories of ``directory`` that are narrowed sub-stores, as
        ``(encoded name, key)`` sorted by name: those whose names decode (``key_for_name``).

        The one rule for which directories the store enters (children, sweep, walks).
        A hashed directory whose key file cannot be read is left out and reported.
        """
        found: list[tuple[str, str]] = []
        for name in sorted(contents.directories):
            child = join(directory, name)
            try:
                with boundary(None, self.storage, child, DIRECTORY_KEY_FILE):
                    key = self.decode_name(child, name, DIRECTORY_KEY_FILE)
            except (StorageError, UnsafeFileError) as exc:
                report_skipped(operation, exc)
                continue
            if key is not None:
                found.append((name, key))
        return found

    def children(self, directory: str) -> list[str]:
        """The narrowed sub-store names in ``directory``, decoded and sorted (bad ones reported and left out)."""
        with boundary(None, self.storage, directory):
            self.check_format(writing=False)
            contents = classify(self.storage.scan(directory))
        return sorted(key for _, key in self.child_directories(directory, contents, "children()"))

    # -- mutations (each takes lock(loc.directory) itself) -------------------

    def _prepare(self, loc: Location) -> None:
        """Write key files for hashed names, so listings can give the original keys back."""
        self._prepare_directory(loc)
        if is_hashed_name(loc.name):
            self._write_key_file(loc.directory, loc.key_file, loc.key)

    def _prepare_directory(self, loc: Location) -> None:
        """Write the key files of hashed directory names on the way to ``loc``."""
        directory = ""
        for segment in loc.directory_keys:
            name = encode_segment(segment)
            directory = join(directory, name)
            if is_hashed_name(name):
                self._write_key_file(directory, DIRECTORY_KEY_FILE, segment)

    def _write_key_file(self, directory: str, name: str, key: str) -> None:
        data = key.encode("utf-8")
        if self.storage.read(directory, name) != data:
            self.storage.write(directory, name, data, durable=self.durable)

    def save(self, loc: Location, payload: bytes, expiry: float | None) -> None:
        """Replace the document with ``payload`` (canonical JSON) and bind ``expiry`` to it.

        Crash safety (every step reads as the old or the new entry, expiry included):

        - with an expiry, an index record goes first (early, never late), then the
          sidecar, binding both the bytes on disk now (to their current expiry) and
          ``payload``, then the data file;
        - without one, where a sidecar exists: if it binds ``payload`` to an expiry
          already (an earlier save of the same bytes), it is first rewritten to bind
          ``payload`` to none and the bytes on disk to their current expiry; then the
          data file is replaced and the sidecar removed;
        - without one and without a sidecar: one atomic replace.

        Locking: the directory lock is taken, except on a backend whose locks are not
        cheap (``Storage.locks_are_cheap``) for a plain save (see ``_save_unlocked``).

        Raises:
            EntryKindError: if the key holds a log.
            StorageError, UnsafeFileError: if the file system refuses; the old value stays.
        """
        if not self.storage.locks_are_cheap and self._save_unlocked(loc, payload, expiry):
            return
        with self.lock(loc.directory, loc.key):
            self._save(loc, payload, expiry)

    def _save_unlocked(self, loc: Location, payload: bytes, expiry: float | None) -> bool:
        """A plain save (no expiry, no sidecar, no log, a short name) without the lock;
        ``False`` (nothing written) for the others, which need it.

        One atomic replace has no intermediate state, so the lock orders nothing for it
        against other saves, updates (compare-and-swap: they see its new version) or a
        delete (a replace before or after the removal). What the lock still orders, and why
        those saves take it:

        - an expiry: the index record, sidecar and data are three writes whose order a
          concurrent save of the same key must not interleave (a sidecar of one save with
          the data of another could leave data that never expires);
        - an existing sidecar: the clearing save is two or three writes (as above);
        - a hashed name: its key file must be in place before the data, and a concurrent
          delete removes the key file after the data (unlocked, this data could outlive it).

        Accepted races (two writers of different kinds on one key at once, in different
        processes): an append creating the log between the kind check and the replace
        leaves both a document and a log (``load()`` reads the document and warns, as for
        any store another writer made so; ``delete()`` removes both); a save with an expiry
        of these very bytes between the check and the replace binds them to its expiry.
        """
        if expiry is not None or is_hashed_name(loc.name):
            return False
        storage = self.storage
        with boundary(loc.key, storage, loc.directory, loc.document):
            self.check_format(writing=True)
            log_kind, sidecar_kind = storage.kinds(loc.directory, (loc.log, loc.sidecar))
            self._refuse_log(loc, log_kind)
            if sidecar_kind is not None:
                return False
            self._prepare_directory(loc)
            storage.write(loc.directory, loc.document, payload, durable=self.durable)
        return True

    def _refuse_log(self, loc: Location, log_kind: Kind | None) -> None:
        if log_kind is not None:
            raise EntryKindError(
                "is a log; delete it before saving a document",
                key=loc.key,
                path=self.storage.locator(loc.directory, loc.log),
            )

    def _save(self, loc: Location, payload: bytes, expiry: float | None) -> None:
        """``save()``; the caller holds the lock."""
        storage = self.storage
        with boundary(loc.key, storage, loc.directory, loc.document):
            log_kind, sidecar_kind = storage.kinds(loc.directory, (loc.log, loc.sidecar))
            self._refuse_log(loc, log_kind)
            self._prepare(loc)
            if expiry is None and sidecar_kind is None:
                storage.write(loc.directory, loc.document, payload, durable=self.durable)
                return
            old, sidecar = storage.read_many(loc.directory, (loc.document, loc.sidecar))
            try:
                bindings = decode_sidecar(sidecar) if sidecar is not None else {}
            except ValueError:
                bindings = {}  # a malformed sidecar binds nothing; this save replaces it
            if expiry is None:
                self._save_clearing(loc, payload, old, bindings)
                return
            new_sidecar = encode_sidecar(next_bindings(bindings, old, payload, expiry))
            # The index record goes first: a crash after it leaves the index early, never late.
            self.append_lines(loc.directory, EXPIRY_INDEX, index_line(loc.name, expiry))
            storage.write(loc.directory, loc.sidecar, new_sidecar, durable=self.durable)
            if old != payload:
                storage.write(loc.directory, loc.document, payload, durable=self.durable)

    def _save_clearing(
        self, loc: Location, payload: bytes, old: bytes | None, bindings: dict[str, float | None]
    ) -> None:
        """The no-expiry save over an existing sidecar (see ``save``)."""
        storage = self.storage
        if old != payload:
            if binds_to_an_expiry(bindings, payload):
                # Without this step the new bytes would take that old expiry between the data
                # replace and the sidecar removal (and keep it if a crash fell there). Rejected:
                # removing the sidecar first, which would drop the expiry of the bytes on disk.
                unbound = encode_sidecar(next_bindings(bindings, old, payload, None))
                storage.write(loc.directory, loc.sidecar, unbound, durable=self.durable)
            storage.write(loc.directory, loc.document, payload, durable=self.durable)
        storage.remove(loc.directory, loc.sidecar, durable=self.durable)

    def save_many(self, items: list[tuple[Location, bytes, float | None]]) -> list[BaseException | None]:
        """``save()`` of several entries of one directory; one outcome per item.

        Plain ones (no expiry, no sidecar, no log, short name, the only item for
        its key) go to disk as one group commit; the rest go through ``save()``.
        Where locks are not cheap, the plain ones are written without the lock (as
        ``save()`` writes them) and each of the rest takes it alone.
        """
        if not items:
            return []
        if not self.storage.locks_are_cheap:
            return self._save_many(items, locked=False)
        with self.lock(items[0][0].directory):
            return self._save_many(items, locked=True)

    def _save_many(
        self, items: list[tuple[Location, bytes, float | None]], *, locked: bool
    ) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * len(items)
        plain: list[int] = []
        if items:
            directory = items[0][0].directory
            names = [name for loc, _, _ in items for name in (loc.log, loc.sidecar)]
            with boundary(None, self.storage, directory):
                if not locked:
                    self.check_format(writing=True)
                kinds = self.storage.kinds(directory, names)
            # A key given twice keeps the caller's order: only a key's single item may skip ahead.
            seen: dict[str, int] = {}
            for loc, _, _ in items:
                seen[loc.name] = seen.get(loc.name, 0) + 1
            for index, (loc, payload, expiry) in enumerate(items):
                quiet = kinds[2 * index] is None and kinds[2 * index + 1] is None
                if expiry is None and quiet and seen[loc.name] == 1 and not is_hashed_name(loc.name):
                    plain.append(index)
                    continue
                try:
                    if locked:
                        self._save(loc, payload, expiry)
                    else:
                        with self.lock(directory, loc.key):
                            self._save(loc, payload, expiry)
                except Exception as exc:
                    outcomes[index] = exc
            if plain:
                batch = [(items[i][0].document, items[i][1]) for i in plain]
                with boundary(None, self.storage, directory):
                    # One directory for the whole batch: its key files are written once.
                    self._prepare_directory(items[plain[0]][0])
                    results = self.storage.write_many(directory, batch, durable=self.durable)
                for index, result in zip(plain, results, strict=True):
                    outcomes[index] = _translated(result, items[index][0], self.storage)
        return outcomes

    def append(self, loc: Location, lines: bytes, count: int, max_items: int | None) -> None:
        """Append ``count`` encoded lines to the log, keeping at most ``max_items`` (oldest pruned).

        Raises:
            EntryKindError: if the key holds a document.
        """
        storage = self.storage
        with self.lock(loc.directory, loc.key), boundary(loc.key, storage, loc.directory, loc.log):
            # A log still as this engine's last append left it needs no other check: that
            # append checked there was no document and wrote the key files, and while the
            # log exists no group_store writer makes a document beside it (save refuses)
            # nor removes its key files (delete removes the log too, changing its state).
            if max_items is None and self._append_known(loc.directory, loc.log, lines):
                return
            if storage.kind(loc.directory, loc.document) is not None:
                # Names the file that is there (the document), not the log that is not.
                path = storage.locator(loc.directory, loc.document)
                raise EntryKindError("is a document, not a log; delete it before appending", key=loc.key, path=path)
            self._prepare(loc)
            if max_items is None:
                self.append_lines(loc.directory, loc.log, lines)
                return
            raw = storage.read(loc.directory, loc.log)
            existing, whole = split_log(raw or b"")
            if len(existing) + count > max_items:
                kept = (existing + lines.splitlines())[-max_items:] if max_items else []
                storage.write(loc.directory, loc.log, b"".join(line + b"\n" for line in kept), durable=self.durable)
                self._appended.pop((loc.directory, loc.log), None)
                return
            keep = None if raw is None or whole == len(raw) else whole
            self._remember(
                loc.directory, loc.log, storage.append(loc.directory, loc.log, lines, keep=keep, durable=self.durable)
            )

    def append_lines(self, directory: str, name: str, lines: bytes) -> None:
        """Append whole JSON lines to ``name``, cutting a torn last line first (a crash
        mid-append left it; left in place it would become a corrupt middle line).

        The caller holds ``lock(directory)``. Torn-line repair is JSON Lines logic, so it
        lives here, not in the backend: the backend cuts where it is told (``keep``).
        Cost: after this engine's own append the log is known to end whole; the next
        append passes that version as ``if_version``, which the backend checks with the
        status it reads anyway, so a loop of appends reads no tail. Only a log in an
        unknown state (first append, another writer since) has its last byte read.

        Raises:
            UnsafeFileError, OSError: as ``Storage.append``.
        """
        storage = self.storage
        if self._append_known(directory, name, lines):
            return
        keep: int | None = None
        tail = storage.read_tail(directory, name, 1)
        if tail is not None and not ends_whole(tail.data):
            _, keep = split_log(storage.read(directory, name) or b"")
        self._remember(directory, name, storage.append(directory, name, lines, keep=keep, durable=self.durable))

    def _append_known(self, directory: str, name: str, lines: bytes) -> bool:
        """Append if the file is still as this engine's last append left it; whether it did.

        A miss forgets the version, so the caller's own attempt is not repeated.
        """
        known = self._appended.pop((directory, name), None)
        if known is None:
            return False
        token = self.storage.append(directory, name, lines, keep=None, durable=self.durable, if_version=known)
        if token is None:
            return False
        self._appended[directory, name] = token
        return True

    def _remember(self, directory: str, name: str, version: Version | None) -> None:
        if version is None:
            return
        if len(self._appended) >= _REMEMBERED_LOGS:
            self._appended.clear()
        self._appended[(directory, name)] = version

    def delete(self, loc: Location) -> bool:
        """Remove the entry; ``True`` if a live document or a log was removed.

        The data goes before its sidecar: a crash between them leaves an orphan
        sidecar (removed by sweep), never an un-expiring copy of the data.
        """
        storage = self.storage
        with self.lock(loc.directory, loc.key), boundary(loc.key, storage, loc.directory, loc.document):
            live = self._live_document(loc) is not None
            durable = self.durable
            removed_document = storage.remove(loc.directory, loc.document, durable=durable)
            storage.remove(loc.directory, loc.sidecar, durable=durable)
            removed_log = storage.remove(loc.directory, loc.log, durable=durable)
            if is_hashed_name(loc.name):
                storage.remove(loc.directory, loc.key_file, durable=durable)
            return (live and removed_document) or removed_log

    def update(
        self,
        loc: Location,
        function: Callable[[Any], Any],
        default: Any,
        expiry: float | object | None,
    ) -> Any:
        """Apply ``function`` to the current value and save the result; return it.

        A missing or expired entry starts from a fresh copy of ``default``. The
        entry keeps its expiry unless ``expiry`` (an epoch time or ``None``) is given.

        Raises:
            KeyNotFoundError: if the entry is missing and no default was given.
            InvalidArgumentError: if ``function`` returned an awaitable (nothing is
                written; a coroutine is closed first).
            SerializationError: if the result cannot be stored (nothing is written).
            StorageError: errno EBUSY, where locks are not cheap, when every one of
                ``CAS_ATTEMPTS`` compare-and-swap attempts lost to another writer.
            Whatever ``function`` raises (nothing is written).

        Locking: under the directory lock ``function`` runs once. Where locks are not
        cheap (``Storage.locks_are_cheap``) an entry with no sidecar and no log, under a
        short name, given no new expiry, is updated by compare-and-swap instead: read the
        document and its version, apply ``function``, write only if the document is still
        at that version (or, for a new entry, still absent), else start again. Then
        ``function`` may run more than once (it must not have other effects), and the
        update does not wait for a holder of ``lock()``: a read-modify-write that must
        not race it is written as ``update()`` too. The rest take the lock (as ``save``).
        """
        unbound = expiry is MISSING or expiry is None
        if not self.storage.locks_are_cheap and unbound and not is_hashed_name(loc.name):
            outcome = self._update_swapping(loc, function, default)
            if outcome is not _NEEDS_LOCK:
                return outcome
        with self.lock(loc.directory, loc.key):
            return self._update(loc, function, default, expiry)

    def swap(self, loc: Location, compute: Callable[[Versioned | None], tuple[bytes | None, T]], operation: str) -> T:
        """A compare-and-swap loop on ``loc``'s document, for backends whose locks are not cheap.

        Each attempt reads the document and its version, calls ``compute(found)`` (``None``:
        no document) for the bytes to write and the result, and writes them only if the
        document is still at that version (or, for a new one, still absent); else it waits
        a jittered, growing pause and starts again. Bytes of ``None`` write nothing and
        return the result at once. ``compute`` may run more than once: it must have no
        other effects.

        Raises:
            StorageError: errno EBUSY, naming the key and the file, once ``CAS_ATTEMPTS``
                attempts in a row lost to other writers (nothing written by this call).
            Whatever ``compute`` raises (nothing is written).
        """
        storage = self.storage
        delay = _CAS_FIRST_BACKOFF
        for _ in range(CAS_ATTEMPTS):
            with boundary(loc.key, storage, loc.directory, loc.document):
                self.check_format(writing=True)
                found = storage.read_versioned(loc.directory, loc.document)
            payload, result = compute(found)
            if payload is None:
                return result
            with boundary(loc.key, storage, loc.directory, loc.document):
                self._prepare_directory(loc)
                version = None if found is None else found.version
                if storage.write_if(loc.directory, loc.document, payload, version=version, durable=self.durable):
                    return result
            # Jittered, growing backoff: contenders that collided spread out instead of colliding again.
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, _CAS_MAX_BACKOFF)
        raise StorageError(
            f"{operation} lost {CAS_ATTEMPTS} compare-and-swap attempts in a row to other writers",
            key=loc.key,
            path=storage.locator(loc.directory, loc.document),
            errno=errno.EBUSY,
        )

    def _update_swapping(self, loc: Location, function: Callable[[Any], Any], default: Any) -> Any:
        """``update()`` as a compare-and-swap loop (``swap``); ``_NEEDS_LOCK`` (nothing
        written) if the entry has a sidecar or a log, which the locked update handles.

        The kinds are checked again on every attempt: a sidecar or log made since the
        last one sends the update to the lock. Accepted race: a save with an expiry of
        the very bytes on disk rewrites only the sidecar, so a swap after it succeeds and
        its result is unbound (no expiry), as if the update had followed a plain save.
        """
        storage = self.storage
        path = storage.locator(loc.directory, loc.document)

        def compute(found: Versioned | None) -> tuple[bytes | None, Any]:
            with boundary(loc.key, storage, loc.directory, loc.document):
                log_kind, sidecar_kind = storage.kinds(loc.directory, (loc.log, loc.sidecar))
                if log_kind is not None or sidecar_kind is not None:
                    return None, _NEEDS_LOCK
                current = self._current(loc, path, None if found is None else found.data, default)
            result, payload = self._applied(loc, path, function, current)
            return payload, result

        return self.swap(loc, compute, "update()")

    def _current(self, loc: Location, path: str, data: bytes | None, default: Any) -> Any:
        """The value ``update()`` hands its function: the stored ``data`` decoded, or for a
        missing entry a fresh copy of ``default`` (so a function that mutates its argument
        never mutates the caller's default).

        Raises:
            KeyNotFoundError: for a missing entry and no default. CorruptEntryError: as decoding.
        """
        if data is None:
            if default is MISSING:
                raise self.not_found(loc)
            return orjson.loads(encode_document(loc.key, default))
        return decode_document(loc.key, path, data)

    def _applied(self, loc: Location, path: str, function: Callable[[Any], Any], current: Any) -> tuple[Any, bytes]:
        """``function(current)`` and its encoding, refusing an awaitable (see ``update``)."""
        result = function(current)
        # collections.abc and types rather than inspect, which costs 6 ms to import.
        if isinstance(result, Awaitable):
            # An async callable that iscoroutinefunction() cannot see (a callable object, a
            # lambda returning a coroutine). Closed so it never warns "never awaited".
            if isinstance(result, CoroutineType):
                result.close()
            raise InvalidArgumentError(SYNCHRONOUS_UPDATE, key=loc.key, path=path)
        with located(path=path):
            return result, encode_document(loc.key, result)

    def _update(
        self,
        loc: Location,
        function: Callable[[Any], Any],
        default: Any,
        expiry: float | object | None,
    ) -> Any:
        path = self.storage.locator(loc.directory, loc.document)
        with boundary(loc.key, self.storage, loc.directory, loc.document):
            found = self._live_document(loc)
            current = self._current(loc, path, None if found is None else found[0], default)
        current_expiry = None if found is None else found[1]
        result, payload = self._applied(loc, path, function, current)
        self._save(loc, payload, current_expiry if expiry is MISSING else expiry)  # type: ignore[arg-type]
        return result


def _translated(error: BaseException | None, loc: Location, storage: Storage) -> BaseException | None:
    """The error ``boundary()`` would have raised for one item of a batch."""
    if error is None:
        return None
    try:
        with boundary(loc.key, storage, loc.directory, loc.document):
            raise error
    except BaseException as translated:
        return translated
