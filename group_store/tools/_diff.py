"""A logical diff of two stores or archives: added, removed and changed entries."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import orjson

from .._api.view import View
from .._engine.inventory import ErrorHandler
from .._format.codec import encode_document, encode_lines
from ._archive import Record, records

if TYPE_CHECKING:
    import os

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class EntryChange:
    """One entry that differs between the two sides.

    Attributes:
        address: ``narrow()`` keys then the entry key.
        change: ``added`` (only in B), ``removed`` (only in A) or ``changed``.
        detail: For a change, a unified diff of the canonical JSON, or the lines
            appended to a log; for an expiry change, the two expiries.
    """

    address: tuple[str, ...]
    change: ChangeKind
    detail: str


@dataclass(frozen=True)
class StoreDiff:
    """The differences from A to B, in address order; falsy when the stores are equal."""

    changes: tuple[EntryChange, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)


def _render(record: Record) -> list[str]:
    key = "/".join(record.address)
    if record.kind == "document":
        text = encode_document(key, record.value).decode()
    else:
        text = encode_lines(key, record.value).decode()
    return text.splitlines(keepends=True)


def _describe(a: Record, b: Record) -> str | None:
    parts: list[str] = []
    if a.kind == b.kind == "log" and b.value[: len(a.value)] == a.value and len(b.value) > len(a.value):
        appended = b.value[len(a.value) :]
        parts.append(f"appended {len(appended)} item(s):\n")
        parts.extend("+" + orjson.dumps(item).decode() + "\n" for item in appended)
    elif a.kind != b.kind or a.value != b.value:
        name = "/".join(a.address)
        if a.kind != b.kind:
            parts.append(f"kind: {a.kind} -> {b.kind}\n")
        parts.extend(difflib.unified_diff(_render(a), _render(b), f"a/{name}", f"b/{name}"))
    if a.expires_at != b.expires_at:
        before = a.expires_at.isoformat() if a.expires_at else "never"
        after = b.expires_at.isoformat() if b.expires_at else "never"
        parts.append(f"expires_at: {before} -> {after}\n")
    return "".join(parts) or None


def diff_stores(
    a: View | str | os.PathLike[str],
    b: View | str | os.PathLike[str],
    *,
    progress: Callable[[int], None] | None = None,
    on_error: ErrorHandler | None = None,
) -> StoreDiff:
    """Compare two stores entry by entry: each a store or view (its subtree, read through
    its backend), a store directory, or a ``.tar.gz`` or ``.jsonl`` archive.

    An entry that cannot be read on either side (invalid JSON, JSON that cannot be
    loaded exactly, a malformed sidecar, an unreadable file or directory) is passed
    to ``on_error`` (default: a warning on logger ``group_store``) and left out of
    the comparison on both sides, so it shows as neither added nor removed; the
    rest is compared. A caller that must not pass such stores as equal counts the
    errors (the command line exits 1 then).

    Raises:
        CorruptEntryError: for an archive that is damaged or not ours.
    """
    unreadable: set[tuple[str, ...]] = set()
    left = {record.address: record for record in records(a, on_error, unreadable)}
    right = {record.address: record for record in records(b, on_error, unreadable)}
    for address in unreadable:
        left.pop(address, None)
        right.pop(address, None)
    changes: list[EntryChange] = []
    for address in sorted(left.keys() | right.keys()):
        if address not in right:
            changes.append(EntryChange(address, "removed", "".join(_render(left[address]))))
        elif address not in left:
            changes.append(EntryChange(address, "added", "".join(_render(right[address]))))
        else:
            detail = _describe(left[address], right[address])
            if detail is not None:
                changes.append(EntryChange(address, "changed", detail))
        if progress:
            progress(1)
    return StoreDiff(tuple(changes))
