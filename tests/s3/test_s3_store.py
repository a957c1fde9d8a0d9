"""Store on S3Storage against moto's server: the engine on a backend whose locks are not cheap.

What is pinned here: plain saves and ``update()`` run without the lease (requests per
operation are counted at the server), ``update()`` is a bounded compare-and-swap loop
that loses no increment across processes, a killed writer leaves every object whole,
and the basics (TTL, sweep, keys, kinds) behave as on disk.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
from typing import Any

import obstore
import orjson
import pytest
from obstore.store import S3Store

from group_store import Store, Table
from group_store._engine import engine
from group_store._errors import EntryKindError, KeyNotFoundError, StorageError
from group_store._format.expiry import decode_sidecar
from group_store._format.layout import EXPIRY_INDEX, Location
from group_store.storage._s3 import S3Storage
from group_store.testing import FakeClock

from ..processes import run_processes
from . import workers
from .server import S3Server

URL_PREFIX = "store"


@pytest.fixture
def store(s3: S3Storage) -> Store:
    return Store(storage=s3)


def requests_of(server: S3Server, action: Any) -> int:
    """The requests the server answered while ``action()`` ran."""
    before = server.app.requests
    action()
    return server.app.requests - before


def objects(server: S3Server, bucket: str) -> dict[str, bytes]:
    """Every object under the store's prefix, by name relative to it."""
    config = {key: value for key, value in server.options().items() if key != "allow_http"}
    raw = S3Store(bucket, config=config, client_options={"allow_http": True})  # type: ignore[arg-type]
    names = [meta["path"] for batch in obstore.list(raw, URL_PREFIX) for meta in batch]
    return {name[len(URL_PREFIX) + 1 :]: bytes(obstore.get(raw, name).bytes()) for name in names}


# -- process bodies (spawned: each opens its own Store) ----------------------------------


def increment(url: str, options: dict[str, str], times: int) -> None:
    """``times`` ``Store.update()`` increments of ``counter``."""
    store = Store(storage=S3Storage(url, storage_options=options))
    for _ in range(times):
        store.update("counter", lambda value: value + 1, default=0)


def write_forever(url: str, options: dict[str, str], run: int, started: Any) -> None:
    """Saves, updates, TTL saves and appends until killed; ``started`` is set after a few rounds."""
    store = Store(storage=S3Storage(url, storage_options=options, lease=0.5))
    number = 0
    while True:
        value = {"run": run, "number": number, "pad": "x" * (number % 50)}
        store.save(f"plain{number % 3}", value)
        store.update("counter", lambda current: current + 1, default=0)
        store.save("ttl", value, ttl=3600 if number % 2 else None)  # a sidecar made and cleared
        store.append("log", [value], max_items=20)
        number += 1
        if number == 3:
            started.set()


# -- request counts ------------------------------------------------------------------------


def test_a_plain_save_is_a_list_and_a_put_without_the_lease(store: Store, s3_server: S3Server, s3_bucket: str) -> None:
    store.save("warm", 0)
    assert requests_of(s3_server, lambda: store.save("new", {"a": 1})) == 2
    assert requests_of(s3_server, lambda: store.save("new", {"a": 2})) == 2
    assert store.load("new") == {"a": 2}
    assert not any(name.endswith(".lock") for name in objects(s3_server, s3_bucket))


def test_an_update_is_a_list_a_get_and_a_conditional_put(store: Store, s3_server: S3Server) -> None:
    store.save("warm", 0)
    assert requests_of(s3_server, lambda: store.update("n", lambda v: v + 1, default=0)) == 3
    assert requests_of(s3_server, lambda: store.update("n", lambda v: v + 1)) == 3
    assert store.load("n") == 2


def test_a_batch_of_plain_saves_is_one_list_and_the_puts(store: Store, s3: S3Storage, s3_server: S3Server) -> None:
    store.save("warm", 0)
    loc = [store._location(f"k{number}") for number in range(10)]
    items: list[tuple[Location, bytes, float | None]] = [
        (where, orjson.dumps(number), None) for number, where in enumerate(loc)
    ]
    assert requests_of(s3_server, lambda: store._engine.save_many(items)) == 11
    assert [store.load(f"k{number}") for number in range(10)] == list(range(10))


