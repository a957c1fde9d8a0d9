"""One named test per clause of the write queue's contract (see group_store._api.writer.Writer)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from group_store import DataStore, Store, StoreClosedError
from group_store._api.writer import _OP_COST, Writer
from group_store._engine.engine import Engine
from group_store._format.layout import Location

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
    payload = "x" * 3_000
    # Room for the blocker and three saves (each counts its payload and the per-operation cost), not four.
    store = DataStore(tmp_path, max_pending_bytes=4 * (len(payload) + 3 + _OP_COST) - 1)
    recorder = RecordingEngine(store)
    await recorder.hold_writer()
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
    assert store.statistics().pending_bytes == peak <= store.statistics().max_pending_bytes
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
    monkeypatch.setattr("group_store._api.writer._IDLE_SECONDS", 0.01)
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
    import group_store.storage._local as local

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
    await store.aclose()  # the failure was delivered through its handle: not raised again


async def test_a_failure_delivered_through_its_handle_is_not_raised_again(tmp_path: Path) -> None:
    from group_store import UnsafeFileError

    for name in ("awaited", "result", "inspected", "merged", "peeked", "unseen"):
        (tmp_path / f"{name}.json").symlink_to(tmp_path / "elsewhere")  # each save of these fails
    async with DataStore(tmp_path) as store:  # leaving it must not raise what the code below handled
        recorder = RecordingEngine(store)
        await recorder.hold_writer()
        awaited, by_result, inspected = store.save("awaited", 1), store.save("result", 1), store.save("inspected", 1)
        merged = [store.save("merged", i) for i in range(3)]
        peeked = store.save("peeked", 1)
        assert peeked.exception() is None  # looked at while pending: nothing was delivered
        recorder.gate.set()
        with pytest.raises(UnsafeFileError):
            await awaited
        with pytest.raises(UnsafeFileError):
            await anyio.to_thread.run_sync(by_result.result)
        await store._writer.barrier()
        assert isinstance(inspected.exception(), UnsafeFileError)
        with pytest.raises(UnsafeFileError):
            await merged[1]  # merged saves share one handle: one look covers them all
        with pytest.raises(UnsafeFileError) as info:
            await store.flush()
        assert info.value.key == "peeked"  # the only failure no caller has seen
        assert not getattr(info.value, "__notes__", None)
        await store.flush()  # reported once
        store.save("unseen", 1)
        with pytest.raises(UnsafeFileError) as info:
            await store.flush()
        assert info.value.key == "unseen"
        assert store.statistics().unreported_failures == 0


@pytest.mark.slow
def test_back_pressure_bounds_memory_of_tiny_saves(tmp_path: Path) -> None:
    # 300,000 fire-and-forget saves of the value 1 (distinct keys): their payloads are
    # 2 bytes each, so only the per-operation cost counted in pending_bytes can bound them.
    import tracemalloc

    bound, slack = 4 * 2**20, 2 * 2**20  # slack: the writer's in-flight batch lists (up to 4,096 items)
    store = DataStore(tmp_path, max_pending_bytes=bound)
    writer = store._writer
    queue_full = threading.Semaphore(0)

    def save_many_once_the_queue_is_full(items: list[Any]) -> list[BaseException | None]:
        # The worst case, deterministically: the disk is slower than the saves, so the queue
        # is full before each batch is written (no disk I/O here: 300,000 files take minutes).
        queue_full.acquire()
        return [None] * len(items)

    store._engine.save_many = save_many_once_the_queue_is_full  # type: ignore[method-assign]
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(300_000):
            if writer._pending_bytes + _OP_COST + 2 > bound:
                queue_full.release()  # this save waits for room: let one batch be written
            store.save(f"k{i}", 1)
            if i % 1000 == 0:
                held = tracemalloc.get_traced_memory()[0] - base
                assert held <= bound + slack, f"{held} bytes held after {i} saves"  # fail fast, not at 2 GB
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        queue_full.release(1000)
    writer.close()
    print(f"memory-stats: saves=300000 max_pending_bytes={bound} traced_peak={peak} slack={slack}")
    assert peak <= bound + slack
    assert store.statistics().operations_written == 300_000


async def test_unreported_failures_are_counted_beyond_those_kept(tmp_path: Path) -> None:
    from group_store import UnsafeFileError
    from group_store._api.writer import _KEPT_FAILURES

    failing = _KEPT_FAILURES + 50
    for i in range(failing):
        (tmp_path / f"k{i}.json").symlink_to(tmp_path / "elsewhere")
    store = DataStore(tmp_path)
    for i in range(failing):
        store.save(f"k{i}", i)  # fire and forget: nobody looks at these handles
    await store._writer.barrier()
    assert store.statistics().unreported_failures == failing
    assert len(store._writer._failed) == _KEPT_FAILURES  # memory stays bounded; the count stays true
    with pytest.raises(UnsafeFileError) as info:
        await store.aclose()
    assert info.value.key == "k0"
    assert f"{failing - 1} more write(s) failed since the last flush" in info.value.__notes__
