"""The storage seam: the only file-system operations the store logic uses.

Directories are ``/``-joined paths of already-encoded names relative to the
store root (``""`` is the root); names are single encoded file names. A backend
for object storage implements this protocol and nothing above it changes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from enum import Enum
from pathlib import Path
from typing import NamedTuple, Protocol


class Kind(Enum):
    """What a directory entry is; anything but a regular file or directory is OTHER."""

    FILE = "file"
    DIRECTORY = "directory"
    OTHER = "other"


class Listing(NamedTuple):
    """One name in a directory and its kind (symlinks are OTHER: never followed)."""

    name: str
    kind: Kind


class Storage(Protocol):
    """Primitive, key-agnostic file operations under one root.

    Implementations raise ``UnsafeFileError`` for a symlink, FIFO or other
    non-regular file where a regular file or directory is expected, and let
    other ``OSError`` through for the store to translate.
    """

    def path(self, directory: str, name: str = "") -> Path:
        """The full path of ``name`` in ``directory``, for messages and users."""
        ...

    def read(self, directory: str, name: str) -> bytes | None:
        """The whole file, or ``None`` if it or its directory does not exist."""
        ...

    def read_pinned(self, directory: str, name: str) -> tuple[bytes, int, os.stat_result] | None:
        """``read()``, plus the file's open descriptor and status: while the caller keeps
        the descriptor open (and must close it), no other file can take its inode number."""
        ...

    def kind(self, directory: str, name: str) -> Kind | None:
        """What ``name`` is without following links, or ``None`` if absent."""
        ...

    def read_many(self, directory: str, names: Sequence[str]) -> list[bytes | None]:
        """``read()`` of each name in order (one directory walk for all), as a snapshot:
        the bytes returned were all in place at one moment, though a name reported absent
        may have been created since. Lock-free; retried while writers replace the files,
        and read under ``lock(directory)`` if they keep doing so."""
        ...

    def kinds(self, directory: str, names: Sequence[str]) -> list[Kind | None]:
        """What each name is without following links, ``None`` if absent (one walk for all)."""
        ...

    def write(self, directory: str, name: str, data: bytes, *, durable: bool) -> None:
        """Replace the file atomically: readers see the old or the new bytes, never a mix.

        Creates missing directories. With ``durable``, the data and the rename
        are on stable storage when this returns.
        """
        ...

    def write_many(
        self, directory: str, items: Sequence[tuple[str, bytes]], *, durable: bool
    ) -> list[BaseException | None]:
        """``write()`` of several ``(name, data)`` in one directory, as one group commit.

        Returns one outcome per item (``None`` for success); an item that failed kept its old file.
        """
        ...

    def append(self, directory: str, name: str, data: bytes, *, durable: bool) -> None:
        """Append ``data`` in one write after cutting a torn last line (one without its newline).

        The caller holds ``lock(directory)``.
        """
        ...

    def remove(self, directory: str, name: str, *, durable: bool = False) -> bool:
        """Delete a file; ``True`` if it existed.

        With ``durable``, the removal is on stable storage when this returns.
        """
        ...

    def scan(self, directory: str) -> list[Listing]:
        """Every name in ``directory`` (empty if it does not exist), unsorted."""
        ...

    def lock(self, directory: str) -> AbstractContextManager[None]:
        """Exclusive lock on ``directory`` across threads and processes (creates it)."""
        ...
