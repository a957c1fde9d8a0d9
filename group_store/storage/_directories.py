"""The directory tree under a store root: walked without following links, created
on demand, and made durable before a durable operation under it is acknowledged.

Every store directory is opened one component at a time from the root with
``O_NOFOLLOW``-opened descriptors, so a symlink planted anywhere inside the store
is refused rather than followed out of it. A directory made here is entered in its
parent's listing only in memory until that parent is fsynced; the tree remembers
each such parent (directories are made by writes and by ``lock()``, which does not
know whether the write it guards is durable) and ``sync_new()`` fsyncs them all.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from .._errors import UnsafeFileError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOT_A_DIRECTORY = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})
_UNSYNCED_LIMIT = 1024


class DirectoryTree:
    """The directories under ``root``, as descriptors.

    Holds the root's descriptor (plus one per time the root was removed and
    recreated under it, parked until ``close()``); a walk holds two more while
    it runs and returns one.
    """

    def __init__(self, root: Path, dir_mode: int) -> None:
        self.root = root
        self.dir_mode = dir_mode
        self._guard = threading.Lock()
        self._root_fd: int | None = None
        self.root_fds: list[int] = []
        """Every root descriptor ever opened (the current one last), for the owner to close."""
        # Directories that gained a sub-directory made here since their last fsync:
        # store directories ("" is the root) and, for a root made here, absolute paths
        # above it; each counts the sub-directories made, so a parent that gains another
        # while sync_new() fsyncs it stays listed (that fsync may have come too early).
        self._unsynced: dict[str, int] = {}
        self._unsynced_above: dict[str, int] = {}
        # Set when _unsynced would pass _UNSYNCED_LIMIT (a tree that gains directories
        # but never writes durably): sync_new() then fsyncs every ancestor instead.
        self._overflow = False

    def path(self, directory: str) -> Path:
        return self.root / directory if directory else self.root

    def open(self, directory: str, create: bool) -> _Opened:
        """``directory``'s descriptor for the ``with`` body, or ``None`` if it does not
        exist (never with ``create``, which makes every missing component).

        Raises:
            UnsafeFileError: if a component is a symlink or not a directory.
            OSError: if the file system refuses.
        """
        return _Opened(self._open(directory, create), directory)

    def _open(self, directory: str, create: bool) -> int | None:
        fd = self._open_root(create)
        if fd is None or not directory:
            return fd
        walked = ""
        parent = fd
        for part in directory.split("/"):
            try:
                child = self._open_child(parent, walked, part, create)
            finally:
                if parent != fd:
                    os.close(parent)
            if child is None:
                return None
            parent, walked = child, f"{walked}/{part}" if walked else part
        return parent

    def _open_root(self, create: bool) -> int | None:
        """The root's descriptor, kept open between calls (never close it).

        Re-validated with one fstat: a root that was removed (``st_nlink == 0``)
        is opened again by path, so a recreated root is used, not the deleted one.
        A stale descriptor is parked, not closed, because another thread may still
        be using it.
        """
        fd = self._root_fd
        if fd is not None and os.fstat(fd).st_nlink > 0:
            return fd
        try:
            fresh = os.open(self.root, _ROOT_FLAGS)
        except FileNotFoundError:
            if not create:
                return None
            self._make_root()
            fresh = os.open(self.root, _ROOT_FLAGS)
        with self._guard:
            self.root_fds.append(fresh)
            self._root_fd = fresh
        return fresh

    def _make_root(self) -> None:
        """``os.makedirs`` one component at a time, noting each parent a directory was made in."""
        missing = [Path(os.path.abspath(self.root))]
        while missing:
            try:
                # As makedirs: dir_mode for the root, the default (less umask) above it.
                os.mkdir(missing[-1], self.dir_mode if len(missing) == 1 else 0o777)
            except FileNotFoundError:
                if missing[-1].parent == missing[-1]:
                    raise
                missing.append(missing[-1].parent)
                continue
            except FileExistsError:
                pass  # made meanwhile by another writer, or not a directory (opening it says which)
            else:
                _count(self._guard, self._unsynced_above, str(missing[-1].parent))
            missing.pop()

    def _open_child(self, parent: int, parent_path: str, part: str, create: bool) -> int | None:
        while True:
            try:
                return os.open(part, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    return None
                try:
                    os.mkdir(part, self.dir_mode, dir_fd=parent)
                except FileExistsError:
                    pass  # another writer made it first; open it on the next turn
                else:
                    self._note_created(parent_path)
            except OSError as exc:
                if exc.errno in _NOT_A_DIRECTORY:
                    path = self.path(f"{parent_path}/{part}" if parent_path else part)
                    raise UnsafeFileError("not a directory (symlinks are never followed)", path=path) from exc
                raise

    def _note_created(self, parent: str) -> None:
        if len(self._unsynced) < _UNSYNCED_LIMIT or parent in self._unsynced:
            _count(self._guard, self._unsynced, parent)
        else:
            self._overflow = True

    def sync_new(self, directory: str) -> None:
        """fsync every directory that gained a sub-directory made here since its last
        fsync (after an overflow, every ancestor of ``directory`` too): a durable operation
        on ``directory`` calls this before it is acknowledged, so the directories leading
        to it survive a power loss as its files do.

        Costs nothing when no directory was made since the last call. A parent is
        forgotten only once its fsync succeeded; an error leaves it for the next call.

        Not guaranteed: directories another process or storage object made (each makes
        its own durable before acknowledging its own durable writes).

        Raises:
            OSError: if an fsync fails.
        """
        if not (self._unsynced or self._unsynced_above or self._overflow):
            return
        with self._guard:
            above, inside = dict(self._unsynced_above), dict(self._unsynced)
        parents = set(inside)
        if self._overflow:
            parts = directory.split("/") if directory else []
            parents.update("/".join(parts[:depth]) for depth in range(len(parts)))
        for path in sorted(above, key=len):
            try:
                fd = os.open(path, _ROOT_FLAGS)
            except FileNotFoundError:
                continue  # removed meanwhile, and the root with it
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for parent in sorted(parents, key=len):
            with self.open(parent, create=False) as parent_fd:
                if parent_fd is not None:  # removed meanwhile: nothing of it left to make durable
                    os.fsync(parent_fd)
        _forget(self._guard, self._unsynced_above, above)
        _forget(self._guard, self._unsynced, inside)


def _count(guard: threading.Lock, counts: dict[str, int], name: str) -> None:
    with guard:
        counts[name] = counts.get(name, 0) + 1


def _forget(guard: threading.Lock, counts: dict[str, int], synced: dict[str, int]) -> None:
    """Drop the entries fsynced since ``synced`` was copied, unless they grew meanwhile."""
    with guard:
        for name, count in synced.items():
            if counts.get(name) == count:
                del counts[name]


class _Opened:
    """A directory descriptor held for a ``with`` body (the root's is kept open).

    A class, not a ``@contextmanager`` generator: every file operation opens one.
    """

    __slots__ = ("directory", "fd")

    def __init__(self, fd: int | None, directory: str) -> None:
        self.fd, self.directory = fd, directory

    def __enter__(self) -> int | None:
        return self.fd

    def __exit__(self, *exc_info: object) -> None:
        if self.fd is not None and self.directory:
            os.close(self.fd)
