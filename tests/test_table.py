"""Table and AsyncTable: records, schema errors, queries, TTL, layout on disk, concurrency."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from group_store import (
    AsyncTable,
    CorruptEntryError,
    DataStore,
    DuplicateKeyError,
    InvalidArgumentError,
    Record,
    SchemaError,
    SerializationError,
    Store,
    Table,
    UnsafeFileError,
)
from group_store.storage._pins import MAX_PINNED_DESCRIPTORS, pin_budget, pinned_descriptors
from group_store.testing import FakeClock

from .processes import run_processes

FIELDS = ("command_name", "data_key", "data", "rank")
KEY = ("command_name", "data_key")


def make(root: Path, clock: FakeClock | None = None, **kwargs: Any) -> Table:
    store = Store(root, clock=clock) if clock else Store(root)
    return Table(store, "items", fields=kwargs.pop("fields", FIELDS), key=kwargs.pop("key", KEY), **kwargs)


def row(name: str, key: str, data: Any = None, rank: Any = None) -> dict[str, Any]:
    return {"command_name": name, "data_key": key, "data": data, "rank": rank}


# -- records -------------------------------------------------------------------


def test_upsert_get_and_replace(tmp_path: Path) -> None:
    table = make(tmp_path)
    stored = table.upsert(row("weather", "cache:Miami", {"temp": 75}))
    assert stored == row("weather", "cache:Miami", {"temp": 75})
    assert table.get("weather", "cache:Miami") == stored
    table.upsert({"command_name": "weather", "data_key": "cache:Miami", "data": 1})
    assert table.get("weather", "cache:Miami") == {"command_name": "weather", "data_key": "cache:Miami", "data": 1}
    assert table.get("weather", "nope") is None


def test_returned_records_are_private_copies(tmp_path: Path) -> None:
    table = make(tmp_path)
    record = row("a", "k", {"list": [1]})
    table.upsert(record)
    record["data"]["list"].append(2)
    got = table.get("a", "k")
    assert got is not None
    got["data"]["list"].append(3)
    assert table.get("a", "k") == row("a", "k", {"list": [1]})


def test_insert_refuses_a_duplicate_and_names_key_and_file(tmp_path: Path, backend: str) -> None:
    table = make(tmp_path)
    table.insert(row("a", "k", 1))
    with pytest.raises(DuplicateKeyError) as caught:
        table.insert(row("a", "k", 2))
    assert caught.value.key == "['a', 'k']"
    assert caught.value.path == table.store.storage.locator("items/a", "records.json")
    if backend == "local":
        assert caught.value.path == str(tmp_path / "items" / "a" / "records.json")
    assert table.get("a", "k") == row("a", "k", 1)


def test_times_are_kept_by_the_table(tmp_path: Path, clock: FakeClock) -> None:
    table = make(tmp_path, clock)
    first = table.upsert(row("a", "k", 1))
    clock.advance(10)
    second = table.upsert(row("a", "k", 2))
    assert second.created_at == first.created_at
    assert (second.updated_at - first.updated_at).total_seconds() == 10
    assert second.expires_at is None
    assert "created_at" not in second


def test_merge_keeps_fields_left_out(tmp_path: Path) -> None:
    table = make(tmp_path)
    table.upsert(row("a", "k", "data", 3))
    assert table.upsert({"command_name": "a", "data_key": "k", "rank": 4}, merge=True) == row("a", "k", "data", 4)
    assert table.upsert({"command_name": "a", "data_key": "k", "rank": 5}) == {
        "command_name": "a",
        "data_key": "k",
        "rank": 5,
    }


def test_modify_changes_deletes_and_aborts(tmp_path: Path) -> None:
    table = make(tmp_path)
    assert table.modify(("a", "k"), lambda r: row("a", "k", 1) if r is None else None) == row("a", "k", 1)
    assert table.modify(("a", "k"), lambda r: {**(r or {}), "data": r["data"] + 1} if r else None) == row("a", "k", 2)

    def boom(_: Any) -> dict[str, Any]:
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        table.modify(("a", "k"), boom)
    with pytest.raises(SchemaError, match="primary key"):
        table.modify(("a", "k"), lambda r: row("a", "other", 1))
    assert table.get("a", "k") == row("a", "k", 2)
    assert table.modify(("a", "k"), lambda r: None) is None
    assert table.get("a", "k") is None


def test_delete_and_delete_where(tmp_path: Path) -> None:
    table = make(tmp_path)
    for key in "abc":
        table.upsert(row("x", key, key))
    table.upsert(row("y", "a", "a"))
    assert table.delete("x", "a")
    assert not table.delete("x", "a")
    assert table.delete_where({"data": "a"}) == 1
    assert table.delete_where({"command_name": "x"}) == 2
    assert table.count() == 0
    assert not (tmp_path / "items" / "x" / "records.json").exists()


# -- schema errors -------------------------------------------------------------


def test_unknown_fields_raise_schema_errors_naming_them(tmp_path: Path) -> None:
    table = make(tmp_path)
    table.upsert(row("a", "k", 1))
    with pytest.raises(SchemaError, match="'colour'"):
        table.upsert({**row("a", "k", 2), "colour": "red"})
    with pytest.raises(SchemaError, match="'colour'"):
        table.find({"colour": "red"})
    with pytest.raises(SchemaError, match="'colour'"):
        table.find(order_by="colour")
    with pytest.raises(SchemaError, match="lacks key field 'data_key'"):
        table.upsert({"command_name": "a"})
    with pytest.raises(SchemaError, match="'command_name' must be a non-empty string"):
        table.upsert(row("", "k"))
    with pytest.raises(SchemaError, match="must be a string"):
        table.upsert(row("a", 5))  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="got 1 value"):
        table.get("a")
    with pytest.raises(SerializationError):
        table.upsert(row("a", "k", {1, 2}))
    assert table.get("a", "k") == row("a", "k", 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": ()}, "at least one field"),
        ({"key": ("missing",)}, "not one of the fields"),
        ({"partition_by": ("data_key",)}, "leading fields of the key"),
        ({"partition_by": KEY}, "leaving at least one"),
        ({"shards": 0}, "shards must be"),
        ({"fields": ("a", "a"), "key": ("a",)}, "duplicate field"),
        ({"fields": "abc", "key": ("a",)}, "not one string"),
    ],
)
def test_bad_schemas_are_refused(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        make(tmp_path, **kwargs)


def test_bad_limit_and_ttl(tmp_path: Path) -> None:
    table = make(tmp_path)
    with pytest.raises(InvalidArgumentError):
        table.find(limit=-1)
    with pytest.raises(InvalidArgumentError):
        table.upsert(row("a", "k"), ttl=-5)


# -- queries -------------------------------------------------------------------


def test_find_filters_orders_and_limits(tmp_path: Path) -> None:
    table = make(tmp_path)
    table.upsert(row("b", "2", "x", 3))
    table.upsert(row("a", "1", "x", None))
    table.upsert(row("a", "2", "y", 1))
    table.upsert(row("b", "1", "x", 1))
    keys = [(r["command_name"], r["data_key"]) for r in table.find()]
    assert keys == [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")]
    assert [r["data_key"] for r in table.find({"command_name": "b"})] == ["1", "2"]
    assert [r["data_key"] for r in table.find({"data": "x", "command_name": "b"})] == ["1", "2"]
    # None first, then numbers; ties keep key order; descending reverses the ranks, not the ties.
    by_rank = [(r["command_name"], r["data_key"]) for r in table.find(order_by="rank")]
    assert by_rank == [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")]
    by_rank_desc = [(r["command_name"], r["data_key"]) for r in table.find(order_by="rank", descending=True)]
    assert by_rank_desc == [("b", "2"), ("a", "2"), ("b", "1"), ("a", "1")]
    assert len(table.find({"data": "x"}, limit=2)) == 2
    assert table.find({"command_name": "a", "data_key": "2"}) == [row("a", "2", "y", 1)]
    assert table.find({"command_name": "a", "data_key": "2", "data": "x"}) == []
    assert table.count({"data": "x"}) == 3


def test_find_orders_by_the_tables_times(tmp_path: Path, clock: FakeClock) -> None:
    table = make(tmp_path, clock)
    for key in ["c", "a", "b"]:
        table.upsert(row("n", key))
        clock.advance(1)
    assert [r["data_key"] for r in table.find(order_by="created_at")] == ["c", "a", "b"]
    assert [r["data_key"] for r in table.find(order_by="updated_at", descending=True, limit=1)] == ["b"]


# -- TTL -----------------------------------------------------------------------


def test_expired_records_are_hidden_then_removed(tmp_path: Path, clock: FakeClock) -> None:
    table = make(tmp_path, clock)
    table.upsert(row("a", "short"), ttl=10)
    table.upsert(row("a", "long"), ttl=100)
    table.upsert(row("b", "forever"))
    clock.advance(11)
    assert table.get("a", "short") is None
    expired = table.get("a", "short", include_expired=True)
    assert expired is not None
    assert expired.expires_at is not None
    assert [r["data_key"] for r in table.find()] == ["long", "forever"]
    assert table.count(include_expired=True) == 3
    table.insert(row("a", "short", "again"))  # an expired record does not block insert
    clock.advance(100)
    assert table.delete_expired() == 1
    assert table.count(include_expired=True) == 2


# -- layout --------------------------------------------------------------------


@pytest.mark.local_only("reads the partition files' bytes on disk")
def test_partition_files_are_canonical_and_sorted(tmp_path: Path, clock: FakeClock) -> None:
    table = make(tmp_path, clock)
    table.upsert({"rank": 1, "data_key": "b", "command_name": "weather/today"})
    table.upsert(row("weather/today", "a", "x"), ttl=60)
    path = tmp_path / "items" / "weather~2ftoday" / "records.json"
    text = path.read_text()
    assert text == orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()
    stored = orjson.loads(text)
    assert list(stored) == ["a", "b"]
    assert list(stored["b"]["record"]) == ["command_name", "data_key", "rank"]
    assert stored["a"]["expires_at"] == "2027-01-15T08:01:00.000000+00:00"
    assert list(stored["a"]) == ["created_at", "expires_at", "record", "updated_at"]


@pytest.mark.local_only("lists the shard files on disk")
def test_single_key_tables_spread_over_shards(tmp_path: Path) -> None:
    table = Table(Store(tmp_path), "flags", fields=("name", "on"), key=("name",))
    for i in range(200):
        table.upsert({"name": f"flag-{i}", "on": True})
    shards = sorted(p.name for p in (tmp_path / "flags").glob("shard-*.json"))
    assert 32 < len(shards) <= 64
    assert table.count() == 200
    assert table.get("flag-7") == {"name": "flag-7", "on": True}


def test_another_handle_sees_changes_made_through_the_cache(tmp_path: Path) -> None:
    first, second = make(tmp_path), make(tmp_path)
    first.upsert(row("a", "k", 1))
    assert second.get("a", "k") == row("a", "k", 1)
    first.upsert(row("a", "k", 2))
    assert second.get("a", "k") == row("a", "k", 2)


@pytest.mark.local_only("corrupts a partition file on disk")
def test_a_corrupt_partition_file_is_reported_and_others_still_read(tmp_path: Path) -> None:
    table = make(tmp_path)
    table.upsert(row("good", "k", 1))
    table.upsert(row("bad", "k", 1))
    bad = tmp_path / "items" / "bad" / "records.json"
    bad.write_text('{"k": [1, 2]}')
    with pytest.raises(CorruptEntryError) as caught:
        table.get("bad", "k")
    assert caught.value.path == str(bad)
    assert table.get("good", "k") == row("good", "k", 1)
    bad.write_text("{not json")
    with pytest.raises(CorruptEntryError):
        table.upsert(row("bad", "k", 2))
    assert bad.read_text() == "{not json"


# -- model test ----------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.sampled_from(["upsert", "upsert_ttl", "delete", "delete_where", "advance", "modify"]),
        st.sampled_from(["a", "b", "c/d"]),
        st.sampled_from(["", "k", "K", "k k", "é", "[1]"]),
        st.integers(0, 3),
    ),
    max_size=30,
)


def bump(name: str, key: str, current: Record | None) -> dict[str, Any]:
    return row(name, key, None, current["rank"] + 1 if current else 0)


@pytest.mark.not_on_s3("60 random histories: ~20 s of serialized requests (the seam's model test runs on S3)")
@settings(max_examples=60, deadline=None)
@given(operations)
def test_table_matches_a_dict_model(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str, str, int]]
) -> None:
    clock = FakeClock()
    table = make(tmp_path_factory.mktemp("model"), clock)
    model: dict[tuple[str, str], dict[str, Any]] = {}
    expiry: dict[tuple[str, str], float] = {}

    def live() -> dict[tuple[str, str], dict[str, Any]]:
        return {k: r for k, r in model.items() if k not in expiry or expiry[k] > clock.now}

    for op, name, key, rank in ops:
        if op in ("upsert", "upsert_ttl"):
            ttl = 10 * (rank + 1) if op == "upsert_ttl" else None
            model[(name, key)] = table.upsert(row(name, key, None, rank), ttl=ttl)
            expiry.pop((name, key), None)
            if ttl is not None:
                expiry[(name, key)] = clock.now + ttl
        elif op == "delete":
            assert table.delete(name, key) == ((name, key) in live())
            model.pop((name, key), None)
        elif op == "delete_where":
            doomed = [k for k, r in model.items() if r["rank"] == rank]
            assert table.delete_where({"rank": rank}) == len(doomed)
            for k in doomed:
                del model[k]
        elif op == "advance":
            clock.advance(rank * 7)
        else:
            was_live = (name, key) in live()
            bumped = table.modify((name, key), partial(bump, name, key))
            model[(name, key)] = row(name, key, None, model[(name, key)]["rank"] + 1 if was_live else 0)
            assert bumped == model[(name, key)]
            if not was_live:
                expiry.pop((name, key), None)  # a new record; a live one keeps its expiry
    current = live()
    assert table.find() == [current[k] for k in sorted(current)]
    by_rank = sorted(sorted(current), key=lambda k: current[k]["rank"], reverse=True)
    assert table.find(order_by="rank", descending=True, limit=3) == [current[k] for k in by_rank[:3]]
    for rank in range(4):
        assert table.count({"rank": rank}) == sum(r["rank"] == rank for r in current.values())
    assert table.delete_expired() == len(set(model) - set(current))
    assert table.count(include_expired=True) == len(current)


# -- async ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_table_sees_queued_writes_and_runs_steps_together(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as store:
        table = AsyncTable(store, "items", fields=FIELDS, key=KEY)
        await table.insert(row("a", "k", 1))
        with pytest.raises(DuplicateKeyError):
            await table.insert(row("a", "k", 1))
        assert await table.get("a", "k") == row("a", "k", 1)
        assert await table.upsert({"command_name": "a", "data_key": "k", "rank": 2}, merge=True) == row("a", "k", 1, 2)
        assert await table.modify(("a", "j"), lambda r: row("a", "j", 0)) == row("a", "j", 0)
        assert [r["data_key"] for r in await table.find({"command_name": "a"}, order_by="data")] == ["j", "k"]
        assert await table.count() == 2

        def move(blocking: Table) -> int:
            with blocking.lock("a"):
                record = blocking.get("a", "k")
                assert record is not None
                blocking.delete("a", "k")
                blocking.upsert({**record, "command_name": "b"})
                return blocking.count()

        assert await table.run(move) == 2
        assert await table.delete("b", "k")
        assert await table.delete_where({"command_name": "a"}) == 1
        assert await table.delete_expired() == 0
    async with AsyncTable(tmp_path, "items", fields=FIELDS, key=KEY) as again:
        assert await again.count() == 0


# -- processes -----------------------------------------------------------------

WORKERS = 2
ROUNDS = 150


def _bump(root: str, worker: int) -> None:
    table = make(Path(root))
    for i in range(ROUNDS):
        table.modify(("shared", "counter"), lambda r: row("shared", "counter", (r["data"] if r else 0) + 1))
        table.upsert(row("shared", f"w{worker}-{i}", i))


@pytest.mark.local_only("subprocesses share the store")
def test_two_processes_modify_and_upsert_one_partition_without_losses(tmp_path: Path) -> None:
    run_processes([(_bump, (str(tmp_path), worker)) for worker in range(WORKERS)])
    table = make(tmp_path)
    counter = table.get("shared", "counter")
    assert counter is not None
    assert counter["data"] == WORKERS * ROUNDS
    assert table.count() == WORKERS * ROUNDS + 1


def test_upsert_many_writes_each_partition_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = make(tmp_path)
    table.upsert(row("a", "0", "old"))
    saves: list[str] = []
    storage = table._core.engine.storage
    write_many, write_if = storage.write_many, storage.write_if

    # Counted where the partition file is written: a plain write locally, a conditional
    # one where every change is a compare-and-swap (object storage).
    def counting_write_many(directory: str, items: Any, **options: Any) -> Any:
        saves.extend(directory for name, _ in items if name.endswith(".json"))
        return write_many(directory, items, **options)

    def counting_write_if(directory: str, name: str, *args: Any, **options: Any) -> Any:
        saves.append(directory)
        return write_if(directory, name, *args, **options)

    monkeypatch.setattr(storage, "write_many", counting_write_many)
    monkeypatch.setattr(storage, "write_if", counting_write_if)
    stored = table.upsert_many([row(name, str(i), i) for i in range(50) for name in "abc"])
    assert len(stored) == 150
    assert sorted(saves) == ["items/a", "items/b", "items/c"]
    assert table.count() == 150
    with pytest.raises(SchemaError):
        table.upsert_many([row("d", "1"), {"command_name": "d"}])
    assert table.count({"command_name": "d"}) == 0


def test_cached_records_are_not_shared_with_callers(tmp_path: Path) -> None:
    table = make(tmp_path)
    given = row("a", "k", {"list": [1]})
    returned = table.upsert(given)
    given["data"]["list"].append("given")
    returned["data"]["list"].append("returned")
    found = table.find({"command_name": "a"})
    found[0]["data"]["list"].append("found")
    assert table.get("a", "k") == row("a", "k", {"list": [1]})
    assert make(tmp_path).get("a", "k") == row("a", "k", {"list": [1]})


# -- the partition cache -----------------------------------------------------------


@pytest.mark.local_only("changes partition files on disk behind the cache")
def test_cached_partitions_notice_every_kind_of_change(tmp_path: Path) -> None:
    writer, reader = make(tmp_path), make(tmp_path)
    writer.upsert(row("a", "k", 1))
    assert reader.get("a", "k") == row("a", "k", 1)  # now cached and pinned by the reader
    path = tmp_path / "items" / "a" / "records.json"
    edited = path.read_text().replace('"data": 1', '"data": 22')
    with path.open("r+") as file:  # rewritten in place: same inode, other size
        file.write(edited)
    assert reader.get("a", "k") == row("a", "k", 22)
    copy = tmp_path / "copy.json"
    copy.write_text(path.read_text())
    path.unlink()
    path.symlink_to(copy)  # a symlink is refused even where the cache had the real file
    with pytest.raises(UnsafeFileError):
        reader.get("a", "k")
    path.unlink()
    assert reader.get("a", "k") is None


def _partition_descriptors() -> int:
    """Descriptors this process has open on partition files (from /proc/self/fd)."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += fd.readlink().name == "records.json"
        except OSError:  # the descriptor listing the directory, closed meanwhile
            continue
    return count


