"""Fault injection: the file system refuses (ENOSPC, EACCES); the old value survives and the store works on."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from group_store import DataStore, StorageError, Store
from group_store._local import LocalStorage


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
