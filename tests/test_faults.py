"""Fault injection: the file system refuses (ENOSPC, EACCES, EROFS, EMFILE) or holds
what the store cannot use (a symlinked lock, a socket); every refusal is a typed error
naming the key and the file, the old value survives and the store works on."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from group_store import DataStore, GroupStoreError, StorageError, Store, UnsafeFileError
from group_store.storage._local import LocalStorage


async def _settle(store: DataStore) -> None:
    """Flush before leaving ``async with``: whether an awaited failure is reported again
    is the writer's contract (and changes with it), not this test's."""
    with contextlib.suppress(GroupStoreError):
        await store.flush()


def _half_write_then_enospc(self: LocalStorage, fd: int, data: bytes) -> None:
    os.write(fd, data[: len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _rename_eacces(self: LocalStorage, dir_fd: int, source: str, target: str) -> None:
    raise OSError(errno.EACCES, os.strerror(errno.EACCES))


FAULTS: list[tuple[str, Callable[..., Any], int]] = [
    ("_write_all", _half_write_then_enospc, errno.ENOSPC),
    ("_replace", _rename_eacces, errno.EACCES),
]


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*.tmp")]


@pytest.mark.parametrize(("method", "fault", "code"), FAULTS)
def test_sync_save_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, fault: Any, code: int) -> None:
    store = Store(tmp_path)
    store.save("k", {"v": "old"}, ttl=1000)
    with monkeypatch.context() as patch:
        patch.setattr(LocalStorage, method, fault)
        with pytest.raises(StorageError) as info:
            store.save("k", {"v": "new" * 100}, ttl=5)
    error = info.value
    assert error.errno == code
    assert isinstance(error, OSError)
    assert error.key == "k"
    assert error.path is not None
    assert str(tmp_path) in str(error.path)
    assert store.load("k") == {"v": "old"}
    assert store.expires_at("k") is not None
    assert _leftovers(tmp_path) == []
    store.save("k", {"v": "after"})
    assert store.load("k") == {"v": "after"}


def test_append_fault_leaves_no_partial_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    store.append("log", [1, 2])
    with monkeypatch.context() as patch:
        patch.setattr(LocalStorage, "_write_all", _half_write_then_enospc)
        with pytest.raises(StorageError):
            store.append("log", [{"long": "x" * 100}, {"long": "y" * 100}])
    assert (tmp_path / "log.jsonl").read_bytes() == b"1\n2\n"
    store.append("log", [3])
    assert store.read("log") == [1, 2, 3]


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "fault", "code"), FAULTS)
async def test_async_fault_raises_from_handle_and_next_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, fault: Any, code: int
) -> None:
    store = DataStore(tmp_path)
    await store.save("k", "old")
    with monkeypatch.context() as patch:
        patch.setattr(LocalStorage, method, fault)
        handle = store.save("k", "new")
        with pytest.raises(StorageError) as info:
            await handle
        assert info.value.errno == code
        assert info.value.key == "k"
    await store.flush()  # the failure was reported once, through its handle
    assert await store.load("k") == "old"
    assert _leftovers(tmp_path) == []
    await store.save("k", "works again")
    assert await store.load("k") == "works again"
    await store.aclose()


@pytest.mark.anyio
async def test_unawaited_failure_is_raised_by_aclose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DataStore(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(LocalStorage, "_replace", _rename_eacces)
        store.save("a", 1)
        store.save("b", 2)
        await store._writer.barrier()
    with pytest.raises(StorageError) as info:
        await store.aclose()
    assert any("1 more write" in note for note in getattr(info.value, "__notes__", []))


# -- refusals are typed, naming the key and the file (the lock's included) -------------


def _exists(path: Any, dir_fd: int | None) -> bool:
    try:
        os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _make_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on this process sees a read-only file system (EROFS, as open(2) gives it)."""
    real_open = os.open

    def read_only_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC)
        if writes or (flags & os.O_CREAT and not _exists(path, dir_fd)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "open", read_only_open)
    for name in ("mkdir", "rename", "unlink", "ftruncate"):
        monkeypatch.setattr(os, name, refuse)


SYNC_WRITES: list[tuple[str, Callable[[Store], object]]] = [
    ("save", lambda store: store.save("k", 2)),
    ("append", lambda store: store.append("k", [2])),
    ("update", lambda store: store.update("k", lambda n: n + 1, default=0)),
    ("delete", lambda store: store.delete("k")),
]
SYNC_IDS = [label for label, _ in SYNC_WRITES]


@pytest.mark.parametrize("existing", [True, False], ids=["existing directory", "new directory"])
@pytest.mark.parametrize(("label", "write"), SYNC_WRITES, ids=SYNC_IDS)
def test_a_read_only_file_system_refuses_every_write_as_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool, label: str, write: Callable[[Store], object]
) -> None:
    # A new directory fails at its lock (mkdir), an existing one at the file itself
    # (its lock file exists and opens read-only).
    store = Store(tmp_path).narrow("d")
    if existing:
        if label == "append":
            store.append("k", [1])
        else:
            store.save("k", 1)
    _make_read_only(monkeypatch)
    with pytest.raises(StorageError) as info:
        write(store)
    assert (info.value.errno, info.value.key) == (errno.EROFS, "k")
    assert info.value.path is not None
    assert str(tmp_path) in str(info.value.path)


async def _save(store: DataStore) -> object:
    await store.save("k", 2)
    return None


async def _append(store: DataStore) -> object:
    await store.append("k", [2])
    return None


async def _update(store: DataStore) -> object:
    return await store.update("k", lambda n: n + 1, default=0)


async def _delete(store: DataStore) -> object:
    return await store.delete("k")


