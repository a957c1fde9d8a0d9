"""Table and Nexus twin benchmark: group_store against the SQLite tables they replace, at 10,000 records.

    python benchmarks/bench_tables.py [--records 10000] [--ops 400] [--repeats 3]

Every peer runs each workload on a fresh directory of the current file system,
the peers taking turns within each repeat; the figure is the median over the
repeats of the mean time per operation. SQLite runs twice: as the seeds open it
(Python's defaults: rollback journal, ``synchronous=FULL``; Nexus adds WAL) and
tuned (WAL, ``synchronous=NORMAL``). group_store runs with ``durable=False``
(its default: atomic renames, no fsync) and ``durable=True``.

Table workloads, on ``--records`` records of ~250 B in 100 partitions (commands):
- upsert:       replace a random existing record, committed
- get:          one record by primary key
- find 1 part.: every record of one command (100 records), in key order
- find scan:    records whose non-key ``status`` equals a value (a fifth of all)

Nexus workloads (the seed's ``NexusStore`` against ``group_store.repos.nexus``):
- append:       add a message to a full tag (500), so every append prunes one
- get_history:  the newest 200 messages of a tag, with 1,000 / 10,000 / 100,000 messages stored in all
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
from functools import partial
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from group_store import Store, Table
from group_store.repos.nexus import NexusStore
from tests.repos.sqlite_seeds import SQLiteNexusStore  # the seed's own code, shared with the tests

PARTITIONS = 100
STATUSES = ["queued", "running", "done", "failed", "cancelled"]
FIELDS = ("command_name", "data_key", "data", "status")
KEY = ("command_name", "data_key")


def records(count: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    per_partition = count // PARTITIONS
    return [
        {
            "command_name": f"command-{p:03d}",
            "data_key": f"key:{k:05d}",
            "data": orjson.dumps({"value": rng.random(), "text": "x" * 120, "tags": ["a", "b"]}).decode(),
            "status": STATUSES[(p * per_partition + k) % len(STATUSES)],
        }
        for p in range(PARTITIONS)
        for k in range(per_partition)
    ]


# -- Table peers -------------------------------------------------------------------------


class GroupStoreTable:
    def __init__(self, root: Path, durable: bool) -> None:
        self.table = Table(Store(root, durable=durable), "records", fields=FIELDS, key=KEY)

    def load(self, rows: list[dict[str, Any]]) -> None:
        self.table.upsert_many(rows)

    def upsert(self, row: dict[str, Any]) -> None:
        self.table.upsert(row)

    def get(self, command: str, key: str) -> Any:
        return self.table.get(command, key)

    def find_partition(self, command: str) -> list[Any]:
        return self.table.find({"command_name": command})

    def find_scan(self, status: str) -> list[Any]:
        return self.table.find({"status": status})


class SQLiteTable:
    """A generic JSON-record table in SQLite: the key columns, the record as JSON text, the table's times."""

    def __init__(self, root: Path, pragmas: list[str]) -> None:
        self.conn = sqlite3.connect(str(root / "table.db"))
        for pragma in pragmas:
            self.conn.execute(pragma)
        self.conn.execute(
            "CREATE TABLE records (command_name TEXT NOT NULL, data_key TEXT NOT NULL, record TEXT NOT NULL, "
            "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, expires_at TEXT, "
            "PRIMARY KEY (command_name, data_key))"
        )

    @staticmethod
    def now() -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S")

    def load(self, rows: list[dict[str, Any]]) -> None:
        now = self.now()
        self.conn.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, NULL)",
            [(r["command_name"], r["data_key"], orjson.dumps(r).decode(), now, now) for r in rows],
        )
        self.conn.commit()

    def upsert(self, row: dict[str, Any]) -> None:
        now = self.now()
        self.conn.execute(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (command_name, data_key) "
            "DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at, expires_at = NULL",
            (row["command_name"], row["data_key"], orjson.dumps(row).decode(), now, now),
        )
        self.conn.commit()

    def get(self, command: str, key: str) -> Any:
        found = self.conn.execute(
            "SELECT record, created_at, updated_at, expires_at FROM records WHERE command_name = ? AND data_key = ?",
            (command, key),
        ).fetchone()
        return None if found is None else orjson.loads(found[0])

    def find_partition(self, command: str) -> list[Any]:
        rows = self.conn.execute(
            "SELECT record, created_at, updated_at, expires_at FROM records WHERE command_name = ? ORDER BY data_key",
            (command,),
        ).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def find_scan(self, status: str) -> list[Any]:
        rows = self.conn.execute(
            "SELECT record, created_at, updated_at, expires_at FROM records "
            "WHERE json_extract(record, '$.status') = ? ORDER BY command_name, data_key",
            (status,),
        ).fetchall()
        return [orjson.loads(r[0]) for r in rows]


SEED_PRAGMAS: list[str] = []
TUNED_PRAGMAS = ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"]

TABLE_PEERS: dict[str, Callable[[Path], Any]] = {
    "group_store": lambda root: GroupStoreTable(root, durable=False),
    "group_store durable": lambda root: GroupStoreTable(root, durable=True),
    "SQLite as seeded": lambda root: SQLiteTable(root, SEED_PRAGMAS),
    "SQLite WAL NORMAL": lambda root: SQLiteTable(root, TUNED_PRAGMAS),
}


def timed(operations: list[Callable[[], Any]]) -> float:
    """Mean seconds per operation."""
    start = time.perf_counter()
    for operation in operations:
        operation()
    return (time.perf_counter() - start) / len(operations)