@pytest.mark.local_only("counts file descriptors")
def test_the_cache_pins_a_bounded_number_of_descriptors(tmp_path: Path) -> None:
    tables = [make(tmp_path / str(t)) for t in range(3)]
    for table in tables:
        table.upsert_many([row(f"p{i:03d}", "k", i) for i in range(100)])
    before = len(list(Path("/proc/self/fd").iterdir()))
    for table in tables:
        for i in range(100):
            assert table.get(f"p{i:03d}", "k") == row(f"p{i:03d}", "k", i)
    # One budget for the process, however many tables: not 128 per table.
    assert _partition_descriptors() <= pin_budget() == pinned_descriptors()
    assert len(list(Path("/proc/self/fd").iterdir())) - before <= pin_budget()
    for table in tables:  # an entry that lost its pin is still served (checked by its bytes)
        assert table.get("p000", "k") == row("p000", "k", 0)
    del table, tables
    gc.collect()
    assert pinned_descriptors() == 0
    assert len(list(Path("/proc/self/fd").iterdir())) <= before


_LOW_LIMIT_CHILD = """
import json, os, resource, sys

root, limit = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

from group_store import Store, Table
from group_store.storage._pins import pin_budget

store = Store(root)
tables = [Table(store, f"t{t}", fields=("part", "id", "v"), key=("part", "id")) for t in range(4)]
for table in tables:
    table.upsert_many([{"part": f"p{p:03d}", "id": "x", "v": p} for p in range(120)])


def partition_descriptors():
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").endswith("/records.json")
        except OSError:
            pass
    return count


most = 0
for round in range(2):
    for table in tables:
        assert len(table.find({})) == 120
        most = max(most, partition_descriptors())
        store.save("after", {"round": round})  # writes keep working
        assert store.load("after") == {"round": round}
print(json.dumps({"budget": pin_budget(), "most": most}))
"""


