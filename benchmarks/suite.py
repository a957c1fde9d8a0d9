"""The side-by-side benchmark suite: every peer on every workload, in one run.

    python -m pip install -e ".[bench]" && python benchmarks/suite.py [--repeats 3] [--scale 1]

Each (peer, workload) cell runs in a fresh Python process on a fresh directory of
the same file system (under the current directory), ``--repeats`` times, the peers
taking turns; the table gives the median, the spread ((max - min) / median) and the
speed relative to the raw-loop row of the same workload (raw time / peer time: 1.00x
is the physical limit, higher is faster than it). It writes
``benchmarks/results/suite.md`` and ``benchmarks/results/suite.png``.

Workloads on 5,000 documents of about 1 KiB (an agent message):
W1 save distinct keys then flush; W2 5,000 saves of one hot key then flush (the
final value verified); W3 load distinct keys one by one; W4 append 5,000 messages
to one log; W5 read that log back; W6 TTL sweep of 100,000 entries, 10% expired;
W7 list the keys of a 10,000-entry namespace; W8 1,000 durable (fsynced) saves;
W9 peak memory (RSS growth) of 100,000 fire-and-forget saves over 1,000 keys.
TinyDB is quadratic, so it runs on 500 documents (marked ``n=500``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

DOCUMENTS = 5000
TINY_DOCUMENTS = 500
W6_ENTRIES = 100_000
EXPIRED_EVERY = 10
"""W6: one entry in this many has expired (10%, as issue #14 measures)."""
W7_ENTRIES = 10_000
W8_DOCUMENTS = 1000
W9_SAVES, W9_KEYS = 100_000, 1000
WORKLOADS = {
    "W1": "save distinct keys + flush",
    "W2": "save one hot key + flush",
    "W3": "load distinct keys",
    "W4": "append to one log",
    "W5": "read the log back",
    "W6": "TTL sweep, 10% expired",
    "W7": "list keys of a namespace",
    "W8": "durable saves (fsync)",
    "W9": "peak memory, fire-and-forget",
}


def documents(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"msg-{i:06d}",
            "role": "assistant" if i % 2 else "user",
            "content": ("The agent considered the request and answered at length. " * 15)[: 820 + i % 7],
            "tool_calls": [{"id": f"call-{i}", "name": "search", "arguments": {"query": f"q{i}", "limit": 10}}],
            "metadata": {"session": "s-1", "turn": i, "tokens": 187 + i % 50},
        }
        for i in range(count)
    ]


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


# -- peers: each method is one workload; prepare_* runs untimed first -----------------------


