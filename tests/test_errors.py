"""Every error names its key and the file it is about, as the README promises.

One case per public error class, raised through the public API. Where an error has
no entry file to name, the test pins what it names instead (see the README's error
table): an invalid key names the directory it was used in; a table schema that is
invalid on its own names the table's directory only once the table is opened.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

import group_store
from group_store import (
    CorruptEntryError,
    DataStore,
    DuplicateKeyError,
    EntryKindError,
    FormatVersionError,
    GroupStoreError,
    InvalidArgumentError,
    InvalidKeyError,
    KeyNotFoundError,
    LockTimeoutError,
    SchemaError,
    SerializationError,
    StorageError,
    Store,
    StoreClosedError,
    Table,
    UnsafeFileError,
)
from group_store.storage._local import LocalStorage


def _raised(expected: type[GroupStoreError], action: Callable[[], object]) -> GroupStoreError:
    with pytest.raises(expected) as info:
        action()
    assert type(info.value) is expected
    return info.value


def _names(error: GroupStoreError, key: str | None, path: Path) -> None:
    """The error carries ``key`` and ``path``, and its message names both."""
    assert error.key == key
    assert error.path == str(path)
    assert f"file={str(path)!r}" in str(error)
    if key is not None:
        assert f"key={key!r}" in str(error)


def test_invalid_key_error_names_the_directory_the_key_was_used_in(tmp_path: Path) -> None:
    store = Store(tmp_path)
    view = store.narrow("alice")
    _names(_raised(InvalidKeyError, lambda: view.save("", 1)), "", tmp_path / "alice")
    _names(_raised(InvalidKeyError, lambda: view.load(7)), "7", tmp_path / "alice")  # type: ignore[arg-type]
    _names(_raised(InvalidKeyError, lambda: view.narrow("ok", "")), "", tmp_path / "alice")
    _names(_raised(InvalidKeyError, lambda: store.narrow_path("\ud800")), "\ud800", tmp_path)


def test_invalid_argument_errors_name_the_entry_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _names(_raised(InvalidArgumentError, lambda: store.save("k", 1, ttl=-1)), "k", tmp_path / "k.json")
    _names(_raised(InvalidArgumentError, lambda: store.update("k", len, ttl=float("nan"))), "k", tmp_path / "k.json")
    _names(_raised(InvalidArgumentError, lambda: store.append("log", [1], max_items=0)), "log", tmp_path / "log.jsonl")
    _names(_raised(InvalidArgumentError, lambda: store.append("log", "abc")), "log", tmp_path / "log.jsonl")
    _names(_raised(InvalidArgumentError, lambda: store.read("log", last=-1)), "log", tmp_path / "log.jsonl")


def test_serialization_error_names_the_entry_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sub = store.narrow("s")
    _names(_raised(SerializationError, lambda: sub.save("k", {1, 2})), "k", tmp_path / "s" / "k.json")
    _names(_raised(SerializationError, lambda: sub.append("log", [float("nan")])), "log", tmp_path / "s" / "log.jsonl")
    _names(
        _raised(SerializationError, lambda: sub.update("k", lambda _: {3}, default=0)), "k", tmp_path / "s" / "k.json"
    )
    _names(_raised(SerializationError, lambda: sub.update("k", len, default={4})), "k", tmp_path / "s" / "k.json")


@pytest.mark.anyio
async def test_data_store_serialization_error_names_the_entry_file(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as store:
        _names(_raised(SerializationError, lambda: store.save("k", {1})), "k", tmp_path / "k.json")
        _names(_raised(SerializationError, lambda: store.append("log", [{1}])), "log", tmp_path / "log.jsonl")


def test_key_not_found_error_names_the_entry_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _names(_raised(KeyNotFoundError, lambda: store.narrow("a").load("gone")), "gone", tmp_path / "a" / "gone.json")


def test_corrupt_entry_error_names_the_entry_file(tmp_path: Path) -> None:
    (tmp_path / "k.json").write_bytes(b"{not json")
    _names(_raised(CorruptEntryError, lambda: Store(tmp_path).load("k")), "k", tmp_path / "k.json")


def test_entry_kind_error_names_the_file_that_exists(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save("d", {"a": 1})
    store.append("log", [1])
    _names(_raised(EntryKindError, lambda: store.append("d", [1])), "d", tmp_path / "d.json")
    _names(_raised(EntryKindError, lambda: store.read("d")), "d", tmp_path / "d.json")
    _names(_raised(EntryKindError, lambda: store.save("log", 1)), "log", tmp_path / "log.jsonl")
    assert not (tmp_path / "d.jsonl").exists()


@pytest.mark.anyio
async def test_data_store_append_to_a_document_names_the_document(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    await store.save("d", {"a": 1})
    with pytest.raises(EntryKindError) as info:
        await store.append("d", [1])
    _names(info.value, "d", tmp_path / "d.json")
    await store.aclose()  # delivered through the awaited handle: not raised a second time


def test_unsafe_file_error_names_the_entry_file(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.txt").write_text("{}")
    os.symlink(tmp_path / "elsewhere.txt", tmp_path / "k.json")
    _names(_raised(UnsafeFileError, lambda: Store(tmp_path).load("k")), "k", tmp_path / "k.json")


def test_storage_error_names_the_entry_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: LocalStorage, directory: str, name: str, data: bytes, *, durable: bool) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = Store(tmp_path)
    store.save("first", 1)  # the store's first write also writes its format marker
    monkeypatch.setattr(LocalStorage, "write", full)
    error = _raised(StorageError, lambda: store.save("k", 1))
    _names(error, "k", tmp_path / "k.json")
    assert isinstance(error, StorageError)
    assert error.errno == errno.ENOSPC


def test_store_closed_error_names_neither_key_nor_file(tmp_path: Path) -> None:
    # Documented: it is about the DataStore, not about an entry (README error table).
    async def closed() -> None:
        store = DataStore(tmp_path)
        await store.aclose()
        store.save("k", 1)

    with pytest.raises(StoreClosedError) as info:
        anyio.run(closed)
    assert (info.value.key, info.value.path) == (None, None)


def test_schema_error_names_the_table_directory(tmp_path: Path) -> None:
    table = Table(Store(tmp_path), "tasks", fields=("id", "title"), key=("id",))
    _names(_raised(SchemaError, lambda: table.find({"owner": "me"})), None, tmp_path / "tasks")


def test_schema_error_of_a_schema_alone_names_no_file(tmp_path: Path) -> None:
    # Documented: a schema that contradicts itself is refused before the table has a directory.
    error = _raised(SchemaError, lambda: Table(Store(tmp_path), "t", fields=("id",), key=("other",)))
    assert error.path is None


def test_duplicate_key_error_names_the_partition_file(tmp_path: Path) -> None:
    table = Table(Store(tmp_path), "tasks", fields=("project", "id"), key=("project", "id"))
    table.insert({"project": "p", "id": "1"})
    error = _raised(DuplicateKeyError, lambda: table.insert({"project": "p", "id": "1"}))
    _names(error, "['p', '1']", tmp_path / "tasks" / "p" / "records.json")


def test_format_version_error_names_the_marker(tmp_path: Path) -> None:
    # Documented: about the store as a whole, so it names the marker file, not an entry.
    (tmp_path / ".group_store").write_bytes(b'{"format": 99}\n')
    error = _raised(FormatVersionError, lambda: Store(tmp_path).load("k"))
    assert error.path == str(tmp_path / ".group_store")


TESTED = {
    FormatVersionError,
    InvalidKeyError,
    InvalidArgumentError,
    KeyNotFoundError,
    SerializationError,
    CorruptEntryError,
    EntryKindError,
    UnsafeFileError,
    StorageError,
    LockTimeoutError,
    StoreClosedError,
    SchemaError,
    DuplicateKeyError,
}


def test_every_public_error_class_has_a_case_here() -> None:
    public = {
        obj
        for obj in (getattr(group_store, name) for name in group_store.__all__)
        if isinstance(obj, type) and issubclass(obj, GroupStoreError) and obj is not GroupStoreError
    }
    assert public == TESTED
