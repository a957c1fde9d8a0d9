"""Where each piece of an entry lives on disk (pure, no I/O).

In a store directory, for an entry whose key encodes to ``NAME``:

    NAME.json        a document: the user's JSON, canonical
    NAME.jsonl       a log: one compact JSON value per line
    NAME.meta.json   the sidecar: expiry bound to the document's bytes
    NAME.key         the original key, only when NAME is a hashed long key
    NAME/            a narrowed sub-store (its own ``.key`` if NAME is hashed)
    .expiry.jsonl    the directory's expiry index (an accelerator for sweep)
    .lock            the directory's lock file
    .group_store     at the store root only: the format marker, ``{"format":1}``
    .NAME.*.tmp      a write in progress (or left by a crash)

Encoded names never contain ``.``, so these suffixes cannot collide.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from enum import Enum
from typing import NamedTuple

import orjson

from .keys import decode_segment, encode_segment, is_hashed_name, matches_hashed_name

DOCUMENT_SUFFIX = ".json"
LOG_SUFFIX = ".jsonl"
SIDECAR_SUFFIX = ".meta.json"
KEY_SUFFIX = ".key"
DIRECTORY_KEY_FILE = ".key"
EXPIRY_INDEX = ".expiry.jsonl"
LOCK_NAME = ".lock"
TEMP_SUFFIX = ".tmp"
FORMAT_MARKER = ".group_store"
FORMAT_VERSION = 1
"""The on-disk format this library writes and reads; a store marked newer is refused."""
# Exactly what temp_name() makes: "." + an encoded file name + "." + 16 hex digits + ".tmp".
# Anything else that merely starts with a dot and ends in .tmp is not ours to delete.
_TEMP_NAME = re.compile(
    r"\.(?:[a-z0-9_~-]+(?:\.json|\.jsonl|\.meta\.json|\.key)|\.key|\.expiry\.jsonl|\.group_store)\.[0-9a-f]{16}\.tmp"
)


class Kind(Enum):
    """What a directory entry is; anything but a regular file or directory is OTHER."""

    FILE = "file"
    DIRECTORY = "directory"
    OTHER = "other"


class Listing(NamedTuple):
    """One name in a directory and its kind (symlinks are OTHER: never followed)."""

    name: str
    kind: Kind


def temp_name(name: str, token: int | None = None) -> str:
    """A hidden temporary name beside ``name``, built from a 64-bit ``token`` (random if not given).

    The token needs only to be unique among concurrent writers: what makes a temporary
    file safe against a name planted in advance is how it is opened (``O_CREAT | O_EXCL
    | O_NOFOLLOW``: a planted name is refused, never followed).
    """
    if token is None:
        token = secrets.randbits(64)
    return f".{name}.{token:016x}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    """True only for names ``temp_name`` produces for a store file (so sweep may delete them)."""
    return _TEMP_NAME.fullmatch(name) is not None


def encode_format_marker(version: int = FORMAT_VERSION) -> bytes:
    """The bytes of the format marker for ``version``."""
    return orjson.dumps({"format": version}, option=orjson.OPT_APPEND_NEWLINE)


def decode_format_marker(raw: bytes) -> int | None:
    """The format version a marker's bytes name, or ``None`` if they are not a marker.

    A marker is a JSON object whose ``"format"`` is an int >= 1; other fields are
    allowed, so a later format may say more without older readers calling it foreign
    (they refuse it by its version instead).
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    version = value.get("format") if isinstance(value, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return None
    return version


# -- ownership: what the store can prove it wrote (pure; sweep and verify --fix share these) --


def key_for_name(name: str, key_file: bytes | None) -> str | None:
    """The key an encoded file stem or directory name stands for, or ``None`` if it is not one.

    A short name decodes by itself (``key_file`` is ignored). A hashed name decodes
    only through ``key_file``, the bytes of its key file (``NAME.key`` beside a
    file, ``NAME/.key`` inside a directory; ``None`` if absent), which must be the
    UTF-8 key that hashes back to exactly this name. The caller reads the key file
    only when ``is_hashed_name(name)``.
    """
    if not is_hashed_name(name):
        return decode_segment(name)
    if key_file is None:
        return None
    try:
        key = key_file.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return key if matches_hashed_name(key, name) else None


def is_own_key_file(name: str, raw: bytes) -> bool:
    """True if ``raw``, the bytes of the key file of ``name`` (a file stem or directory
    name), is one the store wrote: ``name`` is hashed and ``raw`` is its key.

    A key file of a short name (``server.key`` beside ``server.json``) is never the store's.
    """
    return is_hashed_name(name) and key_for_name(name, raw) is not None


class Location(NamedTuple):
    """An entry: its encoded directory, encoded name, and the keys as the caller wrote them."""

    directory: str
    name: str
    key: str
    directory_keys: tuple[str, ...]

    @property
    def document(self) -> str:
        return self.name + DOCUMENT_SUFFIX

    @property
    def log(self) -> str:
        return self.name + LOG_SUFFIX

    @property
    def sidecar(self) -> str:
        return self.name + SIDECAR_SUFFIX

    @property
    def key_file(self) -> str:
        return self.name + KEY_SUFFIX


def encode_directory(segments: Iterable[str]) -> str:
    """The storage directory of a narrow() path.

    Raises:
        InvalidKeyError: for an invalid segment.
    """
    return "/".join(encode_segment(segment) for segment in segments)


def join(directory: str, name: str) -> str:
    """A child directory path."""
    return f"{directory}/{name}" if directory else name


class DirectoryContents(NamedTuple):
    """A directory listing sorted into the store's roles (names without suffixes).

    ``hidden`` holds regular files whose names start with a dot (full names), and
    ``unsafe`` every name that is neither a regular file nor a directory (symlinks,
    FIFOs, sockets), so a caller can tell "absent" from "present but never read".
    """

    documents: set[str]
    logs: set[str]
    sidecars: set[str]
    key_files: set[str]
    directories: set[str]
    hidden: set[str]
    unsafe: set[str]


def classify(listing: Iterable[Listing]) -> DirectoryContents:
    """Sort a listing into documents, logs, sidecars, key files, sub-directories and hidden files.

    Regular files that are not ours (wrong suffix, dotted stem) and directories
    with a dot in their name are left out; non-regular names go to ``unsafe``.
    """
    contents = DirectoryContents(set(), set(), set(), set(), set(), set(), set())
    # One dict lookup per name: this runs for every file of every listing.
    buckets = {
        DOCUMENT_SUFFIX[1:]: contents.documents,
        LOG_SUFFIX[1:]: contents.logs,
        SIDECAR_SUFFIX[1:]: contents.sidecars,
        KEY_SUFFIX[1:]: contents.key_files,
    }
    file, directory = Kind.FILE, Kind.DIRECTORY
    for name, kind in listing:
        if kind is file:
            stem, _, suffix = name.partition(".")
            if stem:
                bucket = buckets.get(suffix)
                if bucket is not None:
                    bucket.add(stem)
            elif name:
                contents.hidden.add(name)
        elif kind is directory:
            if "." not in name:
                contents.directories.add(name)
        else:
            contents.unsafe.add(name)
    return contents
