"""One composition root: Store/DataStore take a path or a Storage, views share the engine,
and every tool gives the same answers for a store as for its path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest

import group_store
from group_store import (
    DataStore,
    InvalidArgumentError,
    Store,
    diff_stores,
    export_store,
    migrate_store,
    stats,
    sweep,
    tree,
    verify_store,
    walk,
)
from group_store.storage import LocalStorage, Storage
from group_store.testing import FakeClock

from .local_paths import root_of


class NoLocalFiles:
    """A Storage that keeps its files out of reach (``local_path`` is None), as a memory or
    object-storage backend does. TODO: replace with group_store.storage.MemoryStorage."""

    def __init__(self, root: Path) -> None:
        self._inner = LocalStorage(root)

    def local_path(self, directory: str, name: str = "") -> Path | None:
        return None

    def locator(self, directory: str, name: str = "") -> str:
        return "test://" + "/".join(part for part in (directory, name) if part)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


Storage.register(NoLocalFiles)


def _seed(store: Store) -> None:
    store.save("top", {"a": 1})
    store.save("short", [1], ttl=10)
    store.narrow("alice", "agent").save("state", {"step": 2})
    store.narrow("alice").append("log", [1, 2, 3])
    store.narrow("x" * 200).save("hashed", True)


def test_a_path_and_a_storage_open_the_same_store(tmp_path: Path) -> None:
    Store(tmp_path).save("k", {"v": 1})
    on_storage = Store(storage=LocalStorage(tmp_path))
    assert on_storage.load("k") == {"v": 1}
    assert on_storage.root_path == tmp_path


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ((), {}, "neither"),
        (("p",), {"storage": "LOCAL"}, "'LOCAL'"),
        ((), {"storage": "/tmp/somewhere"}, "'/tmp/somewhere'"),
        ((42,), {}, "42"),
        ((b"/bytes",), {}, "b'/bytes'"),
    ],
)
def test_anything_but_one_path_or_one_storage_is_refused_naming_it(
    args: tuple[Any, ...], kwargs: dict[str, Any], named: str
) -> None:
    for cls in (Store, DataStore):
        with pytest.raises(InvalidArgumentError, match=re.escape(named)):
            cls(*args, **kwargs)


def test_both_a_path_and_a_storage_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="not both"):
        Store(tmp_path, storage=LocalStorage(tmp_path))


def test_storage_is_the_backend_and_read_only(tmp_path: Path) -> None:
    backend = LocalStorage(tmp_path)
    store = Store(storage=backend)
    assert store.storage is backend
    assert store.narrow("a").storage is backend
    with pytest.raises(AttributeError):
        store.storage = backend  # type: ignore[misc]


def test_root_path_is_none_without_local_files(tmp_path: Path) -> None:
    store = Store(storage=cast(Storage, NoLocalFiles(tmp_path)))
    store.save("k", 1)
    assert store.root_path is None
    assert store.narrow_path("a") is None
    assert store.narrow("a").root_path is None
    assert store.load("k") == 1
    assert "test://" in repr(store.narrow("a"))


def test_narrow_shares_one_engine(tmp_path: Path) -> None:
    store = Store(tmp_path)
    view = store.narrow("a", "b")
    assert view._engine is store._engine
    assert view.segments == ("a", "b")
    assert view.root_path == tmp_path / "a" / "b"
    assert view.narrow("c")._engine is store._engine
    assert store.segments == ()  # the parent is not moved by the copy


@pytest.mark.anyio
async def test_data_store_narrow_shares_one_writer_and_leaves_it_to_the_root(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    view = store.narrow("a")
    assert view._writer is store._writer
    assert view._engine is store._engine
    await view.save("k", 1)
    await view.aclose()  # a view only flushes
    await store.save("j", 2)  # the root's writer still runs
    assert await store.narrow("a").load("k") == 1
    assert await store.run_sync(lambda blocking: blocking._engine is store._engine)
    await store.aclose()


def test_no_object_is_built_by_bypassing_init() -> None:
    here = Path(__file__).parent
    sources = [*(here.parent / "group_store").rglob("*.py"), *here.rglob("*.py")]
    pattern = "__new__" + "("  # split, so this file does not match itself
    offenders = [str(path) for path in sources if pattern in path.read_text()]
    assert offenders == []


def test_tools_answer_the_same_for_a_store_and_its_path(tmp_path: Path) -> None:
    clock = FakeClock()
    store = Store(tmp_path / "s", clock=clock)
    _seed(store)
    path = tmp_path / "s"
    assert [e.address for e in walk(store)] == [e.address for e in walk(path, clock=clock)]
    assert stats(store) == stats(path, clock=clock)
    assert tree(store).root.children == tree(path, clock=clock).root.children
    assert verify_store(store) == verify_store(path)
    assert not diff_stores(store, path)
    export_store(store, tmp_path / "a.tar.gz")
    export_store(path, tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    assert sweep(store).expired == sweep(path, clock=clock).expired == ()


def test_a_view_is_walked_as_its_own_subtree(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _seed(store)
    alice = store.narrow("alice")
    assert [e.address for e in walk(alice)] == [("log",), ("agent", "state")]
    assert [e.address for e in walk(alice)] == [e.address for e in walk(root_of(alice))]
    assert stats(alice).directories == 2
    export_store(alice, tmp_path.parent / f"{tmp_path.name}-alice.jsonl")
    copy = Store(tmp_path.parent / f"{tmp_path.name}-copy")
    group_store.import_store(tmp_path.parent / f"{tmp_path.name}-alice.jsonl", copy.narrow("moved"))
    assert copy.narrow("moved", "agent").load("state") == {"step": 2}
    assert not diff_stores(alice, copy.narrow("moved"))


def test_tools_on_a_store_without_local_files(tmp_path: Path) -> None:
    clock = FakeClock()
    store = Store(storage=cast(Storage, NoLocalFiles(tmp_path / "s")), clock=clock)
    _seed(store)
    addresses = [e.address for e in walk(store)]
    assert ("alice", "agent", "state") in addresses
    assert all(e.path.startswith("test://") for e in walk(store))
    assert verify_store(store).ok
    assert tree(store).root.name == "test://"
    assert stats(store).documents == 4
    clock.advance(11)
    assert sweep(store).expired == (("short",),)
    assert store.exists("short") is False  # expired: hidden, still on disk until swept
    assert sweep(store, dry_run=False).count == 1
    assert sweep(store).count == 0
    with pytest.raises(InvalidArgumentError, match="local store"):
        migrate_store(store)
