"""Several processes on one directory: nothing lost, nothing interleaved, nothing torn."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from group_store import CorruptEntryError, DataStore, Store

from .processes import run_processes

WORKERS = 4
ROUNDS = 200


def _increment_sync(root: str) -> None:
    store = Store(root)
    for _ in range(ROUNDS):
        store.update("counter", lambda n: n + 1, default=0)


def _increment_async(root: str, backend: str) -> None:
    async def main() -> None:
        async with DataStore(root) as store:
            for _ in range(ROUNDS):
                await store.update("counter", lambda n: n + 1, default=0)

    anyio.run(main, backend=backend)


def _append(root: str, worker: int) -> None:
    store = Store(root)
    for i in range(ROUNDS):
        store.append("log", [{"worker": worker, "i": i, "pad": "p" * (i % 300)}], max_items=10_000)


def _append_async(root: str, worker: int) -> None:
    async def main() -> None:
        async with DataStore(root) as store:
            for i in range(ROUNDS):
                store.append("log", [{"worker": worker, "i": i}])

    anyio.run(main)


def test_four_processes_update_800_times(tmp_path: Path) -> None:
    run_processes([(_increment_sync, (str(tmp_path),)) for _ in range(WORKERS)])
    assert Store(tmp_path).load("counter") == WORKERS * ROUNDS


def test_four_async_processes_update_800_times(tmp_path: Path) -> None:
    backends = ["asyncio", "trio", "asyncio", "trio"]
    run_processes([(_increment_async, (str(tmp_path), backend)) for backend in backends])
    assert Store(tmp_path).load("counter") == WORKERS * ROUNDS


@pytest.mark.parametrize("target", [_append, _append_async])
def test_appends_from_processes_never_interleave_or_lose_lines(tmp_path: Path, target: Callable[..., None]) -> None:
    run_processes([(target, (str(tmp_path), worker)) for worker in range(WORKERS)])
    items = Store(tmp_path).read("log")
    assert len(items) == WORKERS * ROUNDS
    for worker in range(WORKERS):
        assert [item["i"] for item in items if item["worker"] == worker] == list(range(ROUNDS))


def _flip(root: str, flipped: Any, stop: Any) -> None:
    store = Store(root)
    big = {"blob": ["x" * 1000] * 200}
    small = {"blob": "y"}
    i = 0
    while not stop.is_set():
        store.save("doc", big if i % 2 else small)
        i += 1
        if i == 2:
            flipped.set()  # both values have been written once: the reader may start counting


def test_readers_see_old_or_new_never_partial(tmp_path: Path) -> None:
    Store(tmp_path).save("doc", {"blob": "y"})
    context = multiprocessing.get_context("spawn")
    flipped, stop = context.Event(), context.Event()
    writer = context.Process(target=_flip, args=(str(tmp_path / "."), flipped, stop))
    writer.start()
    reader = Store(tmp_path)
    seen: set[int] = set()
    reads = 0
    try:
        assert flipped.wait(timeout=120), "the writer process never wrote"
        # At least 3,000 reads while the other process keeps replacing the file, and on
        # until both values were seen (bounded: a writer that stalls fails the test).
        while reads < 3000 or (len(seen) < 2 and reads < 300_000):
            try:
                value = reader.load("doc")
            except CorruptEntryError as exc:  # pragma: no cover - this is the failure being tested for
                pytest.fail(f"torn read: {exc}")
            seen.add(len(value["blob"]))
            reads += 1
    finally:
        stop.set()
        writer.join(timeout=60)
    assert writer.exitcode == 0
    assert seen == {1, 200}  # only whole values, and both of them: the reads overlapped the writes


def _locked_read_modify_write(root: str) -> None:
    store = Store(root)
    for _ in range(ROUNDS):
        with store.lock():  # the lock spans a get and a save: nothing in between from anyone
            store.save("tally", store.get("tally", 0) + 1)


def test_store_lock_spans_several_calls_across_processes(tmp_path: Path) -> None:
    run_processes([(_locked_read_modify_write, (str(tmp_path),)) for _ in range(2)])
    assert Store(tmp_path).load("tally") == 2 * ROUNDS


def test_an_assertion_failing_in_a_thread_fails_the_test(pytester: pytest.Pytester) -> None:
    # With this project's pytest configuration (not pytest's default, which only warns).
    pyproject = Path(__file__).parent.parent / "pyproject.toml"
    pytester.makepyfile(
        test_thread="""
        import threading

        def test_worker_fails():
            def work():
                assert 1 == 2
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        """
    )
    result = pytester.runpytest("-c", str(pyproject), "-p", "no:cacheprovider", str(pytester.path / "test_thread.py"))
    result.assert_outcomes(failed=1)
