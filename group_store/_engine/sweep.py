"""The sweep: delete expired entries, guided by each directory's expiry index.

It takes each directory's lock itself, one directory at a time (never two at once,
so no lock-order deadlock), and reads each candidate's expiry again under that
lock, so an entry re-saved with a later expiry while it ran is never removed.

Ownership: a sweep deletes or rewrites only what the store can prove it wrote,
and only in directories whose names decode (``Engine.child_directories``, the
rule listings use; it never descends into any other): files named exactly as
``temp_name`` makes them, sidecars exactly as ``encode_sidecar`` writes them whose
names decode (removed, or rewritten without bindings of bytes no longer on disk),
key files of hashed names that hold their key (``is_own_key_file``), the index (a
regular file named ``.expiry.jsonl``), and the data of an entry such a sidecar
binds to a past time. Everything else is left where it is.

Bad entries (a malformed or symlinked sidecar or index, an unreadable key file or
directory) are skipped and reported (a warning on logger ``group_store`` naming the
key and the file); the sweep carries on. A refusal to delete or write (the file
system refusing a change the sweep decided on) is raised.
"""

from __future__ import annotations

from contextlib import ExitStack

from .._errors import CorruptEntryError, StorageError, UnsafeFileError
from .._format.expiry import (
    SidecarVerdict,
    decode_sidecar,
    encode_sidecar,
    index_needs_compaction,
    judge_sidecar,
    live_bindings,
    parse_index,
    render_index,
)
from .._format.keys import is_hashed_name
from .._format.layout import (
    EXPIRY_INDEX,
    KEY_SUFFIX,
    DirectoryContents,
    Location,
    classify,
    is_own_key_file,
    is_temp_name,
)
from .._format.layout import join as join_directory
from ..storage._base import Kind
from .engine import Engine, boundary, report_skipped

_BAD_ENTRY = (CorruptEntryError, StorageError, UnsafeFileError)
_OPERATION = "sweep()"


def sweep(engine: Engine, directory: str, directory_keys: tuple[str, ...]) -> int:
    """Delete expired entries and the store's crash leftovers (orphaned or stale
    sidecars, orphaned key files, temporary files) in ``directory`` and below;
    return the number of expired entries removed.

    Each directory is swept under its lock, and each entry's expiry is read
    again there, so an entry re-saved with a later expiry is never removed.
    A directory that cannot be listed or locked is reported and skipped (with
    what is below it).

    Raises:
        StorageError: if the file system refuses a removal or the index rewrite.
    """
    storage = engine.storage
    removed = 0
    pending = [(directory, directory_keys)]
    while pending:
        current, keys = pending.pop()
        with ExitStack() as held:
            try:
                with boundary(None, storage, current):
                    if current and storage.kind(*_split(current)) is not Kind.DIRECTORY:
                        continue  # removed meanwhile
                held.enter_context(engine.lock(current))
                with boundary(None, storage, current):
                    contents = classify(storage.scan(current))
            except (StorageError, UnsafeFileError) as exc:
                report_skipped(_OPERATION, exc)
                continue
            removed += _sweep_directory(engine, current, keys, contents)
            children = engine.child_directories(current, contents, _OPERATION)
        pending.extend((join_directory(current, name), (*keys, key)) for name, key in reversed(children))
    return removed


def _sweep_directory(engine: Engine, directory: str, keys: tuple[str, ...], contents: DirectoryContents) -> int:
    """Sweep one directory (its lock held), reading only the sidecars the index
    says may have expired, plus any sidecar the index does not list. Returns the
    count of expired entries removed."""
    now = engine.clock()
    with boundary(None, engine.storage, directory):
        for name in sorted(contents.hidden):
            if is_temp_name(name):
                engine.storage.remove(directory, name, durable=engine.durable)
    index_raw, index_usable = _read_index(engine, directory, contents)
    earliest, lines = parse_index(index_raw or b"")
    # Trusted records: not yet due, for a sidecar beside its document (an orphan is judged at once).
    beside_documents = contents.sidecars & contents.documents
    kept = {name: when for name, when in earliest.items() if when > now and name in beside_documents}
    left = set(kept)  # sidecars still on disk when this directory is done
    removed = 0
    unlisted_found = False
    for name in sorted(contents.sidecars - kept.keys()):
        verdict, expiry, compacted = _judge(engine, directory, keys, name, now)
        removed += verdict is SidecarVerdict.EXPIRED
        if _act_on(engine, Location(directory, name, name, keys), verdict, compacted):
            continue
        left.add(name)
        if verdict is SidecarVerdict.LIVE and expiry is not None:
            unlisted_found |= name not in earliest
            kept[name] = expiry
        elif name in earliest:
            kept[name] = earliest[name]  # unjudged: its record stays, so it is looked at again
    _remove_orphan_key_files(engine, directory, contents, left)
    if index_usable:
        _update_index(engine, directory, index_raw, kept, index_needs_compaction(lines, len(kept)) or unlisted_found)
    return removed


