"""DataStore: the async API on asyncio and trio, and group-genie's documented usage."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from group_store import (
    DataStore,
    EntryKindError,
    InvalidKeyError,
    SerializationError,
    Store,
    StoreClosedError,
    WriteHandle,
)
from group_store.testing import FakeClock

pytestmark = pytest.mark.anyio


@pytest.mark.local_only("checks root_path and the files on disk")
async def test_issue_api_tour(tmp_path: Path, clock: FakeClock) -> None:
    async with DataStore(tmp_path, durable=False, clock=clock) as store:
        assert store.root_path == tmp_path
        handle = store.save("state", {"step": 1}, ttl=60)
        assert isinstance(handle, WriteHandle)
        await handle
        assert handle.done()
        assert handle.exception() is None
        assert await store.load("state") == {"step": 1}
        assert await store.get("nothing", default=None) is None
        assert await store.exists("state")
        assert await store.update("cart", lambda items: [*items, "milk"], default=[]) == ["milk"]
        await store.append("messages", [{"m": 1}, {"m": 2}], max_items=500)
        assert await store.read("messages", last=50) == [{"m": 1}, {"m": 2}]
        assert await store.load("messages") == [{"m": 1}, {"m": 2}]
        assert await store.keys() == ["cart", "messages", "state"]
        async with store.narrow("alice") as alice:
            await alice.save("agent", {"a": 1})
        bob = store.narrow("bob", "agent")
        bob.save("state", 1)
        assert await store.children() == ["alice", "bob"]
        assert store.narrow_path("alice", "agent") == tmp_path / "alice" / "agent"
        expiry = await store.expires_at("state")
        assert expiry is not None
        assert expiry.timestamp() == clock.now + 60
        clock.advance(61)
        assert not await store.exists("state")
        assert await store.sweep() == 1
        assert await store.delete("cart") is True
        assert await store.delete("cart") is False
        await store.flush()
    assert Store(tmp_path).narrow("bob", "agent").load("state") == 1


async def test_snapshot_at_call(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as store:
        data = {"items": [1]}
        store.save("k", data)
        data["items"].append(2)
        log_item = {"n": 1}
        store.append("log", [log_item])
        log_item["n"] = 2
    assert Store(tmp_path).load("k") == {"items": [1]}
    assert Store(tmp_path).read("log") == [{"n": 1}]


async def test_bad_data_raises_at_the_call_and_queues_nothing(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as store:
        with pytest.raises(SerializationError, match="'k'"):
            store.save("k", {"x": float("nan")})
        with pytest.raises(InvalidKeyError):
            store.save("", 1)
        assert store.statistics().pending_operations == 0
        assert await store.keys() == []


async def test_read_your_writes(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    store.save("k", 1)
    assert await store.load("k") == 1
    store.append("log", [1])
    store.append("log", [2])
    assert await store.read("log") == [1, 2]
    await store.delete("k")
    store.save("k", 2)
    assert await store.load("k") == 2
    await store.aclose()


async def test_works_without_async_with(tmp_path: Path) -> None:
    # Group Genie's session constructs a DataStore and calls save() directly.
    store = DataStore(tmp_path)
    futures = [store.save(f"k{i}", i) for i in range(20)]
    for future in futures:
        await future
    assert Store(tmp_path).load("k19") == 19
    await store.aclose()


@pytest.mark.local_only("reads files Group Genie 0.0.2 wrote on disk")
async def test_group_genie_002_documented_usage(tmp_path: Path) -> None:
    # Files as group-genie 0.0.2 wrote them: json.dump(indent=2), no trailing newline.
    root = tmp_path / ".data" / "sessions" / "session123"
    (root / "alice").mkdir(parents=True)
    (root / "messages.json").write_text(json.dumps({"messages": ["hi", "ünïcode"]}, indent=2))
    (root / "alice" / "agent.json").write_text(json.dumps({"turns": 3}, indent=2))
    (root / "user_1").mkdir()
    (root / "user_1" / "agent-state.json").write_text(json.dumps([1, 2], indent=2))

    store = DataStore(root_path=root)
    assert await store.load("messages") == {"messages": ["hi", "ünïcode"]}
    async with store.narrow("alice") as alice_store:
        assert await alice_store.load("agent") == {"turns": 3}
        await alice_store.save("agent", {"turns": 4})
    async with store.narrow("user_1") as user:
        assert await user.load("agent-state") == [1, 2]
    await store.save("messages", {"messages": ["bye"]})
    assert (root / "alice" / "agent.json").exists()  # Path structure: root/alice/agent.json
    assert json.loads((root / "alice" / "agent.json").read_text()) == {"turns": 4}
    with pytest.raises(KeyError):
        await store.load("missing")
    assert await store.keys() == ["messages"]
    assert await store.children() == ["alice", "user_1"]
    await store.aclose()


@pytest.mark.local_only("reads files Group Genie 0.0.4 wrote on disk")
async def test_group_genie_004_documented_usage(tmp_path: Path) -> None:
    root = tmp_path / "session123"
    root.mkdir()
    (root / "messages.jsonl").write_text(json.dumps({"content": "hello", "sender": "alice"}) + "\n")
    store = DataStore(root_path=root)
    store.append("messages", [{"content": "hi", "sender": "bob"}])
    lines = await store.load("messages")
    assert lines == [{"content": "hello", "sender": "alice"}, {"content": "hi", "sender": "bob"}]
    async with store.narrow("alice") as alice_store:
        alice_store.append("agent", [{"x": 1}])
    assert (root / "alice" / "agent.jsonl").read_text() == '{"x":1}\n'
    await store.append("messages", [])  # nothing to write: resolves at once
    await store.aclose()


async def test_kind_mismatch_fails_the_handle_not_the_store(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as store:
        await store.save("doc", 1)
        handle = store.append("doc", [1])
        with pytest.raises(EntryKindError):
            await handle
        await store.flush()  # delivered through the handle: flush does not raise it again
        store.append("doc", [2])  # never awaited: the next flush reports it
        with pytest.raises(EntryKindError):
            await store.flush()
        await store.save("doc", 2)
        assert await store.load("doc") == 2


@pytest.mark.local_only("a subprocess writes the store")
def test_interpreter_exit_writes_everything_queued(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import anyio
        from group_store import DataStore

        async def main():
            store = DataStore({str(tmp_path)!r})
            for i in range(2000):
                store.save(f"k{{i % 50}}", {{"i": i, "pad": "x" * 500}})
                store.append("log", [i])
            # no await, no flush, no close: the program just ends

        anyio.run(main, backend={{"asyncio": "asyncio", "trio": "trio"}}["{{backend}}"])
        """
    )
    for backend in ("asyncio", "trio"):
        target = tmp_path / backend
        code = script.replace(repr(str(tmp_path)), repr(str(target))).replace("{backend}", backend)
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
        store = Store(target)
        assert store.load("k49") == {"i": 1999, "pad": "x" * 500}
        assert store.read("log") == list(range(2000))


