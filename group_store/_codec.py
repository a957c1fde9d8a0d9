"""Canonical JSON for documents and JSON Lines for logs (pure, no I/O).

Documents are UTF-8, 2-space indented, insertion order kept, with a trailing
newline: equal data always gives equal bytes, so ``git diff`` shows only real
changes. Only what loads back equal is accepted: ``dict`` with ``str`` keys,
``list``/``tuple``, ``str``, ``int`` within 64 bits, finite ``float``, ``bool``
and ``None`` (plus what orjson writes as one of those, such as enums).
``datetime`` and dataclasses are refused because they would load back as a
string or a dict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ._errors import CorruptEntryError, SerializationError

_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_DOCUMENT = _STRICT | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
_LINE = _STRICT | orjson.OPT_APPEND_NEWLINE


def _find_non_finite(value: Any) -> float | None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _dumps(key: str, value: Any, option: int) -> bytes:
    try:
        encoded = orjson.dumps(value, option=option)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise SerializationError(f"cannot store value as JSON: {exc}", key=key) from exc
    # orjson writes NaN and Infinity as null; they would load back as None.
    # Only a payload that contains null can hide one, so most saves skip the walk.
    if b"null" in encoded:
        bad = _find_non_finite(value)
        if bad is not None:
            raise SerializationError(f"cannot store non-finite float {bad!r} as JSON", key=key)
    return encoded


def encode_document(key: str, value: Any) -> bytes:
    """Serialize ``value`` canonically.

    Raises:
        SerializationError: naming ``key``, if JSON cannot hold ``value`` faithfully.
    """
    return _dumps(key, value, _DOCUMENT)


def encode_lines(key: str, items: Iterable[Any]) -> bytes:
    """Serialize each item as one compact JSON line, all or nothing.

    Raises:
        SerializationError: naming ``key`` and the item's index, if one cannot be stored.
    """
    chunks: list[bytes] = []
    for index, item in enumerate(items):
        try:
            chunks.append(_dumps(key, item, _LINE))
        except SerializationError as exc:
            raise SerializationError(f"item {index}: {exc.detail}", key=key) from exc
    return b"".join(chunks)


def decode_document(key: str, path: Path, raw: bytes) -> Any:
    """Parse a document file.

    Raises:
        CorruptEntryError: naming ``key`` and ``path``, if ``raw`` is not valid JSON.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CorruptEntryError(f"invalid JSON: {exc}", key=key, path=path) from exc


def split_log(raw: bytes) -> tuple[list[bytes], int]:
    """Split a log into its complete lines and the byte length they cover.

    A last line without its newline is a torn append (a crash mid-write): it is
    left out, and the covered length tells a writer where to truncate it.
    Blank lines are skipped.
    """
    complete = raw.rfind(b"\n") + 1
    lines = [line for line in raw[:complete].split(b"\n") if line.strip()]
    return lines, complete


def decode_log(key: str, path: Path, raw: bytes, last: int | None = None) -> list[Any]:
    """Parse the complete lines of a log, oldest first; only the newest ``last`` if given.

    Raises:
        CorruptEntryError: naming ``key``, ``path`` and the line number of a bad line.
    """
    lines, _ = split_log(raw)
    first = 0 if last is None else max(len(lines) - last, 0)
    items: list[Any] = []
    for number, line in enumerate(lines[first:], first + 1):
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise CorruptEntryError(f"invalid JSON on log line {number}: {exc}", key=key, path=path) from exc
    return items