def _act_on(engine: Engine, loc: Location, verdict: SidecarVerdict, compacted: bytes | None) -> bool:
    """Carry out ``verdict`` on the entry's files; ``True`` if its sidecar is gone.

    A LIVE sidecar is rewritten as ``compacted`` if given (its bindings of bytes no
    longer on disk dropped; one atomic replace that keeps the document's own binding).
    """
    storage, durable = engine.storage, engine.durable
    with boundary(None, storage, loc.directory, loc.sidecar):
        if verdict is SidecarVerdict.EXPIRED:
            # The data goes before its sidecar: a crash between leaves an orphan, never a live copy.
            storage.remove(loc.directory, loc.document, durable=durable)
            storage.remove(loc.directory, loc.sidecar, durable=durable)
            if is_hashed_name(loc.name):
                storage.remove(loc.directory, loc.key_file, durable=durable)  # proven: the name decoded through it
            return True
        if verdict in (SidecarVerdict.ORPHAN, SidecarVerdict.STALE):
            storage.remove(loc.directory, loc.sidecar, durable=durable)
            return True
        if verdict is SidecarVerdict.LIVE and compacted is not None:
            storage.write(loc.directory, loc.sidecar, compacted, durable=durable)
    return False


def _update_index(engine: Engine, directory: str, raw: bytes | None, kept: dict[str, float], rewrite: bool) -> None:
    """Remove the index once it lists nothing, or rewrite it as ``kept`` if ``rewrite``."""
    with boundary(None, engine.storage, directory, EXPIRY_INDEX):
        if not kept and raw is not None:
            engine.storage.remove(directory, EXPIRY_INDEX, durable=engine.durable)
        elif kept and rewrite:
            # Also rewritten when sidecars the index did not list were found, so the next sweep skips them.
            engine.storage.write(directory, EXPIRY_INDEX, render_index(kept), durable=engine.durable)


def _judge(
    engine: Engine, directory: str, keys: tuple[str, ...], name: str, now: float
) -> tuple[SidecarVerdict, float | None, bytes | None]:
    """The verdict on sidecar ``name`` (FOREIGN for one whose name does not decode;
    a bad entry is reported and judged FOREIGN, so it is left as it is), the expiry,
    and for a LIVE sidecar that also binds bytes no longer on disk, its compacted bytes.

    The lock is held: no save is between its sidecar and its data write, so the
    binding of the document on disk is the only live one (``live_bindings``)."""
    storage = engine.storage
    loc = Location(directory, name, name, keys)
    try:
        with boundary(None, storage, directory, loc.key_file):
            key = engine.decode_name(directory, name, loc.key_file)
        if key is None:
            return SidecarVerdict.FOREIGN, None, None
        loc = Location(directory, name, key, keys)
        with boundary(key, storage, directory, loc.sidecar):
            document, sidecar = storage.read_many(directory, (loc.document, loc.sidecar))
    except _BAD_ENTRY as exc:
        report_skipped(_OPERATION, exc)
        return SidecarVerdict.FOREIGN, None, None
    if sidecar is None:
        return SidecarVerdict.FOREIGN, None, None  # gone meanwhile (we hold the lock: someone else's doing)
    verdict, expiry = judge_sidecar(sidecar, document, now)
    if verdict is SidecarVerdict.FOREIGN:
        foreign = CorruptEntryError(
            "sidecar not written by the store; left as it is", key=key, path=storage.locator(directory, loc.sidecar)
        )
        report_skipped(_OPERATION, foreign)
    compacted = None
    if verdict is SidecarVerdict.LIVE and document is not None:
        compacted = encode_sidecar(live_bindings(decode_sidecar(sidecar), document))
        compacted = None if compacted == sidecar else compacted
    return verdict, expiry, compacted


def _read_index(engine: Engine, directory: str, contents: DirectoryContents) -> tuple[bytes | None, bool]:
    """The index bytes (``None`` if absent) and whether the sweep may replace or remove it.

    A non-regular or unreadable index is reported and left alone; every sidecar is
    then checked, which is what a missing index means anyway.
    """
    if EXPIRY_INDEX in contents.unsafe:
        path = engine.storage.locator(directory, EXPIRY_INDEX)
        report_skipped(_OPERATION, UnsafeFileError("expiry index is not a regular file; left as it is", path=path))
        return None, False
    if EXPIRY_INDEX not in contents.hidden:
        return None, True
    try:
        with boundary(None, engine.storage, directory, EXPIRY_INDEX):
            return engine.storage.read(directory, EXPIRY_INDEX), True
    except (StorageError, UnsafeFileError) as exc:
        report_skipped(_OPERATION, exc)
        return None, False


def _remove_orphan_key_files(engine: Engine, directory: str, contents: DirectoryContents, sidecars: set[str]) -> None:
    """Remove key files the store wrote (``is_own_key_file``) that no entry or sidecar needs."""
    storage = engine.storage
    for name in sorted(contents.key_files - contents.documents - contents.logs - sidecars):
        if not is_hashed_name(name):
            continue  # never the store's (server.key): it writes key files for hashed names only
        key_file = name + KEY_SUFFIX
        try:
            with boundary(None, storage, directory, key_file):
                raw = storage.read(directory, key_file)
        except (StorageError, UnsafeFileError) as exc:
            report_skipped(_OPERATION, exc)
            continue
        if raw is not None and is_own_key_file(name, raw):
            with boundary(None, storage, directory, key_file):
                storage.remove(directory, key_file, durable=engine.durable)


def _split(directory: str) -> tuple[str, str]:
    parent, _, name = directory.rpartition("/")
    return parent, name
