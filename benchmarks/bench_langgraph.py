"""LangGraph checkpointer benchmark: GroupStoreSaver beside SqliteSaver and InMemorySaver.

    python benchmarks/bench_langgraph.py [--threads 1000] [--long 1000] [--ops 200] [--repeats 3]

Each repeat gives every peer a fresh directory of the current file system, the
peers taking turns (the order rotates per repeat); a cell is the median over
the repeats of the mean time per operation. SqliteSaver runs as LangGraph's
docs open it (``sqlite3.connect(path, check_same_thread=False)``; the saver
turns on WAL); GroupStoreSaver on a ``Store`` with its default ``durable=False``.

Every peer holds the same threads, written through its own ``put``/``put_writes``:
``--threads`` threads of 5 checkpoints, and threads of 10, 100 and ``--long``
checkpoints. A checkpoint has the shape of a small chat graph's: five channels,
three of them new in each step (the last messages, a step counter, a branch
channel), two carried over (a context dict, ``__start__``), and one task's two
pending writes.

Workloads (per operation):
- put / put_writes:      one more super-step on the long thread (timed apart)
- get_tuple latest:      the newest checkpoint of a thread of 10 / 100 / long / one of the many
- get_tuple by id:       a checkpoint in the middle of the long thread
- list(limit=10):        the long thread's newest ten (``get_state_history``'s first page)
- list(before, limit=10): ten from the middle of the long thread (a later page)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from group_store import Store
from group_store.integrations.langgraph import GroupStoreSaver

PEERS: dict[str, Callable[[Path], BaseCheckpointSaver[Any]]] = {
    "GroupStoreSaver": lambda root: GroupStoreSaver(Store(root / "threads")),
    "SqliteSaver": lambda root: SqliteSaver(sqlite3.connect(str(root / "checkpoints.db"), check_same_thread=False)),
    "InMemorySaver": lambda root: InMemorySaver(),
}
CONTEXT = {"user": "alice", "locale": "en-GB", "preferences": {"tone": "brief", "topics": ["ml", "chess"]}}


class Thread:
    """One thread being written: its config, channel versions and step."""

    def __init__(self, saver: BaseCheckpointSaver[Any], thread_id: str) -> None:
        self.saver = saver
        self.config: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        self.versions: dict[str, Any] = {}
        self.step = 0
        self.ids: list[str] = []

    def checkpoint(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        step = self.step
        changed = ["messages", "step", "branch:to:agent"] + (["context", "__start__"] if step == 0 else [])
        new_versions = {c: self.saver.get_next_version(self.versions.get(c), None) for c in changed}
        self.versions.update(new_versions)
        messages = [
            {"type": "human" if i % 2 else "ai", "content": f"message {step}.{i} " + "x" * 120, "id": f"m-{step}-{i}"}
            for i in range(5)
        ]
        checkpoint = {
            "v": 4,
            "id": str(uuid6(clock_seq=step)),
            "ts": datetime.now(UTC).isoformat(),
            "channel_values": {
                "messages": messages,
                "step": step,
                "branch:to:agent": None,
                "context": CONTEXT,
                "__start__": {"messages": [messages[0]]},
            },
            "channel_versions": dict(self.versions),
            "versions_seen": {"agent": {"messages": self.versions["messages"]}},
            "updated_channels": changed,
        }
        metadata = {"source": "loop", "step": step, "parents": {}}
        return checkpoint, metadata, new_versions

    def put(self) -> None:
        checkpoint, metadata, new_versions = self.checkpoint()
        self.config = self.saver.put(self.config, checkpoint, metadata, new_versions)  # type: ignore[arg-type,assignment]
        self.ids.append(checkpoint["id"])
        self.step += 1

    def put_writes(self) -> None:
        writes = [("messages", [{"type": "ai", "content": f"reply {self.step}"}]), ("branch:to:agent", None)]
        self.saver.put_writes(self.config, writes, task_id=f"task-{self.step}", task_path="~__pregel_pull, agent")  # type: ignore[arg-type]

    def step_once(self) -> None:
        self.put()
        self.put_writes()


def build(saver: BaseCheckpointSaver[Any], threads: int, long: int) -> dict[str, Thread]:
    built: dict[str, Thread] = {}
    for name, length in [("t10", 10), ("t100", 100), ("long", long)]:
        thread = built[name] = Thread(saver, name)
        for _ in range(length):
            thread.step_once()
    for i in range(threads):
        thread = built[f"many-{i:04d}"] = Thread(saver, f"many-{i:04d}")
        for _ in range(5):
            thread.step_once()
    return built


def timed(operations: list[Callable[[], Any]]) -> float:
    """Mean seconds per operation."""
    start = time.perf_counter()
    for operation in operations:
        operation()
    return (time.perf_counter() - start) / len(operations)


def cells(
    saver: BaseCheckpointSaver[Any], threads: dict[str, Thread], ops: int, rng: random.Random
) -> dict[str, float]:
    long = threads["long"]
    put_time = writes_time = 0.0
    for _ in range(ops):
        start = time.perf_counter()
        long.put()
        middle = time.perf_counter()
        long.put_writes()
        put_time += middle - start
        writes_time += time.perf_counter() - middle
    latest = {"configurable": {"thread_id": "long", "checkpoint_ns": ""}}
    found = saver.get_tuple(latest)  # type: ignore[arg-type]
    assert found is not None
    assert found.checkpoint["id"] == long.ids[-1]
    assert len(found.pending_writes or []) == 2
    assert found.checkpoint["channel_values"]["context"] == CONTEXT
    middle_id = long.ids[len(long.ids) // 2]
    by_id = {"configurable": {"thread_id": "long", "checkpoint_ns": "", "checkpoint_id": middle_id}}
    before = {"configurable": {"checkpoint_id": middle_id}}
    page = list(saver.list(latest, limit=10))  # type: ignore[arg-type]
    assert [t.checkpoint["id"] for t in page] == long.ids[::-1][:10]
    many = [name for name in threads if name.startswith("many-")]

    def latest_of(name: str) -> Any:
        return saver.get_tuple({"configurable": {"thread_id": name, "checkpoint_ns": ""}})

    return {
        "put": put_time / ops,
        "put_writes": writes_time / ops,
        "get_tuple latest, thread of 10": timed([partial(latest_of, "t10")] * ops),
        "get_tuple latest, thread of 100": timed([partial(latest_of, "t100")] * ops),
        f"get_tuple latest, thread of {len(long.ids):,}": timed([partial(latest_of, "long")] * ops),
        f"get_tuple latest, one of {len(many):,} threads": timed(
            [partial(latest_of, rng.choice(many)) for _ in range(ops)]
        ),
        "get_tuple by id (middle of the long thread)": timed([partial(saver.get_tuple, by_id)] * ops),  # type: ignore[arg-type]
        "list(limit=10), long thread": timed([lambda: list(saver.list(latest, limit=10))] * (ops // 2)),  # type: ignore[arg-type]
        "list(before=middle, limit=10)": timed(
            [lambda: list(saver.list(latest, before=before, limit=10))] * (ops // 2)  # type: ignore[arg-type]
        ),
    }


def report(results: dict[str, list[dict[str, float]]], baselines: list[str]) -> str:
    peers = list(results)
    workloads = list(results[peers[0]][0])
    median = {p: {w: statistics.median(run[w] for run in results[p]) for w in workloads} for p in peers}
    header = ["workload", *peers, *(f"GroupStoreSaver / {b}" for b in baselines)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for w in workloads:
        figures = [f"{median[p][w] * 1e6:,.0f} µs" for p in peers]
        ratios = [f"{median['GroupStoreSaver'][w] / median[b][w]:.2f}x" for b in baselines]
        lines.append("| " + " | ".join([w, *figures, *ratios]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--long", type=int, default=1000)
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "langgraph.md")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-langgraph-", dir="."))
    counter = iter(range(10**9))
    results: dict[str, list[dict[str, float]]] = {p: [] for p in PEERS}
    try:
        for repeat in range(args.repeats):
            names = list(PEERS)
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                root = scratch / str(next(counter))
                root.mkdir()
                saver = PEERS[name](root)
                started = time.perf_counter()
                threads = build(saver, args.threads, args.long)
                built = time.perf_counter() - started
                results[name].append(cells(saver, threads, args.ops, random.Random(repeat)))
                print(f"repeat {repeat + 1}: {name} done (built in {built:.1f} s)", file=sys.stderr)
                shutil.rmtree(root, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    machine = f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = "\n\n".join(
        [
            f"Machine: {machine}; {args.threads:,} threads of 5 checkpoints plus threads of 10, 100 and "
            f"{args.long:,}; {args.ops} operations per cell, median of {args.repeats} (time per operation).",
            report(results, ["SqliteSaver", "InMemorySaver"]),
        ]
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
