"""Key segment <-> file name mapping (pure, no I/O).

Invariants of ``encode_segment``:

- Injective, also on case-insensitive file systems: every name it produces is made
  of ``a-z 0-9 _ - ~`` only, so two names never differ by case alone.
- Reversible: ``decode_segment(encode_segment(s)) == s`` for every short-form name;
  long keys are hashed and their original text is kept in a key file by the store.
- Confined: the output never contains ``/``, ``\\``, ``.``, NUL or a space, so it can
  neither escape its directory nor end in a dot or space (Windows), and no
  output is a Windows device name (``con``, ``nul``, ``com1``, ...).
- Bounded: at most ``MAX_NAME_BYTES`` bytes, leaving room for the store's suffixes
  within the 255-byte limit of common file systems.
- Identity for plain names: ``[a-z0-9_-]+`` (other than device names) maps to
  itself, so stores written by group-genie and hand-made fixtures stay readable.

Escapes are ``~`` followed by two lowercase hex digits per UTF-8 byte. Hashed
names contain ``~~``, which no escape can produce (an escape's ``~`` is always
followed by a hex digit), so the two forms never meet.
"""

from __future__ import annotations

import hashlib
import re

from .._errors import InvalidKeyError

MAX_NAME_BYTES = 200
_HASH_MARK = "~~"
_HASH_HEX_CHARS = 32
_PLAIN = re.compile(r"[a-z0-9_-]+")
_PLAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPED = re.compile(r"(?:~[0-9a-f]{2})+")
_WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [f"{stem}{n}" for stem in ("com", "lpt") for n in [*"0123456789", "¹", "²", "³"]]
)


def _escape_bytes(text: str) -> str:
    return "".join(f"~{byte:02x}" for byte in text.encode("utf-8"))


def _is_device_name(name: str) -> bool:
    return name.split(".", 1)[0].lower() in _WINDOWS_DEVICES


def check_segment(segment: object) -> str:
    """Return ``segment`` if it can name an entry or directory.

    Raises:
        InvalidKeyError: if it is not a non-empty ``str`` or holds lone surrogates.
    """
    if not isinstance(segment, str):
        raise InvalidKeyError(f"key must be a str, not {type(segment).__name__}", key=repr(segment))
    if not segment:
        raise InvalidKeyError("key must not be empty", key=segment)
    try:
        segment.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKeyError("key is not valid Unicode (lone surrogate)", key=segment) from exc
    return segment


def encode_segment(segment: str) -> str:
    """Map one key segment to a safe file or directory name (see module invariants).

    Raises:
        InvalidKeyError: if the segment is empty, not a str, or not valid Unicode.
    """
    check_segment(segment)
    if _PLAIN.fullmatch(segment) and not _is_device_name(segment) and len(segment) <= MAX_NAME_BYTES:
        return segment
    parts: list[str] = []
    for index, char in enumerate(segment):
        # The first character of a device name is escaped so "con" never names a device.
        if char in _PLAIN_CHARS and not (index == 0 and _is_device_name(segment)):
            parts.append(char)
        else:
            parts.append(_escape_bytes(char))
    name = "".join(parts)
    if len(name) <= MAX_NAME_BYTES:
        return name
    return _hashed_name(segment, name)


def _hashed_name(segment: str, escaped: str) -> str:
    digest = hashlib.sha256(segment.encode("utf-8")).hexdigest()[:_HASH_HEX_CHARS]
    room = MAX_NAME_BYTES - len(_HASH_MARK) - _HASH_HEX_CHARS
    prefix = escaped[:room]
    # Never cut an escape in half: a dangling "~" or "~x" would not decode.
    cut = prefix.rfind("~")
    if cut != -1 and cut > len(prefix) - 3:
        prefix = prefix[:cut]
    return f"{prefix}{_HASH_MARK}{digest}"


def is_hashed_name(name: str) -> bool:
    """True if ``name`` is the hashed form of a long key (its text lives in a key file)."""
    return _HASH_MARK in name


def decode_segment(name: str) -> str | None:
    """Return the key a short-form name encodes, or ``None`` if it is not one of ours.

    A name decodes only if encoding the result gives the same name back, so every
    key a listing returns maps to exactly one file.
    """
    if _PLAIN.fullmatch(name):
        # The fast path of every listing: a plain name is its own key (it has no dot,
        # so it is a device name only if it is one outright).
        return name if name not in _WINDOWS_DEVICES and len(name) <= MAX_NAME_BYTES else None
    if not name or is_hashed_name(name):
        return None
    pieces: list[str] = []
    position = 0
    for match in _ESCAPED.finditer(name):
        plain = name[position : match.start()]
        if plain and not _PLAIN.fullmatch(plain):
            return None
        pieces.append(plain)
        raw = bytes(int(match.group(0)[i + 1 : i + 3], 16) for i in range(0, len(match.group(0)), 3))
        try:
            pieces.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return None
        position = match.end()
    tail = name[position:]
    if tail and not _PLAIN.fullmatch(tail):
        return None
    pieces.append(tail)
    key = "".join(pieces)
    try:
        return key if key and encode_segment(key) == name else None
    except InvalidKeyError:
        return None


def matches_hashed_name(key: str, name: str) -> bool:
    """True if ``key`` (read from a key file) really encodes to hashed ``name``."""
    try:
        return encode_segment(key) == name
    except InvalidKeyError:
        return False
