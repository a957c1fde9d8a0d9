"""What a sweep removes and rewrites in one directory: a pure decision, no I/O.

The sweep (``group_store._engine.sweep``) reads, and then carries out the plan made
here; its dry run reads the same and reports the plan instead. Both therefore agree
on what "expired" and "leftover" mean. Two steps, because what must be read depends
on the index:

1. ``to_read(contents, index, now)``: the sidecars to judge (every one the index does
   not vouch for as not yet due beside its document) and the key files that may be
   orphans.
2. ``plan_directory(contents, index, now, sidecars, key_files)``: given what was read,
   the plan.

Ownership (what the sweep may touch) is the module docstring of the sweep: names in
the exact temporary pattern, sidecars in the store's exact form whose names decode,
key files the store wrote for hashed names, and the index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .expiry import (
    SidecarVerdict,
    decode_sidecar,
    encode_sidecar,
    index_needs_compaction,
    judge_sidecar,
    live_bindings,
    parse_index,
    render_index,
)
from .keys import is_hashed_name
from .layout import DirectoryContents, is_own_key_file, is_temp_name, key_for_name


@dataclass(frozen=True)
class SidecarRead:
    """What the sweep read for one sidecar ``NAME.meta.json`` (one snapshot, under the lock).

    Attributes:
        sidecar: Its bytes (``None``: gone meanwhile).
        document: The bytes of ``NAME.json`` (``None``: absent).
        key_file: The bytes of ``NAME.key`` for a hashed name (``None``: absent or not read).
    """

    sidecar: bytes | None
    document: bytes | None
    key_file: bytes | None = None


@dataclass(frozen=True)
class Expired:
    """An expired entry: its data file goes first, then its sidecar, then (hashed) its key file."""

    name: str
    key: str
    expiry: float


@dataclass(frozen=True)
class DirectoryPlan:
    """What a sweep does in one directory, in this order.

    Attributes:
        temps: Temporary files (full names) to remove.
        expired: Expired entries to remove, sorted by key.
        dropped_sidecars: Stems whose sidecar goes (an orphan, or binding nothing on disk).
        rewritten_sidecars: Stems and the compacted bytes their live sidecar is rewritten to.
        foreign_sidecars: Stems and keys of sidecars not in the store's form (reported, kept).
        key_files: Stems whose orphan key file goes.
        index: ``None`` to leave the index alone, ``b""`` to remove it, else its new bytes.
    """

    temps: tuple[str, ...] = ()
    expired: tuple[Expired, ...] = ()
    dropped_sidecars: tuple[str, ...] = ()
    rewritten_sidecars: tuple[tuple[str, bytes], ...] = ()
    foreign_sidecars: tuple[tuple[str, str], ...] = ()
    key_files: tuple[str, ...] = ()
    index: bytes | None = None


@dataclass(frozen=True)
class ToRead:
    """What ``plan_directory`` needs read: sidecar stems to judge, key-file stems to check."""

    sidecars: tuple[str, ...]
    key_files: tuple[str, ...]
    trusted: dict[str, float] = field(default_factory=dict)


SIDECAR_ROUNDING = 1e-6
"""A sidecar's expiry is the exact one rounded to the microsecond: at most this much earlier."""

ParsedIndex = tuple[dict[str, float], int]
"""What ``parse_index`` returns: the earliest time per name, and the number of lines."""


def is_torn(index: bytes | None) -> bool:
    """True for an index whose last record is cut short (damage: the store's appends are whole or undone)."""
    return index is not None and index != b"" and not index.endswith(b"\n")


def to_read(
    contents: DirectoryContents, index: bytes | None, now: float, *, parsed: ParsedIndex | None = None
) -> ToRead:
    """The sidecars to judge and the key files that may be orphans, for ``contents``.

    ``index`` is the expiry index's bytes (``None``: absent or unusable). A record not
    yet due, for a sidecar beside its document, is trusted (that sidecar is not read);
    an orphan sidecar is judged at once whatever the index says.
    """
    earliest, _ = parsed or parse_index(index or b"")
    beside_documents = contents.sidecars & contents.documents
    # A record holds the exact float; a sidecar holds it as an ISO time rounded to the
    # nearest microsecond, up to half a microsecond (and a float step) before the record.
    # A record proves its entry live only that much ahead of now; without the margin
    # keys() listed an entry load() calls expired (tests/test_fast_paths.py).
    horizon = now + SIDECAR_ROUNDING + abs(now) * 2**-50
    # A torn last record: the index was damaged (the store's appends are whole or undone),
    # so it may be late as well as short; none of it proves anything.
    trusted = (
        {}
        if is_torn(index)
        else {name: when for name, when in earliest.items() if when > horizon and name in beside_documents}
    )
    sidecars = tuple(sorted(contents.sidecars - trusted.keys()))
    # A superset of the orphans (a stem whose sidecar stays is excluded by the plan): such
    # stems are rare, and reading them up front keeps the plan a single pure step.
    key_files = tuple(
        sorted(name for name in contents.key_files - contents.documents - contents.logs if is_hashed_name(name))
    )
    return ToRead(sidecars, key_files, trusted)


