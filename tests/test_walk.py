"""walk(): every readable entry, and each unreadable one reported instead of stopping the walk."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from group_store import CorruptEntryError, GroupStoreError, StorageError, Store, UnsafeFileError, walk
from group_store.storage._local import LocalStorage

LONG_KEY = "k" * 300


def _damaged_store(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(root)
    store.save("good", {"n": 1})
    store.save("sidecar", {"n": 2}, ttl=3600)
    (root / "sidecar.meta.json").write_bytes(b"{oops")  # malformed: the expiry is unknown
    store.save(LONG_KEY, {"n": 3})
    key_file = next(root.glob("*~~*.key"))
    key_file.unlink()
    (root / "elsewhere.txt").write_text(LONG_KEY)
    key_file.symlink_to(root / "elsewhere.txt")  # a symlinked key file is never followed
    store.narrow("locked").save("inside", {"n": 4})
    store.narrow("open").save("inside", {"n": 5})
    real = LocalStorage.scan

    def scan(self: LocalStorage, directory: str) -> Any:
        if directory == "locked":  # tests run as root here, where chmod 000 stops nothing
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self.path(directory)))
        return real(self, directory)

    monkeypatch.setattr(LocalStorage, "scan", scan)


@pytest.mark.local_only("damages files on disk")
def test_walk_reports_each_unreadable_entry_and_carries_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    _damaged_store(root, monkeypatch)
    errors: list[GroupStoreError] = []
    addresses = [entry.address for entry in walk(root, on_error=errors.append)]
    assert addresses == [("good",), ("open", "inside")]
    by_type = {type(error): error for error in errors}
    assert set(by_type) == {CorruptEntryError, UnsafeFileError, StorageError}
    assert by_type[CorruptEntryError].key == "sidecar"
    assert by_type[CorruptEntryError].path == str(root / "sidecar.meta.json")
    assert str(by_type[UnsafeFileError].path).endswith(".key")
    assert by_type[StorageError].path == str(root / "locked")


@pytest.mark.local_only("damages files on disk")
def test_walk_warns_on_the_group_store_logger_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "store"
    _damaged_store(root, monkeypatch)
    with caplog.at_level("WARNING", logger="group_store"):
        assert len(list(walk(root))) == 2
    messages = [record.getMessage() for record in caplog.records if record.name == "group_store"]
    assert len(messages) == 3
    assert any("sidecar.meta.json" in message and "key='sidecar'" in message for message in messages)


@pytest.mark.local_only("damages files on disk")
def test_an_on_error_that_raises_makes_the_walk_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    _damaged_store(root, monkeypatch)

    def strict(error: GroupStoreError) -> None:
        raise error

    with pytest.raises(GroupStoreError):
        list(walk(root, on_error=strict))
