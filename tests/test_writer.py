"""One named test per clause of the write queue's contract (see group_store._writer.Writer)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from group_store import DataStore, Store, StoreClosedError
from group_store._engine import Engine
from group_store._layout import Location
from group_store._writer import Writer

pytestmark = pytest.mark.anyio


class RecordingEngine:
    """Wraps the engine's save_many/append (what the writer calls) to record what reaches the disk, gated."""

    def __init__(self, store: DataStore) -> None:
        self.engine: Engine = store._engine
        self.saves: list[tuple[str, bytes]] = []
        self.appends: list[bytes] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        original_save_many, original_append = self.engine.save_many, self.engine.append

        def save_many(items: list[tuple[Location, bytes, float | None]]) -> list[BaseException | None]:
            self.entered.set()
            self.gate.wait()
            self.saves.extend((loc.key, payload) for loc, payload, _ in items)
            return original_save_many(items)

        def append(loc: Location, lines: bytes, count: int, max_items: int | None) -> None:
            self.appends.append(lines)
            original_append(loc, lines, count, max_items)

        self.engine.save_many = save_many  # type: ignore[method-assign]
        self.engine.append = append  # type: ignore[method-assign]
        self.store = store

    async def hold_writer(self) -> None:
        """Park the writer thread inside a save, so what follows queues up behind it."""
        self.gate.clear()
        self.store.save("blocker", 0)
        await anyio.to_thread.run_sync(self.entered.wait)


async def test_coalescing_writes_only_newest_bytes_and_settles_every_handle(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    recorder = RecordingEngine(store)
    await recorder.hold_writer()
    handles = [store.save("hot", i) for i in range(100)]
    recorder.gate.set()
    for handle in handles:
        await handle
    assert [payload for key, payload in recorder.saves if key == "hot"] == [b"99\n"]
    assert len({id(handle) for handle in handles}) == 1  # merged saves share one handle: memory per key, not per save
    assert store.statistics().writes_coalesced == 99
    await store.aclose()


async def test_appends_to_one_log_merge_into_one_write(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    recorder = RecordingEngine(store)
    await recorder.hold_writer()
    for i in range(10):
        store.append("log", [i])
    recorder.gate.set()
    await store.flush()
    assert recorder.appends == [b"".join(f"{i}\n".encode() for i in range(10))]
    await store.aclose()


async def test_order_is_issue_order_and_delete_is_a_fence(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    recorder = RecordingEngine(store)
    await recorder.hold_writer()
    store.save("k", "before")
    async with anyio.create_task_group() as group:
        group.start_soon(store.delete, "k")
        await anyio.wait_all_tasks_blocked()
        store.save("k", "after")  # must not merge into the save queued before the delete
        recorder.gate.set()
    await store.flush()
    assert [payload for key, payload in recorder.saves if key == "k"] == [b'"before"\n', b'"after"\n']
    assert Store(tmp_path).load("k") == "after"
    await store.aclose()


async def test_reads_see_queued_writes(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    recorder = RecordingEngine(store)
    recorder.gate.clear()
    store.save("k", {"v": 1})
    assert await store.load("k") == {"v": 1}  # served from the queue while the writer is blocked
    assert await store.exists("k")
    recorder.gate.set()
    await store.aclose()


async def test_back_pressure_bounds_pending_bytes(tmp_path: Path) -> None:
    store = DataStore(tmp_path, max_pending_bytes=10_000)
    recorder = RecordingEngine(store)
    await recorder.hold_writer()
    payload = "x" * 3_000
    for i in range(3):
        store.save(f"k{i}", payload)
    peak = store.statistics().pending_bytes
    blocked_save_done = threading.Event()

    def fourth_save() -> None:
        store.save("k3", payload)
        blocked_save_done.set()

    thread = threading.Thread(target=fourth_save)
    thread.start()
    assert not blocked_save_done.wait(0.2)  # it waits for room instead of growing the queue
    assert store.statistics().pending_bytes == peak <= 10_000
    recorder.gate.set()
    thread.join()
    await store.aclose()
    assert Store(tmp_path).load("k3") == payload


async def test_close_writes_everything_then_refuses_writes(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    for i in range(500):
        store.save(f"k{i}", i)
    await store.aclose()
    assert len(Store(tmp_path).keys()) == 500
    with pytest.raises(StoreClosedError):
        store.save("late", 1)


async def test_leaving_a_narrowed_view_flushes_without_closing(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as store:
        async with store.narrow("alice") as alice:
            alice.save("k", 1)
        assert Store(tmp_path).narrow("alice").load("k") == 1
        store.save("still", "open")
    assert Store(tmp_path).load("still") == "open"


async def test_cancelling_an_await_does_not_cancel_the_write(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    recorder = RecordingEngine(store)
    recorder.gate.clear()
    handle = store.save("k", 1)
    with anyio.move_on_after(0.05):
        await handle
    assert not handle.done()
    recorder.gate.set()
    await store.aclose()
    assert handle.done()
    assert Store(tmp_path).load("k") == 1


async def test_one_writer_thread_serves_every_view(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    views = [store.narrow(f"user{i}", "agent") for i in range(20)]
    for view in views:
        view.save("state", 1)
    await store.flush()
    writers = [t for t in threading.enumerate() if t.name == "group_store-writer"]
    assert len(writers) == 1
    assert all(view.statistics() == store.statistics() for view in views)
    await store.aclose()


def test_writer_thread_exits_when_idle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("group_store._writer._IDLE_SECONDS", 0.01)
    writer = Writer(Store(tmp_path)._engine)
    loc = Store(tmp_path)._location("k")
    writer.save(loc, b"1\n", None).result(timeout=10)
    thread: Any = writer._thread
    if thread is not None:
        thread.join(timeout=10)
    assert writer._thread is None
    writer.save(loc, b"2\n", None).result(timeout=10)  # a later write starts a new thread
    assert Store(tmp_path).load("k") == 2
    writer.close()


async def test_durable_saves_of_a_batch_share_one_group_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import group_store._local as local

    group_sizes: list[int] = []
    original = local._fsync_all

    def recording(fds: list[int]) -> list[BaseException | None]:
        group_sizes.append(len(fds))
        return original(fds)

    monkeypatch.setattr(local, "_fsync_all", recording)
    store = DataStore(tmp_path, durable=True)
    recorder = RecordingEngine(store)
    await recorder.hold_writer()
    handles = [store.save(f"k{i}", i) for i in range(50)]
    recorder.gate.set()
    for handle in handles:
        await handle
    assert max(group_sizes) == 50
    assert Store(tmp_path).load("k49") == 49
    await store.aclose()


async def test_one_bad_item_does_not_fail_its_batch(tmp_path: Path) -> None:
    import os

    os.symlink(tmp_path / "elsewhere", tmp_path / "k3.json")
    store = DataStore(tmp_path, durable=True)
    recorder = RecordingEngine(store)
    await recorder.hold_writer()
    handles = [store.save(f"k{i}", i) for i in range(6)]
    recorder.gate.set()
    from group_store import UnsafeFileError

    with pytest.raises(UnsafeFileError) as info:
        await handles[3]
    assert info.value.key == "k3"
    for i in (0, 1, 2, 4, 5):
        await handles[i]
        assert Store(tmp_path).load(f"k{i}") == i
    assert (tmp_path / "k3.json").is_symlink()
    with pytest.raises(UnsafeFileError):
        await store.aclose()
