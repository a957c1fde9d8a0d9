"""The lock rules of ``Storage`` (its docstring) hold on every code path of a mixed workload.

A recording wrapper around ``LocalStorage.lock`` keeps, per thread, the locks held, and
notes a violation whenever a thread takes a new lock that does not sort after every lock
it holds (a parent sorts before its children; siblings in path order); re-entering a
held lock is always allowed. It wraps the class, so every store the workload opens
(including the ones the twins in ``repos`` open themselves) is watched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from group_store import AsyncTable, DataStore, Store, Table
from group_store.repos.director import DirectorDB
from group_store.repos.nexus import NexusStore
from group_store.storage import LocalStorage
from group_store.testing import FakeClock

LockMethod = Callable[..., AbstractContextManager[None]]


class LockOrder:
    """Records lock acquisitions per thread and the violations of the lock rules."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._guard = threading.Lock()
        self.violations: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self.most_held = 0

    def wrap(self, original: LockMethod) -> LockMethod:
        def lock(
            storage: LocalStorage, directory: str, *, timeout: float | None = None
        ) -> AbstractContextManager[None]:
            return self._held(original(storage, directory, timeout=timeout), Path(storage.locator(directory)).parts)

        return lock

    @contextmanager
    def _held(self, inner: AbstractContextManager[None], key: tuple[str, ...]) -> Iterator[None]:
        held: list[tuple[str, ...]] = self._local.__dict__.setdefault("held", [])
        if key not in held:
            with self._guard:
                self.violations.extend((other, key) for other in held if not other < key)
        with inner:
            held.append(key)
            with self._guard:
                self.most_held = max(self.most_held, len(set(held)))
            try:
                yield
            finally:
                held.reverse()
                held.remove(key)
                held.reverse()


@pytest.fixture
def order(monkeypatch: pytest.MonkeyPatch) -> LockOrder:
    recorder = LockOrder()
    monkeypatch.setattr(LocalStorage, "lock", recorder.wrap(LocalStorage.lock))
    return recorder


FIELDS = ("group", "name", "value")


def _store_workload(root: Path, clock: FakeClock) -> None:
    store = Store(root, clock=clock)
    child = store.narrow("a")
    grandchild = child.narrow("b")
    store.save("doc", 1)
    store.save("short", 1, ttl=5)
    store.append("log", [1, 2])
    store.append("log", [3], max_items=2)
    store.update("doc", lambda value: value + 1)
    store.delete("short")
    with store.lock():
        child.save("doc", 2, ttl=5)
        grandchild.append("log", [1])
        store.update("doc", lambda value: value + 1)
        with child.lock():
            grandchild.save("doc", 3, ttl=5)
            child.delete("doc")
    clock.advance(10)
    store.sweep()

    table = Table(store, "items", fields=FIELDS, key=("group", "name"), partition_by=("group",))
    table.upsert({"group": "g", "name": "n", "value": 1})
    table.insert({"group": "h", "name": "n", "value": 1}, ttl=1)
    table.modify(("g", "n"), lambda record: None if record is None else {**record, "value": 2})
    with table.lock():
        with table.lock("g"):
            table.upsert({"group": "g", "name": "m", "value": 3})
        table.upsert({"group": "h", "name": "m", "value": 3})
    with table.lock("g"):
        table.upsert({"group": "h", "name": "k", "value": 4})  # a sibling after "g": allowed
    clock.advance(10)
    table.delete_expired()
    table.delete_where({"group": "g"})


def test_store_and_table_follow_the_lock_rules(tmp_path: Path, order: LockOrder) -> None:
    _store_workload(tmp_path, FakeClock())
    assert order.violations == []
    assert order.most_held >= 3  # the workload does hold several locks at once


@pytest.mark.anyio
async def test_datastore_and_async_table_follow_the_lock_rules(tmp_path: Path, order: LockOrder) -> None:
    async with DataStore(tmp_path) as store:
        child = store.narrow("a")
        for index in range(20):
            store.save(f"doc{index}", index)
            child.save(f"doc{index}", index, ttl=60)
            child.append("log", [index])
        await store.update("doc1", lambda value: value + 1)
        await child.delete("doc2")

        def steps(blocking: Store) -> None:
            with blocking.lock():
                blocking.narrow("a").save("doc3", 3)
                blocking.save("doc4", 4)

        await store.run_sync(steps)
        table = AsyncTable(store, "items", fields=FIELDS, key=("group", "name"), partition_by=("group",))
        await table.upsert({"group": "g", "name": "n", "value": 1})
        await table.modify(("g", "n"), lambda record: record)

        def move(blocking: Table) -> None:
            with blocking.lock(), blocking.lock("g"):
                blocking.upsert({"group": "h", "name": "n", "value": 2})
                blocking.delete("g", "n")

        await table.run(move)
        await store.sweep()
    assert order.violations == []
    assert order.most_held >= 3


def test_the_twins_follow_the_lock_rules(tmp_path: Path, order: LockOrder) -> None:
    nexus = NexusStore(tmp_path / "nexus")
    for index in range(5):
        nexus.append("user", f"message {index}", session_tag="t")
    nexus.clear("t")
    nexus.append("user", "again", session_tag="u")
    nexus.clear_all()

    director = DirectorDB(Store(tmp_path / "director"))
    director.create_session("s", "v", "col")
    for index in range(3):
        director.add_or_update_msg_to_conv("s", "c", f"m{index}", "output", [], [], [{"n": index}])
    director.add_or_update_msg_to_conv("t", "c", "m0", "output", [], [], [])  # moves m0 to another session
    director.add_or_update_context_msg("s", [{"turn": 1}])
    director.delete_conversation("t")
    director.delete_session("s")
    assert order.violations == []
    assert order.most_held >= 2


def test_the_recorder_catches_a_parent_taken_while_holding_a_child(tmp_path: Path, order: LockOrder) -> None:
    # Without this, a recorder that never records would pass every test above.
    store = Store(tmp_path)
    child = store.narrow("a")
    with child.lock():
        store.save("doc", 1)  # the save takes the root's lock: a parent after its child
    with store.narrow("b").lock(), child.lock():  # a sibling out of path order
        pass
    root = tmp_path.parts
    assert order.violations == [((*root, "a"), root), ((*root, "b"), (*root, "a"))]


@pytest.mark.parametrize(("source", "target"), [("b-source", "a-target"), ("a-source", "b-target")])
def test_langgraph_copy_thread_follows_the_lock_rules(
    tmp_path: Path, order: LockOrder, source: str, target: str
) -> None:
    # copy_thread holds the source's and the target's locks and writes namespaces below the
    # target: with the target sorting before the source, taking those late broke rule 2.
    from group_store.integrations.langgraph import GroupStoreSaver
    from tests.integrations.langgraph_helpers import Chain, config

    saver = GroupStoreSaver(tmp_path)
    Chain(saver, target).put({"x": "target"})
    chain = Chain(saver, source)
    chain.put({"x": "source 1"})
    chain.put({"x": "source 2"})
    Chain(saver, source, "subgraph").put({"y": 1})  # a namespace: a directory below the thread
    saver.copy_thread(source, target)
    saver.copy_thread(source, "c-fresh")
    assert [t.checkpoint["channel_values"]["x"] for t in saver.list(config(target))] == [
        "source 2",
        "source 1",
        "target",
    ]
    assert order.violations == []
    assert order.most_held >= 3
