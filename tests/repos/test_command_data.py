"""Command data twins (seed 000): the seed's quick start and use cases unchanged, SQLite parity, two processes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from group_store import SchemaError, Store
from group_store.repos.command_data import (
    ChunkedCommandResponseRepository,
    CommandAuth,
    CommandAuthRepository,
    CommandDataRepository,
    CommandRegistryRepository,
)

from ..processes import run_processes
from .sqlite_seeds import SQLiteCommandData


@pytest.fixture
def repo(tmp_path: Path) -> CommandDataRepository:
    return CommandDataRepository(Store(tmp_path))


def test_quick_start(repo: CommandDataRepository) -> None:
    repo.save(command_name="my_command", data_key="last_result", data=json.dumps({"value": 42}))
    entry = repo.get("my_command", "last_result")
    result = None
    if entry:
        result = json.loads(entry.data)
    assert result == {"value": 42}
    assert entry is not None
    assert entry.created_at.tzinfo is None
    assert abs(entry.created_at - datetime.utcnow()) < timedelta(minutes=1)


# The seed's use cases, verbatim apart from being module functions with a dummy ``self``.

CACHE_TTL = timedelta(minutes=30)


def _get_weather_cached(self: Any, repo: CommandDataRepository, city: str) -> dict[str, Any] | None:
    entry = repo.get("get_weather", f"cache:{city}")
    if entry and entry.expires_at and entry.expires_at > datetime.utcnow():
        return json.loads(entry.data)  # type: ignore[no-any-return]
    return None


def _cache_weather(self: Any, repo: CommandDataRepository, city: str, data: dict[str, Any]) -> None:
    repo.save(
        command_name="get_weather",
        data_key=f"cache:{city}",
        data=json.dumps(data),
        expires_at=datetime.utcnow() + CACHE_TTL,
    )


def add_to_shopping_list(self: Any, repo: CommandDataRepository, item: str) -> None:
    existing = repo.get("shopping_list", "items")
    items = json.loads(existing.data) if existing else []
    items.append(item)
    repo.save(command_name="shopping_list", data_key="items", data=json.dumps(items))


def get_shopping_list(self: Any, repo: CommandDataRepository) -> list[str]:
    entry = repo.get("shopping_list", "items")
    return json.loads(entry.data) if entry else []


def set_timer(self: Any, repo: CommandDataRepository, label: str, end_time: datetime) -> None:
    repo.save(
        command_name="timer",
        data_key=f"active:{label}",
        data=json.dumps({"label": label, "end_time": end_time.isoformat()}),
        expires_at=end_time,
    )


def get_active_timers(self: Any, repo: CommandDataRepository) -> list[dict[str, Any]]:
    entries = repo.get_all("timer")
    now = datetime.utcnow()
    return [
        json.loads(e.data)
        for e in entries
        if e.data_key.startswith("active:") and (e.expires_at is None or e.expires_at > now)
    ]


def test_weather_cache_with_ttl(repo: CommandDataRepository) -> None:
    assert _get_weather_cached(None, repo, "Miami") is None
    _cache_weather(None, repo, "Miami", {"temp": 75, "condition": "sunny"})
    assert _get_weather_cached(None, repo, "Miami") == {"temp": 75, "condition": "sunny"}
    repo.save("get_weather", "cache:Paris", json.dumps({"temp": 50}), expires_at=datetime.utcnow() - timedelta(hours=1))
    assert _get_weather_cached(None, repo, "Paris") is None


def test_shopping_list(repo: CommandDataRepository) -> None:
    assert get_shopping_list(None, repo) == []
    for item in ["milk", "eggs", "bread"]:
        add_to_shopping_list(None, repo, item)
    assert get_shopping_list(None, repo) == ["milk", "eggs", "bread"]


def test_timers(repo: CommandDataRepository) -> None:
    now = datetime.utcnow()
    set_timer(None, repo, "tea", now + timedelta(minutes=3))
    set_timer(None, repo, "done", now - timedelta(seconds=1))
    repo.save("timer", "history", "[]")
    assert [t["label"] for t in get_active_timers(None, repo)] == ["tea"]
    assert repo.delete_expired() == 1
    assert [e.data_key for e in repo.get_all("timer")] == ["active:tea", "history"]


def test_get_returns_expired_entries_until_delete_expired(repo: CommandDataRepository) -> None:
    past = datetime.utcnow() - timedelta(minutes=5)
    repo.save("c", "k", "v", expires_at=past)
    entry = repo.get("c", "k")
    assert entry is not None
    assert entry.expires_at is not None
    assert abs(entry.expires_at - past) < timedelta(milliseconds=1)
    assert [e.data_key for e in repo.get_all("c")] == ["k"]
    assert repo.delete_expired() == 1
    assert repo.get("c", "k") is None


def test_save_overwrites_keeps_created_and_clears_expiry(repo: CommandDataRepository) -> None:
    first = repo.save("c", "k", "1", expires_at=datetime.utcnow() + timedelta(hours=1))
    second = repo.save("c", "k", "2")
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert second.expires_at is None
    assert repo.delete("c", "k")
    assert not repo.delete("c", "k")
    with pytest.raises(SchemaError, match="command_name"):
        repo.save("", "k", "v")


def test_chunked_responses(tmp_path: Path) -> None:
    repo = ChunkedCommandResponseRepository(Store(tmp_path))
    repo.append_chunk(session_id="sess-123", chunk="First part of the response...")
    repo.append_chunk(session_id="sess-123", chunk="Second part...")
    chunks = repo.get_chunks(session_id="sess-123")
    assert "".join(chunks) == "First part of the response...Second part..."
    repo.delete_session(session_id="sess-123")
    assert repo.get_chunks("sess-123") == []


def test_command_registry(tmp_path: Path) -> None:
    repo = CommandRegistryRepository(tmp_path)
    repo.ensure_registered(["get_weather", "calculate"])
    repo.set_enabled("my_command", False)
    repo.ensure_registered(["get_weather", "calculate", "my_command"])
    assert repo.get_all() == {"get_weather": True, "calculate": True, "my_command": False}
    repo.set_enabled("my_command", True)
    assert repo.get_all()["my_command"] is True


def test_command_auth_records(tmp_path: Path) -> None:
    repo = CommandAuthRepository(Store(tmp_path))
    repo.save(CommandAuth("send_email", "gmail", needs_auth=True))
    repo.save(CommandAuth("play_music", "spotify", needs_auth=False, auth_error=None))
    assert repo.get("send_email", "gmail") == CommandAuth("send_email", "gmail", True, None)
    assert [a.command_name for a in repo.needing_auth()] == ["send_email"]
    repo.save(CommandAuth("send_email", "gmail", needs_auth=False, auth_error="token revoked"))
    assert repo.needing_auth() == []
    assert len(repo.get_all()) == 2
    assert repo.delete("send_email", "gmail")
    assert repo.get("send_email", "gmail") is None


def _scenario(data: Any, chunks: Any, registry: Any) -> list[Any]:
    seen: list[Any] = []
    past, future = datetime(2020, 1, 1, 12), datetime(2999, 1, 1, 12)
    for i in range(30):
        command = ["weather", "timer", "shopping list/2"][i % 3]
        expires = [None, past, future][i % 4 % 3]
        data.save(command, f"key:{i % 7}", json.dumps({"i": i}), expires_at=expires)
        chunks.append_chunk(f"s{i % 2}", f"chunk {i}")
        if i % 5 == 0:
            registry.ensure_registered([command, "extra"])
            registry.set_enabled("extra", i % 10 == 0)
    seen.append(data.delete("weather", "key:0"))
    seen.append(data.delete("weather", "missing"))
    seen.append(data.delete_expired())
    seen.append(data.delete_all("timer"))
    chunks.delete_session("s0")
    for command in ["weather", "timer", "shopping list/2", "none"]:
        entries = data.get_all(command)
        seen.append([(e.command_name, e.data_key, e.data, e.expires_at) for e in entries])
        seen.append([e.created_at <= e.updated_at for e in entries])
    seen.append([chunks.get_chunks(s) for s in ["s0", "s1", "none"]])
    seen.append(registry.get_all() if hasattr(registry, "get_all") else registry.get_all_registry())
    return seen


def test_behaves_like_the_sqlite_tables(tmp_path: Path) -> None:
    sqlite = SQLiteCommandData(tmp_path / "commands.db")
    expected = _scenario(sqlite, sqlite, _Registry(sqlite))
    store = Store(tmp_path / "files")
    twin = _scenario(
        CommandDataRepository(store), ChunkedCommandResponseRepository(store), CommandRegistryRepository(store)
    )
    assert twin == expected


class _Registry:
    def __init__(self, sqlite: SQLiteCommandData) -> None:
        self.sqlite = sqlite
        self.ensure_registered = sqlite.ensure_registered
        self.set_enabled = sqlite.set_enabled

    def get_all(self) -> dict[str, bool]:
        return self.sqlite.get_all_registry()


ROUNDS = 100


def _write(root: str, worker: int) -> None:
    store = Store(root)
    data, chunks = CommandDataRepository(store), ChunkedCommandResponseRepository(store)
    registry = CommandRegistryRepository(store)
    for i in range(ROUNDS):
        data.save("shared", f"w{worker}-{i}", str(i))
        chunks.append_chunk("stream", f"{worker}:{i}")
        registry.ensure_registered([f"cmd-{worker}-{i % 10}"])


@pytest.mark.local_only("subprocesses share the store")
def test_two_processes_save_without_losses(tmp_path: Path) -> None:
    run_processes([(_write, (str(tmp_path), worker)) for worker in range(2)])
    store = Store(tmp_path)
    assert len(CommandDataRepository(store).get_all("shared")) == 2 * ROUNDS
    chunks = ChunkedCommandResponseRepository(store).get_chunks("stream")
    for worker in range(2):
        assert [c for c in chunks if c.startswith(f"{worker}:")] == [f"{worker}:{i}" for i in range(ROUNDS)]
    assert len(CommandRegistryRepository(store).get_all()) == 20
