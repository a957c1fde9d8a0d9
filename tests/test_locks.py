"""Directory locks: exclusion across threads, storage objects and processes at once;
a kept descriptor that always locks the file ``.lock`` names now; a bounded cache."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import threading
from pathlib import Path

import pytest

from group_store import LockTimeoutError, Store, UnsafeFileError
from group_store.storage._local import LocalStorage
from group_store.storage._locks import IDLE_LOCK_DESCRIPTORS, LockTable, process_locks

from .processes import run_processes

PROCESSES = 3
THREADS = 4
ROUNDS = 60


def _is_locked_elsewhere(path: Path) -> bool:
    """True if some other open file description holds an flock on ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the probe's own flock, if it got one
    return False


def _increment_unsafely_under_the_lock(root: str) -> None:
    # The counter file is rewritten in place, not atomically: only the lock keeps
    # two writers from reading the same value or a half-written file.
    stores = [Store(root), Store(root)]  # two storage objects in one process: two open file descriptions
    counter = Path(root) / "counter.txt"
    errors: list[BaseException] = []

    def work(store: Store) -> None:
        try:
            for _ in range(ROUNDS):
                with store.lock(), store.lock():  # re-entrant in one thread
                    value = int(counter.read_text())
                    counter.write_text(str(value + 1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(stores[i % 2],)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_the_lock_excludes_threads_storage_objects_and_processes_at_once(tmp_path: Path) -> None:
    (tmp_path / "counter.txt").write_text("0")
    run_processes([(_increment_unsafely_under_the_lock, (str(tmp_path),)) for _ in range(PROCESSES)])
    assert int((tmp_path / "counter.txt").read_text()) == PROCESSES * THREADS * ROUNDS


def test_the_lock_is_held_by_flock_on_the_file_lock_names(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.lock():
        assert _is_locked_elsewhere(tmp_path / ".lock")
    assert not _is_locked_elsewhere(tmp_path / ".lock")


def test_a_replaced_lock_file_is_noticed_and_the_new_one_locked(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save("k", 1)  # the lock descriptor is now kept open, on the first .lock
    (tmp_path / "new").write_bytes(b"")
    os.replace(tmp_path / "new", tmp_path / ".lock")
    with store.lock():
        assert _is_locked_elsewhere(tmp_path / ".lock")


def test_a_replaced_directory_is_noticed_and_its_own_lock_taken(tmp_path: Path) -> None:
    store = Store(tmp_path).narrow("a")
    store.save("k", 1)
    os.rename(tmp_path / "a", tmp_path / "a-old")
    (tmp_path / "a").mkdir()
    with store.lock():
        assert _is_locked_elsewhere(tmp_path / "a" / ".lock")
        assert not _is_locked_elsewhere(tmp_path / "a-old" / ".lock")


def test_the_lock_file_is_opened_in_the_walked_directory_never_through_a_swapped_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = Store(root).narrow("a")
    store.save("seed", 0)
    (root / "a" / ".lock").unlink()  # the kept descriptor no longer names .lock: it is opened again
    # The swap lands after the walk, just before the lock file is opened.
    real_open = os.open

    def swapping_open(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if str(path).endswith(".lock") and not (root / "a").is_symlink():
            os.rename(root / "a", root / "a-moved")
            os.symlink(elsewhere, root / "a")
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", swapping_open)
    with pytest.raises(UnsafeFileError):  # the write's own walk then refuses the symlink
        store.save("k", 1)
    assert list(elsewhere.iterdir()) == []


def test_a_forked_child_takes_the_lock_on_a_descriptor_of_its_own(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save("k", 1)  # the parent keeps a lock descriptor open: the child inherits it
    storage = store._engine.storage
    assert isinstance(storage, LocalStorage)
    kept = process_locks.checkout(storage.lock_key(""))
    process_locks.checkin(kept)
    assert kept.fd is not None
    to_parent, from_child = os.pipe()
    to_child, from_parent = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            with store.lock():
                os.write(from_child, b"in")
                os.read(to_child, 1)  # hold the lock until the parent has looked
            code = 0
        finally:
            os._exit(code)
    try:
        assert os.read(to_parent, 2) == b"in"
        # Had the child locked the inherited descriptor, the parent's would be free:
        # flock belongs to the open file description both share.
        try:
            fcntl.flock(kept.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            taken_by_child = True
        else:
            taken_by_child = False
            fcntl.flock(kept.fd, fcntl.LOCK_UN)
    finally:
        os.write(from_parent, b"x")
        _, status = os.waitpid(pid, 0)
        for fd in (to_parent, from_child, to_child, from_parent):
            os.close(fd)
    assert taken_by_child
    assert os.waitstatus_to_exitcode(status) == 0
    with store.lock():  # the parent's own descriptor still works after the child's release
        assert _is_locked_elsewhere(tmp_path / ".lock")


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors via /proc/self/fd")
def test_idle_lock_descriptors_are_bounded_per_process_whatever_the_number_of_stores(tmp_path: Path) -> None:
    stores = [Store(tmp_path / f"store{i}") for i in range(4)]
    for store in stores:
        store.save("seed", 0)  # each store's root descriptor is open from here on
    before = _open_descriptors()
    for store in stores:
        for i in range(IDLE_LOCK_DESCRIPTORS):
            store.narrow(f"d{i}").save("k", i)
    assert _open_descriptors() - before <= IDLE_LOCK_DESCRIPTORS
    assert process_locks.open_descriptors() <= IDLE_LOCK_DESCRIPTORS


def test_stores_on_one_directory_share_its_lock_so_a_holder_can_reenter_it(tmp_path: Path) -> None:
    outer, inner = Store(tmp_path), Store(tmp_path)
    finished = threading.Event()

    def nested() -> None:
        with outer.lock():
            inner.save("k", 1)  # takes the same directory's lock through another store
        finished.set()

    thread = threading.Thread(target=nested, daemon=True)  # a deadlock must not hang the run
    thread.start()
    assert finished.wait(timeout=60)
    assert inner.load("k") == 1


def test_the_lock_table_never_closes_a_lock_in_use() -> None:
    table = LockTable(capacity=2)
    held = table.checkout("held")
    held.fd = os.open(os.devnull, os.O_RDONLY)
    try:
        for name in ("a", "b", "c", "d"):
            lock = table.checkout(name)
            lock.fd = os.open(os.devnull, os.O_RDONLY)
            table.checkin(lock)
        assert held.fd is not None
        os.fstat(held.fd)  # still open
        assert table.open_descriptors() == 2  # the one in use and the most recent idle one
    finally:
        table.checkin(held)
        table.close_all()
    assert table.open_descriptors() == 0


def test_closing_a_lock_drops_its_flock_even_while_a_forked_child_keeps_a_copy(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save("k", 1)
    storage = store._engine.storage
    assert isinstance(storage, LocalStorage)
    lock = process_locks.checkout(storage.lock_key(""))
    try:
        lock.flock()
        release_child, child_waits = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child keeps its copy of the descriptor open)
            os.read(release_child, 1)
            os._exit(0)
        try:
            lock.close()  # what an interrupted acquire does
            assert not _is_locked_elsewhere(tmp_path / ".lock")
        finally:
            os.write(child_waits, b"x")
            os.waitpid(pid, 0)
            os.close(release_child)
            os.close(child_waits)
    finally:
        process_locks.checkin(lock)
    store.save("k", 2)  # and the lock works on


def test_a_child_forked_while_another_thread_holds_a_lock_takes_it_once_released(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save("k", 0)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with store.lock():
            held.set()
            release.wait()

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    ready_to_read, child_writes = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child: the holding thread does not exist here)
        try:
            with store.lock():
                os.write(child_writes, b"in")
        finally:
            os._exit(0)
    release.set()
    thread.join()
    # A guard, not a wait for a condition: a child stuck on the parent thread's lock never writes.
    readable, _, _ = select.select([ready_to_read], [], [], 60)
    if not readable:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    got = os.read(ready_to_read, 2) if readable else b""
    os.close(ready_to_read)
    os.close(child_writes)
    assert got == b"in"


def test_a_lock_held_by_another_process_past_the_timeout_raises_lock_timeout_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with storage.lock(""):
        pass  # makes the lock file
    ready_read, ready_write = os.pipe()
    release_read, release_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            fd = os.open(tmp_path / ".lock", os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(ready_write, b"x")
            os.read(release_read, 1)
            code = 0
        finally:
            os._exit(code)
    try:
        assert os.read(ready_read, 1) == b"x"
        with pytest.raises(LockTimeoutError) as info, storage.lock("", timeout=0.01):
            pytest.fail("the lock was taken while another process held it")
        assert info.value.path == str(tmp_path / ".lock")
        assert isinstance(info.value, TimeoutError)
        with pytest.raises(LockTimeoutError):  # a timed-out attempt leaves nothing half-taken
            Store(tmp_path)._engine.lock("", timeout=0).__enter__()
    finally:
        os.write(release_write, b"x")
        _, status = os.waitpid(pid, 0)
        for fd in (ready_read, ready_write, release_read, release_write):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    with storage.lock("", timeout=60):  # free again: taken at once
        assert _is_locked_elsewhere(tmp_path / ".lock")


def test_a_lock_held_by_another_thread_past_the_timeout_raises_lock_timeout_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with storage.lock("a"):
            held.set()
            release.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        held.wait()
        with pytest.raises(LockTimeoutError) as info, storage.lock("a", timeout=0.01):
            pass
        assert info.value.path == str(tmp_path / "a" / ".lock")
    finally:
        release.set()
        thread.join()
    with storage.lock("a", timeout=60), storage.lock("a", timeout=0):  # re-entry never waits
        pass
