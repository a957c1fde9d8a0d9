"""Genie's async stores (seed 001): sessions, memories, short memories, checkpoints; two processes each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from group_store import DataStore, DuplicateKeyError, InvalidArgumentError, KeyNotFoundError, Store, Table
from group_store.repos.genie import (
    CheckpointStore,
    CheckpointTuple,
    MemoryKey,
    MemoryStore,
    SessionKey,
    SessionStore,
    ShortMemoryStore,
    UserKey,
)
from group_store.testing import FakeClock

from ..processes import run_processes

pytestmark = pytest.mark.anyio

USER = UserKey("app", "alice")


def files_under(root: Path) -> list[str]:
    """The store's data files, relative to ``root`` (a plain function: tests may block, async code may not)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json*"))


@pytest.fixture
async def data_store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[DataStore]:
    async with DataStore(tmp_path, clock=clock) as store:
        yield store


# -- sessions --------------------------------------------------------------------


async def test_sessions_create_get_list_delete(data_store: DataStore, clock: FakeClock, tmp_path: Path) -> None:
    sessions = SessionStore(data_store)
    first = await sessions.create_session(SessionKey("app", "alice", "s1"), {"mood": "ok"})
    generated = await sessions.create_session(SessionKey("app", "alice", ""))
    assert len(generated.id) == 32
    with pytest.raises(DuplicateKeyError):
        await sessions.create_session(SessionKey("app", "alice", "s1"))
    clock.advance(5)
    await sessions.append_event(first, {"author": "user", "text": "hi"})
    got = await sessions.get_session(first.key)
    assert got is not None
    assert (got.state, got.events) == ({"mood": "ok"}, [{"author": "user", "text": "hi"}])
    assert [s.id for s in await sessions.list_sessions(USER)] == ["s1", generated.id]
    assert await sessions.get_session(SessionKey("app", "alice", "missing")) is None
    await sessions.create_session_summary(first, "", "talked about mood", ["mood"])
    await sessions.delete_session(first.key)
    assert await sessions.get_session(first.key) is None
    assert await sessions.get_session_summary_text(first) == ("", False)
    assert [s.id for s in await sessions.list_sessions(USER)] == [generated.id]
    await data_store.flush()
    assert [name for name in files_under(tmp_path) if "s1" in name] == []


async def test_append_event_prunes_the_oldest_beyond_the_limit(data_store: DataStore) -> None:
    sessions = SessionStore(data_store, event_limit=3)
    session = await sessions.create_session(SessionKey("app", "alice", "s"))
    for i in range(5):
        await sessions.append_event(session, {"i": i})
    assert [e["i"] for e in session.events] == [2, 3, 4]
    stored = await sessions.get_session(session.key)
    assert stored is not None
    assert [e["i"] for e in stored.events] == [2, 3, 4]
    newest = await sessions.get_session(session.key, event_num=1)
    assert newest is not None
    assert newest.events == [{"i": 4}]
    with pytest.raises(InvalidArgumentError):
        SessionStore(data_store, event_limit=-1)


async def test_missing_session_cannot_take_events_or_state(data_store: DataStore) -> None:
    sessions = SessionStore(data_store)
    session = await sessions.create_session(SessionKey("app", "bob", "gone"))
    await sessions.delete_session(session.key)
    with pytest.raises(KeyNotFoundError):
        await sessions.append_event(session, {"late": True})
    with pytest.raises(KeyNotFoundError):
        await sessions.update_session_state(session.key, {"x": 1})


