"""The local backend's own guarantees: the order of its durable system calls,
in-place writes that never reach another file, and new logs that appear whole."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from group_store import DataStore, GroupStoreError, StorageError, Store, UnsafeFileError
from group_store._format.layout import FORMAT_MARKER, encode_format_marker
from group_store.storage import Kind
from group_store.storage._directories import _UNSYNCED_LIMIT
from group_store.storage._local import LocalStorage
from group_store.storage._pins import pin_budget
from group_store.testing import FakeClock

needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="maps descriptors via /proc/self/fd")


async def _settle(store: DataStore) -> None:
    """Flush before leaving ``async with``: whether an awaited failure is reported again
    is the writer's contract (and changes with it), not this test's."""
    with contextlib.suppress(GroupStoreError):
        await store.flush()


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def _at(path: Any, dir_fd: int | None) -> str:
    return os.path.join(_fd_path(dir_fd), os.fsdecode(path)) if dir_fd is not None else os.path.abspath(path)


class SyscallRecorder:
    """Records, in order, the mkdir, fsync, rename and unlink calls of everyone (paths resolved).

    Each call is recorded once it returned: an fsync is recorded after it completed.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        self._guard = threading.Lock()
        real_mkdir, real_fsync, real_rename, real_unlink = os.mkdir, os.fsync, os.rename, os.unlink

        def mkdir(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
            real_mkdir(path, mode, dir_fd=dir_fd)
            self._record("mkdir", _at(path, dir_fd))

        def fsync(fd: Any) -> None:
            where = _fd_path(fd)
            real_fsync(fd)
            self._record("fsync", where)

        def rename(src: Any, dst: Any, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None) -> None:
            target = _at(dst, dst_dir_fd)
            real_rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
            self._record("rename", target)

        def unlink(path: Any, *, dir_fd: int | None = None) -> None:
            where = _at(path, dir_fd)
            real_unlink(path, dir_fd=dir_fd)
            self._record("unlink", where)

        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(os, "unlink", unlink)

    def _record(self, call: str, path: str) -> None:
        with self._guard:
            self.events.append((call, path))

    def snapshot(self) -> list[tuple[str, str]]:
        with self._guard:
            return list(self.events)


def _assert_every_new_directory_fsynced_into_its_parent(events: list[tuple[str, str]]) -> None:
    made = [(index, path) for index, (call, path) in enumerate(events) if call == "mkdir"]
    assert made, "the operation was expected to create directories"
    for index, path in made:
        later = [where for call, where in events[index + 1 :] if call == "fsync"]
        assert os.path.dirname(path) in later, f"{path} was made but its parent never fsynced after: {events}"


def _nested_durable_store(tmp_path: Path) -> tuple[Path, Store]:
    root = tmp_path / "fresh" / "root"  # neither exists yet: the root is made too
    return root, Store(root, durable=True)


SYNC_WRITES: list[tuple[str, Callable[[Store], object]]] = [
    ("save", lambda store: store.save("k", {"v": 1})),
    ("save with ttl", lambda store: store.save("k", {"v": 1}, ttl=60)),
    ("append", lambda store: store.append("log", [1, 2])),
    ("update", lambda store: store.update("n", lambda n: n + 1, default=0)),
]


@needs_proc
@pytest.mark.parametrize(("label", "write"), SYNC_WRITES, ids=[label for label, _ in SYNC_WRITES])
def test_durable_writes_fsync_each_new_directory_into_its_parent_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str, write: Callable[[Store], object]
) -> None:
    root, store = _nested_durable_store(tmp_path)
    recorder = SyscallRecorder(monkeypatch)
    write(store.narrow("a", "b"))
    events = recorder.snapshot()
    made = [path for call, path in events if call == "mkdir"]
    assert made == [str(tmp_path / "fresh"), str(root), str(root / "a"), str(root / "a" / "b")]
    _assert_every_new_directory_fsynced_into_its_parent(events)


@needs_proc
@pytest.mark.anyio
async def test_durable_datastore_saves_fsync_each_new_directory_before_the_handle_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "fresh" / "root"
    recorder = SyscallRecorder(monkeypatch)
    async with DataStore(root, durable=True) as store:
        await store.narrow("a", "b").save("k", 1)
        events = recorder.snapshot()
    assert [path for call, path in events if call == "mkdir"][-1] == str(root / "a" / "b")
    _assert_every_new_directory_fsynced_into_its_parent(events)