class Raw:
    """The plainest loop of system calls doing the same work."""

    name = "raw loop"

    def __init__(self, root: Path, scale: float) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _write(self, name: str, data: bytes, durable: bool = False) -> None:
        temp = self.root / f".{name}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, data)
        if durable:
            os.fsync(fd)
        os.close(fd)
        os.replace(temp, self.root / name)
        if durable:
            directory = os.open(self.root, os.O_RDONLY)
            os.fsync(directory)
            os.close(directory)

    def w1(self, docs: list[Any]) -> None:
        for i, doc in enumerate(docs):
            self._write(f"k{i}.json", dumps(doc))

    def w2(self, docs: list[Any]) -> None:
        for doc in docs:
            self._write("hot.json", dumps(doc))
        assert orjson.loads((self.root / "hot.json").read_bytes()) == docs[-1]

    # Each peer loads and reads back what its own W1 and W4 wrote.
    def prepare_w3(self, docs: list[Any]) -> None:
        self.w1(docs)

    def w3(self, docs: list[Any]) -> None:
        for i in range(len(docs)):
            fd = os.open(self.root / f"k{i}.json", os.O_RDONLY)
            data = os.read(fd, 1 << 20)
            os.close(fd)
            orjson.loads(data)

    def w4(self, docs: list[Any]) -> None:
        fd = os.open(self.root / "log.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        for doc in docs:
            os.write(fd, dumps(doc) + b"\n")
        os.close(fd)

    def prepare_w5(self, docs: list[Any]) -> None:
        self.w4(docs)

    def w5(self, docs: list[Any]) -> None:
        items = [orjson.loads(line) for line in (self.root / "log.jsonl").read_bytes().splitlines()]
        assert len(items) == len(docs)

    def prepare_w6(self, docs: list[Any]) -> None:
        build_ttl_store(self.root, self.entries_w6)

    def w6(self, docs: list[Any]) -> None:
        # Read every sidecar; delete the expired entries.
        now = time.time()
        removed = 0
        for name in os.listdir(self.root):
            if name.endswith(".meta.json"):
                sidecar = orjson.loads((self.root / name).read_bytes())
                expiry = next(iter(sidecar["expires_at"].values()))
                if expiry is not None and datetime_timestamp(expiry) <= now:
                    os.unlink(self.root / (name[: -len(".meta.json")] + ".json"))
                    os.unlink(self.root / name)
                    removed += 1
        assert removed == self.entries_w6 // EXPIRED_EVERY

    def prepare_w7(self, docs: list[Any]) -> None:
        # b"{}\n" is also group_store's canonical file for {}: both list the same directory.
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(W7_ENTRIES):
            (self.root / f"k{i}.json").write_bytes(b"{}\n")

    def w7(self, docs: list[Any]) -> None:
        assert len(os.listdir(self.root)) >= W7_ENTRIES

    def w8(self, docs: list[Any]) -> None:
        for i, doc in enumerate(docs[:W8_DOCUMENTS]):
            self._write(f"k{i}.json", dumps(doc), durable=True)

    def w9(self, docs: list[Any]) -> None:
        for i in range(W9_SAVES):
            self._write(f"k{i % W9_KEYS}.json", dumps(docs[i % len(docs)]))

    @property
    def entries_w6(self) -> int:
        return int(os.environ.get("SUITE_W6_ENTRIES", W6_ENTRIES))


def datetime_timestamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def build_ttl_store(root: Path, entries: int) -> None:
    """``entries`` TTL entries in group_store's format, one in ``EXPIRED_EVERY`` expired (written through Store)."""
    from group_store import Store

    store = Store(root)
    for i in range(entries):
        store.save(f"k{i}", {"i": i}, ttl=0 if i % EXPIRED_EVERY == 0 else 3600)


class GroupStore(Raw):
    name = "group_store"

    def __init__(self, root: Path, scale: float) -> None:
        from group_store import DataStore

        self.root = root
        self.store = DataStore(root)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run(coroutine)

    def w1(self, docs: list[Any]) -> None:
        async def go() -> None:
            for i, doc in enumerate(docs):
                self.store.save(f"k{i}", doc)
            await self.store.flush()

        self._run(go())

    def w2(self, docs: list[Any]) -> None:
        async def go() -> None:
            for doc in docs:
                self.store.save("hot", doc)
            await self.store.flush()
            assert await self.store.load("hot") == docs[-1]

        self._run(go())

    def w3(self, docs: list[Any]) -> None:
        async def go() -> None:
            for i in range(len(docs)):
                await self.store.load(f"k{i}")

        self._run(go())

    def w4(self, docs: list[Any]) -> None:
        async def go() -> None:
            for doc in docs:
                self.store.append("log", [doc])
            await self.store.flush()

        self._run(go())

    def w5(self, docs: list[Any]) -> None:
        async def go() -> None:
            assert len(await self.store.read("log")) == len(docs)

        self._run(go())

    def w6(self, docs: list[Any]) -> None:
        async def go() -> None:
            assert await self.store.sweep() == self.entries_w6 // EXPIRED_EVERY

        self._run(go())

    def w7(self, docs: list[Any]) -> None:
        async def go() -> None:
            assert len(await self.store.keys()) == W7_ENTRIES

        self._run(go())

    def w8(self, docs: list[Any]) -> None:
        from group_store import DataStore

        async def go() -> None:
            async with DataStore(self.root / "durable", durable=True) as store:
                for i, doc in enumerate(docs[:W8_DOCUMENTS]):
                    store.save(f"k{i}", doc)
                await store.flush()

        self._run(go())

    def w9(self, docs: list[Any]) -> None:
        async def go() -> None:
            for i in range(W9_SAVES):
                self.store.save(f"k{i % W9_KEYS}", docs[i % len(docs)])
            await self.store.flush()

        self._run(go())


class Sqlite(Raw):
    name = "SQLite WAL"
    synchronous = "NORMAL"

    def __init__(self, root: Path, scale: float) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.db = sqlite3.connect(root / "store.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={self.synchronous}")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT, expires_at REAL)")
        self.db.execute("CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at)")
        self.db.execute("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, value TEXT)")

    def _put(self, key: str, doc: Any, expires: float | None = None) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (key, dumps(doc).decode(), expires))

    def w1(self, docs: list[Any]) -> None:
        for i, doc in enumerate(docs):
            self._put(f"k{i}", doc)

    def w2(self, docs: list[Any]) -> None:
        for doc in docs:
            self._put("hot", doc)
        (value,) = self.db.execute("SELECT value FROM kv WHERE key='hot'").fetchone()
        assert orjson.loads(value) == docs[-1]

    def w3(self, docs: list[Any]) -> None:
        for i in range(len(docs)):
            (value,) = self.db.execute("SELECT value FROM kv WHERE key=?", (f"k{i}",)).fetchone()
            orjson.loads(value)

    def w4(self, docs: list[Any]) -> None:
        for doc in docs:
            self.db.execute("INSERT INTO log (value) VALUES (?)", (dumps(doc).decode(),))

    def w5(self, docs: list[Any]) -> None:
        items = [orjson.loads(v) for (v,) in self.db.execute("SELECT value FROM log ORDER BY id")]
        assert len(items) == len(docs)

    def prepare_w6(self, docs: list[Any]) -> None:
        now = time.time()
        self.db.execute("BEGIN")
        for i in range(self.entries_w6):
            self._put(f"k{i}", {"i": i}, now - 1 if i % EXPIRED_EVERY == 0 else now + 3600)
        self.db.execute("COMMIT")

    def w6(self, docs: list[Any]) -> None:
        removed = self.db.execute("DELETE FROM kv WHERE expires_at <= ?", (time.time(),)).rowcount
        assert removed == self.entries_w6 // EXPIRED_EVERY

    def prepare_w7(self, docs: list[Any]) -> None:
        self.db.execute("BEGIN")
        for i in range(W7_ENTRIES):
            self._put(f"k{i}", {})
        self.db.execute("COMMIT")

    def w7(self, docs: list[Any]) -> None:
        assert len(self.db.execute("SELECT key FROM kv").fetchall()) == W7_ENTRIES

    def w9(self, docs: list[Any]) -> None:
        for i in range(W9_SAVES):
            self._put(f"k{i % W9_KEYS}", docs[i % len(docs)])


