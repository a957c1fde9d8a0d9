"""The storage seam: the contract every backend implements.

A backend stores byte strings under names in directories. Directories are
``/``-joined paths of already-encoded names relative to the store root (``""`` is
the root); names are single encoded file names. Nothing here knows about keys,
JSON or expiry: those rules live above the seam (``group_store._format``,
``group_store._engine``), so a backend implements these few primitives and the
whole store, its tools and its tests run on it.

The primitives are batch-first: ``read_many``, ``kinds``, ``write_many`` and
``remove_many`` are what a backend implements; the single-item methods are defaults
built on them (a backend may override them when one item is cheaper alone).

Errors: a backend raises ``UnsafeFileError`` for a symlink, FIFO, socket or other
non-regular file where a regular file or directory is expected, ``LockTimeoutError``
when a lock is not acquired in time, and lets other ``OSError`` through for the store
to translate (naming the key and the locator), with ``filename`` set to the locator
of the file refused when it is not the entry's own (a sidecar, an index, the lock).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import NamedTuple

from .._format.layout import Kind as Kind
from .._format.layout import Listing as Listing


class Version:
    """An opaque token naming one state of one file, from ``read_versions()``.

    Two tokens compare equal only if they name the same state, or states with the
    very same bytes (a content hash, such as S3's ETag, is reused by an identical
    rewrite: swapping against identical bytes is swapping against that state); a
    backend whose tokens could be reused by a later state with other bytes (an inode
    number, for instance) must make them compare unequal instead (the local backend
    pins the inode while the token lives). The only uses are ``is_current()`` and
    ``write_if()``.
    """

    __slots__ = ()


class Versioned(NamedTuple):
    """A file's bytes and the version they were read at."""

    data: bytes
    version: Version


class Tail(NamedTuple):
    """The last bytes of a file and the file's whole size (``len(data) == size``: all of it)."""

    data: bytes
    size: int


