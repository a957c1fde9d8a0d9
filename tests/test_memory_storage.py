"""What is MemoryStorage's own (the contract's clauses are in test_storage_contract.py)."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from group_store import LockTimeoutError, Store, UnsafeFileError
from group_store.storage import MemoryStorage
from group_store.testing import FakeClock


def test_locators_are_memory_urls_named_after_the_store() -> None:
    storage = MemoryStorage("unit")
    assert storage.locator("") == "memory://unit/"
    assert storage.locator("", "f") == "memory://unit/f"
    assert storage.locator("a/b") == "memory://unit/a/b"
    assert storage.locator("a/b", "f") == "memory://unit/a/b/f"


def test_each_unnamed_store_has_its_own_locators() -> None:
    assert MemoryStorage().locator("d", "f") != MemoryStorage().locator("d", "f")


def test_it_keeps_no_local_files_and_is_not_shared() -> None:
    storage = MemoryStorage()
    storage.write("d", "f", b"x", durable=True)
    assert storage.local_path("d", "f") is None
    assert storage.blocking_io_is_cheap is True
    assert storage.shared_between_processes is False


def test_two_stores_share_neither_files_nor_locks() -> None:
    first, second = MemoryStorage("same"), MemoryStorage("same")
    first.write("d", "f", b"first", durable=False)
    assert second.read("d", "f") is None
    assert second.scan("") == []
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.lock("d"):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(60)
        with second.lock("d", timeout=0):
            second.write("d", "f", b"second", durable=False)
    finally:
        release.set()
        thread.join()
    assert first.read("d", "f") == b"first"


def test_an_unchanged_file_is_current() -> None:
    # The contract allows False whenever a backend cannot tell; memory always can.
    storage = MemoryStorage()
    storage.write("d", "f", b"x", durable=False)
    found = storage.read_versioned("d", "f")
    assert found is not None
    assert storage.is_current("d", "f", found.version)
    assert not MemoryStorage().is_current("d", "f", found.version)


def test_a_lock_timeout_names_the_directory() -> None:
    storage = MemoryStorage("unit")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with storage.lock("a/b"):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(60)
        with pytest.raises(LockTimeoutError) as caught, storage.lock("a/b", timeout=0):
            pass
    finally:
        release.set()
        thread.join()
    assert caught.value.path == "memory://unit/a/b"


def test_a_file_and_a_directory_cannot_share_a_name() -> None:
    storage = MemoryStorage("unit")
    storage.write("a", "f", b"file", durable=False)
    storage.write("a/d", "g", b"inner", durable=False)
    with pytest.raises(UnsafeFileError) as through:
        storage.write("a/f", "g", b"x", durable=False)
    assert through.value.path == "memory://unit/a/f"
    with pytest.raises(UnsafeFileError) as over:
        storage.write("a", "d", b"x", durable=False)
    assert over.value.path == "memory://unit/a/d"
    with pytest.raises(UnsafeFileError):
        storage.lock("a/f/below")
    assert isinstance(storage.remove_many("a", ["d"], durable=False)[0], IsADirectoryError)
    assert storage.read_many("a", ["f"]) == [b"file"]
    assert storage.read("a/d", "g") == b"inner"


# -- no file on disk --------------------------------------------------------------


def _workload(store: Store, clock: FakeClock) -> None:
    """Every kind of write and read a Store makes, including the TTL sweep."""
    store.save("doc", {"a": 1})
    store.save("short", "lived", ttl=10)
    store.append("log", [1, 2, 3], max_items=2)
    store.append("log", [4])
    child = store.narrow("users", "ada")
    child.save("profile", {"name": "Ada"})
    child.update("profile", lambda value: {**value, "seen": True})
    assert store.load("doc") == {"a": 1}
    assert store.read("log") == [2, 3, 4]
    assert child.load("profile") == {"name": "Ada", "seen": True}
    assert sorted(store.keys()) == ["doc", "log", "short"]
    assert store.children() == ["users"]
    clock.advance(11)
    assert store.sweep() == 1
    assert store.delete("doc")
    assert not store.exists("doc")
    with store.lock():
        store.save("locked", True)


@contextmanager
def _disk_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[str]]]:
    """Point the working directory and the temporary directory at empty directories, and
    record every file opened for writing and every directory made or entry renamed or
    removed anywhere (audit hooks) during the block; yields what was seen so far."""
    cwd, temp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    temp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a lazy import's .pyc is not the store's
    seen: list[str] = []
    _RECORDERS.append(seen)
    try:
        yield lambda: [*seen, *(str(path) for root in (cwd, temp) for path in root.rglob("*"))]
    finally:
        _RECORDERS.remove(seen)


_RECORDERS: list[list[str]] = []
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not _RECORDERS:
        return
    if event == "open":
        mode, flags = args[1], args[2]
        writes = any(letter in mode for letter in "wax+") if isinstance(mode, str) else False
        if not writes and not (isinstance(flags, int) and flags & _WRITE_FLAGS):
            return
    elif event not in {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate", "os.link", "os.symlink"}:
        return
    for recorder in _RECORDERS:
        recorder.append(f"{event} {args[0]!r}")


# Audit hooks cannot be removed: one, installed once, that records only inside _disk_watch.
sys.addaudithook(_audit)


def test_a_store_on_memory_creates_no_file_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    with _disk_watch(tmp_path, monkeypatch) as seen:
        _workload(Store(storage=MemoryStorage(), clock=clock), clock)
        assert seen() == []


def test_the_disk_watch_sees_a_local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The test above could not fail if the watch were blind: the same workload on disk.
    clock = FakeClock()
    with _disk_watch(tmp_path, monkeypatch) as seen:
        _workload(Store("store", clock=clock), clock)
        found = seen()
    assert any(line.startswith("os.mkdir") for line in found)
    assert any(line.startswith("open") for line in found)
    assert any(line.endswith("doc.json") or "/store/" in line for line in found)