class SqliteFull(Sqlite):
    name = "SQLite FULL"
    synchronous = "FULL"

    def w8(self, docs: list[Any]) -> None:
        for i, doc in enumerate(docs[:W8_DOCUMENTS]):
            self._put(f"k{i}", doc)


class DiskCache(Raw):
    name = "diskcache"

    def __init__(self, root: Path, scale: float) -> None:
        import diskcache

        self.root = root
        # cull_limit=0: no expired items are removed as a side effect of set(), so W6 measures expire().
        self.cache = diskcache.Cache(str(root), cull_limit=0)
        self.deque = diskcache.Deque(directory=str(root / "deque"))
        self.diskcache = diskcache

    def w1(self, docs: list[Any]) -> None:
        for i, doc in enumerate(docs):
            self.cache[f"k{i}"] = doc

    def w2(self, docs: list[Any]) -> None:
        for doc in docs:
            self.cache["hot"] = doc
        assert self.cache["hot"] == docs[-1]

    def w3(self, docs: list[Any]) -> None:
        for i in range(len(docs)):
            self.cache[f"k{i}"]

    def w4(self, docs: list[Any]) -> None:
        for doc in docs:
            self.deque.append(doc)

    def w5(self, docs: list[Any]) -> None:
        assert len(list(self.deque)) == len(docs)

    def prepare_w6(self, docs: list[Any]) -> None:
        for i in range(self.entries_w6):
            self.cache.set(f"k{i}", {"i": i}, expire=0.001 if i % EXPIRED_EVERY == 0 else 3600)
        time.sleep(0.01)

    def w6(self, docs: list[Any]) -> None:
        assert self.cache.expire() == self.entries_w6 // EXPIRED_EVERY

    def prepare_w7(self, docs: list[Any]) -> None:
        for i in range(W7_ENTRIES):
            self.cache[f"k{i}"] = {}

    def w7(self, docs: list[Any]) -> None:
        assert len(list(self.cache.iterkeys())) == W7_ENTRIES

    def w9(self, docs: list[Any]) -> None:
        for i in range(W9_SAVES):
            self.cache[f"k{i % W9_KEYS}"] = docs[i % len(docs)]


