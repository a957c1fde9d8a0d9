"""Where each piece of an entry lives on disk (pure, no I/O).

In a store directory, for an entry whose key encodes to ``NAME``:

    NAME.json        a document: the user's JSON, canonical
    NAME.jsonl       a log: one compact JSON value per line
    NAME.meta.json   the sidecar: expiry bound to the document's bytes
    NAME.key         the original key, only when NAME is a hashed long key
    NAME/            a narrowed sub-store (its own ``.key`` if NAME is hashed)
    .lock            the directory's lock file
    .NAME.*.tmp      a write in progress (or left by a crash)

Encoded names never contain ``.``, so these suffixes cannot collide.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ._keys import encode_segment
from ._storage import Kind, Listing

DOCUMENT_SUFFIX = ".json"
LOG_SUFFIX = ".jsonl"
SIDECAR_SUFFIX = ".meta.json"
KEY_SUFFIX = ".key"
DIRECTORY_KEY_FILE = ".key"


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
    """A directory listing sorted into the store's roles (names without suffixes)."""

    documents: set[str]
    logs: set[str]
    sidecars: set[str]
    key_files: set[str]
    directories: set[str]
    hidden: set[str]


def classify(listing: Iterable[Listing]) -> DirectoryContents:
    """Sort a listing into documents, logs, sidecars, key files, sub-directories and hidden files.

    Anything that is not ours (wrong suffix, dotted stem, symlink, FIFO) is left out.
    """
    contents = DirectoryContents(set(), set(), set(), set(), set(), set())
    for name, kind in listing:
        if name.startswith("."):
            if kind is Kind.FILE:
                contents.hidden.add(name)
            continue
        if kind is Kind.DIRECTORY:
            if "." not in name:
                contents.directories.add(name)
            continue
        if kind is not Kind.FILE:
            continue
        for suffix, bucket in (
            (SIDECAR_SUFFIX, contents.sidecars),
            (LOG_SUFFIX, contents.logs),
            (DOCUMENT_SUFFIX, contents.documents),
            (KEY_SUFFIX, contents.key_files),
        ):
            if name.endswith(suffix):
                stem = name[: -len(suffix)]
                if stem and "." not in stem:
                    bucket.add(stem)
                break
    return contents
