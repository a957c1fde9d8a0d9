"""GroupStoreSession against the OpenAI Agents SDK: its SQLiteSession, its Runner, processes and SIGKILL."""

from __future__ import annotations

import asyncio
import os
import random
import struct
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

# The openai-agents extra is part of what CI installs: a missing SDK fails here loudly, never skips.
import anyio
import pytest
from agents import Agent, Runner, set_tracing_disabled
from agents.memory import Session, SessionSettings, SQLiteSession
from agents.testing import ScriptedModel, assistant_message

from group_store import DataStore, SerializationError, Store
from group_store.integrations.openai_agents import POP_LINE, GroupStoreSession

from ..processes import run_processes
from ..test_crash import run_then_kill
from . import workers

# The SDK's SQLiteSession and Runner are asyncio code (asyncio.to_thread, asyncio tasks).
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


def _item(n: int) -> dict[str, Any]:
    return {"role": "user" if n % 2 else "assistant", "content": f"message {n}", "n": n}


def _random_ops(rng: random.Random, count: int) -> list[tuple[str, Any]]:
    ops: list[tuple[str, Any]] = []
    n = 0
    for _ in range(count):
        kind = rng.choices(["add", "get", "pop", "clear"], weights=[10, 8, 4, 1])[0]
        if kind == "add":
            size = rng.choice([0, 1, 1, 2, 3, 7])
            ops.append(("add", [_item(n + i) for i in range(size)]))
            n += size
        elif kind == "get":
            ops.append(("get", rng.choice([None, None, 0, 1, 2, 5, 10, 50, -1, -5])))
        else:
            ops.append((kind, None))
    return ops


async def _apply(session: Any, op: tuple[str, Any]) -> Any:
    kind, arg = op
    if kind == "add":
        return await session.add_items(arg)
    if kind == "get":
        return await session.get_items() if arg is None else await session.get_items(limit=arg)
    if kind == "pop":
        return await session.pop_item()
    return await session.clear_session()


@asyncio_only
@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("settings_limit", [None, 3])
async def test_behaves_like_sqlite_session(tmp_path: Path, seed: int, settings_limit: int | None) -> None:
    rng = random.Random(seed)
    settings = SessionSettings(limit=settings_limit)
    reference = SQLiteSession("s", tmp_path / "reference.db", session_settings=settings)
    ours = GroupStoreSession("s", Store(tmp_path / "store"), session_settings=settings)
    try:
        for step, op in enumerate(_random_ops(rng, 300)):
            expected = await _apply(reference, op)
            got = await _apply(ours, op)
            assert got == expected, f"step {step}: {op}"
        assert await ours.get_items(limit=-1) == await reference.get_items(limit=-1)
    finally:
        reference.close()


@asyncio_only
@pytest.mark.anyio
async def test_behaves_like_sqlite_session_on_a_data_store(tmp_path: Path) -> None:
    rng = random.Random(99)
    reference = SQLiteSession("s", tmp_path / "reference.db")
    async with DataStore(tmp_path / "store") as data_store:
        ours = GroupStoreSession("s", data_store)
        try:
            for step, op in enumerate(_random_ops(rng, 200)):
                assert await _apply(ours, op) == await _apply(reference, op), f"step {step}: {op}"
        finally:
            reference.close()


@pytest.mark.anyio
async def test_is_an_sdk_session_with_sqlites_settings(tmp_path: Path) -> None:
    session = GroupStoreSession("s", tmp_path)
    assert isinstance(session, Session)  # the SDK's runtime-checkable protocol
    typed: Session = session  # and mypy agrees, structurally
    assert typed.session_settings is None  # the protocol's default; SQLiteSession's SessionSettings() means the same
    assert SQLiteSession("x").session_settings == SessionSettings(limit=None)
    from_dict = GroupStoreSession("s", tmp_path, session_settings={"limit": 2})
    assert from_dict.session_settings == SessionSettings(limit=2)
    await session.add_items([_item(i) for i in range(5)])
    assert await from_dict.get_items() == [_item(3), _item(4)]
    assert await from_dict.get_items(limit=-1) == [_item(i) for i in range(5)]  # an explicit limit wins


@pytest.mark.anyio
async def test_empty_and_missing_sessions(tmp_path: Path) -> None:
    session = GroupStoreSession("never-written", tmp_path)
    assert await session.get_items() == []
    assert await session.get_items(limit=3) == []
    assert await session.pop_item() is None
    await session.clear_session()
    await session.add_items([])
    assert not (tmp_path / "agent_sessions").exists()  # nothing was written
    assert await GroupStoreSession.list_sessions(tmp_path) == []


