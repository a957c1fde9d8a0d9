"""tree() and stats(): the frozen records the command line prints."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from group_store import Store, StoreStats, TreeEntry, stats, tree
from group_store.testing import FakeClock

from .local_paths import root_of


@pytest.fixture
def store(tmp_path: Path) -> Store:
    clock = FakeClock()
    store = Store(tmp_path, clock=clock)
    store.save("top", {"a": 1})  # 9 bytes: {"a": 1} canonical, newline
    store.save("soon", 1, ttl=10)
    store.narrow("alice").append("log", [1, 2, 3])
    store.narrow("alice", "agent").save("state", [])
    clock.advance(11)  # "soon" is expired, not yet swept
    return store


def test_tree_lists_live_entries_by_key_and_totals_each_level(store: Store) -> None:
    found = tree(store)
    root = found.root
    assert root.name == str(root_of(store))
    assert root.segments == ()
    assert [entry.key for entry in root.entries] == ["top"]  # "soon" expired: left out
    (alice,) = root.children
    assert alice.name == "alice"
    assert alice.segments == ("alice",)
    assert alice.entries == (TreeEntry("log", "log", 6, None),)
    (agent,) = alice.children
    assert agent.segments == ("alice", "agent")
    assert agent.total_entries == 1
    assert alice.total_entries == 2
    assert root.total_entries == 3
    assert root.total_size == sum(entry.size for entry in root.entries) + alice.total_size
    assert found.undecodable == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        root.name = "x"  # type: ignore[misc]


def test_tree_of_a_view_starts_there(store: Store) -> None:
    root = tree(store.narrow("alice")).root
    assert root.segments == ()
    assert [child.segments for child in root.children] == [("agent",)]
    assert root.total_entries == 2


def test_tree_counts_names_that_do_not_decode(store: Store) -> None:
    (root_of(store) / "Not-Ours.json").write_text("{}")
    assert tree(store).undecodable == 1


def test_stats_counts_everything_including_the_expired(store: Store) -> None:
    root = root_of(store)
    (root / ".top.json.0123456789abcdef.tmp").write_text("{")
    data_files = ("top.json", "soon.json", "alice/log.jsonl", "alice/agent/state.json")
    assert stats(store) == StoreStats(
        directories=3,
        documents=3,
        logs=1,
        log_items=3,
        bytes=sum(len((root / name).read_bytes()) for name in data_files),
        with_ttl=1,
        expired_unswept=1,
        temporary_files=1,
    )


def test_stats_follow_the_store_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    store = Store(tmp_path, clock=clock)
    store.save("k", 1, expires_at=datetime.fromtimestamp(clock.now + 5, UTC))
    assert stats(store).expired_unswept == 0
    clock.advance(5)
    assert stats(store).expired_unswept == 1
    assert stats(tmp_path).expired_unswept == 0  # a path: the wall clock (2027 is still ahead)