ASYNC_WRITES = [_save, _append, _update, _delete]


@pytest.mark.anyio
@pytest.mark.parametrize("write", ASYNC_WRITES, ids=["save", "append", "update", "delete"])
async def test_a_read_only_file_system_refuses_datastore_writes_as_typed_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[DataStore], Awaitable[object]]
) -> None:
    async with DataStore(tmp_path) as store:
        if write is _append:
            await store.append("k", [1])
        else:
            await store.save("k", 1)
        with monkeypatch.context() as patch:
            _make_read_only(patch)
            with pytest.raises(StorageError) as info:
                await write(store)
            assert (info.value.errno, info.value.key) == (errno.EROFS, "k")
            assert info.value.path is not None
        await _settle(store)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.write_bytes(b"not the store's")
    return path


@pytest.mark.parametrize(("label", "write"), SYNC_WRITES, ids=SYNC_IDS)
def test_a_symlinked_lock_file_is_an_unsafe_file_error(
    tmp_path: Path, outside: Path, label: str, write: Callable[[Store], object]
) -> None:
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(outside, root / ".lock")
    with pytest.raises(UnsafeFileError) as info:
        write(Store(root))
    assert (info.value.key, info.value.path) == ("k", str(root / ".lock"))
    assert outside.read_bytes() == b"not the store's"


@pytest.mark.anyio
async def test_a_symlinked_lock_file_fails_datastore_writes_as_unsafe_file_errors(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(tmp_path / "missing", root / ".lock")
    async with DataStore(root) as store:
        with pytest.raises(UnsafeFileError) as info:
            await store.update("k", lambda n: n + 1, default=0)
        assert (info.value.key, info.value.path) == ("k", str(root / ".lock"))
        with pytest.raises(UnsafeFileError) as saved:
            await store.save("k", 1)
        # The writer takes one lock for a run of saves: the error names the lock file.
        assert saved.value.path == str(root / ".lock")
        await _settle(store)
    assert not (tmp_path / "missing").exists()


@pytest.fixture
def planted_socket(tmp_path: Path) -> Iterator[Path]:
    """A Unix socket where the document k.json would be."""
    path = tmp_path / "k.json"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        yield path


SOCKET_CALLS: list[tuple[str, Callable[[Store], object]]] = [
    ("load", lambda store: store.load("k")),
    ("get", lambda store: store.get("k")),
    ("exists", lambda store: store.exists("k")),
    ("save", lambda store: store.save("k", 1)),
    ("update", lambda store: store.update("k", lambda n: n + 1, default=0)),
    ("delete", lambda store: store.delete("k")),
]


@pytest.mark.parametrize(("label", "call"), SOCKET_CALLS, ids=[label for label, _ in SOCKET_CALLS])
def test_a_socket_planted_as_a_document_is_an_unsafe_file_error(
    tmp_path: Path, planted_socket: Path, label: str, call: Callable[[Store], object]
) -> None:
    with pytest.raises(UnsafeFileError) as info:
        call(Store(tmp_path))
    assert (info.value.key, info.value.path) == ("k", str(planted_socket))


@pytest.mark.anyio
async def test_a_socket_planted_as_a_document_fails_datastore_calls_as_unsafe_file_errors(
    tmp_path: Path, planted_socket: Path
) -> None:
    async with DataStore(tmp_path) as store:
        with pytest.raises(UnsafeFileError) as loaded:
            await store.load("k")
        with pytest.raises(UnsafeFileError) as saved:
            await store.save("k", 1)
        await _settle(store)
    for info in (loaded, saved):
        assert (info.value.key, info.value.path) == ("k", str(planted_socket))


EMFILE_CHILD = """
import errno, json, os, resource, sys
import anyio
from group_store import DataStore, GroupStoreError, Store

root = sys.argv[1]
results = {}


def exhaust():
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        assert exc.errno == errno.EMFILE
    return held


def attempt(label, call):
    held = exhaust()
    try:
        call()
    except GroupStoreError as exc:
        results[label] = [type(exc).__name__, getattr(exc, "errno", None), exc.key, str(exc.path)]
    except OSError as exc:
        results[label] = [type(exc).__name__, exc.errno, None, None]
    else:
        results[label] = None
    finally:
        for fd in held:
            os.close(fd)


async def datastore():
    async with DataStore(root) as store:
        await store.save("k", 0)  # its root and lock descriptors are open now
        calls = [("save", lambda: store.save("k", 1)), ("update", lambda: store.update("k", lambda n: n + 1))]
        for label, call in calls:
            held = exhaust()
            try:
                await call()
            except GroupStoreError as exc:
                outcome = [type(exc).__name__, getattr(exc, "errno", None), exc.key, str(exc.path)]
            else:
                outcome = None
            finally:
                for fd in held:
                    os.close(fd)
            results["DataStore " + label] = outcome
        try:
            await store.flush()
        except GroupStoreError:
            pass


resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
kept = Store(root)
kept.save("k", 0)
kept.append("log", [0])
attempt("a new Store's save (its lock)", lambda: Store(root).save("k", 1))
attempt("save", lambda: kept.save("k", 1))
attempt("append", lambda: kept.append("log", [1]))
attempt("update", lambda: kept.update("k", lambda n: n + 1))
attempt("delete", lambda: kept.delete("k"))
anyio.run(datastore)
print(json.dumps(results))
"""


def test_running_out_of_descriptors_is_a_typed_error_naming_key_and_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", EMFILE_CHILD, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == 7
    for label, outcome in results.items():
        assert outcome is not None, label
        kind, code, key, path = outcome
        assert (kind, code, key) == ("StorageError", errno.EMFILE, "log" if label == "append" else "k"), label
        assert path.startswith(str(tmp_path)), label
