"""TTL arithmetic and the sidecar that binds an expiry to data bytes (pure, no I/O).

A data file and its sidecar cannot be replaced in one step, so a sidecar never
says "this key expires at T": it says "the data whose SHA-256 is D expires at T".
A save writes the sidecar first, binding both the bytes on disk now and the new
bytes, then replaces the data file. Whichever data file a crash leaves, the
sidecar holds its own binding, and data a sidecar does not bind has no expiry
(a stale sidecar from before a crash, or after a save that cleared the TTL).

Invariant (every write keeps it at every step): the sidecar on disk binds the
data file on disk to the expiry its last acknowledged write gave it, or to the
expiry of the write in progress. It is why clearing a TTL may need three steps
(see ``Engine.save``): a sidecar can bind the new bytes already, to the expiry
an earlier save of the same bytes gave them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum

import orjson

Clock = Callable[[], float]
"""Returns the current time as seconds since the epoch (``time.time`` by default)."""

UNBOUND = object()
"""Marks data that its sidecar says nothing about."""


def digest(data: bytes) -> str:
    """The binding key of ``data``: 32 hex digits of its SHA-256."""
    return hashlib.sha256(data).hexdigest()[:32]


def resolve_expiry(now: float, ttl: float | timedelta | None, expires_at: datetime | None) -> float | None:
    """Turn ``ttl=`` or ``expires_at=`` into an absolute epoch time, or ``None`` for no expiry.

    Raises:
        ValueError: if both are given, ``ttl`` is negative or not finite, or
            ``expires_at`` is a naive datetime.
    """
    if ttl is not None and expires_at is not None:
        raise ValueError("pass ttl= or expires_at=, not both")
    if ttl is not None:
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"ttl must be a finite number of seconds >= 0, not {ttl!r}")
        return now + seconds
    if expires_at is not None:
        if expires_at.tzinfo is None or expires_at.utcoffset() is None:
            raise ValueError("expires_at must be an aware datetime (for example datetime.now(UTC))")
        return expires_at.timestamp()
    return None


def is_expired(expiry: float | None, now: float) -> bool:
    """True once ``now`` has reached ``expiry``; never for ``None``."""
    return expiry is not None and now >= expiry


def to_datetime(expiry: float) -> datetime:
    """An aware UTC datetime for an epoch time."""
    return datetime.fromtimestamp(expiry, UTC)


def _format(expiry: float | None) -> str | None:
    return None if expiry is None else to_datetime(expiry).isoformat()


def _parse(text: object) -> float | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"expiry must be an ISO string or null, not {text!r}")
    return datetime.fromisoformat(text).timestamp()


def encode_sidecar(bindings: Mapping[str, float | None]) -> bytes:
    """Canonical sidecar bytes for ``{data digest: expiry or None}``."""
    body = {"expires_at": {key: _format(value) for key, value in bindings.items()}}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def decode_sidecar(raw: bytes) -> dict[str, float | None]:
    """Parse sidecar bytes back into bindings.

    Raises:
        ValueError: if the bytes are not a sidecar this module wrote.
    """
    body = orjson.loads(raw)
    if not isinstance(body, dict) or not isinstance(body.get("expires_at"), dict):
        raise ValueError("sidecar has no 'expires_at' object")
    return {str(key): _parse(value) for key, value in body["expires_at"].items()}


def own_sidecar_bindings(raw: bytes) -> dict[str, float | None] | None:
    """The bindings of ``raw`` if it is exactly what ``encode_sidecar`` writes, else ``None``."""
    try:
        bindings = decode_sidecar(raw)
    except ValueError:
        return None
    return bindings if encode_sidecar(bindings) == raw else None


def is_own_sidecar(raw: bytes) -> bool:
    """True if ``raw`` is exactly what ``encode_sidecar`` writes (so the store may remove it)."""
    return own_sidecar_bindings(raw) is not None


class SidecarVerdict(Enum):
    """What a sweep may do with a sidecar (see ``judge_sidecar``)."""

    ORPHAN = "orphan"
    """The store's sidecar, with no document: remove it."""
    EXPIRED = "expired"
    """Binds the document to a time now past: remove the document, then the sidecar."""
    LIVE = "live"
    """Binds the document to a time still ahead: keep both."""
    STALE = "stale"
    """Binds the document to no expiry, or says nothing about it: the sidecar alone may go."""
    FOREIGN = "foreign"
    """Not exactly what ``encode_sidecar`` writes: not provably the store's, never touched."""