async def test_app_user_and_session_state(data_store: DataStore) -> None:
    sessions = SessionStore(data_store)
    key = SessionKey("app", "alice", "s")
    await sessions.create_session(key, {"a": 1})
    await sessions.update_app_state("app", {"theme": "dark", "lang": "en"})
    await sessions.update_app_state("other", {"theme": "light"})
    await sessions.delete_app_state("app", "lang")
    assert await sessions.list_app_states("app") == {"theme": "dark"}
    await sessions.update_user_state(USER, {"name": "Alice", "tz": "UTC"})
    await sessions.delete_user_state(USER, "tz")
    assert await sessions.list_user_states(USER) == {"name": "Alice"}
    assert await sessions.list_user_states(UserKey("app", "bob")) == {}
    await sessions.update_session_state(key, {"b": [1, 2]})
    got = await sessions.get_session(key)
    assert got is not None
    assert got.state == {"a": 1, "b": [1, 2]}


async def test_summaries_by_filter_key(data_store: DataStore) -> None:
    sessions = SessionStore(data_store)
    session = await sessions.create_session(SessionKey("app", "alice", "s"))
    await sessions.create_session_summary(session, "", "everything")
    await sessions.create_session_summary(session, "billing", "invoices", ["money"])
    assert await sessions.get_session_summary_text(session) == ("everything", True)
    assert await sessions.get_session_summary_text(session, "billing") == ("invoices", True)
    assert await sessions.get_session_summary_text(session, "travel") == ("", False)
    await sessions.create_session_summary(session, "billing", "paid")
    assert await sessions.get_session_summary_text(session, "billing") == ("paid", True)


# -- memories --------------------------------------------------------------------


async def test_memories_are_idempotent_newest_first_and_searchable(data_store: DataStore, clock: FakeClock) -> None:
    memories = MemoryStore(data_store)
    await memories.add_memory(USER, "Likes green TEA", ["food"])
    clock.advance(1)
    await memories.add_memory(USER, "Works at ACME", ["work"])
    clock.advance(1)
    await memories.add_memory(USER, "Likes green TEA", ["drink"])
    await memories.add_memory(UserKey("app", "bob"), "likes tea")
    entries = await memories.read_memories(USER)
    assert [(m.memory, m.topics) for m in entries] == [("Likes green TEA", ["drink"]), ("Works at ACME", ["work"])]
    assert entries[0].created_at < entries[0].updated_at
    assert [m.memory for m in await memories.read_memories(USER, limit=1)] == ["Likes green TEA"]
    assert [m.memory for m in await memories.search_memories(USER, "tea?")] == ["Likes green TEA"]
    assert [m.memory for m in await memories.search_memories(USER, "acme GREEN")] == [
        "Likes green TEA",
        "Works at ACME",
    ]
    assert await memories.search_memories(USER, "  ") == []
    memory_id = entries[1].id
    assert memory_id == MemoryStore.memory_id(USER, "Works at ACME")
    await memories.update_memory(MemoryKey("app", "alice", memory_id), "Works at Initech", ["work"])
    assert [m.memory for m in await memories.search_memories(USER, "initech")] == ["Works at Initech"]
    with pytest.raises(KeyNotFoundError):
        await memories.update_memory(MemoryKey("app", "alice", "missing"), "x")
    await memories.delete_memory(MemoryKey("app", "alice", memory_id))
    assert len(await memories.read_memories(USER)) == 1
    await memories.clear_memories(USER)
    assert await memories.read_memories(USER) == []
    assert len(await memories.read_memories(UserKey("app", "bob"))) == 1


# -- short memories --------------------------------------------------------------


async def test_short_memory_expires_lazily_and_cleans_up(
    data_store: DataStore, clock: FakeClock, tmp_path: Path
) -> None:
    short = ShortMemoryStore(data_store)
    await short.set("reaction_ledger", "msg-1", '{"emoji": "+1"}', timedelta(minutes=5))
    await short.set("reaction_ledger", "msg-2", "x", 60)
    await short.set("cooldown", "user-1", "1", 600)
    assert await short.get("reaction_ledger", "msg-1") == ('{"emoji": "+1"}', True)
    assert await short.count("reaction_ledger") == 2
    clock.advance(120)
    assert await short.count("reaction_ledger") == 1
    raw = Table(Store(tmp_path), "short_memories", fields=("memory_type", "key", "value"), key=("memory_type", "key"))
    assert raw.get("reaction_ledger", "msg-2", include_expired=True) is not None
    assert await short.get("reaction_ledger", "msg-2") == ("", False)
    assert raw.get("reaction_ledger", "msg-2", include_expired=True) is None  # dropped by the read
    clock.advance(600)
    assert await short.cleanup() == 2
    assert await short.count("cooldown") == 0
    await short.set("cooldown", "user-1", "2", 10)
    await short.delete("cooldown", "user-1")
    assert await short.get("cooldown", "user-1") == ("", False)
    with pytest.raises(InvalidArgumentError):
        await short.set("cooldown", "user-1", "2", -1)