@needs_proc
def test_a_durable_save_fsyncs_its_temporary_file_before_the_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path, durable=True)
    store.save("k", 0)  # the directory and its lock exist: only the save's own calls remain
    recorder = SyscallRecorder(monkeypatch)
    store.save("k", 1)
    events = recorder.snapshot()
    renamed = events.index(("rename", str(tmp_path / "k.json")))
    assert any(call == "fsync" and Path(path).name.startswith(".k.json.") for call, path in events[:renamed])
    assert ("fsync", str(tmp_path)) in events[renamed + 1 :]


@needs_proc
def test_a_durable_delete_fsyncs_the_directory_after_each_unlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path, durable=True).narrow("a")
    store.save("k", 1, ttl=60)
    recorder = SyscallRecorder(monkeypatch)
    assert store.delete("k") is True
    events = recorder.snapshot()
    directory = str(tmp_path / "a")
    unlinks = [index for index, (call, _) in enumerate(events) if call == "unlink"]
    assert {events[index][1] for index in unlinks} >= {f"{directory}/k.json", f"{directory}/k.meta.json"}
    assert ("fsync", directory) in events[unlinks[-1] + 1 :]


@needs_proc
def test_a_durable_sweep_fsyncs_the_directory_after_removing_expired_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    store = Store(tmp_path, durable=True, clock=clock)
    store.save("k", 1, ttl=10)
    clock.advance(11)
    recorder = SyscallRecorder(monkeypatch)
    assert store.sweep() == 1
    events = recorder.snapshot()
    removed = events.index(("unlink", str(tmp_path / "k.json")))
    assert ("fsync", str(tmp_path)) in events[removed + 1 :]


@needs_proc
def test_a_directory_made_by_a_non_durable_lock_is_fsynced_by_the_next_durable_write(tmp_path: Path) -> None:
    # The lock cannot know whether the write it guards is durable: the directories it
    # makes stay listed until a durable operation fsyncs their parents.
    storage = LocalStorage(tmp_path)
    with storage.lock("a/b"):
        pass
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(_fd_path(fd))
        real_fsync(fd)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", fsync)
        storage.write("a/b", "k.json", b"1\n", durable=True)
        assert {str(tmp_path), str(tmp_path / "a")} <= set(synced)
        synced.clear()
        storage.write("a/b", "j.json", b"1\n", durable=True)
    assert synced.count(str(tmp_path / "a")) == 0  # made durable once, not on every write


# -- in-place writes ---------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the store (the store is tmp_path / "store")."""
    path = tmp_path / "outside.txt"
    path.write_bytes(b'{"secret": 1}\n{"torn')  # a log with a torn last line, as a cut would see it
    return path


@pytest.mark.parametrize("name", ["log.jsonl", ".expiry.jsonl"])
def test_in_place_writes_refuse_a_hard_linked_file_and_leave_it_untouched(
    tmp_path: Path, outside: Path, name: str
) -> None:
    store = Store(tmp_path / "store")
    store.save("seed", 0)
    os.link(outside, tmp_path / "store" / name)
    before = outside.read_bytes()
    key = "log" if name == "log.jsonl" else "k"
    # A log append, or a save with a TTL (which appends to the directory's expiry index).
    write: Callable[[], None] = (
        (lambda: store.append("log", [1])) if key == "log" else (lambda: store.save("k", 1, ttl=60))
    )
    with pytest.raises(UnsafeFileError) as info:
        write()
    assert (info.value.key, info.value.path) == (key, str(tmp_path / "store" / name))
    assert outside.read_bytes() == before


@pytest.mark.anyio
async def test_datastore_appends_refuse_a_hard_linked_log(tmp_path: Path, outside: Path) -> None:
    before = outside.read_bytes()  # noqa: ASYNC240 (a test fixture's file, before the store runs)
    async with DataStore(tmp_path / "store") as store:
        await store.save("seed", 0)
        os.link(outside, tmp_path / "store" / "log.jsonl")
        with pytest.raises(UnsafeFileError) as info:
            await store.append("log", [1])
        assert info.value.key == "log"
        await _settle(store)
    assert outside.read_bytes() == before  # noqa: ASYNC240


def _plant_fifo(path: Path) -> Iterator[None]:
    os.mkfifo(path)
    yield


def _plant_socket(path: Path) -> Iterator[None]:
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        yield


@pytest.mark.parametrize("plant", [_plant_fifo, _plant_socket], ids=["fifo", "socket"])
def test_in_place_writes_refuse_a_file_that_is_not_regular(
    tmp_path: Path, plant: Callable[[Path], Iterator[None]]
) -> None:
    store = Store(tmp_path)
    for _ in plant(tmp_path / "log.jsonl"):
        with pytest.raises(UnsafeFileError) as info:
            store.append("log", [1])
        assert (info.value.key, info.value.path) == ("log", str(tmp_path / "log.jsonl"))


