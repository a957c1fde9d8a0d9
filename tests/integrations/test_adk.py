"""The ADK session and memory services against the ADK's own, its Runner, processes and SIGKILL."""

from __future__ import annotations

import asyncio
import copy
import os
import random
import struct
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

# The adk extra is part of what CI installs: a missing SDK fails here loudly, never skips.
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.memory.in_memory_memory_service import InMemoryMemoryService
from google.adk.platform import time as platform_time
from google.adk.platform import uuid as platform_uuid
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.in_memory_session_service import InMemorySessionService
from google.adk.sessions.session import Session
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.genai import types

from group_store import DataStore, Store
from group_store.integrations.adk import (
    GroupStoreMemoryService,
    GroupStoreSessionService,
    register_uri_scheme,
    store_from_uri,
)

from ..test_crash import run_then_kill
from . import workers

# The ADK's own services and Runner are asyncio code (asyncio locks, aiosqlite): tests that run them are
# asyncio only; those of our services alone run on trio too.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


class Clock:
    """Strictly increasing time for the ADK's platform clock and for events, and counted ids."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.next_id = 0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now

    def new_id(self) -> str:
        self.next_id += 1
        return f"id-{self.next_id - 1}"

    def replay(self, count: int) -> Iterator[None]:
        """Yield ``count`` times, each time from the same time and id: each service sees the same clock."""
        start = (self.now, self.next_id)
        for _ in range(count):
            self.now, self.next_id = start
            yield


@pytest.fixture
def clock() -> Iterator[Clock]:
    clock = Clock()
    platform_time.set_time_provider(clock)
    platform_uuid.set_id_provider(clock.new_id)
    yield clock
    platform_time.reset_time_provider()
    platform_uuid.reset_id_provider()


def _event(clock: Clock, rng: random.Random, n: int) -> Event:
    delta: dict[str, Any] = {}
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        scope = rng.choice(["", "", "app:", "user:", "temp:"])
        delta[f"{scope}k{rng.randrange(4)}"] = rng.choice([n, f"v{n}", [n, {"x": n}], None, 1.5])
    words = rng.sample(["paris", "rome", "capital", "france", "italy", "pasta", "wine", "cheese"], 3)
    return Event(
        id=f"event-{n}",
        invocation_id=f"inv-{n // 3}",
        author=rng.choice(["user", "assistant"]),
        content=types.Content(role="user", parts=[types.Part(text=" ".join(words))]) if rng.random() < 0.8 else None,
        actions=EventActions(state_delta=delta),
        timestamp=clock(),
        partial=rng.random() < 0.1,
    )


def _view(result: Any) -> Any:
    """What a result says, comparable across services (sessions as their dumps)."""
    if isinstance(result, Session):
        return result.model_dump(mode="json")
    if isinstance(result, Event):
        return result.model_dump(mode="json")
    if hasattr(result, "sessions"):
        return [_view(s) for s in result.sessions]
    if hasattr(result, "memories"):
        return [m.model_dump(mode="json") for m in result.memories]
    return result


async def _outcome(call: Any) -> Any:
    try:
        return ("ok", _view(await call))
    except Exception as error:  # compared by type: the services must raise the same errors
        return ("error", type(error).__name__)


@asyncio_only
@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(4))
async def test_behaves_like_the_in_memory_session_service(tmp_path: Path, clock: Clock, seed: int) -> None:
    rng = random.Random(seed)
    reference = InMemorySessionService()
    ours = GroupStoreSessionService(Store(tmp_path))
    handles: dict[str, dict[tuple[str, str, str], Session]] = {"reference": {}, "ours": {}}
    services = {"reference": reference, "ours": ours}
    users = [("app1", "alice"), ("app1", "bob"), ("app2", "alice")]
    session_ids = ["s1", "s2", " s3 ", "s 4"]
    for step in range(250):
        kind = rng.choices(["create", "get", "list", "delete", "append", "user_state"], [3, 4, 2, 1, 10, 1])[0]
        app_name, user_id = rng.choice(users)
        session_id = rng.choice(session_ids)
        key = (app_name, user_id, session_id.strip())
        outcomes = []
        if kind == "create":
            state = {f"{scope}c{rng.randrange(3)}": step for scope in rng.sample(["", "app:", "user:", "temp:"], 2)}
            sid = None if rng.random() < 0.1 else session_id
            for (name, service), _ in zip(services.items(), clock.replay(2), strict=True):
                outcome = await _outcome(
                    service.create_session(app_name=app_name, user_id=user_id, state=dict(state), session_id=sid)
                )
                outcomes.append(outcome)
                if outcome[0] == "ok" and sid is not None:
                    created = await service.get_session(app_name=app_name, user_id=user_id, session_id=session_id)
                    assert created is not None
                    handles[name][key] = created
        elif kind == "get":
            config = rng.choice(
                [
                    None,
                    GetSessionConfig(num_recent_events=rng.choice([0, 1, 3])),
                    GetSessionConfig(after_timestamp=clock.now - rng.choice([0.3, 2.0, 10.0])),
                    GetSessionConfig(num_recent_events=2, after_timestamp=clock.now - 1.0),
                ]
            )
            for name, service in services.items():
                got = await service.get_session(
                    app_name=app_name, user_id=user_id, session_id=session_id, config=config
                )
                outcomes.append(_view(got))
                if got is not None and config is None:
                    handles[name][key] = got
        elif kind == "list":
            uid = rng.choice([user_id, None, "nobody"])
            for service in services.values():
                outcomes.append(_view(await service.list_sessions(app_name=app_name, user_id=uid)))
        elif kind == "delete":
            for name, service in services.items():
                outcomes.append(
                    await _outcome(service.delete_session(app_name=app_name, user_id=user_id, session_id=session_id))
                )
                handles[name].pop(key, None)
        elif kind == "user_state":
            for service in services.values():
                outcomes.append(await service.get_user_state(app_name=app_name, user_id=user_id))
        else:
            if key not in handles["ours"]:
                continue
            event = _event(clock, rng, step)
            for name, service in services.items():
                outcomes.append(await _outcome(service.append_event(handles[name][key], copy.deepcopy(event))))
                outcomes.append(_view(handles[name][key]))  # the caller's session object, updated alike
        half = len(outcomes) // 2  # the reference's results, then ours, in the same shape
        assert outcomes[:half] == outcomes[half:], f"step {step}: {kind}"
    for app_name in ("app1", "app2"):
        listed = [_view(await s.list_sessions(app_name=app_name, user_id=None)) for s in services.values()]
        assert listed[0] == listed[1]
        assert listed[0], "the generated run left no session to compare"


@asyncio_only
@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(3))
async def test_detects_stale_sessions_as_the_sqlite_service_does(tmp_path: Path, clock: Clock, seed: int) -> None:
    rng = random.Random(seed)
    reference = SqliteSessionService(str(tmp_path / "reference.db"))
    ours = GroupStoreSessionService(tmp_path / "store")
    services = {"reference": reference, "ours": ours}
    copies: dict[str, list[Session]] = {}
    for name, service in services.items():
        await service.create_session(app_name="app", user_id="u", session_id="s", state={"n": 0})
        copies[name] = []
    stale_seen = 0
    for step in range(120):
        if rng.random() < 0.3 or not copies["ours"]:  # load another copy of the session
            for name, service in services.items():
                loaded = await service.get_session(app_name="app", user_id="u", session_id="s")
                assert loaded is not None
                copies[name].append(loaded)
            continue
        index = rng.randrange(len(copies["ours"]))
        event = Event(
            id=f"e{step}",
            invocation_id="inv",
            author="user",
            actions=EventActions(state_delta={"n": step, "user:seen": step, "app:last": step}),
            timestamp=clock(),
        )
        outcomes = [
            await _outcome(service.append_event(copies[name][index], copy.deepcopy(event)))
            for name, service in services.items()
        ]
        assert outcomes[0] == outcomes[1], f"step {step}"
        stale_seen += outcomes[0] == ("error", "StaleSessionError")
    assert stale_seen >= 10
    final = [_view(await s.get_session(app_name="app", user_id="u", session_id="s")) for s in services.values()]
    assert final[0] == final[1]
    await reference.close()


@pytest.mark.anyio  # our service alone: asyncio and trio
async def test_a_session_from_another_process_is_stale_after_an_append(tmp_path: Path, clock: Clock) -> None:
    first, second = GroupStoreSessionService(tmp_path), GroupStoreSessionService(tmp_path)
    created = await first.create_session(app_name="a", user_id="u", session_id="s")
    loaded = await second.get_session(app_name="a", user_id="u", session_id="s")
    assert loaded is not None
    await first.append_event(created, Event(id="e1", author="user", invocation_id="i", timestamp=clock()))
    with pytest.raises(StaleSessionError):
        await second.append_event(loaded, Event(id="e2", author="user", invocation_id="i", timestamp=clock()))
    # Timestamps that go backwards do not hide it (the SQLite service's time check would miss this).
    older = Event(id="e3", author="user", invocation_id="i", timestamp=clock.now - 100)
    await first.append_event(created, older)
    reloaded = await second.get_session(app_name="a", user_id="u", session_id="s")
    assert reloaded is not None
    await first.append_event(created, Event(id="e4", author="user", invocation_id="i", timestamp=clock.now - 50))
    with pytest.raises(StaleSessionError):
        await second.append_event(reloaded, Event(id="e5", author="user", invocation_id="i", timestamp=clock()))
    # A retry of the stored last event is a no-op, not a duplicate.
    again = await first.get_session(app_name="a", user_id="u", session_id="s")
    assert again is not None
    last = again.events[-1]
    await first.append_event(again, last.model_copy(deep=True))
    final = await first.get_session(app_name="a", user_id="u", session_id="s")
    assert final is not None
    assert [e.id for e in final.events] == ["e1", "e3", "e4"]
    with pytest.raises(SessionNotFoundError):
        await first.append_event(Session(id="nope", app_name="a", user_id="u"), last)


@pytest.mark.anyio  # our service alone: asyncio and trio
async def test_create_refuses_duplicates_and_splits_state(tmp_path: Path, clock: Clock) -> None:
    service = GroupStoreSessionService(str(tmp_path))
    state = {"app:theme": "dark", "user:lang": "en", "temp:scratch": 1, "topic": "capitals"}
    session = await service.create_session(app_name="geo", user_id="ada", session_id=" s1 ", state=state)
    assert session.id == "s1"
    assert session.state == {"topic": "capitals", "app:theme": "dark", "user:lang": "en"}
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name="geo", user_id="ada", session_id="s1", state={"app:theme": "light"})
    store = Store(tmp_path)
    assert store.narrow("geo").load("state") == {"theme": "dark"}  # the refused create changed nothing
    assert store.narrow("geo", "users", "ada").load("state") == {"lang": "en"}
    assert store.narrow("geo", "users", "ada", "sessions", "s1").load("session")["state"] == {"topic": "capitals"}
    generated = await service.create_session(app_name="geo", user_id="ada")
    assert generated.id == "id-0"  # the ADK's id provider
    assert await service.get_user_state(app_name="geo", user_id="ada") == {"lang": "en"}
    assert await service.get_user_state(app_name="geo", user_id="nobody") == {}


@pytest.mark.anyio  # our service alone: asyncio and trio
async def test_delete_then_recreate_starts_empty(tmp_path: Path, clock: Clock) -> None:
    async with DataStore(tmp_path) as data_store:
        service = GroupStoreSessionService(data_store)
        session = await service.create_session(app_name="a", user_id="u", session_id="s")
        await service.append_event(session, Event(id="e", author="user", invocation_id="i", timestamp=clock()))
        await service.delete_session(app_name="a", user_id="u", session_id="s")
        await service.delete_session(app_name="a", user_id="u", session_id="s")  # no error
        assert await service.get_session(app_name="a", user_id="u", session_id="s") is None
        # A crash inside delete_session can leave the events behind; a new session must not inherit them.
        data_store.narrow("a", "users", "u", "sessions", "s").append("events", [{"left": "over"}])
        again = await service.create_session(app_name="a", user_id="u", session_id="s")
        assert again.events == []
        loaded = await service.get_session(app_name="a", user_id="u", session_id="s")
        assert loaded is not None
        assert loaded.events == []


@asyncio_only
@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(3))
async def test_memory_behaves_like_the_in_memory_memory_service(tmp_path: Path, clock: Clock, seed: int) -> None:
    rng = random.Random(seed)
    reference, ours = InMemoryMemoryService(), GroupStoreMemoryService(tmp_path)
    services = (reference, ours)
    sessions: dict[str, Session] = {}
    n = 0
    for step in range(120):
        kind = rng.choices(["session", "events", "search", "delete"], [4, 2, 6, 1])[0]
        user_id = rng.choice(["alice", "bob"])
        if kind == "session":
            sid = rng.choice(["s1", "s2", "s3"])
            session = sessions.setdefault(sid + user_id, Session(id=sid, app_name="app", user_id=user_id))
            for _ in range(rng.randrange(1, 4)):
                session.events.append(_event(clock, rng, n))
                n += 1
            results = [await _outcome(s.add_session_to_memory(copy.deepcopy(session))) for s in services]
        elif kind == "events":
            events = [_event(clock, rng, n + i) for i in range(2)]
            n += 2
            bucket = rng.choice([None, "s1", "s9"])
            results = [
                await _outcome(
                    s.add_events_to_memory(app_name="app", user_id=user_id, events=events, session_id=bucket)
                )
                for s in services
            ]
        elif kind == "search":
            query = " ".join(rng.sample(["Paris", "rome", "capital", "pasta", "nothing", "wine"], rng.randrange(1, 3)))
            results = [_view(await s.search_memory(app_name="app", user_id=user_id, query=query)) for s in services]
        else:
            memory_id = f"event-{rng.randrange(max(n, 1))}"
            results = [
                await _outcome(s.delete_memory(app_name="app", user_id=user_id, memory_id=memory_id)) for s in services
            ]
        assert results[0] == results[1], f"step {step}: {kind}"


# -- the ADK Runner with a fake model, resumed from a new process --------------------------------


@pytest.mark.local_only("a new process reopens the store")
def test_runner_two_turns_resumed_from_a_new_process(tmp_path: Path) -> None:
    root = str(tmp_path)
    workers.run_forked([(workers.adk_turn, (root, 1, "Capital of France?", "Paris."))])
    workers.run_forked([(workers.adk_turn, (root, 2, "And of Italy?", "Rome."))])
    session = asyncio.run(GroupStoreSessionService(root).get_session(app_name="geo", user_id="ada", session_id="s1"))
    assert session is not None
    assert session.state == {
        "topic": "capitals",
        "turn": 2,
        "last_reply": "Rome.",
        "app:theme": "dark",
        "app:visits": 2,
        "user:lang": "en",
        "user:name": "Ada",
    }
    texts = [part.text for e in session.events if e.content for part in e.content.parts or []]
    assert texts == ["Capital of France?", "Paris.", "And of Italy?", "Rome."]
    store = Store(tmp_path)
    assert store.narrow("geo").load("state") == {"theme": "dark", "visits": 2}
    assert store.narrow("geo", "users", "ada").load("state") == {"lang": "en", "name": "Ada"}
    assert "temp:scratch" not in str(store.narrow("geo", "users", "ada", "sessions", "s1").read("events"))
    memory = asyncio.run(GroupStoreMemoryService(root).search_memory(app_name="geo", user_id="ada", query="Italy"))
    assert [part.text for m in memory.memories for part in m.content.parts or []] == ["And of Italy?"]


# -- two processes, and SIGKILL ------------------------------------------------------------------


@pytest.mark.local_only("subprocesses share the store")
def test_two_processes_appending_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    root = str(tmp_path)
    asyncio.run(GroupStoreSessionService(root).create_session(app_name="a", user_id="u", session_id="s"))
    workers.run_forked([(workers.adk_append, (root, worker, 60)) for worker in (0, 1)])
    session = asyncio.run(GroupStoreSessionService(root).get_session(app_name="a", user_id="u", session_id="s"))
    assert session is not None
    ids = [e.id for e in session.events]
    assert len(ids) == len(set(ids)) == 120
    for worker in (0, 1):
        assert [i for i in ids if i.startswith(f"w{worker}-")] == [f"w{worker}-{i}" for i in range(60)]
    assert session.state["user:w0"] == 59
    assert session.state["user:w1"] == 59
    assert session.state["w0"] == session.state["w1"] == 59


ACK = struct.Struct("<BQ")


def _append_until_killed(root: Path, write_fd: int, start: int) -> None:
    async def main() -> None:
        service = GroupStoreSessionService(root)
        session = await service.get_session(app_name="a", user_id="u", session_id="crash")
        assert session is not None
        i = start
        while True:
            event = Event(
                id=f"e{i}",
                author="user",
                invocation_id="inv",
                content=types.Content(role="user", parts=[types.Part(text="x" * (i * 131 % 4000))]),
                actions=EventActions(state_delta={"n": i, "user:n": i}),
            )
            await service.append_event(session, event)
            os.write(write_fd, ACK.pack(0, i))
            i += 1

    asyncio.run(main())


@pytest.mark.local_only("SIGKILL of a writer process")
def test_sigkill_during_append_event_keeps_every_acknowledged_event(tmp_path: Path) -> None:
    rng = random.Random(11)
    root = tmp_path / "store"
    asyncio.run(GroupStoreSessionService(root).create_session(app_name="a", user_id="u", session_id="crash"))
    acked: set[int] = set()
    next_i = kills = 0
    for _ in range(12):
        killed, acks = run_then_kill(partial(_append_until_killed, root), next_i, rng.uniform(0.05, 0.4))
        kills += killed
        acked.update(value for _, value in acks)
        session = asyncio.run(GroupStoreSessionService(root).get_session(app_name="a", user_id="u", session_id="crash"))
        assert session is not None, "the session became unreadable"
        numbers = [int(e.id[1:]) for e in session.events]
        assert acked <= set(numbers), "an acknowledged event was lost"
        assert numbers == sorted(set(numbers)), "events duplicated or out of order"
        if acked:
            assert session.state["n"] >= max(acked)  # the last acknowledged delta is applied
        next_i = max(numbers, default=next_i) + 1
    assert kills >= 10
    assert len(acked) >= 50, "too few appends were acknowledged to test anything"


# -- the groupstore:// URI scheme ----------------------------------------------------------------


@pytest.mark.local_only("checks the root_path a URI opens on disk")
def test_uri_scheme_builds_both_services(tmp_path: Path) -> None:
    from google.adk.cli.service_registry import ServiceRegistry, load_services_module
    from google.adk.cli.utils.service_factory import (
        create_memory_service_from_options,
        create_session_service_from_options,
    )

    registry = ServiceRegistry()
    register_uri_scheme(registry)
    uri = f"groupstore://{tmp_path}"  # groupstore:///abs/dir: netloc empty, the path absolute
    sessions = registry.create_session_service(uri, agents_dir=str(tmp_path))
    memory = registry.create_memory_service(uri)
    assert isinstance(sessions, GroupStoreSessionService)
    assert isinstance(memory, GroupStoreMemoryService)
    assert store_from_uri(uri).root_path == tmp_path
    assert store_from_uri("groupstore://data/sessions").root_path == Path("data/sessions")
    assert store_from_uri("groupstore:///srv/my%20agents").root_path == Path("/srv/my agents")
    for bad in ("groupstore://", "file:///tmp/x"):
        with pytest.raises(ValueError, match="groupstore"):
            store_from_uri(bad)
    # What `adk web --session_service_uri groupstore:///...` does: import the agents directory's services.py.
    agents_dir = tmp_path / "agents"
    agents_dir.mkdir()
    (agents_dir / "services.py").write_text(
        "from group_store.integrations.adk import register_uri_scheme\n\nregister_uri_scheme()\n"
    )
    try:
        load_services_module(str(agents_dir))
    finally:
        sys.modules.pop("services", None)
        sys.path.remove(str(agents_dir))
    assert isinstance(
        create_session_service_from_options(base_dir=str(tmp_path), session_service_uri=uri), GroupStoreSessionService
    )
    assert isinstance(
        create_memory_service_from_options(base_dir=str(tmp_path), memory_service_uri=uri), GroupStoreMemoryService
    )


@asyncio_only
@pytest.mark.anyio
@pytest.mark.local_only("the recorded golden directory is named after the local test id")
async def test_a_runner_session_snapshots_as_readable_files(tmp_path: Path, clock: Clock, store_snapshot: Any) -> None:
    from google.adk.agents import LlmAgent
    from google.adk.cli.agent_test_runner import MockModel
    from google.adk.runners import Runner

    replies = [types.Content(role="model", parts=[types.Part(text=text)]) for text in ("Paris.", "Rome.")]
    agent = LlmAgent(name="assistant", model=MockModel.create(replies), output_key="last_reply")
    sessions = GroupStoreSessionService(Store(tmp_path))
    runner = Runner(app_name="geo", agent=agent, session_service=sessions)
    await sessions.create_session(app_name="geo", user_id="ada", session_id="s1", state={"user:lang": "en"})
    for text in ("Capital of France?", "And of Italy?"):
        message = types.Content(role="user", parts=[types.Part(text=text)])
        _ = [event async for event in runner.run_async(user_id="ada", session_id="s1", new_message=message)]
    # Times and ids come from the ADK's platform providers (the clock fixture), so nothing needs masking.
    store_snapshot.assert_match(Store(tmp_path))
