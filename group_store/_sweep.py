"""The sweep: delete expired entries, guided by each directory's expiry index.

It takes each directory's lock itself, one directory at a time (never two at once,
so no lock-order deadlock), and reads each candidate's expiry again under that
lock, so an entry re-saved with a later expiry while it ran is never removed.
"""

from __future__ import annotations

from ._engine import Engine, boundary
from ._errors import CorruptEntryError
from ._expiry import index_needs_compaction, is_expired, parse_index, render_index
from ._layout import EXPIRY_INDEX, KEY_SUFFIX, Location, classify, is_temp_name, join
from ._storage import Kind


def sweep(engine: Engine, directory: str, directory_keys: tuple[str, ...]) -> int:
    """Delete expired entries, orphaned sidecars and key files, and leftover
    temporary files in ``directory`` and below; return the number of expired entries removed.

    Each directory is swept under its lock, and each entry's expiry is read
    again there, so an entry re-saved with a later expiry is never removed.
    """
    removed = 0
    pending = [(directory, directory_keys)]
    while pending:
        current, keys = pending.pop()
        with boundary(None, engine.storage, current):
            if current and engine.storage.kind(*_split(current)) is not Kind.DIRECTORY:
                continue  # removed meanwhile, or not ours to enter
            with engine.lock(current):
                count, subdirectories = _sweep_directory(engine, current, keys)
        removed += count
        pending.extend((join(current, name), (*keys, name)) for name in subdirectories)
    return removed


def _sweep_directory(engine: Engine, directory: str, directory_keys: tuple[str, ...]) -> tuple[int, set[str]]:
    """Sweep one directory (its lock held), reading only the sidecars the index
    says may have expired, plus any sidecar the index does not list. Returns the
    count removed and the sub-directory names."""
    storage = engine.storage
    contents = classify(storage.scan(directory))
    now = engine.clock()
    for name in contents.hidden:
        if is_temp_name(name):
            storage.remove(directory, name, durable=engine.durable)
    index_raw = storage.read(directory, EXPIRY_INDEX) if EXPIRY_INDEX in contents.hidden else None
    earliest, lines = parse_index(index_raw or b"")
    sidecars = contents.sidecars
    kept = {name: when for name, when in earliest.items() if when > now and name in sidecars}
    removed = 0
    checked = False
    for name in sidecars - kept.keys():
        checked = True
        loc = Location(directory, name, name, directory_keys)
        if name not in contents.documents:
            storage.remove(directory, loc.sidecar, durable=engine.durable)
            continue
        try:
            found = engine.read_document(loc)
        except CorruptEntryError:
            continue  # a malformed sidecar is left for a person to inspect, never guessed at
        if found is not None and is_expired(found[1], now):
            storage.remove(directory, loc.document, durable=engine.durable)
            storage.remove(directory, loc.sidecar, durable=engine.durable)
            if name in contents.key_files:
                storage.remove(directory, loc.key_file, durable=engine.durable)
            removed += 1
        elif found is not None and found[1] is not None:
            kept[name] = found[1]
    for name in contents.key_files - contents.documents - contents.logs:
        storage.remove(directory, name + KEY_SUFFIX, durable=engine.durable)
    if not kept and index_raw is not None:
        storage.remove(directory, EXPIRY_INDEX, durable=engine.durable)
    elif kept and (index_needs_compaction(lines, len(kept)) or (checked and len(kept) > len(earliest))):
        # Also rewritten when sidecars the index did not list were found, so the next sweep skips them.
        storage.write(directory, EXPIRY_INDEX, render_index(kept), durable=engine.durable)
    return removed, contents.directories


def _split(directory: str) -> tuple[str, str]:
    parent, _, name = directory.rpartition("/")
    return parent, name