# -- compare-and-swap ----------------------------------------------------------------------


def test_four_processes_of_100_updates_on_one_key_give_400(s3_server: S3Server, s3_bucket: str, s3: S3Storage) -> None:
    url = f"s3://{s3_bucket}/{URL_PREFIX}"
    run_processes([(increment, (url, s3_server.options(), 100)) for _ in range(4)])
    assert Store(storage=s3).load("counter") == 400


def test_a_lost_swap_runs_the_function_again_and_writes_once(store: Store, s3_server: S3Server) -> None:
    store.save("n", 1)
    seen: list[int] = []

    def bump(value: int) -> int:
        seen.append(value)
        return value + 1

    s3_server.refuse_conditional(2)
    assert store.update("n", bump) == 2
    assert seen == [1, 1, 1]
    assert store.load("n") == 2


def test_a_contended_update_gives_a_typed_error_naming_key_and_url(
    store: Store, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save("n", 1)
    monkeypatch.setattr(engine, "CAS_ATTEMPTS", 3)
    s3_server.refuse_conditional(3)
    with pytest.raises(StorageError) as caught:
        store.update("n", lambda v: v + 1)
    assert caught.value.errno == errno.EBUSY
    assert caught.value.key == "n"
    assert caught.value.path == store.storage.locator("", "n.json")
    assert store.load("n") == 1


def test_an_update_creating_a_key_loses_to_a_concurrent_create(store: Store, s3: S3Storage) -> None:
    store.save("warm", 0)
    calls: list[Any] = []

    def racing(value: int) -> int:
        if not calls:
            # Another writer creates the key between this update's read and its write.
            s3.write("", "fresh.json", b"10", durable=False)
        calls.append(value)
        return value + 1

    assert store.update("fresh", racing, default=0) == 11
    assert calls == [0, 10]
    assert store.load("fresh") == 11


def test_updates_that_need_the_lock_still_work(store: Store, s3_server: S3Server) -> None:
    clock = FakeClock()
    timed = Store(storage=store.storage, clock=clock)
    timed.save("t", 1, ttl=60)
    assert timed.update("t", lambda v: v + 1) == 2  # a sidecar: the locked update, expiry kept
    assert timed.expires_at("t") is not None
    assert timed.update("plain", lambda v: v + 1, default=0, ttl=60) == 1  # a new expiry: locked
    long_key = "k" * 300  # a hashed name: its key file goes first, under the lock
    assert timed.update(long_key, lambda v: v + 1, default=0) == 1
    assert timed.keys() == sorted([long_key, "plain", "t"])
    clock.advance(61)
    assert not timed.exists("t")
    assert not timed.exists("plain")


def test_an_update_of_a_log_refuses_as_on_disk(store: Store) -> None:
    store.append("log", [1])
    with pytest.raises(EntryKindError):
        store.update("log", lambda v: v, default=0)
    with pytest.raises(EntryKindError):
        store.save("log", 1)
    with pytest.raises(KeyNotFoundError):
        store.update("absent", lambda v: v)


# -- a killed writer -----------------------------------------------------------------------


def test_a_sigkilled_writer_leaves_every_object_whole(s3_server: S3Server, s3_bucket: str, s3: S3Storage) -> None:
    url = f"s3://{s3_bucket}/{URL_PREFIX}"
    context = multiprocessing.get_context("spawn")
    runs = 3
    for run in range(runs):
        started = context.Event()
        writer = context.Process(target=write_forever, args=(url, s3_server.options(), run, started))
        writer.start()
        try:
            assert started.wait(timeout=120)
        finally:
            assert writer.pid is not None
            os.kill(writer.pid, signal.SIGKILL)
            writer.join(timeout=60)
        assert writer.exitcode == -signal.SIGKILL
    stored = objects(s3_server, s3_bucket)
    for name, data in stored.items():
        if name.endswith(".meta.json"):
            decode_sidecar(data)
        elif name == EXPIRY_INDEX:
            assert data.endswith(b"\n")
            for line in data.splitlines():
                entry, expiry = line.split(b" ")
                assert entry.endswith(b"ttl")
                float(expiry)
        elif name.endswith(".jsonl"):
            for line in data.splitlines():
                orjson.loads(line)
        elif name.endswith(".json"):
            value = orjson.loads(data)
            assert isinstance(value, int) or value["run"] in range(runs)
    store = Store(storage=s3)
    assert store.load("counter") >= 3 * runs
    for key in ("plain0", "plain1", "plain2", "ttl"):
        assert store.load(key)["run"] in range(runs)
    assert all(item["run"] in range(runs) for item in store.load("log"))


# -- basics --------------------------------------------------------------------------------


@pytest.fixture
def timed(s3: S3Storage) -> tuple[Store, FakeClock]:
    clock = FakeClock()
    return Store(storage=s3, clock=clock), clock


def test_save_load_ttl_sweep_and_keys(timed: tuple[Store, FakeClock], s3_server: S3Server, s3_bucket: str) -> None:
    store, clock = timed
    store.save("a", {"x": 1})
    store.save("b", [1, 2], ttl=10)
    store.save("c", "long", ttl=1000)
    store.append("d", [1, 2])
    assert store.keys() == ["a", "b", "c", "d"]
    assert store.load("b") == [1, 2]
    clock.advance(11)
    assert store.keys() == ["a", "c", "d"]
    with pytest.raises(KeyNotFoundError):
        store.load("b")
    assert store.sweep() == 1
    names = set(objects(s3_server, s3_bucket))
    assert "b.json" not in names
    assert "b.meta.json" not in names
    store.save("c", "plain now")  # over a sidecar: the locked save clears the expiry
    clock.advance(10_000)
    assert store.load("c") == "plain now"
    assert store.load("a") == {"x": 1}
    assert store.delete("a")
    assert store.keys() == ["c", "d"]


def test_kinds_answers_files_directories_and_absence_with_one_list(s3: S3Storage, s3_server: S3Server) -> None:
    s3.write_many(
        "d", [("k1.json", b"1"), ("k1.jsonl/x", b"1"), ("k1.meta.json.x", b"1"), ("k10.json", b"1")], durable=False
    )
    s3.write("d/k1.json/below", "z", b"", durable=False)
    names = ["k1.json", "k1.jsonl", "k1.meta.json"]
    found: list[Any] = []
    assert requests_of(s3_server, lambda: found.extend(s3.kinds("d", names))) == 1
    assert [kind and kind.value for kind in found] == ["file", "directory", None]
    assert [kind and kind.value for kind in s3.kinds("d", ["k1.json", "k10.json", "k2.json", "x"])] == [
        "file",
        "file",
        None,
        None,
    ]
    assert [kind and kind.value for kind in s3.kinds("d", ["k1"])] == [None]
    assert [kind and kind.value for kind in s3.kinds("", ["d", "e"])] == ["directory", None]


def test_table_modify_and_upserts_from_four_processes_lose_nothing(
    s3_server: S3Server, s3_bucket: str, s3: S3Storage
) -> None:
    # One partition file: two processes increment a record by modify(), two upsert records
    # of their own beside it. Every change is a compare-and-swap of that file, so none of
    # them can write over another's (a leased writer's plain PUT could, before).
    url = f"s3://{s3_bucket}/{URL_PREFIX}"
    options = s3_server.options()
    run_processes(
        [(workers.table_modify, (url, options, 40)) for _ in range(2)]
        + [(workers.table_upsert, (url, options, worker, 40)) for worker in range(2)]
    )
    table = Table(Store(storage=s3), "t", fields=["id", "n"], key=["id"], shards=1)
    counter = table.get("counter")
    assert counter is not None
    assert counter["n"] == 80
    assert sorted(record["id"] for record in table.find({})) == sorted(
        ["counter"] + [f"w{worker}-{number}" for worker in range(2) for number in range(40)]
    )
    # No lease was taken for any of it.
    assert s3.read("t", ".lock") is None
