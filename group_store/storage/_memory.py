"""A storage backend that keeps every file in a dictionary of this process.

For tests (the store's own, and users' unit tests of code that uses a store) and as the
reference implementation of the seam's contract: every clause of ``Storage`` holds here
in the plainest way, so a third-party backend that disagrees with it on the conformance
suite (``group_store.testing.StorageContract``) is the one to look at.

Not done: persistence (everything goes with the object), sharing between processes (each
process, and each ``MemoryStorage`` object, has its own files and locks), symlinks and
other non-regular files (``UnsafeFileError`` arises only where a file and a directory
would share a name, as it does locally), and durability (``durable`` is accepted and
ignored: there is no power loss to survive).
"""

from __future__ import annotations

import errno
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from .._errors import LockTimeoutError, UnsafeFileError
from ._base import Kind, Listing, Storage, Version, Versioned

_NO_FILES: dict[str, Versioned] = {}


class MemoryStorage(Storage):
    """Files in memory, thread-safe, isolated per object.

    Directories exist once a write, an append or ``lock()`` has made them (with all their
    parents), and stay until the object goes: the contract has no way to remove one.
    Memory held: the bytes stored, plus a few small objects per file and per directory.

    Args:
        name: What locators call this store (``memory://<name>/...``); by default a
            random id, so two objects never share a locator.
    """

    blocking_io_is_cheap = True
    shared_between_processes = False

    def __init__(self, name: str | None = None) -> None:
        self.name = uuid.uuid4().hex[:12] if name is None else name
        # Invariant: every read and write of the three maps below happens under _mutex,
        # which is never held while waiting for a directory lock (so a lock holder can
        # always write). One mutex for the whole store makes every batch a snapshot and
        # every write atomic; a backend this small has no contention worth finer locks.
        self._mutex = threading.Lock()
        self._files: dict[str, dict[str, Versioned]] = {}
        self._children: dict[str, set[str]] = {"": set()}  # each directory's subdirectories
        # RLock is the contract's lock: re-entrant per thread, owned by the thread that
        # entered it (releasing it on another thread raises RuntimeError).
        self._locks: dict[str, threading.RLock] = {}

    def locator(self, directory: str, name: str = "") -> str:
        return f"memory://{self.name}/" + "/".join(part for part in (directory, name) if part)

    # -- reading ------------------------------------------------------------------

    def read_versions(self, directory: str, names: Sequence[str]) -> list[Versioned | None]:
        with self._mutex:
            files = self._files.get(directory, _NO_FILES)
            return [files.get(name) for name in names]

    def is_current(self, directory: str, name: str, version: Version) -> bool:
        # A Version is made for each state and kept alive by whoever holds it, so identity
        # never matches a later state (no id reuse while the caller's token lives).
        with self._mutex:
            found = self._files.get(directory, _NO_FILES).get(name)
        return found is not None and found.version is version

    def kinds(self, directory: str, names: Sequence[str]) -> list[Kind | None]:
        with self._mutex:
            return [self._kind(directory, name) for name in names]

    def scan(self, directory: str) -> list[Listing]:
        with self._mutex:
            files = [Listing(name, Kind.FILE) for name in self._files.get(directory, _NO_FILES)]
            return files + [Listing(name, Kind.DIRECTORY) for name in self._children.get(directory, ())]

    # -- writing ------------------------------------------------------------------

    def write_many(
        self, directory: str, items: Sequence[tuple[str, bytes]], *, durable: bool
    ) -> list[BaseException | None]:
        with self._mutex:
            try:
                files = self._make(directory)
            except OSError as exc:
                return [exc for _ in items]
            return [self._put(files, directory, name, bytes(data)) for name, data in items]

    def write_if(self, directory: str, name: str, data: bytes, *, version: Version | None, durable: bool) -> bool:
        with self._mutex:
            found = self._files.get(directory, _NO_FILES).get(name)
            if (None if found is None else found.version) is not version:
                return False
            error = self._put(self._make(directory), directory, name, bytes(data))
        if error is not None:
            raise error
        return True

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
        with self._mutex:
            files = self._make(directory)
            found = files.get(name)
            if if_version is not None and (found is None or found.version is not if_version):
                return None
            old = b"" if found is None else found.data if keep is None else found.data[:keep]
            error = self._put(files, directory, name, old + data)
            if error is None:
                return files[name].version
        raise error

    def remove_many(self, directory: str, names: Sequence[str], *, durable: bool) -> list[bool | BaseException]:
        with self._mutex:
            files = self._files.get(directory, _NO_FILES)
            return [self._pop(files, directory, name) for name in names]

    # -- locking ------------------------------------------------------------------

    def lock(self, directory: str, *, timeout: float | None = None) -> AbstractContextManager[None]:
        with self._mutex:
            self._make(directory)
            lock = self._locks.setdefault(directory, threading.RLock())
        return self._held(lock, directory, timeout)

    @contextmanager
    def _held(self, lock: threading.RLock, directory: str, timeout: float | None) -> Iterator[None]:
        # RLock.acquire reads -1 as 'forever' and refuses other negatives: a timeout already
        # past is a try-once, as LocalStorage does.
        if not lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise LockTimeoutError(f"lock not acquired within {timeout} s", path=self.locator(directory))
        try:
            yield
        finally:
            lock.release()

    # -- under _mutex -------------------------------------------------------------

    def _kind(self, directory: str, name: str) -> Kind | None:
        if name in self._files.get(directory, _NO_FILES):
            return Kind.FILE
        return Kind.DIRECTORY if _join(directory, name) in self._children else None

    def _make(self, directory: str) -> dict[str, Versioned]:
        """The files of ``directory``, creating it and its parents; raises UnsafeFileError
        (naming the file's locator) where a file holds the name of one of them."""
        if directory not in self._children:
            parent = ""
            for part in directory.split("/"):
                path = _join(parent, part)
                if path not in self._children:
                    if part in self._files.get(parent, _NO_FILES):
                        raise UnsafeFileError("not a directory", path=self.locator(parent, part))
                    self._children[parent].add(part)
                    self._children[path] = set()
                parent = path
        return self._files.setdefault(directory, {})

    def _put(self, files: dict[str, Versioned], directory: str, name: str, data: bytes) -> BaseException | None:
        if _join(directory, name) in self._children:
            return UnsafeFileError("is not a regular file; refusing to replace it", path=self.locator(directory, name))
        files[name] = Versioned(data, Version())
        return None

    def _pop(self, files: dict[str, Versioned], directory: str, name: str) -> bool | BaseException:
        if _join(directory, name) in self._children:
            return IsADirectoryError(errno.EISDIR, "Is a directory", self.locator(directory, name))
        return files.pop(name, None) is not None


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name
