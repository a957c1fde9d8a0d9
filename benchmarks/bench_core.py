"""Core benchmark: group_store against group-genie 0.0.2's DataStore and a SQLite WAL table.

    python benchmarks/bench_core.py [--documents 5000] [--repeats 3]

Installs group-genie 0.0.2 with ``pip install --no-deps`` into a temporary
target (it needs nothing beyond the standard library for its DataStore), runs
every (peer, workload) cell on a fresh directory of the same file system (the
current directory), the peers taking turns within each repeat, and prints the
median time, operations per second, the spread ((max - min) / median) and the
ratio to group-genie, side by side. Workloads, on documents of about 1 KiB (an agent
message with role, content, tool calls and metadata):

- distinct: save N distinct keys, then wait until all are on disk
- hot key:  save one key N times, then wait (the final value is verified)
- load:     load N distinct keys one by one
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from suite import documents as make_documents  # the same ~1 KiB agent messages as the full suite

from group_store import DataStore, Store

Workload = Callable[[Path, list[dict[str, Any]]], Awaitable[None]]


def install_genie() -> type[Any]:
    target = Path(tempfile.mkdtemp(prefix="genie-0.0.2-"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), "group-genie==0.0.2"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sys.path.insert(0, str(target))
    module = importlib.import_module("group_genie.datastore")
    return module.DataStore  # type: ignore[no-any-return]


# -- peers -----------------------------------------------------------------


class GroupStoreAsync:
    name = "group_store DataStore"

    @staticmethod
    async def distinct(root: Path, docs: list[dict[str, Any]]) -> None:
        async with DataStore(root) as store:
            for i, doc in enumerate(docs):
                store.save(f"k{i}", doc)
            await store.flush()

    @staticmethod
    async def hot(root: Path, docs: list[dict[str, Any]]) -> None:
        async with DataStore(root) as store:
            for doc in docs:
                store.save("hot", doc)
            await store.flush()
        assert Store(root).load("hot") == docs[-1]

    @staticmethod
    async def load(root: Path, docs: list[dict[str, Any]]) -> None:
        async with DataStore(root) as store:
            for i in range(len(docs)):
                await store.load(f"k{i}")


class GroupStoreSync:
    name = "group_store Store (sync)"

    @staticmethod
    async def distinct(root: Path, docs: list[dict[str, Any]]) -> None:
        store = Store(root)
        for i, doc in enumerate(docs):
            store.save(f"k{i}", doc)

    @staticmethod
    async def hot(root: Path, docs: list[dict[str, Any]]) -> None:
        store = Store(root)
        for doc in docs:
            store.save("hot", doc)
        assert store.load("hot") == docs[-1]

    @staticmethod
    async def load(root: Path, docs: list[dict[str, Any]]) -> None:
        store = Store(root)
        for i in range(len(docs)):
            store.load(f"k{i}")


class Genie:
    name = "group-genie 0.0.2"
    cls: type[Any]

    @classmethod
    async def distinct(cls, root: Path, docs: list[dict[str, Any]]) -> None:
        store = cls.cls(root_path=root)
        futures = [store.save(f"k{i}", doc) for i, doc in enumerate(docs)]
        await asyncio.gather(*futures)
        await store.__aexit__(None, None, None)

    @classmethod
    async def hot(cls, root: Path, docs: list[dict[str, Any]]) -> None:
        store = cls.cls(root_path=root)
        futures = [store.save("hot", doc) for doc in docs]
        await asyncio.gather(*futures)
        await store.__aexit__(None, None, None)
        assert orjson.loads((root / "hot.json").read_bytes()) == docs[-1]

    @classmethod
    async def load(cls, root: Path, docs: list[dict[str, Any]]) -> None:
        store = cls.cls(root_path=root)
        for i in range(len(docs)):
            await store.load(f"k{i}")
        await store.__aexit__(None, None, None)


class SqliteWal:
    name = "SQLite WAL (sync=NORMAL)"

    @staticmethod
    def _connect(root: Path) -> sqlite3.Connection:
        root.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(root / "store.db", isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        return connection

    @classmethod
    async def distinct(cls, root: Path, docs: list[dict[str, Any]]) -> None:
        connection = cls._connect(root)
        for i, doc in enumerate(docs):
            connection.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"k{i}", orjson.dumps(doc).decode()))
        connection.close()

    @classmethod
    async def hot(cls, root: Path, docs: list[dict[str, Any]]) -> None:
        connection = cls._connect(root)
        for doc in docs:
            connection.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("hot", orjson.dumps(doc).decode()))
        (value,) = connection.execute("SELECT value FROM kv WHERE key = 'hot'").fetchone()
        assert orjson.loads(value) == docs[-1]
        connection.close()

    @classmethod
    async def load(cls, root: Path, docs: list[dict[str, Any]]) -> None:
        connection = cls._connect(root)
        for i in range(len(docs)):
            (value,) = connection.execute("SELECT value FROM kv WHERE key = ?", (f"k{i}",)).fetchone()
            orjson.loads(value)
        connection.close()


# -- running -----------------------------------------------------------------

WORKLOADS = ["distinct", "hot", "load"]
LABELS = {"distinct": "save distinct keys + flush", "hot": "save one hot key + flush", "load": "load distinct keys"}
TARGETS = {"distinct": 2.0, "hot": 20.0, "load": 3.0}


def measure_once(peer: Any, workload: str, docs: list[dict[str, Any]]) -> float:
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as directory:
        root = Path(directory) / "store"
        if workload == "load":
            asyncio.run(peer.distinct(root, docs))  # the data to load, written by the peer itself
        # Start every cell from a clean page cache writeback state, so one peer's
        # dirty pages do not slow the next peer down.
        os.sync()
        start = time.perf_counter()
        asyncio.run(getattr(peer, workload)(root, docs))
        return time.perf_counter() - start


def measure(peers: list[Any], workload: str, docs: list[dict[str, Any]], repeats: int) -> dict[str, list[float]]:
    """Times per peer; the peers take turns within each repeat (in a rotating order),
    so a slow spell of the disk hits all of them alike."""
    times: dict[str, list[float]] = {peer.name: [] for peer in peers}
    for repeat in range(repeats):
        shift = repeat % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            times[peer.name].append(measure_once(peer, workload, docs))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    Genie.cls = install_genie()
    docs = make_documents(args.documents)
    peers: list[Any] = [GroupStoreAsync, GroupStoreSync, Genie, SqliteWal]
    size = sum(len(orjson.dumps(doc)) for doc in docs) / len(docs)
    print(f"# {args.documents} documents of {size:.0f} B, median of {args.repeats} runs")
    print(f"# {platform.platform()}, Python {platform.python_version()}, {platform.processor() or 'cpu'}")
    print()
    header = "| workload | " + " | ".join(peer.name for peer in peers) + " | group_store vs genie | target |"
    print(header)
    print("|" + "---|" * (len(peers) + 3))
    for workload in WORKLOADS:
        medians = {}
        cells = []
        all_times = measure(peers, workload, docs, args.repeats)
        for peer in peers:
            times = all_times[peer.name]
            median = statistics.median(times)
            medians[peer.name] = median
            spread = (max(times) - min(times)) / median * 100 if median else 0.0
            cells.append(f"{median * 1000:.0f} ms ({args.documents / median:,.0f}/s, ±{spread:.0f}%)")
        ratio = medians[Genie.name] / medians[GroupStoreAsync.name]
        target = TARGETS[workload]
        verdict = "met" if ratio >= target else "MISSED"
        print(f"| {LABELS[workload]} | " + " | ".join(cells) + f" | {ratio:.1f}x | >= {target:.0f}x {verdict} |")


if __name__ == "__main__":
    main()
