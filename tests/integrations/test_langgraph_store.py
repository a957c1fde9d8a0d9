"""GroupStoreStore: a differential run against LangGraph's SqliteStore, then TTL (injected clock),
the choices that differ from it (created_at kept), batches, async on a DataStore, and the files."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

# The langgraph extra and test peers are part of what CI installs: a missing one fails loudly, never skips.
from langgraph.store.base import GetOp, Item, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from langgraph.store.sqlite import SqliteStore

from group_store import DataStore, Store
from group_store.integrations.langgraph import GroupStoreStore
from group_store.testing import FakeClock

NAMESPACES = [("a",), ("a", "b"), ("a", "b", "c"), ("a-b",), ("ab",), ("x", "b"), ("x", "y", "b"), ("users", "alice")]
KEYS = ["k1", "k2", "k3", "Mixed Case"]
FIELDS = ["n", "s", "flag", "lst", "nested.x", "missing", "obj"]
SCALARS: list[Any] = [0, 1, 2, -3, 2.5, 10, 1e-3, "10", "5x", "abc", "m", "", True, False, None, [1, 2], ["a"]]


@pytest.fixture
def sqlite_store() -> Iterator[SqliteStore]:
    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    store = SqliteStore(conn)
    store.setup()
    yield store
    conn.close()


def random_value(rng: random.Random) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for field in ("n", "s", "flag", "lst"):
        if rng.random() < 0.8:
            value[field] = rng.choice(SCALARS)
    if rng.random() < 0.5:
        value["nested"] = {"x": rng.choice(SCALARS)} if rng.random() < 0.8 else rng.choice(SCALARS)
    if rng.random() < 0.2:
        value["obj"] = {"deep": [1, {"y": "z"}]}
    return value


def random_filter(rng: random.Random) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for _ in range(rng.randint(1, 2)):
        field = rng.choice(FIELDS)
        if rng.random() < 0.4:
            found[field] = rng.choice(SCALARS)
        else:
            operators = rng.sample(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"], rng.randint(1, 2))
            found[field] = {op: rng.choice(SCALARS) for op in operators}
    if rng.random() < 0.03:
        found["nested"] = {"x": 1}  # a nested dict: SqliteStore refuses it ("Unsupported operator")
    if rng.random() < 0.03:
        found["bad key!"] = 1
    return found


def random_op(rng: random.Random) -> Any:
    roll = rng.random()
    namespace, key = rng.choice(NAMESPACES), rng.choice(KEYS)
    if roll < 0.35:
        return PutOp(namespace, key, random_value(rng))
    if roll < 0.45:
        return PutOp(namespace, key, None)
    if roll < 0.6:
        return GetOp(namespace, key)
    if roll < 0.85:
        prefix = rng.choice([(), ("a",), ("a", "b"), ("x",), ("users",), ("nope",)])
        return SearchOp(prefix, random_filter(rng) if rng.random() < 0.8 else None, limit=1000, offset=0)
    conditions = []
    if rng.random() < 0.6:
        conditions.append(
            MatchCondition("prefix", rng.choice([("a",), ("a", "*"), ("x", "*", "b"), ("*",), ("a", "b")]))
        )
    if rng.random() < 0.4:
        conditions.append(MatchCondition("suffix", rng.choice([("b",), ("*", "b"), ("c",), ("alice",)])))
    return ListNamespacesOp(
        tuple(conditions),
        max_depth=rng.choice([None, 1, 2, 3]),
        limit=rng.choice([100, 2, 1]),
        offset=rng.choice([0, 0, 1]),
    )


def outcome(store: Any, ops: list[Any]) -> Any:
    """The batch's comparable results, or the error it raised (both stores must raise the same)."""
    try:
        return "ok", [comparable(result) for result in store.batch(ops)]
    except ValueError as error:
        return "ValueError", type(error).__name__