class Storage(abc.ABC):
    """Primitive, key-agnostic operations on files under one root.

    Absent: a file that does not exist, in a directory that may not exist either, is
    absent (``None``, ``False`` or an empty listing); only a refusal is an error.

    Atomicity: every write replaces a whole file; readers see the old or the new
    bytes, never a mix and never an empty or partial file. ``append`` adds whole
    records or nothing.

    Durability: every method taking ``durable`` returns, when it is true, only once
    its effect and every directory the storage created on the way to it (by any
    method, ``lock()`` included) would survive a power loss. A backend with no power
    loss to fear (memory) or whose every write is durable (object storage) ignores it.

    Locks: ``lock(directory)`` excludes every other holder of the same directory's
    lock in this process and, where the backend is shared, in every process. It is
    re-entrant per thread and entered and exited on the same thread.

    The rules for holding more than one lock (the one place they are written; every
    caller in group_store follows them, and ``tests/test_lock_rules.py`` checks it):

    1. A thread that holds two locks takes the parent's before the child's (a
       directory before any directory below it), and never takes a parent's lock
       while holding a child's.
    2. Two locks of directories neither above the other are taken in the order of
       their paths compared segment by segment (``"a"`` before ``"b"``; ``"a/x"``
       before ``"b"``). Rules 1 and 2 together: a thread takes a new lock only on a
       directory that sorts after every lock it holds (a parent sorts before its
       children), so no set of threads or processes can deadlock.
    3. Re-entering a lock the thread already holds is always allowed (it never waits).

    Every mutation of the store takes its directory's lock itself; a caller holds a
    lock across several calls (``Store.lock()``, ``Table.lock()``) only to make them
    one change, and the mutations re-enter it.

    Attributes:
        blocking_io_is_cheap: Whether a read returns in microseconds (local files, memory):
            ``DataStore`` then reads inline instead of hopping to a worker thread.
        shared_between_processes: Whether two processes opening the same root see each
            other's writes and locks (local files, object storage: yes; memory: no).
        locks_are_cheap: Whether ``lock()`` costs about as much as a read (local files,
            memory: yes; object storage, where a lock is a lease object taken and released
            by requests: no). Where it is false the store runs a plain save (no expiry, no
            sidecar, no log, no hashed name) without the lock and ``update()`` as a
            compare-and-swap loop on ``read_versioned`` and ``write_if``; those then do not
            wait for a holder of ``lock()`` (see ``Engine.save`` for what still takes it).
    """

    blocking_io_is_cheap: bool = True
    shared_between_processes: bool = True
    locks_are_cheap: bool = True

    # -- naming -------------------------------------------------------------------

    @abc.abstractmethod
    def locator(self, directory: str, name: str = "") -> str:
        """The string that names ``name`` in ``directory`` in messages and errors: an
        absolute path for local files, a URL (``memory://...``, ``s3://...``) otherwise."""

    def local_path(self, directory: str, name: str = "") -> Path | None:
        """The local file-system path of ``name`` in ``directory``, or ``None`` for a
        backend that keeps no local files (the default)."""
        return None

    # -- reading ------------------------------------------------------------------

    @abc.abstractmethod
    def read_versions(self, directory: str, names: Sequence[str]) -> list[Versioned | None]:
        """Each file's bytes and version, in order, ``None`` where absent, as a snapshot:
        the bytes returned were all in place at one moment, though a name reported absent
        may have been created since. Lock-free: a backend retries while writers replace
        the files, and may read under ``lock(directory)`` if they keep doing so."""

    def read_many(self, directory: str, names: Sequence[str]) -> list[bytes | None]:
        """``read_versions()`` without the versions (a backend may skip computing them)."""
        return [None if found is None else found.data for found in self.read_versions(directory, names)]

    def read(self, directory: str, name: str) -> bytes | None:
        """The whole file, or ``None`` if it is absent."""
        return self.read_many(directory, [name])[0]

    def read_versioned(self, directory: str, name: str) -> Versioned | None:
        """The file's bytes and version, or ``None`` if it is absent."""
        return self.read_versions(directory, [name])[0]

    def is_current(self, directory: str, name: str, version: Version) -> bool:
        """Whether the file is still in the state ``version`` names. ``False`` whenever the
        backend cannot tell cheaply (the default): the caller then reads it again."""
        return False

    def read_tail(self, directory: str, name: str, size: int) -> Tail | None:
        """The last ``size`` bytes of the file (all of it if it is not larger) and its
        size, or ``None`` if absent. One snapshot of one file: bytes appended after the
        call began may be left out. The default reads the whole file."""
        data = self.read(directory, name)
        return None if data is None else Tail(data[-size:] if size else b"", len(data))

    @abc.abstractmethod
    def kinds(self, directory: str, names: Sequence[str]) -> list[Kind | None]:
        """What each name is without following links, ``None`` where absent."""

    def kind(self, directory: str, name: str) -> Kind | None:
        """What ``name`` is without following links, or ``None`` if absent."""
        return self.kinds(directory, [name])[0]

    @abc.abstractmethod
    def scan(self, directory: str) -> list[Listing]:
        """Every name in ``directory`` and its kind (empty if the directory is absent),
        unsorted. Directories appear as ``Kind.DIRECTORY`` entries of their parent."""

    # -- writing ------------------------------------------------------------------

    @abc.abstractmethod
    def write_many(
        self, directory: str, items: Sequence[tuple[str, bytes]], *, durable: bool
    ) -> list[BaseException | None]:
        """Replace each ``(name, data)`` atomically, as one group commit, creating missing
        directories. Returns one outcome per item (``None`` for success); an item that
        failed kept its old file. A backend bounds the resources held at once (descriptors,
        connections), whatever the number of items. Items naming one file twice are
        written in order."""

    def write(self, directory: str, name: str, data: bytes, *, durable: bool) -> None:
        """Replace the file atomically (see ``write_many``); raises what refused it."""
        error = self.write_many(directory, [(name, data)], durable=durable)[0]
        if error is not None:
            raise error

    @abc.abstractmethod
    def write_if(self, directory: str, name: str, data: bytes, *, version: Version | None, durable: bool) -> bool:
        """Replace the file atomically only if it is in the state ``version`` names, or,
        with ``version=None``, create it only if it is absent. Returns whether it wrote;
        ``False`` leaves the file as it is. Compare-and-swap: with it, read-modify-write
        needs no lock on a backend that has none cheap.

        Not guaranteed: that ``False`` means another writer changed the file. A backend
        may also answer ``False`` when it can no longer prove the file is in that state
        (the local backend, for a token whose inode pin was given up); a caller's loop
        reads again and retries. It never writes over a state it did not see."""

    @abc.abstractmethod
    def append(
        self,
        directory: str,
        name: str,
        data: bytes,
        *,
        keep: int | None,
        durable: bool,
        if_version: Version | None = None,
    ) -> Version | None:
        """Append ``data`` to the file in one write; with ``keep``, first cut the file to
        its first ``keep`` bytes (the caller found a torn record past them).

        A new file comes into being whole, with ``data`` as its content (as ``write``:
        no empty or partial file is ever visible); an existing one may be written in
        place. All or nothing: a failed append leaves the file as it was. The caller
        holds ``lock(directory)``, so the size it read stays true. A local backend
        refuses with ``UnsafeFileError`` a file it cannot safely write in place (more
        than one link: another name may lie outside the store).

        With ``if_version`` (a token an earlier ``append`` returned), the append happens
        only if the file is still in the state that token names: otherwise nothing is
        written and ``None`` is returned (also when the backend cannot tell: the token
        expired, the file is absent). This is how a caller that knows how the file
        ended after its own last append skips reading its tail again.

        Returns the version of the file as this append left it, or ``None`` where the
        backend keeps no such version (then callers never pass ``if_version``: a backend
        that returns ``None`` always may ignore it).
        """

    @abc.abstractmethod
    def remove_many(self, directory: str, names: Sequence[str], *, durable: bool) -> list[bool | BaseException]:
        """Delete each file; per name ``True`` if it existed, ``False`` if absent, or the
        error that refused it (the others are still removed)."""

    def remove(self, directory: str, name: str, *, durable: bool = False) -> bool:
        """Delete a file; ``True`` if it existed. Raises what refused it."""
        outcome = self.remove_many(directory, [name], durable=durable)[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    # -- locking ------------------------------------------------------------------

    @abc.abstractmethod
    def lock(self, directory: str, *, timeout: float | None = None) -> AbstractContextManager[None]:
        """Exclusive lock on ``directory`` (see the class docstring for its rules).

        Waits at most ``timeout`` seconds (forever if ``None``), then raises
        ``LockTimeoutError`` naming the lock's locator. Entering may create the
        directory; it is durable only after the next durable operation returns.
        """