def table_cells(peer: Any, rows: list[dict[str, Any]], ops: int, rng: random.Random) -> dict[str, float]:
    peer.load(rows)
    picks = [rng.choice(rows) for _ in range(ops)]
    commands = [f"command-{rng.randrange(PARTITIONS):03d}" for _ in range(max(ops // 4, 10))]
    changed = [{**row, "data": row["data"][::-1]} for row in picks]
    expected = len(rows) // PARTITIONS
    assert len(peer.find_partition(commands[0])) == expected
    assert peer.get(picks[0]["command_name"], picks[0]["data_key"]) == picks[0]
    assert len(peer.find_scan("done")) == len(rows) // len(STATUSES)
    return {
        "upsert": timed([partial(peer.upsert, r) for r in changed]),
        "get by key": timed([partial(peer.get, r["command_name"], r["data_key"]) for r in picks]),
        "find one command (100 records)": timed([partial(peer.find_partition, c) for c in commands]),
        "find on a non-key field (scan)": timed([partial(peer.find_scan, s) for s in STATUSES]),
    }


# -- Nexus peers -------------------------------------------------------------------------

TAG_SIZE = 500


def message(i: int, tag: str) -> dict[str, Any]:
    return {"id": i, "role": "user" if i % 2 else "assistant", "content": f"message {i} " + "y" * 100,
            "timestamp": "12:00:00", "session_tag": tag}  # fmt: skip


def fill_nexus_files(root: Path, tags: int) -> None:
    """The on-disk state NexusStore would leave after ``tags * 500`` appends, written in bulk."""
    store = Store(root)
    for t in range(tags):
        tag = f"tag-{t:03d}"
        store.narrow("messages").append(tag, [message(t * TAG_SIZE + i + 1, tag) for i in range(TAG_SIZE)])
    store.append("ids", [tags * TAG_SIZE])


def fill_nexus_sqlite(root: Path, tags: int) -> SQLiteNexusStore:
    store = SQLiteNexusStore(root / "nexus.db")
    rows = [message(0, f"tag-{t:03d}") for t in range(tags) for _ in range(TAG_SIZE)]
    store._conn.executemany(
        "INSERT INTO nexus_messages (role, content, timestamp, session_tag) VALUES (?, ?, ?, ?)",
        [(m["role"], m["content"], m["timestamp"], m["session_tag"]) for m in rows],
    )
    store._conn.commit()
    return store


NEXUS_PEERS = ["group_store", "group_store durable", "SQLite as seeded"]


def nexus_store(peer: str, root: Path, tags: int) -> Any:
    if peer == "SQLite as seeded":
        return fill_nexus_sqlite(root, tags)
    fill_nexus_files(root, tags)
    return NexusStore(Store(root, durable=peer.endswith("durable")))


def nexus_cells(peer: str, fresh: Callable[[], Path], ops: int, sizes: list[int]) -> dict[str, float]:
    cells: dict[str, float] = {}
    store = nexus_store(peer, fresh(), 20)
    cells["append (prunes one)"] = timed(
        [partial(store.append, "user", f"new {i}", session_tag="tag-007") for i in range(ops)]
    )
    assert store.message_count("tag-007") == TAG_SIZE
    for size in sizes:
        store = nexus_store(peer, fresh(), size // TAG_SIZE)
        assert len(store.get_history("tag-000", limit=200)) == 200
        cells[f"get_history(limit=200), {size:,} stored"] = timed(
            [partial(store.get_history, "tag-000", limit=200) for _ in range(ops)]
        )
    return cells


# -- report ----------------------------------------------------------------------------


def report(title: str, results: dict[str, list[dict[str, float]]], baselines: list[str]) -> str:
    peers = list(results)
    workloads = list(results[peers[0]][0])
    median = {p: {w: statistics.median(run[w] for run in results[p]) for w in workloads} for p in peers}
    header = ["workload", *peers, *(f"group_store / {b}" for b in baselines)]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for w in workloads:
        cells = [f"{median[p][w] * 1e6:,.0f} µs" for p in peers]
        ratios = [f"{median['group_store'][w] / median[b][w]:.2f}x" for b in baselines]
        lines.append("| " + " | ".join([w, *cells, *ratios]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--ops", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000,100000", help="total Nexus messages for get_history")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tables.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = records(args.records)
    scratch = Path(tempfile.mkdtemp(prefix="bench-tables-", dir="."))
    counter = iter(range(10**9))

    def fresh() -> Path:
        path = scratch / str(next(counter))
        path.mkdir()
        return path

    try:
        table_results: dict[str, list[dict[str, float]]] = {p: [] for p in TABLE_PEERS}
        nexus_results: dict[str, list[dict[str, float]]] = {p: [] for p in NEXUS_PEERS}
        for repeat in range(args.repeats):
            order = list(TABLE_PEERS)[repeat % 4 :] + list(TABLE_PEERS)[: repeat % 4]
            for name in order:
                table_results[name].append(
                    table_cells(TABLE_PEERS[name](fresh()), rows, args.ops, random.Random(repeat))
                )
                print(f"repeat {repeat + 1}: table {name} done", file=sys.stderr)
            for name in NEXUS_PEERS[repeat % 3 :] + NEXUS_PEERS[: repeat % 3]:
                nexus_results[name].append(nexus_cells(name, fresh, args.ops, sizes))
                print(f"repeat {repeat + 1}: nexus {name} done", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    machine = f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = "\n\n".join(
        [
            f"Machine: {machine}; {args.records:,} records, {args.ops} operations per cell, median of {args.repeats}.",
            report(
                f"Table, {args.records:,} records in {PARTITIONS} partitions (time per operation)",
                table_results,
                ["SQLite as seeded", "SQLite WAL NORMAL"],
            ),
            report("Nexus (time per operation)", nexus_results, ["SQLite as seeded"]),
        ]
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
