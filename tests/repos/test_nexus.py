"""NexusStore twin (seed 003): the seed's usage, its semantics, SQLite parity, threads and processes."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest

from group_store import Store
from group_store.repos import nexus
from group_store.repos.nexus import MAX_MESSAGES, NexusStore

from ..processes import run_processes
from .sqlite_seeds import SQLiteNexusStore


def test_the_seeds_usage_runs_unchanged(tmp_path: Path) -> None:
    store = NexusStore(tmp_path / "nexus")
    store.append("user", "hi")
    msgs = store.get_history()
    assert [(m["role"], m["content"], m["session_tag"]) for m in msgs] == [("user", "hi", "nexus")]
    assert len(msgs[0]["timestamp"]) == len("12:34:56")
    assert store.clear() == 1
    assert store.get_history() == []
    store.close()
    store.close()


def test_ids_increase_across_tags_and_are_never_reused(tmp_path: Path) -> None:
    store = NexusStore(tmp_path)
    ids = [store.append("user", str(i), session_tag=random.choice("ab")) for i in range(20)]
    assert ids == list(range(1, 21))
    store.clear_all()
    assert store.append("user", "after") == 21


def test_prunes_to_max_messages_oldest_first(tmp_path: Path) -> None:
    store = NexusStore(tmp_path)
    for i in range(MAX_MESSAGES + 7):
        store.append("user", f"m{i}", timestamp="t")
    store.append("user", "other tag", session_tag="other")
    assert store.message_count() == MAX_MESSAGES
    history = store.get_history(limit=MAX_MESSAGES)
    assert [m["content"] for m in history] == [f"m{i}" for i in range(7, MAX_MESSAGES + 7)]
    assert store.message_count("other") == 1
    assert len(Store(tmp_path).narrow("messages").read("nexus")) == MAX_MESSAGES


def test_max_messages_is_read_at_each_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nexus, "MAX_MESSAGES", 3)
    store = NexusStore(tmp_path)
    for i in range(5):
        store.append("user", str(i))
    assert [m["content"] for m in store.get_history()] == ["2", "3", "4"]


def test_history_limit_and_counts(tmp_path: Path) -> None:
    store = NexusStore(tmp_path)
    for i in range(10):
        store.append("assistant" if i % 2 else "user", str(i), session_tag="s")
    assert [m["content"] for m in store.get_history("s", limit=3)] == ["7", "8", "9"]
    assert store.get_history("s", limit=0) == []
    assert len(store.get_history("s", limit=-1)) == 10
    assert store.get_history("unknown") == []
    assert store.message_count("unknown") == 0
    assert store.clear("unknown") == 0
    assert store.clear_all() == 10


def _scenario(store: Any) -> list[Any]:
    rng = random.Random(7)
    seen: list[Any] = []
    for i in range(1_200):
        tag = rng.choice(["nexus", "ops", "ops", "x y/z"])
        seen.append(store.append(rng.choice(["user", "assistant"]), f"message {i}", timestamp=f"t{i}", session_tag=tag))
        if i % 97 == 0:
            seen.append(store.get_history(tag, limit=rng.choice([0, 1, 5, 200, 600])))
        if i == 700:
            seen.append(store.clear("nexus"))
    for tag in ["nexus", "ops", "x y/z", "none"]:
        seen.append((store.message_count(tag), store.get_history(tag), store.get_history(tag, limit=1000)))
    seen.append(store.clear_all())
    seen.append(store.append("user", "last", timestamp="t"))
    return seen


def test_behaves_like_the_sqlite_table(tmp_path: Path) -> None:
    sqlite_store = SQLiteNexusStore(tmp_path / "nexus.db")
    expected = _scenario(sqlite_store)
    sqlite_store.close()
    assert _scenario(NexusStore(tmp_path / "nexus")) == expected


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = NexusStore(tmp_path)
    ids: list[int] = []

    def work(worker: int) -> None:
        for i in range(50):
            ids.append(store.append("user", f"{worker}-{i}"))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ids) == list(range(1, 201))
    assert [m["id"] for m in store.get_history(limit=-1)] == list(range(1, 201))


ROUNDS = 300


def _append_many(root: str, worker: int) -> None:
    store = NexusStore(Path(root))
    for i in range(ROUNDS):
        store.append("user", f"{worker}-{i}", session_tag="shared")
        store.append("user", f"{worker}-{i}", session_tag=f"own-{worker}")


@pytest.mark.local_only("subprocesses share the store")
def test_two_processes_append_without_losses_and_prune_exactly(tmp_path: Path) -> None:
    run_processes([(_append_many, (str(tmp_path), worker)) for worker in range(2)])
    store = NexusStore(tmp_path)
    shared = store.get_history("shared", limit=-1)
    assert len(shared) == MAX_MESSAGES
    ids = [m["id"] for m in shared]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for worker in range(2):
        own = store.get_history(f"own-{worker}", limit=-1)
        assert [m["content"] for m in own] == [f"{worker}-{i}" for i in range(ROUNDS)]
    every_id = ids + [m["id"] for w in range(2) for m in store.get_history(f"own-{w}", limit=-1)]
    assert len(set(every_id)) == len(every_id)
    assert max(every_id) == 4 * ROUNDS