def plan_directory(
    contents: DirectoryContents,
    index: bytes | None,
    index_usable: bool,
    now: float,
    sidecars: Mapping[str, SidecarRead | None],
    key_files: Mapping[str, bytes | None],
    *,
    parsed: ParsedIndex | None = None,
) -> DirectoryPlan:
    """The sweep of one directory, given what was read for ``to_read(contents, index, now)``.

    ``sidecars`` maps each stem to judge to its ``SidecarRead`` (``None``: it could not
    be read; the entry is left alone and its index record kept, so it is looked at
    again). ``key_files`` maps each key-file stem to its bytes (``None``: unreadable or
    absent). ``index_usable`` is false for an index that is not a regular file or could
    not be read: it is then neither rewritten nor removed. ``parsed``: ``parse_index(index)``
    if the caller has it already (it is the costly step: one parse per directory suffices).
    """
    parsed = parsed or parse_index(index or b"")
    wanted = to_read(contents, index, now, parsed=parsed)
    earliest, lines = parsed
    kept = dict(wanted.trusted)
    left = set(kept)  # sidecars still on disk once the plan is carried out
    expired: list[Expired] = []
    dropped: list[str] = []
    rewritten: list[tuple[str, bytes]] = []
    foreign: list[tuple[str, str]] = []
    unlisted_found = False
    for name in wanted.sidecars:
        verdict, key, expiry, compacted = _judge(name, sidecars.get(name), now)
        if verdict is SidecarVerdict.EXPIRED and key is not None and expiry is not None:
            expired.append(Expired(name, key, expiry))
            continue
        if verdict in (SidecarVerdict.ORPHAN, SidecarVerdict.STALE):
            dropped.append(name)
            continue
        left.add(name)
        if verdict is SidecarVerdict.FOREIGN and key is not None:
            foreign.append((name, key))
        if verdict is SidecarVerdict.LIVE and expiry is not None:
            if compacted is not None:
                rewritten.append((name, compacted))
            unlisted_found |= name not in earliest
            kept[name] = expiry
        elif name in earliest:
            kept[name] = earliest[name]  # unjudged: its record stays, so it is looked at again
    orphans = tuple(
        name
        for name in wanted.key_files
        if name not in left and (raw := key_files.get(name)) is not None and is_own_key_file(name, raw)
    )
    index_action: bytes | None = None
    if index_usable:
        if not kept and index is not None:
            index_action = b""
        elif kept and (index_needs_compaction(lines, len(kept)) or unlisted_found or is_torn(index)):
            # Also rewritten when sidecars the index did not list were found, so the next sweep
            # skips them, and when torn, so the next one can trust it again.
            index_action = render_index(kept)
    return DirectoryPlan(
        temps=tuple(sorted(name for name in contents.hidden if is_temp_name(name))),
        expired=tuple(sorted(expired, key=lambda item: item.key)),
        dropped_sidecars=tuple(dropped),
        rewritten_sidecars=tuple(rewritten),
        foreign_sidecars=tuple(foreign),
        key_files=orphans,
        index=index_action,
    )


def _judge(
    name: str, read: SidecarRead | None, now: float
) -> tuple[SidecarVerdict, str | None, float | None, bytes | None]:
    """The verdict on sidecar ``name``, its key, the expiry and (LIVE, binding bytes no
    longer on disk) its compacted bytes. FOREIGN for a name that does not decode, a
    sidecar that could not be read or is gone, or one not in the store's form (with its
    key: only that case is reported)."""
    if read is None or read.sidecar is None:
        return SidecarVerdict.FOREIGN, None, None, None
    key = key_for_name(name, read.key_file)
    if key is None:
        return SidecarVerdict.FOREIGN, None, None, None
    verdict, expiry = judge_sidecar(read.sidecar, read.document, now)
    compacted = None
    if verdict is SidecarVerdict.LIVE and read.document is not None:
        compacted = encode_sidecar(live_bindings(decode_sidecar(read.sidecar), read.document))
        compacted = None if compacted == read.sidecar else compacted
    return verdict, key, expiry, compacted