# -- checkpoints -----------------------------------------------------------------


def config(lineage: str, checkpoint_id: str = "", ns: str = "") -> dict[str, dict[str, str]]:
    return {"configurable": {"lineage_id": lineage, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}


def ids(tuples: list[CheckpointTuple]) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in tuples]


async def test_checkpoints_newest_first_with_before_and_limit(data_store: DataStore) -> None:
    saver = CheckpointStore(data_store)
    parent = config("run")
    for i in range(7):
        parent = await saver.put(parent, {"id": f"c{i}", "channel_values": {"step": i}}, {"step": i})
    newest = await saver.get_tuple(config("run"))
    assert newest is not None
    assert newest.checkpoint == {"id": "c6", "channel_values": {"step": 6}}
    assert newest.parent_config == config("run", "c5")
    assert ids(await saver.list(config("run"))) == [f"c{i}" for i in range(6, -1, -1)]
    pages, before = [], None
    while page := await saver.list(config("run"), before=before, limit=3):
        pages.append(ids(page))
        before = page[-1].config
    assert pages == [["c6", "c5", "c4"], ["c3", "c2", "c1"], ["c0"]]
    first = await saver.get_tuple(config("run", "c0"))
    assert first is not None
    assert (first.metadata, first.parent_config) == ({"step": 0}, None)
    assert await saver.get_tuple(config("run", "nope")) is None
    assert await saver.get_tuple(config("other")) is None
    assert await saver.list(config("run", ns="sub")) == []


@pytest.mark.local_only("lists the files on disk")
async def test_writes_are_idempotent_and_put_full_is_one_file(data_store: DataStore, tmp_path: Path) -> None:
    saver = CheckpointStore(data_store)
    cfg = await saver.put(config("run"), {"id": "c1"})
    writes: list[dict[str, Any]] = [{"channel": "messages", "value": ["hi"]}, {"channel": "count", "value": 1}]
    await saver.put_writes(cfg, writes, "task-a")
    await saver.put_writes(cfg, writes, "task-a")  # a retry
    await saver.put_writes(cfg, [{"channel": "count", "value": 2}], "task-b")
    got = await saver.get_tuple(cfg)
    assert got is not None
    assert [(w["task_id"], w["channel"]) for w in got.pending_writes] == [
        ("task-a", "messages"),
        ("task-a", "count"),
        ("task-b", "count"),
    ]
    full = await saver.put_full(
        cfg, {"id": "c2"}, {"source": "loop"}, [{"task_id": "t", "channel": "x", "value": None}]
    )
    await data_store.flush()
    assert [name for name in files_under(tmp_path) if name.startswith("checkpoints/")] == [
        "checkpoints/run/records.json"
    ]
    got = await saver.get_tuple(full)
    assert got is not None
    assert (got.metadata, got.pending_writes) == ({"source": "loop"}, [{"task_id": "t", "channel": "x", "value": None}])
    assert got.parent_config == cfg
    with pytest.raises(InvalidArgumentError):
        await saver.put(cfg, {"no": "id"})
    with pytest.raises(InvalidArgumentError):
        await saver.put({"lineage_id": "flat"}, {"id": "x"})
    await saver.delete_lineage("run")
    assert await saver.list(config("run")) == []