@pytest.mark.parametrize("limit", [64, 256])
def test_finds_over_many_partitions_stay_within_the_descriptor_budget(tmp_path: Path, limit: int) -> None:
    # Four tables of 120 partitions each, every one read twice, under a low RLIMIT_NOFILE.
    done = subprocess.run(
        [sys.executable, "-c", _LOW_LIMIT_CHILD, str(tmp_path), str(limit)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    print(f"descriptor-stats: RLIMIT_NOFILE={limit} pin_budget={figures['budget']} most_pinned={figures['most']}")
    assert figures["budget"] == min(MAX_PINNED_DESCRIPTORS, limit // 8)
    assert 0 < figures["most"] <= figures["budget"]


_EMFILE_CHILD = """
import errno, os, resource, sys

from group_store import StorageError, Store, Table

store = Store(sys.argv[1])
Table(store, "t", fields=("part", "id"), key=("part", "id")).upsert({"part": "p", "id": "x"})
fresh = Table(store, "t", fields=("part", "id"), key=("part", "id"))  # nothing cached: must open the file
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
spare = []
try:
    while True:
        spare.append(os.open(os.devnull, os.O_RDONLY))
except OSError as exc:
    assert exc.errno == errno.EMFILE
try:
    fresh.get("p", "x")
except StorageError as exc:
    assert exc.errno == errno.EMFILE, exc
    print(exc.path)
"""


def test_a_table_read_refused_for_lack_of_descriptors_is_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    child = [sys.executable, "-c", _EMFILE_CHILD, str(tmp_path)]
    done = subprocess.run(child, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "t" / "p" / "records.json")


@pytest.mark.not_on_s3("~15 s of contended lease round trips; contention on S3 is in tests/s3/test_s3_storage.py")
def test_threads_share_one_table(tmp_path: Path) -> None:
    table = make(tmp_path)

    def work(worker: int) -> None:
        for i in range(50):
            table.modify(("shared", "counter"), partial(bump, "shared", "counter"))
            table.upsert(row("shared", f"t{worker}-{i}", i))
            assert table.get("shared", f"t{worker}-{i}") == row("shared", f"t{worker}-{i}", i)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counter = table.get("shared", "counter")
    assert counter is not None
    assert counter["rank"] == 4 * 50 - 1  # bump starts at 0
    assert table.count() == 4 * 50 + 1
