"""GroupStoreSaver shared by processes: two writing their own threads and one thread at once, and a
writer SIGKILLed during puts, many times over, leaving every acknowledged checkpoint whole."""

from __future__ import annotations

import os
import random
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

# The langgraph extra and test peers are part of what CI installs: a missing one fails loudly, never skips.
from group_store import Store, verify_store
from group_store.integrations.langgraph import GroupStoreSaver

from ..processes import run_processes
from ..test_crash import RECORD, run_then_kill
from .langgraph_helpers import Chain, config

pytestmark = pytest.mark.local_only("subprocesses share the store, and SIGKILL of a writer process")

ROUNDS = 30


def _writer(root: str, name: str) -> None:
    saver = GroupStoreSaver(root)
    own, shared = Chain(saver, f"own-{name}"), Chain(saver, "shared")
    for i in range(ROUNDS):
        own.put({"n": i, "who": name})
        saver.put_writes(own.config, [("n", i)], f"{name}-{i}", "")
        shared.put({f"by-{name}": i}, metadata={"who": name, "i": i})  # two branches in one namespace
        saver.put_writes(shared.config, [("w", name)], f"{name}-{i}", "")


def test_two_processes_write_their_own_threads_and_one_shared_thread(tmp_path: Path) -> None:
    run_processes([(_writer, (str(tmp_path), "a")), (_writer, (str(tmp_path), "b"))])
    saver = GroupStoreSaver(tmp_path)
    for name in ("a", "b"):
        listed = list(saver.list(config(f"own-{name}")))
        assert [t.checkpoint["channel_values"] for t in listed] == [
            {"n": i, "who": name} for i in reversed(range(ROUNDS))
        ]
        assert [t.pending_writes for t in listed] == [[(f"{name}-{i}", "n", i)] for i in reversed(range(ROUNDS))]
    shared = list(saver.list(config("shared")))
    assert len(shared) == 2 * ROUNDS  # nothing lost, nothing twice
    ids = [t.checkpoint["id"] for t in shared]
    assert ids == sorted(set(ids), reverse=True)
    for found in shared:
        who, i = dict(found.metadata)["who"], dict(found.metadata)["i"]
        assert found.checkpoint["channel_values"] == {f"by-{who}": i}
        assert found.pending_writes == [(f"{who}-{i}", "w", who)]
    latest = saver.get_tuple(config("shared"))
    assert latest is not None
    assert latest.checkpoint["id"] == ids[0]
    assert verify_store(tmp_path).ok


def _put_until_killed(root: Path, write_fd: int, start: int) -> None:
    saver = GroupStoreSaver(Store(root))
    chain = Chain(saver, "t")
    latest = saver.get_tuple(config("t"))
    payload = ""
    if latest is not None:  # carry on from what the last round left, as a graph resuming would
        chain.config = latest.config
        chain.versions = dict(latest.checkpoint["channel_versions"])
        payload = latest.checkpoint["channel_values"].get("payload", "")
    i = start
    while True:
        values: dict[str, object] = {"n": i}
        if i % 3:  # otherwise "payload" is carried over from an older checkpoint
            payload = values["payload"] = "x" * (i * 37 % 2000)
        chain.put(values, metadata={"n": i, "payload": len(payload)})
        saver.put_writes(chain.config, [("n", i)], f"task-{i}", "")
        os.write(write_fd, RECORD.pack(0, i))  # acknowledged: both calls returned
        i += 1


def test_sigkill_during_puts_leaves_every_acknowledged_checkpoint_whole(tmp_path: Path) -> None:
    rng = random.Random(7)
    root = tmp_path / "threads"
    acked: list[int] = []
    next_i, rounds, kills = 0, 0, 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline or rounds < 15:
        killed, acks = run_then_kill(partial(_put_until_killed, root), next_i, rng.uniform(0.005, 0.06))
        kills += killed
        rounds += 1
        values = [value for _, value in acks]
        acked.extend(values)
        # Fresh numbers each round: the put in progress when the child died may have landed too.
        next_i = (values[-1] if values else next_i) + 1_000
        _check(root, acked)
    assert kills == rounds
    assert len(acked) > rounds  # the rounds did real work between kills
    Store(root).sweep()
    assert not list(root.rglob("*.tmp"))


def _check(root: Path, acked: list[int]) -> None:
    saver = GroupStoreSaver(Store(root))
    listed = list(saver.list(config("t")))
    ids = [t.checkpoint["id"] for t in listed]
    assert ids == sorted(set(ids), reverse=True)
    by_n = {}
    for found in listed:  # every checkpoint there is complete: its values, metadata and writes agree
        metadata: dict[str, Any] = dict(found.metadata)
        n = metadata["n"]
        assert found.checkpoint["channel_values"]["n"] == n
        assert len(found.checkpoint["channel_values"].get("payload", "")) == metadata["payload"]
        assert found.pending_writes in ([], [(f"task-{n}", "n", n)])
        by_n[n] = found
    for n in acked:  # and every acknowledged one survived, with its writes
        assert by_n[n].pending_writes == [(f"task-{n}", "n", n)], n
    if acked:
        latest = saver.get_tuple(config("t"))
        assert latest is not None
        newest: dict[str, Any] = dict(latest.metadata)
        assert newest["n"] >= acked[-1]
