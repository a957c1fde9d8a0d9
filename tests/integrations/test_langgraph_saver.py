"""GroupStoreSaver beyond the conformance suite: the sync half, list(None), limits, reopening,
pending writes, a differential run against InMemorySaver, TTL, retention, prune, and recovery."""

from __future__ import annotations

import copy
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

# The langgraph extra and test peers are part of what CI installs: a missing one fails loudly, never skips.
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT

from group_store import DataStore, InvalidArgumentError, Store
from group_store.integrations.langgraph import GroupStoreSaver
from group_store.testing import FakeClock

from .langgraph_helpers import Chain, SyncDriven, config, files, summary

# -- the sync half, through the conformance suite's own scenarios ----------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["store", "data_store"])
async def test_sync_half_passes_every_conformance_scenario(kind: str, tmp_path: Path) -> None:
    counter = iter(range(1000))

    async def factory() -> AsyncIterator[SyncDriven]:
        directory = tmp_path / f"saver-{next(counter)}"
        if kind == "store":
            yield SyncDriven(GroupStoreSaver(Store(directory)))
        else:
            async with DataStore(directory) as data_store:
                yield SyncDriven(GroupStoreSaver(data_store))

    report = await validate(checkpointer_test(name=f"sync half on {kind}")(factory))
    failures = [f for result in report.results.values() for f in result.failures]
    assert not failures, failures
    assert sum(result.tests_passed for result in report.results.values()) == 81


# -- list ------------------------------------------------------------------------------------