class Tiny(Raw):
    name = "TinyDB (n=500)"

    def __init__(self, root: Path, scale: float) -> None:
        from tinydb import Query, TinyDB

        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.db = TinyDB(root / "db.json")
        self.query = Query()

    def w1(self, docs: list[Any]) -> None:
        for i, doc in enumerate(docs[:TINY_DOCUMENTS]):
            self.db.insert({"key": f"k{i}", "value": doc})

    def w2(self, docs: list[Any]) -> None:
        for doc in docs[:TINY_DOCUMENTS]:
            self.db.upsert({"key": "hot", "value": doc}, self.query.key == "hot")

    def prepare_w3(self, docs: list[Any]) -> None:
        self.db.insert_multiple({"key": f"k{i}", "value": doc} for i, doc in enumerate(docs[:TINY_DOCUMENTS]))

    def w3(self, docs: list[Any]) -> None:
        for i in range(TINY_DOCUMENTS):
            self.db.get(self.query.key == f"k{i}")

    def w4(self, docs: list[Any]) -> None:
        for doc in docs[:TINY_DOCUMENTS]:
            self.db.insert(doc)

    def prepare_w5(self, docs: list[Any]) -> None:
        self.db.insert_multiple(docs[:TINY_DOCUMENTS])

    def w5(self, docs: list[Any]) -> None:
        assert len(self.db.all()) == TINY_DOCUMENTS


class Genie(Raw):
    name = "group-genie 0.0.2"
    version = "0.0.2"

    def __init__(self, root: Path, scale: float) -> None:
        sys.path.insert(0, os.environ[f"SUITE_GENIE_{self.version.replace('.', '_')}"])
        from group_genie.datastore import DataStore

        self.root = root
        self.cls = DataStore

    def _run(self, work: Callable[[Any], Any]) -> None:
        async def go() -> None:
            store = self.cls(root_path=self.root)
            await work(store)
            await store.__aexit__(None, None, None)

        asyncio.run(go())

    def w1(self, docs: list[Any]) -> None:
        async def work(store: Any) -> None:
            await asyncio.gather(*(store.save(f"k{i}", doc) for i, doc in enumerate(docs)))

        self._run(work)

    def w2(self, docs: list[Any]) -> None:
        async def work(store: Any) -> None:
            await asyncio.gather(*(store.save("hot", doc) for doc in docs))
            assert await store.load("hot") == docs[-1]

        self._run(work)

    def w3(self, docs: list[Any]) -> None:
        async def work(store: Any) -> None:
            for i in range(len(docs)):
                await store.load(f"k{i}")

        self._run(work)

    def w9(self, docs: list[Any]) -> None:
        async def work(store: Any) -> None:
            await asyncio.gather(*(store.save(f"k{i % W9_KEYS}", docs[i % len(docs)]) for i in range(W9_SAVES)))

        self._run(work)


class Genie4(Genie):
    name = "group-genie 0.0.4"
    version = "0.0.4"

    def w4(self, docs: list[Any]) -> None:
        async def work(store: Any) -> None:
            await asyncio.gather(*(store.append("log", [doc]) for doc in docs))

        self._run(work)

    def w5(self, docs: list[Any]) -> None:
        async def work(store: Any) -> None:
            assert len(await store.load("log")) == len(docs)

        self._run(work)


PEERS: dict[str, type[Raw]] = {
    "raw": Raw,
    "sqlite-wal": Sqlite,
    "sqlite-full": SqliteFull,
    "diskcache": DiskCache,
    "tinydb": Tiny,
    "genie-0.0.2": Genie,
    "genie-0.0.4": Genie4,
    "group_store": GroupStore,
}
SUPPORTS: dict[str, set[str]] = {
    "raw": {"W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9"},
    "sqlite-wal": {"W1", "W2", "W3", "W4", "W5", "W6", "W7", "W9"},
    "sqlite-full": {"W8"},
    "diskcache": {"W1", "W2", "W3", "W4", "W5", "W6", "W7", "W9"},
    "tinydb": {"W1", "W2", "W3", "W4", "W5"},
    "genie-0.0.2": {"W1", "W2", "W3", "W9"},
    "genie-0.0.4": {"W4", "W5"},
    "group_store": {"W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9"},
}