def comparable(result: Any) -> Any:
    """A result as both stores must agree on: items without their times; search results as a set
    (SqliteStore orders by updated_at to the second, so equal times leave its order open)."""
    if result is None or isinstance(result, tuple):
        return result
    if hasattr(result, "key"):
        return (tuple(result.namespace), result.key, orjson.dumps(result.value, option=orjson.OPT_SORT_KEYS))
    if result and hasattr(result[0], "key"):
        return sorted(comparable(item) for item in result)
    return [tuple(namespace) for namespace in result]


@pytest.mark.parametrize("seed", range(4))
def test_behaves_like_sqlite_store_on_a_generated_run(tmp_path: Path, sqlite_store: SqliteStore, seed: int) -> None:
    ours = GroupStoreStore(tmp_path)
    rng = random.Random(seed)
    for step in range(250):
        ops = [random_op(rng) for _ in range(rng.choice([1, 1, 1, 3]))]  # sometimes a mixed batch
        mine, theirs = outcome(ours, ops), outcome(sqlite_store, ops)
        assert mine == theirs, (step, ops)
    # And the whole store at the end, through the public methods.
    everything = ours.search((), limit=10_000)
    assert comparable(everything) == comparable(sqlite_store.search((), limit=10_000))
    assert ours.list_namespaces(limit=1000) == sqlite_store.list_namespaces(limit=1000)


def test_limit_and_offset_page_through_search_results(tmp_path: Path, sqlite_store: SqliteStore) -> None:
    clock = FakeClock()
    ours = GroupStoreStore(Store(tmp_path, clock=clock), clock=clock)
    for i in range(7):
        for store in (ours, sqlite_store):
            store.put(("docs",), f"d{i}", {"i": i})
        clock.advance(1)
    pages = [[item.key for item in ours.search(("docs",), limit=3, offset=offset)] for offset in (0, 3, 6, 9)]
    assert pages == [["d6", "d5", "d4"], ["d3", "d2", "d1"], ["d0"], []]  # newest updated first
    for offset in (0, 3, 6, 9):  # SqliteStore's page sizes agree (its order among equal seconds is open)
        assert len(ours.search(("docs",), limit=3, offset=offset)) == len(
            sqlite_store.search(("docs",), limit=3, offset=offset)
        )


def test_created_at_is_kept_on_update_as_postgres_store_does(tmp_path: Path) -> None:
    clock = FakeClock()
    store = GroupStoreStore(Store(tmp_path, clock=clock), clock=clock)
    store.put(("n",), "k", {"v": 1})
    first = store.get(("n",), "k")
    clock.advance(60)
    store.put(("n",), "k", {"v": 2})
    second = store.get(("n",), "k")
    assert first is not None
    assert second is not None
    assert second.value == {"v": 2}
    assert second.created_at == first.created_at
    assert (second.updated_at - first.updated_at).total_seconds() == 60
    assert second.created_at.tzinfo is not None


def test_ttl_expires_with_an_injected_clock_refreshes_on_read_and_sweeps(tmp_path: Path) -> None:
    clock = FakeClock()
    store = GroupStoreStore(Store(tmp_path, clock=clock), ttl={"default_ttl": 10, "refresh_on_read": True}, clock=clock)
    store.put(("m",), "read-often", {"v": 1})
    store.put(("m",), "never-read", {"v": 2})
    store.put(("m",), "forever", {"v": 3}, ttl=None)
    store.put(("m",), "short", {"v": 4}, ttl=1)
    clock.advance(6 * 60)
    assert store.get(("m",), "read-often") is not None  # refreshed: 10 more minutes from now
    assert store.get(("m",), "short") is None  # expired: invisible before any sweep
    assert store.get(("m",), "never-read", refresh_ttl=False) is not None
    clock.advance(6 * 60)
    assert [item.key for item in store.search(("m",), refresh_ttl=False)] == [
        "forever",
        "read-often",
    ]  # equal times: by key
    assert store.sweep_ttl() == 2
    assert not (tmp_path / "m" / "short.json").exists()
    clock.advance(20 * 60)
    assert [item.key for item in store.search(("m",))] == ["forever"]
    assert store.list_namespaces() == [("m",)]
    store.delete(("m",), "forever")
    assert store.list_namespaces() == []  # a namespace goes with its last item (SqliteStore)