async def test_batched_saves_keep_long_directory_and_entry_names(tmp_path: Path) -> None:
    # Saves queued together take the writer's group-commit path; it must still write
    # the key files that let listings decode hashed (long) names.
    long_directory, long_key = "d" * 400, "k" * 300
    async with DataStore(tmp_path) as store:
        view = store.narrow(long_directory)
        for i in range(5):
            view.save(f"k{i}", i)
        view.save(long_key, "long")
    assert Store(tmp_path).children() == [long_directory]
    assert Store(tmp_path).narrow(long_directory).keys() == sorted([*(f"k{i}" for i in range(5)), long_key])


async def test_trio_and_asyncio_share_the_format(tmp_path: Path, anyio_backend: str) -> None:
    async with DataStore(tmp_path) as store:
        await store.save("k", {"backend": anyio_backend})
        await store.append("log", [anyio_backend])
    assert Store(tmp_path).load("k") == {"backend": anyio_backend}


async def test_many_tasks_await_their_handles(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as store, anyio.create_task_group() as group:
        for i in range(200):

            async def save(i: int = i) -> None:
                await store.save(f"k{i % 20}", i)

            group.start_soon(save)
    assert sorted(Store(tmp_path).keys()) == sorted(f"k{i}" for i in range(20))


async def test_run_sync_runs_in_order_with_queued_writes(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as store:
        alice = store.narrow("alice")
        alice.save("state", {"step": 1})
        alice.append("log", [1, 2])

        def read_then_write(blocking: Store) -> tuple[object, list[object]]:
            with blocking.lock():
                seen = blocking.load("state"), blocking.read("log")
                blocking.save("state", {"step": 2})
            return seen

        assert await alice.run_sync(read_then_write) == ({"step": 1}, [1, 2])
        assert await alice.load("state") == {"step": 2}
        with pytest.raises(ZeroDivisionError):
            await alice.run_sync(lambda blocking: 1 / 0)
    with pytest.raises(StoreClosedError):
        await store.run_sync(lambda blocking: None)