# -- new logs ----------------------------------------------------------------


def _mark_format(root: Path) -> None:
    # A store already marked: the faults below are aimed at the log, not at the first write's marker.
    (root / FORMAT_MARKER).write_bytes(encode_format_marker())


def _enospc(self: LocalStorage, fd: int, data: bytes) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("durable", [False, True])
def test_a_new_log_never_exists_without_its_first_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    store = Store(tmp_path, durable=durable)
    _mark_format(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(LocalStorage, "_write_all", _enospc)  # the fault lands between creating and writing
        with pytest.raises(StorageError):
            store.append("log", [1])
    assert not store.exists("log")
    assert store.keys() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [FORMAT_MARKER, ".lock"]


def test_a_new_log_appears_with_its_first_lines_by_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    _mark_format(tmp_path)
    seen: list[bytes] = []
    real_rename = os.rename

    def rename(src: Any, dst: Any, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None) -> None:
        assert not (tmp_path / "log.jsonl").exists()  # nothing by that name before the rename
        real_rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        seen.append((tmp_path / "log.jsonl").read_bytes())

    monkeypatch.setattr(os, "rename", rename)
    store.append("log", [1, 2])
    assert seen == [b"1\n2\n"]


def test_an_existing_log_is_appended_in_place(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.append("log", [1])
    inode = (tmp_path / "log.jsonl").stat().st_ino
    store.append("log", [2])
    assert (tmp_path / "log.jsonl").stat().st_ino == inode
    assert store.read("log") == [1, 2]


@needs_proc
def test_new_directories_are_made_durable_even_past_the_tracking_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)
    for i in range(_UNSYNCED_LIMIT + 1):  # each lock makes a directory in a new parent
        with storage.lock(f"d{i}/x"):
            pass
    recorder = SyscallRecorder(monkeypatch)
    storage.write("e/f", "k.json", b"1\n", durable=True)
    events = recorder.snapshot()
    _assert_every_new_directory_fsynced_into_its_parent(events)
    with storage.lock("g/h"):  # past the limit, made but not listed
        pass
    recorder.events.clear()
    storage.write("g/h", "k.json", b"1\n", durable=True)
    assert {str(tmp_path), str(tmp_path / "g")} <= {path for call, path in recorder.snapshot() if call == "fsync"}


# -- the seam's versions, conditional writes and batch removal ---------------------


def test_a_version_is_current_until_the_file_is_replaced(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write("a", "f", b"1", durable=False)
    found = storage.read_versioned("a", "f")
    assert found is not None
    assert found.data == b"1"
    assert storage.is_current("a", "f", found.version)
    storage.write("a", "f", b"1", durable=False)  # the same bytes, but a new file
    assert not storage.is_current("a", "f", found.version)
    assert storage.read_versions("a", ["f", "missing"])[1] is None


def test_a_version_whose_pin_was_given_up_is_never_current(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write("", "f", b"1", durable=False)
    first = storage.read_versioned("", "f")
    assert first is not None
    # More reads than the budget holds: the oldest token loses its pin, and with it the proof.
    later = [storage.read_versioned("", "f") for _ in range(pin_budget())]
    assert not storage.is_current("", "f", first.version)
    assert later[-1] is not None
    assert storage.is_current("", "f", later[-1].version)


def test_create_only_writes_once_whatever_the_number_of_concurrent_creators(tmp_path: Path) -> None:
    storages = [LocalStorage(tmp_path) for _ in range(8)]
    start = threading.Barrier(len(storages))
    won: list[bool] = [False] * len(storages)

    def create(index: int) -> None:
        start.wait()
        won[index] = storages[index].write_if("d", "f", b"%d" % index, version=None, durable=False)

    threads = [threading.Thread(target=create, args=(index,)) for index in range(len(storages))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won.count(True) == 1
    assert (tmp_path / "d" / "f").read_bytes() == b"%d" % won.index(True)
    # No temporary file left (the lock file is the one create-only takes, as every writer does).
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [".lock", "f"]


def test_replace_if_version_writes_only_over_the_state_it_read(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write("", "f", b"old", durable=False)
    read = storage.read_versioned("", "f")
    assert read is not None
    assert storage.write_if("", "f", b"mine", version=read.version, durable=False)
    assert not storage.write_if("", "f", b"stale", version=read.version, durable=False)
    assert storage.read("", "f") == b"mine"


def test_remove_many_reports_each_name(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write("", "a", b"1", durable=False)
    (tmp_path / "dir").mkdir()
    outcomes = storage.remove_many("", ["a", "missing", "dir"], durable=True)
    assert outcomes[:2] == [True, False]
    assert isinstance(outcomes[2], OSError)
    assert storage.remove_many("absent", ["a"], durable=False) == [False]


def test_append_cuts_to_keep_and_checks_if_version(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write("", "log", b"1\n{tor", durable=False)
    token = storage.append("", "log", b"2\n", keep=2, durable=False)
    assert storage.read("", "log") == b"1\n2\n"
    assert token is not None
    again = storage.append("", "log", b"3\n", keep=None, durable=False, if_version=token)
    assert again is not None
    with (tmp_path / "log").open("ab") as other:  # another writer, after our append
        other.write(b"4\n")
    assert storage.append("", "log", b"5\n", keep=None, durable=False, if_version=again) is None
    assert storage.read("", "log") == b"1\n2\n3\n4\n"


class _TailReads:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = LocalStorage.read_tail

        def read_tail(storage: LocalStorage, directory: str, name: str, size: int) -> Any:
            self.count += 1
            return real(storage, directory, name, size)

        monkeypatch.setattr(LocalStorage, "read_tail", read_tail)


def test_a_loop_of_appends_reads_no_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path).narrow("a")
    store.append("log", [0])
    tails = _TailReads(monkeypatch)
    for index in range(1, 50):
        store.append("log", [index])
    assert tails.count == 0
    assert store.read("log") == list(range(50))


def test_a_torn_line_left_after_our_own_append_is_still_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    store.append("log", [1])
    with (tmp_path / "log.jsonl").open("ab") as crashed:  # another process died mid-append
        crashed.write(b'{"torn": ')
    tails = _TailReads(monkeypatch)
    store.append("log", [2])
    assert tails.count == 1  # the log changed since our append: its tail is read again
    assert store.read("log") == [1, 2]
    assert (tmp_path / "log.jsonl").read_bytes() == b"1\n2\n"


def test_a_log_linked_elsewhere_after_our_own_append_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.append("log", [1])
    os.link(tmp_path / "store" / "log.jsonl", tmp_path / "outside.jsonl")
    with pytest.raises(UnsafeFileError):
        store.append("log", [2])
    assert (tmp_path / "outside.jsonl").read_bytes() == b"1\n"


def test_threads_listing_the_root_at_once_each_see_every_entry(tmp_path: Path) -> None:
    # The root's descriptor is shared between threads; a listing through it shares its
    # position too, and each thread would miss entries (59 of 200 listings, before).
    storage = LocalStorage(tmp_path / "root")
    storage.write_many("", [(f"k{i}.json", b"{}\n") for i in range(3000)], durable=False)
    names = [f"k{i}.json" for i in range(3000)]
    short: list[int] = []

    def list_and_check() -> None:
        for _ in range(25):
            if len(storage.scan("")) != 3000:
                short.append(1)
            if None in storage.kinds("", names):
                short.append(2)

    threads = [threading.Thread(target=list_and_check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert short == []


@pytest.mark.parametrize("others", [0, 1000])
def test_kinds_of_a_batch_are_the_same_by_listing_or_by_stat(tmp_path: Path, others: int) -> None:
    # A batch of >= 32 names is answered from one listing while the directory is small
    # next to it (others=0), by one stat per name otherwise (others=1000): the same kinds.
    storage = LocalStorage(tmp_path / "root")
    storage.write_many("", [(f"o{i}.json", b"1\n") for i in range(others)] + [("file.json", b"1\n")], durable=False)
    root = tmp_path / "root"
    (root / "sub").mkdir()
    (root / "link.json").symlink_to(root / "file.json")
    os.mkfifo(root / "fifo.json")
    names = ["file.json", "sub", "link.json", "fifo.json"] + [f"absent{i}.json" for i in range(40)]
    expected = [Kind.FILE, Kind.DIRECTORY, Kind.OTHER, Kind.OTHER] + [None] * 40
    assert storage.kinds("", names) == expected
    # A batched write refuses the non-regular names and writes the rest.
    outcomes = storage.write_many("", [(name, b"2\n") for name in names if name != "sub"], durable=False)
    assert [type(outcome).__name__ for outcome in outcomes[:3]] == ["NoneType", "UnsafeFileError", "UnsafeFileError"]
    assert outcomes[3:] == [None] * 40
    assert (root / "link.json").is_symlink()
    assert (root / "file.json").read_bytes() == b"2\n"