def run_cell(peer_name: str, workload: str, root: Path) -> dict[str, float]:
    """Inside the fresh process: prepare, then time one workload."""
    docs = documents(DOCUMENTS)
    peer = PEERS[peer_name](root, 1.0)
    prepare = getattr(peer, f"prepare_{workload.lower()}", None)
    if prepare is not None:
        prepare(docs)
    os.sync()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    getattr(peer, workload.lower())(docs)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "rss_growth_kib": max(peak - baseline, 0)}


def install_genie(version: str) -> str:
    target = tempfile.mkdtemp(prefix=f"genie-{version}-")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, f"group-genie=={version}"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--heavy-repeats",
        type=int,
        default=1,
        help="Repeats for W6 and W9, whose setup or run writes 100,000 entries (default 1).",
    )
    parser.add_argument("--only", default="", help="Comma-separated workloads (W1,W4,...); default all.")
    parser.add_argument("--w6-entries", type=int, default=W6_ENTRIES)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--cell", nargs=3, metavar=("PEER", "WORKLOAD", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        print(json.dumps(run_cell(args.cell[0], args.cell[1], Path(args.cell[2]))))
        return

    env = dict(os.environ, SUITE_W6_ENTRIES=str(args.w6_entries))
    env["SUITE_GENIE_0_0_2"] = install_genie("0.0.2")
    env["SUITE_GENIE_0_0_4"] = install_genie("0.0.4")
    workloads = [w for w in WORKLOADS if not args.only or w in args.only.split(",")]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for workload in workloads:
        peers = [p for p in PEERS if workload in SUPPORTS[p]]
        repeats = args.heavy_repeats if workload in {"W6", "W9"} else args.repeats
        for repeat in range(repeats):
            shift = repeat % len(peers)
            for peer in peers[shift:] + peers[:shift]:
                with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix="suite-") as directory:
                    output = subprocess.run(
                        [sys.executable, __file__, "--cell", peer, workload, str(Path(directory) / "store")],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                if output.returncode != 0:
                    raise SystemExit(f"{peer} {workload} failed:\n{output.stderr}")
                results.setdefault((peer, workload), []).append(json.loads(output.stdout))
                print(f"{workload} {peer}: {results[(peer, workload)][-1]}", file=sys.stderr)
    report(results, workloads, args)


def report(results: dict[tuple[str, str], list[dict[str, float]]], workloads: list[str], args: Any) -> None:
    lines = [
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"median of {args.repeats} runs ({args.heavy_repeats} for W6 and W9), each cell in a fresh process; "
        f"W6 on {args.w6_entries:,} entries.",
        "",
        "| workload | " + " | ".join(PEERS[p].name for p in PEERS) + " |",
        "|---|" + "---|" * len(PEERS),
    ]
    ratios: dict[str, dict[str, float]] = {}
    for workload in workloads:
        metric = "rss_growth_kib" if workload == "W9" else "seconds"
        raw = results.get(("raw", workload))
        raw_median = statistics.median(r[metric] for r in raw) if raw else None
        cells = []
        for peer in PEERS:
            runs = results.get((peer, workload))
            if not runs:
                cells.append("-")
                continue
            values = [r[metric] for r in runs]
            median = statistics.median(values)
            spread = (max(values) - min(values)) / median * 100 if median else 0.0
            if workload == "W9":
                cells.append(f"{median / 1024:.1f} MiB")
                continue
            ratio = raw_median / median if raw_median and median else 0.0
            ratios.setdefault(workload, {})[PEERS[peer].name] = ratio
            cells.append(f"{median * 1000:.0f} ms ±{spread:.0f}% ({ratio:.2f}x raw)")
        lines.append(f"| {workload} {WORKLOADS[workload]} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "suite.md").write_text(text)
    chart(ratios, args.out / "suite.png")


def chart(ratios: dict[str, dict[str, float]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'group-store[bench]'): no chart", file=sys.stderr)
        return
    workloads = list(ratios)
    peers = [PEERS[p].name for p in PEERS]
    figure, axes = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(peers)
    for index, peer in enumerate(peers):
        values = [ratios[w].get(peer, 0.0) for w in workloads]
        axes.bar([x + index * width for x in range(len(workloads))], values, width, label=peer)
    axes.set_xticks([x + 0.4 - width / 2 for x in range(len(workloads))], workloads)
    axes.set_yscale("log")
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_ylabel("speed relative to the raw loop (log scale, higher is faster)")
    axes.legend(fontsize=8, ncol=4)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