def test_refresh_on_read_false_in_the_config_leaves_the_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    store = GroupStoreStore(
        Store(tmp_path, clock=clock), ttl={"default_ttl": 10, "refresh_on_read": False}, clock=clock
    )
    store.put(("m",), "k", {"v": 1})
    clock.advance(6 * 60)
    assert store.get(("m",), "k") is not None
    clock.advance(6 * 60)
    assert store.get(("m",), "k") is None


def test_the_ttl_sweeper_starts_and_stops(tmp_path: Path) -> None:
    store = GroupStoreStore(tmp_path, ttl={"default_ttl": 1, "sweep_interval_minutes": 60})
    future = store.start_ttl_sweeper()
    assert not future.done()
    assert store.start_ttl_sweeper().done()  # already running: nothing more started
    assert store.stop_ttl_sweeper(timeout=10)
    assert future.result(timeout=10) is None
    assert GroupStoreStore(tmp_path).start_ttl_sweeper().done()  # no TTL config: nothing to sweep


def test_vector_search_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError, match="no vector search"):
        GroupStoreStore(tmp_path, index={"dims": 3, "embed": lambda texts: [[0.0] * 3 for _ in texts]})


def test_a_batch_reads_before_it_writes_as_both_references_do(tmp_path: Path, sqlite_store: SqliteStore) -> None:
    for store in (GroupStoreStore(tmp_path), sqlite_store):
        store.put(("n",), "k", {"v": "old"})
        results = store.batch([PutOp(("n",), "k", {"v": "new"}), GetOp(("n",), "k"), PutOp(("n",), "k", {"v": "last"})])
        assert results[0] is None
        read = results[1]
        assert isinstance(read, Item)
        assert read.value == {"v": "old"}
        item = store.get(("n",), "k")
        assert item is not None
        assert item.value == {"v": "last"}


def test_values_come_back_as_sqlite_store_gives_them(tmp_path: Path, sqlite_store: SqliteStore) -> None:
    from datetime import UTC, datetime

    value = {"when": datetime(2026, 1, 2, tzinfo=UTC), "nan": float("nan"), "tuple": (1, 2)}
    for store in (GroupStoreStore(tmp_path), sqlite_store):
        store.put(("n",), "k", value)
    mine, theirs = GroupStoreStore(tmp_path).get(("n",), "k"), sqlite_store.get(("n",), "k")
    assert mine is not None
    assert theirs is not None
    assert mine.value == theirs.value == {"when": "2026-01-02T00:00:00+00:00", "nan": None, "tuple": [1, 2]}


@pytest.mark.anyio
async def test_async_methods_on_a_data_store(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as data_store:
        store = GroupStoreStore(data_store)
        await store.aput(("users", "alice"), "prefs", {"theme": "dark"})
        item = await store.aget(("users", "alice"), "prefs")
        assert item is not None
        assert item.value == {"theme": "dark"}
        assert [i.key for i in await store.asearch(("users",), filter={"theme": "dark"})] == ["prefs"]
        assert await store.alist_namespaces(prefix=("users",)) == [("users", "alice")]
        assert store.get(("users", "alice"), "prefs") is not None  # the sync half on the same DataStore
        await store.adelete(("users", "alice"), "prefs")
        assert await store.aget(("users", "alice"), "prefs") is None
        assert await store.asweep_ttl() == 0


@pytest.mark.local_only("reads the item files on disk")
def test_each_item_is_a_readable_json_file(tmp_path: Path) -> None:
    clock = FakeClock(1_800_000_000.0)
    store = GroupStoreStore(Store(tmp_path, clock=clock), clock=clock)
    store.put(("users", "alice"), "preferences", {"theme": "dark"}, ttl=60)
    text = (tmp_path / "users" / "alice" / "preferences.json").read_text()
    assert orjson.loads(text) == {
        "value": {"theme": "dark"},
        "created_at": "2027-01-15T08:00:00.000000+00:00",
        "updated_at": "2027-01-15T08:00:00.000000+00:00",
        "ttl_minutes": 60,
    }
    assert (tmp_path / "users" / "alice" / "preferences.meta.json").exists()  # the TTL is group_store's