def judge_sidecar(raw: bytes, document: bytes | None, now: float) -> tuple[SidecarVerdict, float | None]:
    """Judge the sidecar bytes ``raw`` next to ``document`` (``None`` if absent) at ``now``.

    Returns the verdict and the document's expiry (``None`` unless LIVE or EXPIRED).
    Pure: the caller holds the directory lock, so nothing changes between its reads
    and what it does with the verdict. The caller also checks that the name decodes.
    """
    bindings = own_sidecar_bindings(raw)
    if bindings is None:
        return SidecarVerdict.FOREIGN, None
    if document is None:
        return SidecarVerdict.ORPHAN, None
    expiry = bound_expiry(bindings, document)
    if expiry is UNBOUND or expiry is None:
        return SidecarVerdict.STALE, None
    assert isinstance(expiry, float)
    return (SidecarVerdict.EXPIRED if is_expired(expiry, now) else SidecarVerdict.LIVE), expiry


def live_bindings(bindings: dict[str, float | None], document: bytes) -> dict[str, float | None]:
    """The one binding that matters once no write is in progress: that of ``document``,
    the bytes on disk, if it binds them to an expiry (else nothing: the sidecar may go).

    A save binds both the old and the new bytes and leaves the old binding behind once
    the data is replaced; it is harmless but churns diffs. Dropping it is safe only under
    the directory lock, where no save is between its sidecar and its data write.
    """
    expiry = bindings.get(digest(document))
    return {} if expiry is None else {digest(document): expiry}


def binds_to_an_expiry(bindings: dict[str, float | None], data: bytes) -> bool:
    """True if the sidecar binds these exact bytes to an expiry (not to ``None``, not unbound)."""
    return bindings.get(digest(data)) is not None


def bound_expiry(bindings: dict[str, float | None], data: bytes) -> float | object | None:
    """The expiry the sidecar gives these exact bytes, or ``UNBOUND``."""
    return bindings.get(digest(data), UNBOUND)


def next_bindings(
    bindings: dict[str, float | None] | None, old_data: bytes | None, new_data: bytes, expiry: float | None
) -> dict[str, float | None]:
    """Bindings to write before replacing ``old_data`` with ``new_data``.

    The old bytes keep the expiry they have now (``None`` if unbound), so a crash
    before the data is replaced leaves the old entry exactly as it was.
    """
    result: dict[str, float | None] = {}
    if old_data is not None:
        old = bound_expiry(bindings or {}, old_data)
        result[digest(old_data)] = None if old is UNBOUND else old  # type: ignore[assignment]
    result[digest(new_data)] = expiry
    return result


# -- the per-directory expiry index ------------------------------------------------------
#
# Invariant: for every document on disk whose sidecar binds it to expiry X, the
# directory's index (when it exists) lists its name with a time <= X (up to the sidecar's
# rounding to the microsecond: ``sweep_plan.SIDECAR_ROUNDING``). A save with a
# TTL appends its line before it writes the sidecar, and compaction keeps, per name,
# the smallest time or the verified current expiry, so a crash anywhere leaves the
# index at worst too early (sweep verifies before deleting), never too late. A
# sidecar the index does not list at all (a store written before the index existed,
# or an index someone deleted) is always checked by the sweep.


def index_line(name: str, expiry: float) -> bytes:
    """One index record, ``NAME EXPIRY\n``: entry ``name`` may expire at ``expiry``.

    Plain text rather than JSON: encoded names never hold spaces or newlines, and a
    sweep parses one line per TTL entry, so parsing cost is what the index saves.
    """
    return f"{name} {expiry!r}\n".encode()


def parse_index(raw: bytes) -> tuple[dict[str, float], int]:
    """The earliest indexed expiry per name, and the number of lines read.

    A torn last line and malformed lines are skipped.
    """
    earliest: dict[str, float] = {}
    lines = raw[: raw.rfind(b"\n") + 1].decode("utf-8", "replace").split("\n")
    for line in lines:
        name, _, when = line.partition(" ")
        try:
            expiry = float(when)
        except ValueError:
            continue
        if name and expiry < earliest.get(name, math.inf):
            earliest[name] = expiry
    return earliest, len(lines) - 1


def index_needs_compaction(lines: int, live: int) -> bool:
    """Rewrite the index only once it holds more than twice the lines it needs."""
    return lines > 2 * live + 64


def render_index(entries: dict[str, float]) -> bytes:
    """A compacted index holding exactly ``entries``, sorted by name."""
    return b"".join(index_line(name, entries[name]) for name in sorted(entries))
