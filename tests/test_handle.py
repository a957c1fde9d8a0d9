"""WriteHandle works where code written for Group Genie 0.0.2's asyncio.Future expects one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import anyio
import pytest
import trio

from group_store import DataStore, WriteHandle


def test_a_handle_works_with_asyncio_wait_gather_shield_and_wait_for(tmp_path: Path) -> None:
    async def main() -> None:
        store = DataStore(tmp_path)
        first, second = store.save("a", 1), store.save("b", 2)
        # typeshed types wait() for Futures only; at run time it takes any awaitable, as here.
        done, pending = await asyncio.wait([first, second])  # type: ignore[type-var]
        assert len(done) == 2
        assert not pending
        assert [task.result() for task in done] == [None, None]
        assert list(await asyncio.gather(store.save("c", 3), store.save("d", 4))) == [None, None]
        await asyncio.shield(store.save("e", 5))
        await asyncio.wait_for(store.save("f", 6), timeout=60)
        assert [await store.load(key) for key in "cdef"] == [3, 4, 5, 6]
        assert await store.load("f") == 6
        await store.aclose()

    asyncio.run(main())


def test_a_handle_answers_the_future_questions(tmp_path: Path) -> None:
    async def main() -> None:
        store = DataStore(tmp_path)
        handle = store.save("a", 1)
        assert not handle.cancelled()
        assert handle.cancel() is False  # a write that was issued will happen
        await handle
        assert handle.done()
        assert handle.result() is None
        assert handle.exception() is None
        assert not handle.cancelled()
        await store.aclose()

    asyncio.run(main())


def test_done_callbacks_run_in_the_event_loop_that_registered_them(tmp_path: Path) -> None:
    async def main() -> None:
        store = DataStore(tmp_path)
        loop_thread = threading.current_thread()
        called: list[tuple[WriteHandle[None], threading.Thread]] = []
        finished = asyncio.Event()

        def callback(handle: WriteHandle[None]) -> None:
            called.append((handle, threading.current_thread()))
            finished.set()

        handle = store.save("a", 1)
        handle.add_done_callback(callback)
        await finished.wait()
        assert called == [(handle, loop_thread)]
        # Registered after it finished: called soon, in the loop, as asyncio.Future does.
        finished.clear()
        handle.add_done_callback(callback)
        assert len(called) == 1
        await finished.wait()
        assert called[-1] == (handle, loop_thread)
        await store.aclose()

    asyncio.run(main())


def test_a_removed_callback_is_never_called(tmp_path: Path) -> None:
    async def main() -> None:
        store = DataStore(tmp_path)
        called: list[object] = []
        handle = store.save("a", 1)
        handle.add_done_callback(called.append)
        handle.add_done_callback(called.append)
        assert handle.remove_done_callback(called.append) == 2
        await handle
        await asyncio.sleep(0)
        assert called == []
        await store.aclose()

    asyncio.run(main())


def test_a_callback_that_raises_is_logged_and_the_writer_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = DataStore(tmp_path)
    seen = threading.Event()

    def bad(handle: WriteHandle[None]) -> None:
        seen.set()
        raise ValueError("boom")

    handle = store.save("a", 1)
    handle.add_done_callback(bad)  # no event loop in this thread: runs in the writer's
    assert seen.wait(60)
    handle.result(timeout=60)
    store.save("b", 2).result(timeout=60)  # the writer survived
    assert "done-callback raised" in caplog.text
    anyio.run(store.aclose)


@pytest.mark.anyio
async def test_a_handle_is_awaitable_from_a_task_group_on_any_backend(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    results: list[object] = []

    async def wait(handle: WriteHandle[None]) -> None:
        await handle
        results.append(handle.result())

    async with anyio.create_task_group() as group:
        for index in range(5):
            group.start_soon(wait, store.save(f"k{index}", index))
    assert results == [None] * 5
    await store.aclose()


def test_done_callbacks_run_in_the_trio_run_that_registered_them(tmp_path: Path) -> None:
    async def main() -> None:
        store = DataStore(tmp_path)
        finished = trio.Event()
        called: list[threading.Thread] = []

        def callback(handle: WriteHandle[None]) -> None:
            called.append(threading.current_thread())
            finished.set()

        store.save("a", 1).add_done_callback(callback)
        await finished.wait()
        assert called == [threading.current_thread()]
        await store.aclose()

    trio.run(main)