@pytest.mark.anyio
@pytest.mark.local_only("reads the session logs on disk")
async def test_layout_is_one_readable_log_per_session(tmp_path: Path) -> None:
    session = GroupStoreSession("chat/42", tmp_path)  # any id: it is escaped into one directory name
    await session.add_items([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    assert await session.pop_item() == {"role": "assistant", "content": "hello"}
    (directory,) = (tmp_path / "agent_sessions").iterdir()
    log = (directory / "items.jsonl").read_text()
    assert log.splitlines() == [
        '{"role":"user","content":"hi"}',
        '{"role":"assistant","content":"hello"}',
        f'"{POP_LINE}"',
    ]
    assert Store(tmp_path).narrow("agent_sessions", "chat/42").read("items")[-1] == POP_LINE


@pytest.mark.anyio
async def test_pops_cancel_the_newest_live_item(tmp_path: Path) -> None:
    session = GroupStoreSession("s", tmp_path)
    await session.add_items([_item(0), _item(1)])
    assert await session.pop_item() == _item(1)
    await session.add_items([_item(2)])
    assert await session.pop_item() == _item(2)
    assert await session.pop_item() == _item(0)
    assert await session.pop_item() is None
    await session.add_items([_item(3)])
    assert await session.get_items() == [_item(3)]
    # Many pops among the newest lines: get_items(limit) and pop_item look further back.
    await session.add_items([_item(i) for i in range(10, 60)])
    for expected in reversed(range(15, 60)):
        assert await session.pop_item() == _item(expected)
    assert await session.get_items(limit=3) == [_item(12), _item(13), _item(14)]
    assert await session.get_items(limit=7) == [_item(3)] + [_item(i) for i in range(10, 15)]


@pytest.mark.anyio
async def test_max_items_keeps_the_newest_lines(tmp_path: Path) -> None:
    session = GroupStoreSession("s", tmp_path, max_items=4)
    await session.add_items([_item(i) for i in range(6)])
    assert await session.get_items() == [_item(i) for i in range(2, 6)]
    assert await session.pop_item() == _item(5)
    assert await session.get_items() == [_item(2), _item(3), _item(4)]  # the pop's line counts
    await session.add_items([_item(6), _item(7), _item(8)])
    # The newest 4 lines are the "pop" and 6, 7, 8: the item it cancelled (5) was pruned, so it
    # cancels nothing now, and no item comes back.
    assert await session.get_items() == [_item(6), _item(7), _item(8)]
    assert Store(tmp_path).narrow("agent_sessions", "s").read("items")[0] == POP_LINE
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="max_items"):
            GroupStoreSession("s", tmp_path, max_items=bad)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_list_sessions_and_clear(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for name in ("b", "a", "c"):
        await GroupStoreSession(name, store).add_items([_item(0)])
    await GroupStoreSession("c", store).clear_session()
    popped = GroupStoreSession("d", store)
    await popped.add_items([_item(1)])
    await popped.pop_item()  # emptied by pops, not cleared: still listed, as SQLite keeps its session row
    assert await GroupStoreSession.list_sessions(store) == ["a", "b", "d"]
    assert await GroupStoreSession.list_sessions(store, sessions_dir="other") == []
    async with DataStore(tmp_path) as data_store:
        assert await GroupStoreSession.list_sessions(data_store) == ["a", "b", "d"]


@pytest.mark.anyio
async def test_refusals_change_nothing(tmp_path: Path) -> None:
    session = GroupStoreSession("s", tmp_path)
    await session.add_items([_item(0)])
    with pytest.raises(TypeError, match="JSON objects"):
        await session.add_items([_item(1), "pop"])
    with pytest.raises(SerializationError):
        await session.add_items([_item(2), {"value": float("nan")}])
    assert await session.get_items() == [_item(0)]
    with pytest.raises(ValueError, match="session_id"):
        GroupStoreSession("", tmp_path)
    session.close()
    for call in (session.get_items(), session.add_items([_item(3)]), session.pop_item(), session.clear_session()):
        with pytest.raises(RuntimeError, match="closed"):
            await call


# -- the SDK's Runner, resumed from a new process -------------------------------------------


def _run_turn(root: str, user_text: str, reply: str, expect_history: list[str]) -> None:
    set_tracing_disabled(True)  # offline: no trace export is even attempted

    async def main() -> None:
        model = ScriptedModel([[assistant_message(reply, item_id=f"msg-{reply}")]])
        agent = Agent(name="assistant", instructions="Be brief.", model=model)
        session = GroupStoreSession("conversation-1", root)
        result = await Runner.run(agent, user_text, session=session)
        assert result.final_output == reply
        call = model.last_call
        assert call is not None
        seen = [_text(item) for item in call.input]
        assert seen == [*expect_history, user_text], seen

    asyncio.run(main())


def _text(item: dict[str, Any]) -> str:
    content = item["content"]
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


@pytest.mark.local_only("a new process reopens the store")
def test_runner_two_turns_resumed_from_a_new_process(tmp_path: Path) -> None:
    root = str(tmp_path)
    workers.run_forked([(_run_turn, (root, "What is the capital of France?", "Paris.", []))])
    workers.run_forked([(_run_turn, (root, "And of Italy?", "Rome.", ["What is the capital of France?", "Paris."]))])
    items = Store(tmp_path).narrow("agent_sessions", "conversation-1").read("items")
    assert [_text(item) for item in items] == ["What is the capital of France?", "Paris.", "And of Italy?", "Rome."]
    assert [item["role"] for item in items] == ["user", "assistant", "user", "assistant"]


# -- two processes, and SIGKILL ---------------------------------------------------------------


@pytest.mark.local_only("subprocesses share the store")
def test_two_processes_adding_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    run_processes([(workers.add_items, (str(tmp_path), worker, 150)) for worker in (0, 1)])
    items = Store(tmp_path).narrow("agent_sessions", "shared").read("items")
    assert len(items) == 600
    for worker in (0, 1):
        mine = [item for item in items if item["worker"] == worker]
        # Each add_items is one write: its two items stay adjacent, in order.
        assert mine == [
            x for i in range(150) for x in ({"worker": worker, "i": i}, {"worker": worker, "i": i, "second": True})
        ]


@pytest.mark.local_only("subprocesses share the store")
def test_two_processes_popping_never_return_the_same_item(tmp_path: Path) -> None:
    root = tmp_path / "store"
    out = tmp_path / "out"
    anyio.run(GroupStoreSession("shared", root).add_items, [{"n": n} for n in range(400)])
    run_processes([(workers.pop_items, (str(root), worker, str(out))) for worker in (0, 1)])
    first, second = Store(out).load("popped-0"), Store(out).load("popped-1")
    assert sorted(first + second) == list(range(400))  # every item popped exactly once
    assert first == sorted(first, reverse=True)  # each process popped newest first
    assert second == sorted(second, reverse=True)
    assert anyio.run(GroupStoreSession("shared", root).get_items) == []


ACK = struct.Struct("<BQ")


def _add_until_killed(root: Path, write_fd: int, start: int) -> None:
    async def main() -> None:
        session = GroupStoreSession("crash", root, max_items=None)
        i = start
        while True:
            await session.add_items([{"n": i, "pad": "x" * (i * 97 % 5000)}, {"n": i, "tail": True}])
            os.write(write_fd, ACK.pack(0, i))
            if i % 5 == 4:
                assert (await session.pop_item()) == {"n": i, "tail": True}
                os.write(write_fd, ACK.pack(1, i))
            i += 1

    asyncio.run(main())


@pytest.mark.local_only("SIGKILL of a writer process")
def test_sigkill_during_add_items_keeps_every_acknowledged_item(tmp_path: Path) -> None:
    rng = random.Random(7)
    root = tmp_path / "store"
    acked: dict[int, bool] = {}  # n -> whether its tail item was acknowledged popped
    next_i = 0
    kills = 0
    for _ in range(12):
        killed, acks = run_then_kill(partial(_add_until_killed, root), next_i, rng.uniform(0.05, 0.25))
        kills += killed
        for kind, value in acks:
            acked[value] = acked.get(value, False) or kind == 1
        items = anyio.run(GroupStoreSession("crash", root).get_items)
        by_n = {item["n"]: item for item in items if "tail" not in item}
        assert set(acked) <= set(by_n), "an acknowledged add_items was lost"
        tails = {item["n"] for item in items if "tail" in item}
        assert all(n not in tails for n, popped in acked.items() if popped), "an acknowledged pop came back"
        ns = [item["n"] for item in items]
        assert ns == sorted(ns), "items out of order"
        next_i = max(by_n, default=next_i) + 1
        # An unacknowledged last batch may be there whole or not at all, never one item of it alone.
        assert all(n in tails or acked.get(n) or n % 5 == 4 for n in by_n)
    assert kills >= 10


def test_the_module_never_imports_the_sdk() -> None:
    code = (
        "import sys, anyio, tempfile\n"
        "from group_store.integrations.openai_agents import GroupStoreSession\n"
        "session = GroupStoreSession('s', tempfile.mkdtemp())\n"
        "anyio.run(session.add_items, [{'role': 'user', 'content': 'hi'}])\n"
        "assert anyio.run(session.get_items) == [{'role': 'user', 'content': 'hi'}]\n"
        "assert 'agents' not in sys.modules, 'the SDK was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@asyncio_only
@pytest.mark.anyio
@pytest.mark.local_only("the recorded golden directory is named after the local test id")
async def test_a_runner_session_snapshots_as_readable_files(tmp_path: Path, store_snapshot: Any) -> None:
    set_tracing_disabled(True)
    model = ScriptedModel(
        [[assistant_message("Paris.", item_id="msg-1")], [assistant_message("Rome.", item_id="msg-2")]]
    )
    agent = Agent(name="assistant", instructions="Be brief.", model=model)
    session = GroupStoreSession("conversation-1", Store(tmp_path))
    for text in ("Capital of France?", "And of Italy?"):
        await Runner.run(agent, text, session=session)
    store_snapshot.assert_match(Store(tmp_path))
