"""The local file-system implementation of the storage seam.

Every path is walked one component at a time from the root with
``O_NOFOLLOW``-opened directory descriptors, so a symlink planted anywhere
inside the store is refused rather than followed out of it. Files are opened
with ``O_NOFOLLOW | O_NONBLOCK`` and checked to be regular before use, so a
planted FIFO cannot hang a read. Not guaranteed: protection against a process
that swaps a directory for a symlink between two of our own calls on
platforms without ``O_NOFOLLOW``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ._codec import split_log
from ._errors import UnsafeFileError
from ._fsync import fan_out
from ._layout import LOCK_NAME, temp_name
from ._locks import DirectoryLock
from ._storage import Kind, Listing

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_LINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})


class LocalStorage:
    """Files under ``root`` on the local file system (POSIX)."""

    def __init__(self, root: Path, *, file_mode: int = 0o600, dir_mode: int = 0o700) -> None:
        self.root = root
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        self._locks: dict[str, DirectoryLock] = {}
        self._locks_guard = threading.Lock()
        self._root_fd: int | None = None
        # Every root descriptor ever opened (the current one last), closed when this object goes.
        self._root_fds: list[int] = []
        finalizer = weakref.finalize(self, _close_descriptors, self._root_fds)
        # Not at interpreter exit: atexit hooks run last-registered first, so this one
        # would close the root while the writers' exit hook still drains their queues.
        finalizer.atexit = False

    def path(self, directory: str, name: str = "") -> Path:
        path = self.root / directory if directory else self.root
        return path / name if name else path

    # -- directories -------------------------------------------------------

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
            fresh = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                return None
            os.makedirs(self.root, mode=self.dir_mode, exist_ok=True)
            fresh = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with self._locks_guard:
            self._root_fds.append(fresh)
            self._root_fd = fresh
        return fresh

    def _open_dir(self, directory: str, create: bool, durable: bool = False) -> int | None:
        """A descriptor for ``directory``; the caller closes it unless it is the root's."""
        fd = self._open_root(create)
        if fd is None or not directory:
            return fd
        walked = ""
        parent = fd
        for part in directory.split("/"):
            walked = f"{walked}/{part}" if walked else part
            try:
                child = self._open_child_dir(parent, part, walked, create, durable)
            finally:
                if parent != fd:
                    os.close(parent)
            if child is None:
                return None
            parent = child
        return parent

    def _open_child_dir(self, parent: int, part: str, walked: str, create: bool, durable: bool) -> int | None:
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
                    if durable:
                        os.fsync(parent)
            except OSError as exc:
                if exc.errno in _LINK_ERRNOS:
                    raise UnsafeFileError(
                        "not a directory (symlinks are never followed)", path=self.path(walked)
                    ) from exc
                raise

    @contextmanager
    def _dir(self, directory: str, create: bool, durable: bool = False) -> Iterator[int | None]:
        fd = self._open_dir(directory, create, durable)
        try:
            yield fd
        finally:
            if fd is not None and directory:
                os.close(fd)

    # -- files -------------------------------------------------------------

    def _open_regular(self, dir_fd: int, directory: str, name: str, flags: int, mode: int = 0o600) -> int:
        return self._open_regular_sized(dir_fd, directory, name, flags, mode)[0]

    def _open_regular_sized(
        self, dir_fd: int, directory: str, name: str, flags: int, mode: int = 0o600
    ) -> tuple[int, os.stat_result]:
        """A descriptor of the regular file ``name`` and its status (one fstat serves both checks)."""
        try:
            fd = os.open(name, flags, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in _LINK_ERRNOS:
                raise UnsafeFileError("is a symlink; refusing to follow it", path=self.path(directory, name)) from exc
            raise
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            os.close(fd)
            raise UnsafeFileError("is not a regular file", path=self.path(directory, name))
        return fd, status

    def read(self, directory: str, name: str) -> bytes | None:
        return self.read_many(directory, (name,))[0]

    def read_many(self, directory: str, names: Sequence[str]) -> list[bytes | None]:
        with self._dir(directory, create=False) as dir_fd:
            if dir_fd is None:
                return [None] * len(names)
            return [self._read_in(dir_fd, directory, name) for name in names]

    def _read_in(self, dir_fd: int, directory: str, name: str) -> bytes | None:
        try:
            fd, status = self._open_regular_sized(dir_fd, directory, name, _READ_FLAGS)
        except FileNotFoundError:
            return None
        try:
            return _read_all(fd, status.st_size)
        finally:
            os.close(fd)

    def read_pinned(self, directory: str, name: str) -> tuple[bytes, int, os.stat_result] | None:
        with self._dir(directory, create=False) as dir_fd:
            if dir_fd is None:
                return None
            try:
                fd, status = self._open_regular_sized(dir_fd, directory, name, _READ_FLAGS)
            except FileNotFoundError:
                return None
            try:
                return _read_all(fd, status.st_size), fd, status
            except BaseException:
                os.close(fd)
                raise

    def kind(self, directory: str, name: str) -> Kind | None:
        return self.kinds(directory, (name,))[0]

    def kinds(self, directory: str, names: Sequence[str]) -> list[Kind | None]:
        with self._dir(directory, create=False) as dir_fd:
            if dir_fd is None:
                return [None] * len(names)
            return [_kind_in(dir_fd, name) for name in names]

    def write(self, directory: str, name: str, data: bytes, *, durable: bool) -> None:
        # One protocol for single and batched writes: a batch of one.
        error = self.write_many(directory, [(name, data)], durable=durable)[0]
        if error is not None:
            raise error

    def write_many(
        self, directory: str, items: Sequence[tuple[str, bytes]], *, durable: bool
    ) -> list[BaseException | None]:
        """``write()`` of several files in one directory, with one group commit when ``durable``.

        Every temporary file is written first, then all are fsynced in parallel
        (the file system folds concurrent fsyncs into few journal commits), then
        each is renamed into place and the directory is fsynced once. Returns one
        outcome per item: an item whose error is returned kept its old file,
        except when the final directory fsync fails (then every item reports it:
        the new files are in place but not known to be durable).
        """
        outcomes: list[BaseException | None] = [None] * len(items)
        with self._dir(directory, create=True, durable=durable) as dir_fd:
            assert dir_fd is not None
            temps: list[tuple[int, str, int]] = []  # (item index, temp name, fd)
            try:
                for index, (name, data) in enumerate(items):
                    try:
                        self._refuse_non_regular(dir_fd, directory, name)
                        temp = temp_name(name)
                        fd = self._open_regular(dir_fd, directory, temp, _TEMP_FLAGS, self.file_mode)
                        temps.append((index, temp, fd))
                        self._write_all(fd, data)
                    except BaseException as exc:  # even an interrupt leaves no temporary file behind
                        outcomes[index] = exc
                if durable:
                    for (index, _, _), error in zip(temps, _fsync_all([fd for _, _, fd in temps]), strict=True):
                        outcomes[index] = outcomes[index] or error
            finally:
                for _, _, fd in temps:
                    os.close(fd)
            for index, temp, _ in temps:
                if outcomes[index] is None:
                    try:
                        self._replace(dir_fd, temp, items[index][0])
                        continue
                    except BaseException as exc:
                        outcomes[index] = exc
                _unlink_quietly(dir_fd, temp)
            if durable:
                try:
                    os.fsync(dir_fd)
                except OSError as exc:
                    outcomes = [outcome or exc for outcome in outcomes]
        return outcomes

    def _refuse_non_regular(self, dir_fd: int, directory: str, name: str) -> None:
        # rename() would replace a planted symlink or FIFO without following it; refusing
        # is clearer than silently swapping a file someone put there on purpose.
        try:
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            raise UnsafeFileError("is not a regular file; refusing to replace it", path=self.path(directory, name))

    def _write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def _replace(self, dir_fd: int, source: str, target: str) -> None:
        os.rename(source, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)

    def append(self, directory: str, name: str, data: bytes, *, durable: bool) -> None:
        with self._dir(directory, create=True, durable=durable) as dir_fd:
            assert dir_fd is not None
            fd = self._open_regular(dir_fd, directory, name, _APPEND_FLAGS, self.file_mode)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    # A torn last line (a crash mid-append): cut it before it becomes a corrupt middle line.
                    _, size = split_log(os.pread(fd, size, 0))
                    os.ftruncate(fd, size)
                try:
                    self._write_all(fd, data)
                    if durable:
                        os.fsync(fd)
                except BaseException:
                    # All or nothing: a failed append (ENOSPC mid-write) leaves no partial items behind.
                    os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)
            if durable:
                os.fsync(dir_fd)

    def remove(self, directory: str, name: str, *, durable: bool = False) -> bool:
        with self._dir(directory, create=False) as dir_fd:
            if dir_fd is None:
                return False
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                return False
            if durable:
                os.fsync(dir_fd)
            return True

    def scan(self, directory: str) -> list[Listing]:
        with self._dir(directory, create=False) as dir_fd:
            if dir_fd is None:
                return []
            file, directory_kind, other = Kind.FILE, Kind.DIRECTORY, Kind.OTHER
            # Inlined: this runs once per name of every listing. follow_symlinks=False: a
            # symlink is neither a file nor a directory here (d_type, no stat call).
            with os.scandir(dir_fd) as entries:
                return [
                    Listing(
                        entry.name,
                        file
                        if entry.is_file(follow_symlinks=False)
                        else directory_kind
                        if entry.is_dir(follow_symlinks=False)
                        else other,
                    )
                    for entry in entries
                ]

    def lock(self, directory: str) -> AbstractContextManager[None]:
        # Walk (and create) the directory first, every time, so the lock file never
        # lands behind a symlink nor fails because the directory was removed meanwhile.
        with self._dir(directory, create=True):
            pass
        with self._locks_guard:
            lock = self._locks.get(directory)
            if lock is None:
                lock = self._locks[directory] = DirectoryLock(str(self.path(directory, LOCK_NAME)), self.file_mode)
        return lock.hold()


def _fsync_all(fds: list[int]) -> list[BaseException | None]:
    """fsync every descriptor, in parallel; one outcome per descriptor.

    Works during ``atexit`` too (see ``_fsync``: not a concurrent.futures pool,
    which refuses work once interpreter shutdown has begun).
    """
    return fan_out(_fsync_outcome, fds)


def _fsync_outcome(fd: int) -> BaseException | None:
    try:
        os.fsync(fd)
    except OSError as exc:
        return exc
    return None


def _close_descriptors(descriptors: list[int]) -> None:
    for fd in descriptors:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    # Ask for one byte more than fstat reported: a short read is then known to be
    # the end of the file, which saves the extra read() that would return b"".
    want = size + 1
    chunks = [os.read(fd, want)]
    while len(chunks[-1]) == want:
        want = 1 << 16
        chunks.append(os.read(fd, want))
    return b"".join(chunks)


def _kind_in(dir_fd: int, name: str) -> Kind | None:
    try:
        return _kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None


def _kind(mode: int) -> Kind:
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISDIR(mode):
        return Kind.DIRECTORY
    return Kind.OTHER


def _unlink_quietly(dir_fd: int, name: str) -> None:
    # Best effort: sweep() removes leftover temporary files later.
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)
