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
from typing import NamedTuple, Protocol, runtime_checkable


class Kind(Enum):
    """What a directory entry is; anything but a regular file or directory is OTHER."""

    FILE = "file"
    DIRECTORY = "directory"
    OTHER = "other"


class Listing(NamedTuple):
    """One name in a directory and its kind (symlinks are OTHER: never followed)."""

    name: str
    kind: Kind


# runtime_checkable until the seam branch makes Storage an ABC (Store(storage=) checks isinstance).
@runtime_checkable
class Storage(Protocol):
    """Primitive, key-agnostic file operations under one root.

    Implementations raise ``UnsafeFileError`` for a symlink, FIFO, socket or
    other non-regular file where a regular file or directory is expected (whatever
    the underlying refusal), and let other ``OSError`` through for the store to
    translate, with ``filename`` set to the absolute path of the file refused when
    it is not the entry's own (a sidecar, an index, the lock file).

    Durability: every method taking ``durable`` returns, when it is true, only once
    its effect and every directory the storage created on the way to it (by any
    method, ``lock()`` included) would survive a power loss.
    """

    def path(self, directory: str, name: str = "") -> Path:
        """The full path of ``name`` in ``directory``, for messages and users."""
        ...

    def locator(self, directory: str, name: str = "") -> str:
        """The string naming ``name`` in ``directory`` in messages and errors."""
        ...

    def local_path(self, directory: str, name: str = "") -> Path | None:
        """The local file-system path of ``name`` in ``directory``, or ``None``."""
        ...

    def read(self, directory: str, name: str) -> bytes | None:
        """The whole file, or ``None`` if it or its directory does not exist."""
        ...

    def read_tail(self, directory: str, name: str, size: int) -> tuple[bytes, bool] | None:
        """The last ``size`` bytes of the file (all of it if it is not larger), and whether
        that is the whole file; ``None`` if it or its directory does not exist.

        One snapshot of one file: bytes appended after the call began may be left out.
        """
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

        Creates missing directories. With ``durable``, the data, the rename and
        the new directories are on stable storage when this returns. Not
        guaranteed: directories created by another process or storage object
        (each makes its own durable before acknowledging its own durable writes).
        """
        ...

    def write_many(
        self, directory: str, items: Sequence[tuple[str, bytes]], *, durable: bool
    ) -> list[BaseException | None]:
        """``write()`` of several ``(name, data)`` in one directory, as one group commit.

        Returns one outcome per item (``None`` for success); an item that failed kept its old file.
        The number of descriptors held at once is bounded, whatever the number of items.
        """
        ...

    def append(self, directory: str, name: str, data: bytes, *, durable: bool) -> None:
        """Append ``data`` in one write after cutting a torn last line (one without its newline).

        A new file comes into being whole, with ``data`` as its first lines (as
        ``write()``: no empty or partial file is ever visible); an existing one is
        written in place, and refused with ``UnsafeFileError`` if it is not a regular
        file or has more than one link (another name may lie outside the store).
        All or nothing: a failed append leaves the file as it was. With ``durable``,
        as ``write()``. The caller holds ``lock(directory)``.
        """
        ...

    def remove(self, directory: str, name: str, *, durable: bool = False) -> bool:
        """Delete a file; ``True`` if it existed.

        With ``durable``, the removal (and, as for ``write()``, any directory the
        storage created) is on stable storage when this returns.
        """
        ...

    def scan(self, directory: str) -> list[Listing]:
        """Every name in ``directory`` (empty if it does not exist), unsorted."""
        ...

    def lock(self, directory: str) -> AbstractContextManager[None]:
        """Exclusive lock on ``directory`` across threads and processes (creates it).

        Re-entrant in one thread; enter and exit it on the same thread (all threads
        share one lock per directory, owned by the thread that entered). Entering raises ``UnsafeFileError``
        if the lock file is a symlink or not a regular file, ``OSError`` if the file
        system refuses; a directory made here is durable only after the next durable
        operation of this storage returns.
        """
        ...