# -- two processes ---------------------------------------------------------------

ROUNDS = 40


def _genie_worker(root: str, worker: int) -> None:
    async def main() -> None:
        async with DataStore(root) as store:
            sessions, memories = SessionStore(store), MemoryStore(store)
            short, saver = ShortMemoryStore(store), CheckpointStore(store)
            session = await sessions.get_session(SessionKey("app", "alice", "shared"))
            assert session is not None
            for i in range(ROUNDS):
                await sessions.append_event(session, {"worker": worker, "i": i})
                await sessions.update_user_state(USER, {f"w{worker}-{i}": i})
                await memories.add_memory(USER, f"fact {worker}-{i}")
                await short.set("ledger", f"{worker}-{i}", "v", 3600)
                await saver.put(config("run"), {"id": f"{worker}-{i}"})

    anyio.run(main)


@pytest.mark.local_only("subprocesses share the store")
async def test_two_processes_share_every_genie_store(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as store:
        await SessionStore(store).create_session(SessionKey("app", "alice", "shared"))
    workers: list[tuple[Callable[..., None], tuple[object, ...]]] = [
        (_genie_worker, (str(tmp_path), w)) for w in range(2)
    ]
    await anyio.to_thread.run_sync(run_processes, workers)
    async with DataStore(tmp_path) as store:
        session = await SessionStore(store).get_session(SessionKey("app", "alice", "shared"))
        assert session is not None
        for worker in range(2):
            assert [e["i"] for e in session.events if e["worker"] == worker] == list(range(ROUNDS))
        assert len(await SessionStore(store).list_user_states(USER)) == 2 * ROUNDS
        assert len(await MemoryStore(store).read_memories(USER)) == 2 * ROUNDS
        assert await ShortMemoryStore(store).count("ledger") == 2 * ROUNDS
        checkpoints = await CheckpointStore(store).list(config("run"))
        assert len(checkpoints) == 2 * ROUNDS
        sequences = [c.checkpoint["id"] for c in checkpoints]
        for worker in range(2):
            mine = [s for s in sequences if s.startswith(f"{worker}-")]
            assert mine == [f"{worker}-{i}" for i in range(ROUNDS - 1, -1, -1)]


async def test_each_store_opens_a_directory_path_and_closes_what_it_opened(tmp_path: Path) -> None:
    sessions = SessionStore(tmp_path)
    await sessions.create_session(SessionKey("app", "alice", "s"))
    await sessions.close()
    memories, short, saver = MemoryStore(tmp_path), ShortMemoryStore(tmp_path), CheckpointStore(tmp_path)
    await memories.add_memory(USER, "fact")
    await short.set("t", "k", "v", 60)
    await saver.put(config("run"), {"id": "c1"})
    for store in (memories, short, saver):
        await store.close()
    async with DataStore(tmp_path) as reopened:
        assert await SessionStore(reopened).get_session(SessionKey("app", "alice", "s")) is not None
        assert len(await MemoryStore(reopened).read_memories(USER)) == 1
        assert await ShortMemoryStore(reopened).get("t", "k") == ("v", True)
        assert await CheckpointStore(reopened).get_tuple(config("run")) is not None
        shared = SessionStore(reopened)
        await shared.close()  # a store it was given stays open
        assert await reopened.keys() == []


async def test_put_of_an_existing_checkpoint_overwrites_it_in_place(data_store: DataStore) -> None:
    saver = CheckpointStore(data_store)
    first = await saver.put(config("run"), {"id": "c1", "v": 1}, {"try": 1})
    await saver.put(first, {"id": "c2"})
    await saver.put(config("run"), {"id": "c1", "v": 2}, {"try": 2})  # a retry of c1
    assert ids(await saver.list(config("run"))) == ["c2", "c1"]  # c1 keeps its place
    again = await saver.get_tuple(first)
    assert again is not None
    assert (again.checkpoint, again.metadata) == ({"id": "c1", "v": 2}, {"try": 2})
