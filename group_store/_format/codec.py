"""Canonical JSON for documents and JSON Lines for logs (pure, no I/O).

Documents are UTF-8, 2-space indented, insertion order kept, with a trailing
newline: equal data always gives equal bytes, so ``git diff`` shows only real
changes. Only what loads back equal is accepted: ``dict`` with ``str`` keys,
``list``/``tuple``, ``str``, ``int`` within 64 bits, finite ``float``, ``bool``
and ``None`` (plus what orjson writes as one of those, such as enums).
``datetime`` and dataclasses are refused because they would load back as a
string or a dict.

Decoding is exact: a file either loads to exactly the value its text spells or
raises. orjson keeps the last of duplicate object keys and reads integers beyond
64 bits as floats; such a file raises ``CorruptEntryError`` naming the reason,
so nothing (``load()``, tables, ``verify --fix``, ``fmt``, import) ever changes a
value by reading and rewriting it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import orjson

from .._errors import CorruptEntryError, SerializationError

_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_DOCUMENT = _STRICT | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
_LINE = _STRICT | orjson.OPT_APPEND_NEWLINE
_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1  # what orjson reads as an int; beyond, a float


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
    try:
        for item in items:
            chunks.append(_dumps(key, item, _LINE))
    except SerializationError as exc:
        raise SerializationError(f"item {len(chunks)}: {exc.detail}", key=key) from exc
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class InexactJSONError(ValueError):
    """Valid JSON that orjson would not read back as the value it spells.

    A duplicate object key (orjson keeps the last one), an integer beyond 64 bits
    (orjson reads it as a float) or a number too large for a float.
    """


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InexactJSONError(f"duplicate key {key!r} (orjson would keep only the last)")
            seen.add(key)
    return value


def _bounded_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:  # beyond sys.get_int_max_str_digits()
        raise InexactJSONError(f"integer of {len(text)} digits is beyond 64 bits") from exc
    if not _MIN_INT <= value <= _MAX_INT:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise InexactJSONError(f"integer {shown} is beyond 64 bits (it would load as a float)")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InexactJSONError(f"number {text[:40]} is too large for a float")
    return value


def _no_constant(text: str) -> Any:
    raise InexactJSONError(f"{text} is not JSON")


def _strict_loads(raw: bytes) -> Any:
    """The standard library's reading of ``raw``, refusing whatever orjson would read differently."""
    return json.loads(
        raw,
        object_pairs_hook=_unique_pairs,
        parse_int=_bounded_int,
        parse_float=_finite_float,
        parse_constant=_no_constant,
    )


def _loads(raw: bytes, option: int) -> tuple[Any, bool]:
    """The value ``raw`` spells, and whether ``raw`` is its canonical encoding under ``option``.

    The common case costs one ``orjson.dumps`` more than a plain load: bytes equal
    to the canonical re-encoding of what orjson parsed are exact by construction
    (a dropped duplicate key or an integer read as a float cannot re-encode to the
    same bytes). Only other bytes (hand-written, another tool's layout) are read
    again by the standard library with strict hooks, whose value is returned.

    Raises:
        orjson.JSONDecodeError: if ``raw`` is not valid JSON.
        InexactJSONError: if it is valid JSON that cannot be loaded exactly.
    """
    value = orjson.loads(raw)
    if orjson.dumps(value, option=option) == raw:
        return value, True
    try:
        return _strict_loads(raw), False
    except RecursionError as exc:  # orjson parsed it, so it is only too deep for the stdlib parser
        raise InexactJSONError("nested too deeply to check") from exc


def parse_document(raw: bytes) -> tuple[Any, bool]:
    """A document's value, and whether ``raw`` is already in canonical layout.

    Raises:
        orjson.JSONDecodeError: if ``raw`` is not valid JSON.
        InexactJSONError: if it is valid JSON that cannot be loaded exactly.
    """
    return _loads(raw, _DOCUMENT)


def parse_line(line: bytes) -> tuple[Any, bool]:
    """One log line's value (without its newline), and whether it is compact canonical JSON.

    Raises:
        orjson.JSONDecodeError: if ``line`` is not valid JSON.
        InexactJSONError: if it is valid JSON that cannot be loaded exactly.
    """
    return _loads(line, 0)


def loads_exact(raw: bytes | str) -> Any:
    """Parse JSON text from anywhere (a command line, an archive record) exactly.

    Raises:
        orjson.JSONDecodeError: if ``raw`` is not valid JSON.
        InexactJSONError: if it is valid JSON that cannot be loaded exactly.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    return _loads(data, 0)[0]


def decode_document(key: str, path: str | None, raw: bytes) -> Any:
    """Parse a document file exactly (``path`` may be ``None`` where the caller's error
    boundary names the file: building a path per read costs more than the parse).

    Raises:
        CorruptEntryError: naming ``key``, ``path`` and the reason, if ``raw`` is not
            valid JSON or is JSON orjson cannot read exactly (a duplicate key, an
            integer beyond 64 bits).
    """
    try:
        return _loads(raw, _DOCUMENT)[0]
    except orjson.JSONDecodeError as exc:
        raise CorruptEntryError(f"invalid JSON: {exc}", key=key, path=path) from exc
    except InexactJSONError as exc:
        raise CorruptEntryError(f"JSON that cannot be loaded exactly: {exc}", key=key, path=path) from exc


def split_log(raw: bytes) -> tuple[list[bytes], int]:
    """Split a log into its complete lines and the byte length they cover.

    A last line without its newline is a torn append (a crash mid-write): it is
    left out, and the covered length tells a writer where to truncate it.
    Blank lines are skipped.
    """
    complete = raw.rfind(b"\n") + 1
    lines = [line for line in raw[:complete].split(b"\n") if line.strip()]
    return lines, complete


def ends_whole(end: bytes) -> bool:
    """Whether a log whose last bytes are ``end`` (``b""``: an empty log) ends on a whole line.

    ``False`` means a torn append: the writer must cut it (``split_log`` says where)
    before appending, or it becomes a corrupt middle line.
    """
    return not end or end.endswith(b"\n")


def decode_log(key: str, path: str, raw: bytes, last: int | None = None) -> list[Any]:
    """Parse the complete lines of a log exactly, oldest first; only the newest ``last`` if given.

    Raises:
        CorruptEntryError: naming ``key``, ``path``, the line number and the reason,
            for a line that is not valid JSON or cannot be loaded exactly.
    """
    lines, _ = split_log(raw)
    first = 0 if last is None else max(len(lines) - last, 0)
    selected = lines[first:]
    items: list[Any] = []
    for number, line in enumerate(selected, first + 1):
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise CorruptEntryError(f"invalid JSON on log line {number}: {exc}", key=key, path=path) from exc
    # One re-encoding for the whole log instead of one per line: the compact list
    # encoding is "[" + the canonical lines joined by "," + "]", and it equals the
    # lines as written only if every line is canonical (a line is one complete JSON
    # value, so a "," can neither end one early nor hide inside one), hence exact.
    if orjson.dumps(items) != b"[" + b",".join(selected) + b"]":
        items = [_exact_line(key, path, number, line) for number, line in enumerate(selected, first + 1)]
    return items


def _exact_line(key: str, path: str, number: int, line: bytes) -> Any:
    try:
        return _loads(line, 0)[0]
    except InexactJSONError as exc:
        detail = f"log line {number} cannot be loaded exactly: {exc}"
        raise CorruptEntryError(detail, key=key, path=path) from exc