def test_list_none_lists_every_thread_newest_first(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    a, b = Chain(saver, "a"), Chain(saver, "b")
    sub = Chain(saver, "a", "child:1")
    for step in range(3):
        a.put({"x": step})
        b.put({"x": step * 10})
        sub.put({"y": step})
    everything = [t.config["configurable"]["checkpoint_id"] for t in saver.list(None)]
    assert everything == sorted(a.ids + b.ids + sub.ids, reverse=True)
    assert [t.config["configurable"]["checkpoint_id"] for t in saver.list(None, limit=4)] == everything[:4]
    assert {t.config["configurable"]["thread_id"] for t in saver.list(None, filter={"step": 1})} == {"a", "b"}
    # A config without checkpoint_ns lists every namespace of its thread.
    of_a = [t.config["configurable"]["checkpoint_id"] for t in saver.list({"configurable": {"thread_id": "a"}})]
    assert of_a == sorted(a.ids + sub.ids, reverse=True)


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_zero_or_negative_returns_nothing_as_in_memory_saver(tmp_path: Path, limit: int) -> None:
    ours, reference = GroupStoreSaver(tmp_path), InMemorySaver()
    for saver in (ours, reference):
        Chain(saver, "t").put({"x": 1})
    assert list(reference.list(config("t"), limit=limit)) == []  # the reference we follow
    assert list(ours.list(config("t"), limit=limit)) == []
    assert list(ours.list(None, limit=limit)) == []


def test_list_pages_through_a_long_thread_with_before_and_limit(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    chain = Chain(saver, "t")
    for step in range(60):
        chain.put({"x": step})
    newest_first = chain.ids[::-1]
    pages, before = [], None
    while True:
        page = [t.config["configurable"]["checkpoint_id"] for t in saver.list(config("t"), before=before, limit=7)]
        if not page:
            break
        pages.extend(page)
        before = config("t", checkpoint_id=page[-1])
    assert pages == newest_first
    # A filter reads past the window the limit would need.
    assert [t.metadata["step"] for t in saver.list(config("t"), filter={"step": 3}, limit=1)] == [3]


@pytest.mark.anyio
async def test_alist_yields_more_than_one_batch(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    chain = Chain(saver, "t")
    for step in range(40):
        chain.put({"x": step})
    listed = [t.checkpoint["channel_values"]["x"] async for t in saver.alist(config("t"))]
    assert listed == list(range(39, -1, -1))
    assert [t.metadata["step"] async for t in saver.alist(config("t"), limit=20)] == list(range(39, 19, -1))


# -- persistence -----------------------------------------------------------------------------


def test_a_new_saver_on_the_directory_reads_back_everything(tmp_path: Path) -> None:
    first = GroupStoreSaver(tmp_path)
    chain, sub = Chain(first, "t"), Chain(first, "t", "child:x")
    chain.put({"messages": ["hi"], "n": 1})
    first.put_writes(chain.config, [("messages", ["there"]), (ERROR, "boom")], "task-1", "path")
    chain.put({"n": 2})
    sub.put({"inner": {"deep": [1, 2]}})
    before = [summary(t) for t in first.list(None)]
    again = GroupStoreSaver(Store(tmp_path))
    assert [summary(t) for t in again.list(None)] == before
    latest = again.get_tuple(config("t"))
    assert latest is not None
    assert latest.checkpoint["channel_values"] == {"messages": ["hi"], "n": 2}
    first_checkpoint = again.get_tuple(config("t", checkpoint_id=chain.ids[0]))
    assert first_checkpoint is not None
    assert first_checkpoint.pending_writes == [("task-1", ERROR, "boom"), ("task-1", "messages", ["there"])]


# -- pending writes ----------------------------------------------------------------------------


def test_special_writes_replace_and_regular_ones_are_kept_sorted_by_task_path(tmp_path: Path) -> None:
    ours, reference = GroupStoreSaver(tmp_path), InMemorySaver()
    results = []
    for saver in (ours, reference):
        chain = Chain(saver, "t")
        chain.put({"x": 1})
        cfg = chain.config
        saver.put_writes(cfg, [("a", 1), ("b", 2)], "task-b", "~b")
        saver.put_writes(cfg, [("a", 100)], "task-b", "~b")  # regular, same (task, idx): kept as it was
        saver.put_writes(cfg, [(ERROR, "first")], "task-a", "~c")
        saver.put_writes(cfg, [(ERROR, "second")], "task-a", "~c")  # special: replaces
        saver.put_writes(cfg, [(INTERRUPT, {"q": "?"})], "task-c", "~a")
        found = saver.get_tuple(config("t"))
        assert found is not None
        results.append(found.pending_writes)
    assert results[0] == results[1]
    assert results[0] == [
        ("task-c", INTERRUPT, {"q": "?"}),
        ("task-b", "a", 1),
        ("task-b", "b", 2),
        ("task-a", ERROR, "second"),
    ]


def test_writes_to_an_older_checkpoint_land_in_its_file(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    chain = Chain(saver, "t")
    first = chain.put({"x": 1})
    chain.put({"x": 2})
    saver.put_writes(config("t", checkpoint_id=first), [("late", True)], "task", "")
    found = saver.get_tuple(config("t", checkpoint_id=first))
    assert found is not None
    assert found.pending_writes == [("task", "late", True)]
    latest = saver.get_tuple(config("t"))
    assert latest is not None
    assert latest.pending_writes == []


# -- a differential run against InMemorySaver ----------------------------------------------------


class Twins:
    """Puts the very same checkpoints (ids, versions, values) to two savers."""

    def __init__(self, *savers: BaseCheckpointSaver[str]) -> None:
        self.savers = savers
        self.versions: dict[tuple[str, str], dict[str, str]] = {}
        self.ids: dict[tuple[str, str], list[str]] = {}
        self.step = 0

    def put(self, thread: str, ns: str, values: dict[str, Any], metadata: dict[str, Any], parent: str | None) -> None:
        key = (thread, ns)
        versions = self.versions.setdefault(key, {})
        new_versions = {c: self.savers[0].get_next_version(versions.get(c), None) for c in values}
        versions.update(new_versions)
        checkpoint = empty_checkpoint()
        checkpoint["id"] = str(uuid6(clock_seq=self.step))
        checkpoint["channel_versions"] = dict(versions)
        checkpoint["channel_values"] = values
        ids = self.ids.setdefault(key, [])
        parent = parent or (ids[-1] if ids else None)
        md: Any = {"step": self.step, **metadata}
        changed: Any = new_versions
        for saver in self.savers:
            saver.put(config(thread, ns, parent), copy.deepcopy(checkpoint), md, changed)
        ids.append(checkpoint["id"])
        self.step += 1

    def forget(self, thread: str) -> None:
        for key in [k for k in self.ids if k[0] == thread]:
            del self.ids[key]
            del self.versions[key]


@pytest.mark.parametrize("seed", range(3))
def test_behaves_like_in_memory_saver_on_a_generated_run(tmp_path: Path, seed: int) -> None:
    """Random puts (forks included), writes, reads, lists and deletions on both savers; every result compared."""
    ours, reference = GroupStoreSaver(tmp_path), InMemorySaver()
    twins = Twins(ours, reference)
    rng = random.Random(seed)
    threads, namespaces = ["t1", "t2", "t3"], ["", "child:1"]
    for _ in range(150):
        action, thread, ns = rng.random(), rng.choice(threads), rng.choice(namespaces)
        ids = twins.ids.get((thread, ns), [])
        if action < 0.45:
            values = {c: rng.randrange(100) for c in rng.sample(["a", "b", "c"], rng.randint(1, 3))}
            parent = rng.choice(ids) if ids and rng.random() < 0.2 else None  # a fork
            twins.put(thread, ns, values, {"run_id": rng.choice(["r1", "r2"])}, parent)
        elif action < 0.7 and ids:
            target = rng.choice(ids[-3:])
            writes = [(rng.choice(["a", "b", ERROR]), rng.randrange(10)) for _ in range(rng.randint(1, 3))]
            task = rng.choice(["t-a", "t-b"])
            for saver in (ours, reference):
                saver.put_writes(config(thread, ns, target), writes, task, f"~{task}")
        elif action < 0.85:
            cid = rng.choice(ids) if ids and rng.random() < 0.5 else None
            assert summary(ours.get_tuple(config(thread, ns, cid))) == summary(
                reference.get_tuple(config(thread, ns, cid))
            )
        elif action < 0.97:
            kwargs: dict[str, Any] = {}
            if rng.random() < 0.3:
                kwargs["filter"] = {"run_id": rng.choice(["r1", "r2"])}
            if ids and rng.random() < 0.3:
                kwargs["before"] = config(thread, ns, rng.choice(ids))
            limit = rng.randint(1, 4) if rng.random() < 0.4 else None
            scope = config(thread, ns) if rng.random() < 0.8 else None
            mine = [summary(t) for t in ours.list(scope, limit=limit, **kwargs)]
            theirs = [summary(t) for t in reference.list(scope, **kwargs)]
            # InMemorySaver lists thread by thread; we follow SqliteSaver: newest id first over all of them.
            theirs = sorted(theirs, key=lambda s: s[0], reverse=True)[:limit]
            assert mine == theirs
        else:
            for saver in (ours, reference):
                saver.delete_thread(thread)
            twins.forget(thread)
    assert [summary(t) for t in ours.list(None)] == sorted(
        (summary(t) for t in reference.list(None)), key=lambda s: s[0], reverse=True
    )


# -- the codec's fidelity is in test_langgraph_codec.py; TTL and retention here -----------------


def test_thread_ttl_hides_then_sweep_removes_and_a_new_thread_starts_clean(tmp_path: Path) -> None:
    clock = FakeClock()
    saver = GroupStoreSaver(Store(tmp_path, clock=clock), ttl=timedelta(hours=1))
    old = Chain(saver, "t")
    old.put({"x": 1})
    old.put({"x": 2})
    Chain(saver, "other").put({"y": 1})
    clock.advance(timedelta(minutes=50))
    old.put({"x": 3})  # a put refreshes the thread's TTL
    clock.advance(timedelta(minutes=50))
    assert saver.get_tuple(config("t")) is not None
    assert saver.get_tuple(config("other")) is None  # 100 minutes since its only put
    assert [t.config["configurable"]["thread_id"] for t in saver.list(None)] == ["t", "t", "t"]
    clock.advance(timedelta(hours=2))
    assert saver.get_tuple(config("t")) is None
    assert saver.get_tuple(config("t", checkpoint_id=old.ids[0])) is None
    assert list(saver.list(config("t"))) == []
    # Before any sweep, the same thread id starts afresh: nothing of the old thread comes back.
    fresh = Chain(saver, "t")
    fresh.put({"z": 1})
    assert [t.checkpoint["channel_values"] for t in saver.list(config("t"))] == [{"z": 1}]
    assert saver.sweep() == 1  # "other"
    assert not [f for f in files(tmp_path) if f.startswith("other/")]
    assert saver.get_tuple(config("t")) is not None


def test_retention_keeps_the_newest_and_values_they_still_use(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path, max_checkpoints_per_thread=4)
    chain = Chain(saver, "t")
    chain.put({"context": {"user": "alice"}, "n": 0})  # "context" never changes again
    for n in range(1, 40):
        chain.put({"n": n})
        saver.put_writes(chain.config, [("n", n)], f"task-{n}", "")
    listed = list(saver.list(config("t")))
    assert [t.checkpoint["channel_values"] for t in listed] == [
        {"context": {"user": "alice"}, "n": n} for n in range(39, 35, -1)
    ]
    assert [t.pending_writes for t in listed[1:]] == [[(f"task-{n}", "n", n)] for n in range(38, 35, -1)]
    # Bounded: 4 checkpoints (3 files and the head), the first one's tombstone (its "context"), and bookkeeping.
    checkpoint_files = [
        f
        for f in files(tmp_path)
        if f.startswith("t/") and f[2:].split(".")[0] not in ("thread", "head", "index", "tombstones")
    ]
    assert len(checkpoint_files) <= 3 + 1 + 1, checkpoint_files


@pytest.mark.local_only("lists the files left on disk")
def test_prune_keep_latest_leaves_one_self_contained_checkpoint_per_namespace(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    chain, sub = Chain(saver, "t"), Chain(saver, "t", "child:1")
    chain.put({"a": 1, "b": 1})
    chain.put({"a": 2})
    saver.put_writes(chain.config, [("a", 3)], "task", "")
    sub.put({"s": 1})
    sub.put({"s": 2})
    saver.prune(["t"], strategy="keep_latest")
    assert [t.checkpoint["channel_values"] for t in saver.list(config("t", ""))] == [{"a": 2, "b": 1}]
    assert [t.checkpoint["channel_values"] for t in saver.list(config("t", "child:1"))] == [{"s": 2}]
    latest = saver.get_tuple(config("t"))
    assert latest is not None
    assert latest.pending_writes == [("task", "a", 3)]
    assert files(tmp_path / "t") == [
        "head.jsonl",
        "index.jsonl",
        "ns/child~3a1/head.jsonl",
        "ns/child~3a1/index.jsonl",
        "thread.json",
    ]
    with pytest.raises(ValueError, match="unknown prune strategy"):
        saver.prune(["t"], strategy="oldest")
    saver.prune(["t"], strategy="delete")
    assert saver.get_tuple(config("t")) is None


def test_delete_for_runs_removes_the_head_and_keeps_what_older_checkpoints_need(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    chain = Chain(saver, "t")
    chain.put({"a": 1, "b": 1}, metadata={"run_id": "keep"})
    chain.put({"a": 2}, metadata={"run_id": "drop"})
    chain.put({"b": 2}, metadata={"run_id": "keep"})
    chain.put({"a": 3}, metadata={"run_id": "drop"})
    Chain(saver, "u").put({"z": 1}, metadata={"run_id": "drop"})
    saver.delete_for_runs(["drop"])
    assert [t.checkpoint["channel_values"] for t in saver.list(config("t"))] == [{"a": 2, "b": 2}, {"a": 1, "b": 1}]
    latest = saver.get_tuple(config("t"))
    assert latest is not None
    assert latest.checkpoint["id"] == chain.ids[2]
    assert saver.get_tuple(config("u")) is None


def test_copy_thread_into_an_existing_thread_keeps_both_histories(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    target = Chain(saver, "target")
    target.put({"x": "target"})
    source = Chain(saver, "source")
    source.put({"x": "source 1", "keep": True})
    source.put({"x": "source 2"})
    saver.put_writes(source.config, [("x", "pending")], "task", "")
    saver.copy_thread("source", "target")
    listed = list(saver.list(config("target")))
    assert [t.checkpoint["channel_values"]["x"] for t in listed] == ["source 2", "source 1", "target"]
    assert listed[0].checkpoint["channel_values"]["keep"] is True
    assert listed[0].pending_writes == [("task", "x", "pending")]
    saver.copy_thread("missing", "elsewhere")
    assert saver.get_tuple(config("elsewhere")) is None


# -- recovery, arguments -------------------------------------------------------------------------


def test_without_a_head_reads_fall_back_to_the_files(tmp_path: Path) -> None:
    """A put killed between removing head.jsonl and appending the new one leaves no head: readers
    then see the previous newest checkpoint, whole, from its file."""
    saver = GroupStoreSaver(tmp_path)
    chain = Chain(saver, "t")
    chain.put({"a": 1, "b": 1})
    chain.put({"a": 2})
    chain.put({"b": 3})
    saver.store.narrow("t").delete("head")  # what the kill leaves: the newest lived only in the head
    latest = saver.get_tuple(config("t"))
    assert latest is not None
    assert latest.checkpoint["id"] == chain.ids[1]
    assert latest.checkpoint["channel_values"] == {"a": 2, "b": 1}
    chain.config = config("t", checkpoint_id=chain.ids[1])
    chain.versions = dict(latest.checkpoint["channel_versions"])  # as a graph resumes: from what it read
    chain.put({"a": 4})  # the next put carries on from there
    assert [t.checkpoint["channel_values"] for t in saver.list(config("t"))][:2] == [{"a": 4, "b": 1}, {"a": 2, "b": 1}]


def test_a_removed_index_is_rebuilt_from_the_directory(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    chain = Chain(saver, "t")
    for n in range(5):
        chain.put({"n": n})
    saver.store.narrow("t").delete("index")
    assert [t.checkpoint["channel_values"]["n"] for t in saver.list(config("t"))] == [4, 3, 2, 1, 0]


def test_arguments_and_names_the_saver_uses_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        GroupStoreSaver(tmp_path, max_checkpoints_per_thread=0)
    with pytest.raises(InvalidArgumentError):
        GroupStoreSaver(tmp_path, ttl=-5)
    saver = GroupStoreSaver(tmp_path)
    checkpoint = empty_checkpoint()
    checkpoint["id"] = "head"
    with pytest.raises(InvalidArgumentError, match="cannot be 'head'"):
        saver.put(config("t"), checkpoint, {}, {})


def test_delete_of_a_missing_thread_creates_nothing(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    saver.delete_thread("nobody")
    saver.prune(["nobody"])
    assert list(tmp_path.iterdir()) == []


def test_versions_increase_as_the_references_make_them(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    first = saver.get_next_version(None, None)
    second = saver.get_next_version(first, None)
    assert first.split(".")[0] == "0" * 31 + "1"
    assert second > first
    assert saver.get_next_version(7, None).startswith("0" * 30 + "08.")  # type: ignore[arg-type]


def test_with_allowlist_clone_decodes_with_its_own_serializer(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path, serde=JsonPlusSerializer(allowed_msgpack_modules=None))
    clone = saver.with_allowlist([("uuid", "UUID")])
    assert isinstance(clone, GroupStoreSaver)
    assert clone is not saver
    assert clone._files.codec.serde is clone.serde
    assert saver._files.codec.serde is saver.serde


def test_writes_saved_before_their_checkpoint_are_kept(tmp_path: Path) -> None:
    """LangGraph's background executor may run put_writes before the put of the first checkpoint of
    a thread: the writes must survive the put (which starts the thread), as in InMemorySaver."""
    results = []
    for saver in (GroupStoreSaver(tmp_path), InMemorySaver()):
        checkpoint = empty_checkpoint()
        checkpoint["id"] = "1f000000-0000-6000-8000-000000000001"
        saver.put_writes(config("fresh", checkpoint_id=checkpoint["id"]), [("a", 1), (ERROR, "x")], "task", "~p")
        saver.put(config("fresh"), checkpoint, {}, {})
        found = saver.get_tuple(config("fresh"))
        assert found is not None
        results.append(found.pending_writes)
    assert results[0] == results[1] == [("task", ERROR, "x"), ("task", "a", 1)]
