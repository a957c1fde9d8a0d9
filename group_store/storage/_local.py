"""The local file-system implementation of the storage seam.

Directories are walked, created and made durable by ``DirectoryTree`` (no
symlink inside the store is ever followed). Files are opened
relative to their directory's descriptor with ``O_NOFOLLOW | O_NONBLOCK`` and
checked to be regular before use, so a planted FIFO cannot hang a read; any
entry that is not a regular file (symlink, FIFO, socket, device, directory) is
refused with ``UnsafeFileError``, whatever ``errno`` opening it gave. In-place
writes (appends, the torn-tail cut) also refuse a file with more than one link.

Descriptors held at once: per storage object, the tree's root descriptor (plus
one per time the root was removed and recreated under it, parked until the object
goes); per process, at most ``IDLE_LOCK_DESCRIPTORS`` idle lock descriptors plus
one per directory whose lock is held or awaited, plus at most ``pin_budget()``
descriptors pinned by version tokens (``_pins``); per operation in progress, two
during a walk, one for its directory after it, one per file it reads or writes,
and at most ``group_commit_descriptors()`` temporary files in a durable group commit.

Not guaranteed: protection against a process that swaps a directory for a
symlink between two of our own calls on platforms without ``O_NOFOLLOW``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import resource
import stat
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from .._errors import LockTimeoutError, UnsafeFileError
from .._format.layout import LOCK_NAME, temp_name
from ._base import Kind, Listing, Storage, Tail, Version, Versioned
from ._directories import DirectoryTree
from ._fsync import fan_out
from ._locks import DirectoryLock, process_locks
from ._pins import Identity, LocalVersion, identity, pinned, still_pinned

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# No O_CREAT: a new log is written whole beside its name and renamed into place.
_LOG_FLAGS = os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Read-only suffices for flock; O_CREAT without write access still works on a
# read-only file system once the lock file exists.
_LOCK_FLAGS = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_LINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK})
_SNAPSHOT_ATTEMPTS = 16

_LISTING_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LISTING_MIN_NAMES = 32
_LISTING_ENTRIES_PER_NAME = 8
"""When ``_kinds_in`` reads a listing instead of one ``stat`` per name (see there)."""

GROUP_COMMIT_DESCRIPTORS = 256
"""Temporary files a durable ``write_many`` holds open at once at most (fsynced in parallel,
then renamed): the file system folds concurrent fsyncs into one journal commit, so the
larger the group, the fewer commits (1,000 durable saves: 0.30 s in groups of 64, 0.17 s
in groups of 256, on this project's benchmark machine)."""


def group_commit_descriptors() -> int:
    """Temporary files a durable group commit holds open at once: ``GROUP_COMMIT_DESCRIPTORS``,
    or an eighth of the soft ``RLIMIT_NOFILE`` if that is less (as the pins' budget)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return GROUP_COMMIT_DESCRIPTORS
    return max(1, min(GROUP_COMMIT_DESCRIPTORS, soft // 8))


# Temporary-name tokens: 64 bits from a generator seeded by the OS, again in every forked
# child (two children of one parent must not draw the same names). Not ``secrets``: that
# is a system call per save, and uniqueness is all a token needs (see ``temp_name``).
_temp_tokens = random.Random()
os.register_at_fork(after_in_child=_temp_tokens.seed)

_Read = tuple[bytes, int, os.stat_result]
"""A file's bytes, the descriptor they were read through (``-1`` once closed) and its status."""
"""Temporary files a durable ``write_many`` holds open at once (fsynced in parallel, then renamed)."""


_UNPINNED = LocalVersion((0, 0, -1, 0, 0), None)
"""The token of a state this backend did not keep a pin for: never current."""


class LocalStorage(Storage):
    """Files under ``root`` on the local file system (POSIX).

    Versions (see ``_pins``): a token from ``read_versions`` pins the file it was read
    from while the process-wide pin budget allows, and ``is_current`` is then one
    ``stat``; a token from ``append`` pins the log it appended to, and a later
    ``append(if_version=...)`` checks it with the ``fstat`` the append makes anyway.
    """

    blocking_io_is_cheap = True
    shared_between_processes = True

    def __init__(self, root: Path, *, file_mode: int = 0o600, dir_mode: int = 0o700) -> None:
        self.root = root
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        self._tree = DirectoryTree(root, dir_mode)
        self._lock_root = os.path.abspath(root)
        finalizer = weakref.finalize(self, _close_descriptors, self._tree.root_fds)
        # Not at interpreter exit: atexit hooks run last-registered first, so this one
        # would close the root while the writers' exit hook still drains their queues.
        finalizer.atexit = False

    def path(self, directory: str, name: str = "") -> Path:
        """The local path of ``name`` in ``directory`` (local only: not part of the seam)."""
        path = self.root / directory if directory else self.root
        return path / name if name else path

    def locator(self, directory: str, name: str = "") -> str:
        return str(self.path(directory, name))

    def local_path(self, directory: str, name: str = "") -> Path | None:
        return self.path(directory, name)

    def _dir(self, directory: str, create: bool) -> AbstractContextManager[int | None]:
        return self._tree.open(directory, create)

    # -- files -------------------------------------------------------------

    def _open_regular_sized(
        self, dir_fd: int, directory: str, name: str, flags: int, mode: int = 0o600
    ) -> tuple[int, os.stat_result]:
        """A descriptor of the regular file ``name`` and its status (one fstat serves both checks).

        Raises:
            FileNotFoundError: as is, for callers that expect it.
            UnsafeFileError: if ``name`` is anything but a regular file.
            OSError: any other refusal, naming the file.
        """
        try:
            fd = os.open(name, flags, mode, dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno in _LINK_ERRNOS:
                raise UnsafeFileError("is a symlink; refusing to follow it", path=self.path(directory, name)) from exc
            if _kind_in(dir_fd, name) not in (None, Kind.FILE):  # a socket gives ENXIO, a directory EISDIR, ...
                raise UnsafeFileError("is not a regular file", path=self.path(directory, name)) from exc
            raise _naming(exc, self.path(directory, name)) from exc
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            os.close(fd)
            raise UnsafeFileError("is not a regular file", path=self.path(directory, name))
        return fd, status

    def read(self, directory: str, name: str) -> bytes | None:
        return self.read_many(directory, (name,))[0]

    def read_many(self, directory: str, names: Sequence[str]) -> list[bytes | None]:
        return [None if found is None else found[0] for found in self._snapshot(directory, names, keep=False)]

    def read_versions(self, directory: str, names: Sequence[str]) -> list[Versioned | None]:
        # Each descriptor read through becomes its token's pin (no extra system call).
        return [
            None if found is None else Versioned(found[0], pinned(identity(found[2]), found[1]))
            for found in self._snapshot(directory, names, keep=True)
        ]

    def _snapshot(self, directory: str, names: Sequence[str], *, keep: bool) -> list[_Read | None]:
        """Each file's bytes, descriptor and status, as one snapshot; with ``keep`` the
        caller owns the descriptors (``-1`` otherwise: closed here)."""
        # A snapshot (see Storage.read_versions): lock-free, retried while writers replace the
        # files under us; after _SNAPSHOT_ATTEMPTS the read takes the writers' lock instead,
        # so it always ends (only rival writes can make an attempt fail).
        for _ in range(1 if len(names) < 2 else _SNAPSHOT_ATTEMPTS):
            with self._dir(directory, create=False) as dir_fd:
                if dir_fd is None:
                    return [None] * len(names)
                contents = self._read_together(dir_fd, directory, names, keep=keep)
            if contents is not None:
                return contents
        with self.lock(directory), self._dir(directory, create=False) as dir_fd:
            assert dir_fd is not None
            return self._read_together(dir_fd, directory, names, keep=keep, check=False) or []

    def _read_together(
        self, dir_fd: int, directory: str, names: Sequence[str], *, keep: bool, check: bool = True
    ) -> list[_Read | None] | None:
        """Each file's bytes, or ``None`` if a file read before the last open was replaced meanwhile.

        Every file read stays open until the end, so its inode number cannot be reused by
        a replacement; a file still at its name after the last open was current then.
        The store never writes a document or sidecar in place, so same inode, same bytes.
        """
        contents: list[_Read | None] = []
        opened: list[tuple[str, int, os.stat_result]] = []
        done = False
        try:
            for name in names:
                try:
                    fd, status = self._open_regular_sized(dir_fd, directory, name, _READ_FLAGS)
                except FileNotFoundError:
                    contents.append(None)
                    continue
                opened.append((name, fd, status))
                contents.append((_read_all(fd, status.st_size), fd if keep else -1, status))
            # The last file opened was current when it was opened; only the earlier ones need checking.
            earlier = opened[:-1] if contents and contents[-1] is not None else opened
            if check and len(names) > 1 and not all(_still_at(dir_fd, name, status) for name, _, status in earlier):
                return None
            done = keep
            return contents
        finally:
            if not done:
                for _, fd, _ in opened:
                    os.close(fd)

    def is_current(self, directory: str, name: str, version: Version) -> bool:
        """One ``stat`` for a token that still holds its pin; ``False`` for any other."""
        if not isinstance(version, LocalVersion) or not still_pinned(version):
            return False
        with self._dir(directory, create=False) as dir_fd:
            if dir_fd is None:
                return False
            try:
                status = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return False
        # Pinned before and after the stat: the inode number could not be reused in between.
        return identity(status) == version.identity and still_pinned(version)

    def _open_for_reading(self, directory: str, name: str) -> tuple[int, os.stat_result] | None:
        """A read descriptor of the regular file ``name`` and its status (the caller closes
        it), or ``None`` if it or its directory does not exist."""
        with self._dir(directory, create=False) as dir_fd:
            if dir_fd is None:
                return None
            try:
                return self._open_regular_sized(dir_fd, directory, name, _READ_FLAGS)
            except FileNotFoundError:
                return None

    def read_tail(self, directory: str, name: str, size: int) -> Tail | None:
        found = self._open_for_reading(directory, name)
        if found is None:
            return None
        fd, status = found
        try:
            if status.st_size <= size:
                data = _read_all(fd, status.st_size)
                return Tail(data, len(data))
            return Tail(os.pread(fd, size, status.st_size - size) if size else b"", status.st_size)
        finally:
            os.close(fd)

    def kind(self, directory: str, name: str) -> Kind | None:
        return self.kinds(directory, (name,))[0]

    def kinds(self, directory: str, names: Sequence[str]) -> list[Kind | None]:
        with self._dir(directory, create=False) as dir_fd:
            if dir_fd is None:
                return [None] * len(names)
            return _kinds_in(dir_fd, directory, names)

    def write(self, directory: str, name: str, data: bytes, *, durable: bool) -> None:
        # One protocol for single and batched writes: a batch of one.
        error = self.write_many(directory, [(name, data)], durable=durable)[0]
        if error is not None:
            raise error

    def write_many(
        self, directory: str, items: Sequence[tuple[str, bytes]], *, durable: bool
    ) -> list[BaseException | None]:
        """``write()`` of several files in one directory, with one group commit when ``durable``.

        Not durable: each file is written to a temporary file, closed and renamed
        into place before the next, so one descriptor is open at a time. Durable:
        in chunks of ``group_commit_descriptors()``, every temporary file is written,
        all are fsynced in parallel (the file system folds concurrent fsyncs into
        few journal commits), then each is renamed into place; the directory is
        fsynced once after the last chunk, then every directory this object created
        on the way (``DirectoryTree.sync_new``). Returns one outcome per item: an
        item whose error is returned kept its old file, except when a final fsync
        fails (then every item reports it: the new files are in place but not
        known to be durable).
        """
        with self._dir(directory, create=True) as dir_fd:
            assert dir_fd is not None
            outcomes = self._write_in(dir_fd, directory, items, durable=durable)
        if durable:
            try:
                self._tree.sync_new(directory)
            except OSError as exc:
                outcomes = [outcome or exc for outcome in outcomes]
        return outcomes

    def _write_in(
        self, dir_fd: int, directory: str, items: Sequence[tuple[str, bytes]], *, durable: bool
    ) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * len(items)
        # Checked up front, in one listing for a large batch (see _kinds_in).
        kinds = _kinds_in(dir_fd, directory, [name for name, _ in items])
        if not durable:
            for index, (name, data) in enumerate(items):
                outcomes[index] = self._write_one(dir_fd, directory, name, data, kinds[index])
            return outcomes
        group = group_commit_descriptors()
        for start in range(0, len(items), group):
            chunk = range(start, min(start + group, len(items)))
            self._commit_chunk(dir_fd, directory, items, kinds, chunk, outcomes)
        try:
            os.fsync(dir_fd)
        except OSError as exc:
            outcomes = [outcome or exc for outcome in outcomes]
        return outcomes

    def _write_one(
        self, dir_fd: int, directory: str, name: str, data: bytes, kind: Kind | None
    ) -> BaseException | None:
        """Write, close and rename one temporary file over ``name`` (of ``kind`` now); its outcome."""
        temp: str | None = None
        try:
            self._refuse_non_regular(directory, name, kind)
            temp, fd = self._create_temp(dir_fd, directory, name)
            try:
                self._write_all(fd, data)
            finally:
                os.close(fd)
            self._replace(dir_fd, temp, name)
        except BaseException as exc:  # even an interrupt leaves no temporary file behind
            if temp is not None:
                _unlink_quietly(dir_fd, temp)
            return exc
        return None

    def _commit_chunk(
        self,
        dir_fd: int,
        directory: str,
        items: Sequence[tuple[str, bytes]],
        kinds: list[Kind | None],
        chunk: range,
        outcomes: list[BaseException | None],
    ) -> None:
        """Write, fsync in parallel and rename the items of ``chunk`` (no directory fsync)."""
        temps: list[tuple[int, str, int]] = []  # (item index, temp name, fd)
        try:
            try:
                for index in chunk:
                    name, data = items[index]
                    try:
                        self._refuse_non_regular(directory, name, kinds[index])
                        temp, fd = self._create_temp(dir_fd, directory, name)
                        temps.append((index, temp, fd))
                        self._write_all(fd, data)
                    except BaseException as exc:  # even an interrupt leaves no temporary file behind
                        outcomes[index] = exc
                for (index, _, _), error in zip(temps, _fsync_all([fd for _, _, fd in temps]), strict=True):
                    outcomes[index] = outcomes[index] or error
            finally:
                for _, _, fd in temps:
                    os.close(fd)
        except BaseException:
            for _, temp, _ in temps:
                _unlink_quietly(dir_fd, temp)
            raise
        for index, temp, _ in temps:
            if outcomes[index] is None:
                try:
                    self._replace(dir_fd, temp, items[index][0])
                    continue
                except BaseException as exc:
                    outcomes[index] = exc
            _unlink_quietly(dir_fd, temp)

    def _create_temp(self, dir_fd: int, directory: str, name: str) -> tuple[str, int]:
        """A new temporary file beside ``name``: its name and descriptor.

        No fstat: ``O_CREAT | O_EXCL`` makes a new regular file or fails. A refusal names ``name``.
        """
        temp = temp_name(name, _temp_tokens.getrandbits(64))
        try:
            return temp, os.open(temp, _TEMP_FLAGS, self.file_mode, dir_fd=dir_fd)
        except OSError as exc:
            raise _naming(exc, self.path(directory, name)) from exc

    def _refuse_non_regular(self, directory: str, name: str, kind: Kind | None) -> None:
        # rename() would replace a planted symlink or FIFO without following it; refusing
        # is clearer than silently swapping a file someone put there on purpose.
        if kind is not None and kind is not Kind.FILE:
            raise UnsafeFileError("is not a regular file; refusing to replace it", path=self.path(directory, name))

    def _write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def _replace(self, dir_fd: int, source: str, target: str) -> None:
        os.rename(source, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)

    def write_if(self, directory: str, name: str, data: bytes, *, version: Version | None, durable: bool) -> bool:
        """See ``Storage.write_if``. Create-only links a complete temporary file to ``name``
        (``link`` fails with EEXIST against any concurrent creator, lock or no lock);
        replace-if-version compares and renames under ``lock(directory)``, which every
        writer of this backend takes."""
        if version is None:
            # Under the lock too: between link and unlink the file has two names, and an
            # append (which holds the lock) would refuse it as hard-linked. A crash in that
            # window leaves our own temporary name behind: appends to that file raise
            # UnsafeFileError until sweep or verify --fix removes it (nothing is lost).
            with self.lock(directory):
                return self._create_only(directory, name, data, durable=durable)
        with self.lock(directory):
            # A token that lost its pin is never current: a spurious False, which the
            # contract allows (a compare-and-swap loop reads again), never a blind write.
            if not self.is_current(directory, name, version):
                return False
            self.write(directory, name, data, durable=durable)
            return True

    def _create_only(self, directory: str, name: str, data: bytes, *, durable: bool) -> bool:
        with self._dir(directory, create=True) as dir_fd:
            assert dir_fd is not None
            self._refuse_non_regular(directory, name, _kind_in(dir_fd, name))
            temp, fd = self._create_temp(dir_fd, directory, name)
            try:
                try:
                    self._write_all(fd, data)
                    if durable:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                except FileExistsError:
                    return False
            finally:
                _unlink_quietly(dir_fd, temp)
            if durable:
                os.fsync(dir_fd)
        if durable:
            self._tree.sync_new(directory)
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
        """See ``Storage.append``. A new log is written as a document is (temporary file,
        rename), so it never exists without its first bytes; an existing one is appended
        to in place, after checking it is a regular file with no other link.

        The token returned pins the log (a read-only descriptor). With ``if_version``, the
        log opened by name must still be the token's file at the size it recorded (the
        ``fstat`` this append makes anyway); the token is then updated to the new state and
        returned (it named a state that exists no more, and the store's engine, its only
        holder, replaces it).
        """
        with self._dir(directory, create=True) as dir_fd:
            assert dir_fd is not None
            if if_version is not None:
                token = self._append_again(dir_fd, directory, name, data, if_version, durable)
                in_place = token is not None
            else:
                token, in_place = self._append_anew(dir_fd, directory, name, data, keep, durable)
            if in_place and durable:  # the log's own entry: it may have been made by a write not yet durable
                os.fsync(dir_fd)
        if token is not None and durable:
            self._tree.sync_new(directory)
        return token

    def _append_anew(
        self, dir_fd: int, directory: str, name: str, data: bytes, keep: int | None, durable: bool
    ) -> tuple[LocalVersion, bool]:
        """Open the log by name and append (creating it whole if absent); the new token and
        whether it was written in place."""
        try:
            fd, status = self._open_regular_sized(dir_fd, directory, name, _LOG_FLAGS)
        except FileNotFoundError:
            error = self._write_in(dir_fd, directory, [(name, data)], durable=durable)[0]
            if error is not None:
                raise error from None
            return self._pin_log(dir_fd, name, None), False
        try:
            self._refuse_linked(status, directory, name)
            size = status.st_size
            if keep is not None and keep < size:
                os.ftruncate(fd, keep)
                size = keep
            self._write_at_end(fd, size, data, durable)
        finally:
            os.close(fd)
        return self._pin_log(dir_fd, name, (status.st_dev, status.st_ino)), True

    def _pin_log(self, dir_fd: int, name: str, written: tuple[int, int] | None) -> LocalVersion:
        """A token for the log just appended to (the file ``written`` names, if known), pinned
        by a read-only descriptor: a writable one kept open would make the file system refuse
        a read-only remount (EBUSY). The caller holds the lock, so the file at the name is
        still the one just written. Costs an open and an fstat, once per log in an unknown state."""
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return _UNPINNED  # a token that never matches: the next append reads the tail
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or (written is not None and written != (status.st_dev, status.st_ino)):
            os.close(fd)
            return _UNPINNED
        return pinned(_appended(status, status.st_size), fd)

    def _append_again(
        self, dir_fd: int, directory: str, name: str, data: bytes, version: Version, durable: bool
    ) -> LocalVersion | None:
        """Append if the log is as the token's append left it; ``None`` (nothing written) otherwise."""
        if not isinstance(version, LocalVersion):
            return None
        try:
            fd, status = self._open_regular_sized(dir_fd, directory, name, _LOG_FLAGS)
        except (FileNotFoundError, UnsafeFileError):
            return None  # the long way reports what is there
        try:
            # Our descriptor names the file at the name now; if the token still holds its pin
            # after our open, the token's inode number was never free since it was made, so an
            # equal number is this very file. Same size: the state that append left (the file
            # changes in place only by appends, which grow it, and cuts back to a length found
            # whole). A file changed otherwise goes the long way, which reads its tail.
            if (
                (status.st_dev, status.st_ino, status.st_size) != version.identity[:3]
                or status.st_nlink > 1
                or not still_pinned(version)
            ):
                return None
            self._write_at_end(fd, status.st_size, data, durable)
        finally:
            os.close(fd)
        # Invariant: an append token's identity changes only here, under its directory's lock.
        version.identity = _appended(status, status.st_size + len(data))
        return version

    def _refuse_linked(self, status: os.stat_result, directory: str, name: str) -> None:
        if status.st_nlink > 1:
            # Another name for this inode may lie outside the store: neither the append
            # nor the cut may reach it.
            raise UnsafeFileError(
                "has more than one link (a hard link?); refusing to write it in place", path=self.path(directory, name)
            )

    def _write_at_end(self, fd: int, size: int, data: bytes, durable: bool) -> None:
        """Append ``data`` to the file of ``size`` bytes open at ``fd`` (``O_APPEND``), all or nothing."""
        try:
            self._write_all(fd, data)
            if durable:
                os.fsync(fd)
        except BaseException:
            # All or nothing: a failed append (ENOSPC mid-write) leaves no partial items behind.
            os.ftruncate(fd, size)
            raise

    def remove(self, directory: str, name: str, *, durable: bool = False) -> bool:
        outcome = self.remove_many(directory, (name,), durable=durable)[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def remove_many(self, directory: str, names: Sequence[str], *, durable: bool) -> list[bool | BaseException]:
        """See ``Storage.remove_many``: one directory walk and, when ``durable``, one fsync for all."""
        outcomes: list[bool | BaseException] = []
        with self._dir(directory, create=False) as dir_fd:
            if dir_fd is None:
                return [False] * len(names)
            for name in names:
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    outcomes.append(False)
                except OSError as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(True)
            if durable and any(outcome is True for outcome in outcomes):
                os.fsync(dir_fd)
        if durable:
            self._tree.sync_new(directory)
        return outcomes

    def scan(self, directory: str) -> list[Listing]:
        with self._dir(directory, create=False) as dir_fd:
            if dir_fd is None:
                return []
            file, directory_kind, other = Kind.FILE, Kind.DIRECTORY, Kind.OTHER
            # Inlined: this runs once per name of every listing. follow_symlinks=False: a
            # symlink is neither a file nor a directory here (d_type, no stat call).
            with _Listing(dir_fd, directory) as entries:
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

    # -- locks -------------------------------------------------------------

    def lock(self, directory: str, *, timeout: float | None = None) -> AbstractContextManager[None]:
        """See ``Storage.lock``: the directory's ``DirectoryLock``, re-entrant per thread.

        Raises:
            LockTimeoutError: if ``timeout`` passed first (``.path``: the ``.lock`` file).
            UnsafeFileError: if the lock file is a symlink or not a regular file.
            OSError: if the file system refuses, naming the lock file.
        """
        return self._held(directory, None if timeout is None else time.monotonic() + max(timeout, 0.0))

    def lock_key(self, directory: str) -> str:
        """The key of ``directory``'s lock in ``process_locks``: its absolute path."""
        return os.path.join(self._lock_root, directory) if directory else self._lock_root

    @contextmanager
    def _held(self, directory: str, deadline: float | None) -> Iterator[None]:
        lock = process_locks.checkout(self.lock_key(directory))
        try:
            if deadline is None:
                lock.thread_lock.acquire()
            elif not lock.thread_lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
                raise self._timed_out(directory)
            try:
                if not lock.depth:
                    self._acquire(directory, lock, deadline)
                lock.depth += 1
                try:
                    yield
                finally:
                    lock.depth -= 1
                    if not lock.depth:
                        lock.release()
            finally:
                lock.thread_lock.release()
        finally:
            process_locks.checkin(lock)

    def _timed_out(self, directory: str) -> LockTimeoutError:
        return LockTimeoutError("the directory lock was not acquired in time", path=self.locator(directory, LOCK_NAME))

    def _acquire(self, directory: str, lock: DirectoryLock, deadline: float | None) -> None:
        """flock the kept descriptor of ``directory``'s ``.lock`` (this thread holds ``lock.thread_lock``).

        The directory is walked (and created) every time, so the lock file never lands
        behind a symlink nor fails because the directory was removed meanwhile; the file
        is opened relative to the walked descriptor with ``O_NOFOLLOW``. Once locked, the
        descriptor must still be the file that ``.lock`` names in that directory (the
        directory or the file may have been replaced since it was opened): otherwise it
        is closed and the next turn opens the file that is there now.
        """
        try:
            while not self._try_acquire(directory, lock, deadline):
                pass
        except BaseException:
            lock.close()  # even after an interrupt no flock stays behind
            raise

    def _try_acquire(self, directory: str, lock: DirectoryLock, deadline: float | None) -> bool:
        with self._dir(directory, create=True) as dir_fd:
            assert dir_fd is not None
            if lock.fd is None or lock.is_inherited():
                lock.close()  # an inherited descriptor's flock is the parent's: never use it
                try:
                    fd, status = self._open_regular_sized(dir_fd, directory, LOCK_NAME, _LOCK_FLAGS, self.file_mode)
                except FileNotFoundError:
                    return False  # the directory was removed after the walk: walk (and create) it again
                lock.attach(fd, (status.st_dev, status.st_ino))
            assert lock.fd is not None
            try:
                acquired = lock.flock(deadline)
            except OSError as exc:
                raise _naming(exc, self.path(directory, LOCK_NAME)) from exc
            if not acquired:
                raise self._timed_out(directory)
            if _identity(dir_fd, LOCK_NAME) == lock.identity:
                return True
            lock.close()  # unlocked and closed: the next turn opens the file .lock names now
            return False


def _appended(status: os.stat_result, size: int) -> Identity:
    """The identity an append token records: device, inode and the size the append left.

    mtime and ctime stay unknown (-1), so ``is_current()`` never accepts such a token.
    """
    return (status.st_dev, status.st_ino, size, -1, -1)


def _identity(dir_fd: int, name: str) -> tuple[int, int] | None:
    try:
        status = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` again, naming ``path`` (absolute, so the store's error boundary reports this file)."""
    return OSError(exc.errno, exc.strerror, os.path.abspath(path))


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


def _still_at(dir_fd: int, name: str, status: os.stat_result) -> bool:
    """True if ``name`` is still the file ``status`` describes (held open by the caller)."""
    try:
        now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (now.st_ino, now.st_dev) == (status.st_ino, status.st_dev)


def _kinds_in(dir_fd: int, directory: str, names: Sequence[str]) -> list[Kind | None]:
    """The kind of each of ``names`` in the directory (``None``: absent), symlinks not followed.

    One ``stat`` per name, or for at least ``_LISTING_MIN_NAMES`` names one pass over the
    directory's listing (its entry types need no ``stat``; a lookup of a missing name in a
    large directory costs several microseconds), given up for the stats once it has read
    ``_LISTING_ENTRIES_PER_NAME`` entries per name: the listing is cheaper only while the
    directory is not much larger than the batch. Callers hold the directory's lock, so no
    group_store writer changes these names during the pass.
    """
    if len(names) >= _LISTING_MIN_NAMES:
        found = _kinds_by_listing(dir_fd, directory, names)
        if found is not None:
            return found
    return [_kind_in(dir_fd, name) for name in names]


def _kinds_by_listing(dir_fd: int, directory: str, names: Sequence[str]) -> list[Kind | None] | None:
    wanted = set(names)
    kinds: dict[str, Kind] = {}
    budget = _LISTING_ENTRIES_PER_NAME * len(names)
    file_kind, directory_kind, other_kind = Kind.FILE, Kind.DIRECTORY, Kind.OTHER
    with _Listing(dir_fd, directory) as entries:
        for read, entry in enumerate(entries):
            if read >= budget:
                return None
            if entry.name in wanted:
                kinds[entry.name] = (
                    file_kind
                    if entry.is_file(follow_symlinks=False)
                    else directory_kind
                    if entry.is_dir(follow_symlinks=False)
                    else other_kind
                )
    return [kinds.get(name) for name in names]


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


class _Listing:
    """``os.scandir`` of the directory open at ``dir_fd`` (``directory``), safe beside other threads.

    The root's descriptor is shared by every thread, and a listing's position lives in the
    open file description, which ``scandir``'s duplicate of the descriptor shares: two
    threads listing the root through it at once each miss entries (seen: 59 of 200
    listings short). The root is listed through a descriptor of its own; any other
    directory's descriptor is already private to the call that opened it.
    """

    __slots__ = ("_entries", "_own")

    def __init__(self, dir_fd: int, directory: str) -> None:
        self._own = os.open(".", _LISTING_FLAGS, dir_fd=dir_fd) if not directory else -1
        try:
            self._entries = os.scandir(self._own if self._own != -1 else dir_fd)
        except BaseException:
            self._close_own()
            raise

    def __enter__(self) -> Iterator[os.DirEntry[str]]:
        return self._entries

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._entries.close()
        finally:
            self._close_own()

    def _close_own(self) -> None:
        if self._own != -1:
            os.close(self._own)
            self._own = -1
