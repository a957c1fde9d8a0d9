"""The figures issue #14 asks for that ``suite.py`` does not give, each beside its baseline in one run.

    python benchmarks/bench_perf.py [--scale 1.0] [--repeats 3] [--only save,ttl-keys,...]
    python benchmarks/bench_perf.py --profile save|load|append|async-save|keys|keys-ttl|sweep

It benchmarks the group_store of the checkout it lives in (its parent directory
goes first on ``sys.path`` and on every child's ``PYTHONPATH``). Every timed loop
runs in a fresh Python process on directories of the current file system, the
peers taking turns within each repeat; a figure is the median over ``--repeats``
runs, ``±`` its spread ((max - min) / median). Before its loop a group_store child
does one untimed save, TTL save, load, keys, append, read and sweep on a separate
small store, so the loop pays no first-use imports (section 5 measures those) and
warms no cache of the directory it times. Directories of 10,000 and 100,000
entries are built once per run (each build is itself timed: the save figures of
section 6) and reused by every repeat and section that reads them. Documents are
``suite.documents`` (~1 KiB agent messages). Sections (``--only`` takes the name
or the number); sizes scale with ``--scale`` (0.1 for a quick run):

1. save      sync ``Store.save``, 5,000 distinct keys, vs the raw create/write/rename loop
2. ttl-keys  ``Store.keys()`` of 10,000 entries all saved with ``ttl=3600`` vs none; ``os.listdir`` of each
3. sweep     ``Store.sweep()`` of 100,000 entries (ttl=3600, nothing due) in 100 ``narrow``ed
             directories vs a bare ``os.listdir`` of those directories
4. table     ``Table.upsert`` one by one (200: half existing keys, half new) at 1,000 / 10,000 /
             100,000 records (filled by ``upsert_many``; 64 shards) vs a SQLite WAL table
5. import    ``import X`` timed inside a fresh interpreter (median of >= 7), and the first ``await``
             of a ``DataStore`` (``asyncio.run`` of one ``load`` of a missing key minus that of an
             empty coroutine)
6. scaling   save, load, keys and sweep per op at 1k / 10k / 100k entries, in one directory and
             over 100 directories
7. syscalls  ``strace -f -c`` of a child doing 2,000 operations minus the same child doing none,
             per operation by name, beside the raw loop's

``--profile OP`` prints cProfile's top 20 functions by own time for one loop of OP
(5,000 operations, or one ``keys()``/``sweep()`` of 10,000 entries; the DataStore's
writer threads included) and writes nothing. The default run writes
``benchmarks/results/perf.md``; a run with ``--only`` writes only to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from suite import Raw, documents, dumps  # noqa: E402  (the same documents and raw loop as the suite)

if TYPE_CHECKING:
    from group_store import Store

DIRECTORIES = 100
TTL = 3600
SECTIONS = {
    "save": "1. sync Store.save, distinct keys",
    "ttl-keys": "2. keys() on a TTL directory vs a plain one",
    "sweep": "3. sweep, nothing due",
    "table": "4. Table upsert one by one",
    "import": "5. import time over a bare interpreter",
    "scaling": "6. scaling",
    "syscalls": "7. syscalls per operation",
}
# What each section's table measures, printed under it.
NOTES = {
    "save": (
        "Documents of ~1 KiB (`suite.documents`); the raw loop is `suite.Raw._write` (a temp file created, "
        "written, closed and renamed over the name). Per save: the loop's time / its count."
    ),
    "ttl-keys": (
        "Both directories hold the same ~1 KiB documents, saved through `Store.save`, one directory with "
        "`ttl=3600`. `keys()` is timed once per fresh process, after a warm-up on "
        "another store."
    ),
    "sweep": (
        'Built once (`Store.narrow(f"d{j}").save(..., ttl=3600)`, entries dealt round-robin over the '
        "directories), swept in a fresh process each repeat; every sweep asserts it removed nothing."
    ),
    "table": (
        "Table `records` with fields `id`, `data`, `status` (key `id`, no partitions: 64 shards); records of "
        "~250 B. Each repeat is a fresh process that reads the whole table once untimed (`count()`), then "
        "times the upserts, alternately a random existing key (changed data) and a new key. The SQLite peer: "
        "WAL, `synchronous=NORMAL`, the record as JSON text with the table's times, `INSERT ... ON CONFLICT "
        "DO UPDATE` and a commit per upsert, as in `bench_tables.py`. Fill: one call, timed once."
    ),
    "import": (
        "Each figure is `t = time.perf_counter(); <statement>; print(time.perf_counter() - t)` inside a fresh"
        " `python -c`, the statements taking turns; interpreter start-up is outside it. The await rows run in"
        " one fresh interpreter per row and repeat (after `from group_store import DataStore`): the time of "
        "`asyncio.run` of one operation on a fresh DataStore minus the median `asyncio.run` of an empty "
        "coroutine."
    ),
    "scaling": (
        "Per op: save = the build's saves / n (one build per size at the largest size, so no spread there; "
        "`repeats` builds below it); load = loading every key once / n; keys = `keys()` of each directory / "
        "n; sweep = `Store.sweep()` of the whole store / n, nothing due. Entries are dealt round-robin over "
        "the directories. A flat row means linear total cost."
    ),
    "syscalls": (
        "Counted by `strace -f -c` (all threads) over a child doing the operations minus the same child doing"
        " none (same imports, warm-up and setup, the same asyncio.run); `(errors)`: calls that failed (ENOENT"
        " probes, for instance). The raw loop is the suite's: its load reads into a 1 MiB buffer "
        "(`os.read(fd, 1 << 20)`, hence its `mmap`/`mremap`/`munmap`), its appends keep one descriptor open. "
        "keys: one `keys()` / `os.listdir` of the directory, divided by its entries."
    ),
}
PROFILE_OPS = ("save", "load", "append", "async-save", "keys", "keys-ttl", "sweep")
SYSCALL_OPS = {
    "save": "sync save, distinct keys",
    "load": "load",
    "append": "append to one log",
    "async-save": "DataStore save + flush, distinct keys",
    "keys": "keys() of the directory, per key",
}


# -- formatting -------------------------------------------------------------------------


def duration(seconds: float) -> str:
    # The thresholds sit where three significant digits would round up to the next unit.
    if abs(seconds) >= 0.9995:
        return f"{seconds:.2f} s"
    if abs(seconds) >= 0.9995e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    middle = median(values)
    return f"±{(max(values) - min(values)) / abs(middle) * 100:.0f}%" if middle and len(values) > 1 else ""


def figure(values: list[float], per: int = 1) -> str:
    """The median per operation and the spread, e.g. ``120 µs ±8%``."""
    return f"{duration(median(values) / per)} {spread(values)}".strip()


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def count(n: int) -> str:
    return f"{n / 1000:g}k" if n >= 1000 and n % 100 == 0 else str(n)


# -- the child process: one measurement, printed as JSON ------------------------------------


def warm_up(scratch: str) -> None:
    """Every store operation once on a separate small store: first-use imports paid, no cache warmed."""
    from group_store import Store

    path = Path(tempfile.mkdtemp(dir=scratch, prefix="warm-"))
    store = Store(path)
    store.save("a", {"x": 1})
    store.save("b", {"x": 1}, ttl=TTL)
    store.narrow("d").save("c", {"x": 1})
    store.load("a")
    store.keys()
    store.append("log", [{"x": 1}])
    store.read("log")
    store.sweep()
    shutil.rmtree(path)


def views(store: Store, layout: str) -> list[Store]:
    """The directories a layout uses: the store itself, or 100 narrowed views of it."""
    return [store] if layout == "one" else [store.narrow(f"d{j}") for j in range(DIRECTORIES)]


def directories(root: str, layout: str) -> list[str]:
    from group_store import Store

    store = Store(root)
    paths = [store.root_path] if layout == "one" else [store.narrow_path(f"d{j}") for j in range(DIRECTORIES)]
    return [str(p) for p in paths if p is not None]


@contextmanager
def stopwatch(result: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    result["seconds"] = time.perf_counter() - start


def task_save(p: dict[str, Any]) -> dict[str, float]:
    docs = documents(p["n"])
    result: dict[str, float] = {}
    if p["peer"] == "raw":
        raw = Raw(Path(p["root"]), 1.0)
        raw._write("warm.json", b"{}")
        with stopwatch(result):
            for i, doc in enumerate(docs):
                raw._write(f"k{i}.json", dumps(doc))
        return result
    from group_store import Store

    warm_up(p["scratch"])
    store = Store(p["root"])
    with stopwatch(result):
        for i, doc in enumerate(docs):
            store.save(f"k{i}", doc)
    return result


def task_build(p: dict[str, Any]) -> dict[str, float]:
    """``n`` entries (``ttl=3600`` for kind ttl) in one directory or over 100; the saves timed."""
    from group_store import Store

    warm_up(p["scratch"])
    docs = documents(min(p["n"], 1000))
    result: dict[str, float] = {}
    places = views(Store(p["root"]), p["layout"])
    ttl = TTL if p["kind"] == "ttl" else None
    with stopwatch(result):
        for i in range(p["n"]):
            places[i % len(places)].save(f"k{i}", docs[i % len(docs)], ttl=ttl)
    return result


def task_load(p: dict[str, Any]) -> dict[str, float]:
    from group_store import Store

    warm_up(p["scratch"])
    places = views(Store(p["root"]), p["layout"])
    result: dict[str, float] = {}
    with stopwatch(result):
        for i in range(p["n"]):
            places[i % len(places)].load(f"k{i}")
    return result


def task_keys(p: dict[str, Any]) -> dict[str, float]:
    result: dict[str, float] = {}
    if p["how"] == "listdir":
        paths = directories(p["root"], p["layout"])
        with stopwatch(result):
            found = sum(len(os.listdir(path)) for path in paths)
        assert found >= p["n"]
        return result
    from group_store import Store

    warm_up(p["scratch"])
    places = views(Store(p["root"]), p["layout"])
    with stopwatch(result):
        found = sum(len(place.keys()) for place in places)
    assert found == p["n"], (found, p["n"])
    return result


def task_sweep(p: dict[str, Any]) -> dict[str, float]:
    result: dict[str, float] = {}
    if p["how"] == "listdir":
        paths = directories(p["root"], p["layout"])
        with stopwatch(result):
            for path in paths:
                os.listdir(path)
        return result
    from group_store import Store

    warm_up(p["scratch"])
    store = Store(p["root"])
    with stopwatch(result):
        removed = store.sweep()
    assert removed == 0, removed
    return result


# -- Table peers (child side) -------------------------------------------------------------

TABLE_FIELDS = ("id", "data", "status")


def table_record(i: int | str, variant: int = 0) -> dict[str, Any]:
    """~250 B, like bench_tables' records."""
    return {"id": f"r{i:07d}" if isinstance(i, int) else i, "data": f"{variant}:" + "x" * 200, "status": "open"}


class StoreTable:
    def __init__(self, root: str) -> None:
        from group_store import Store, Table

        self.table = Table(Store(root), "records", fields=TABLE_FIELDS, key=("id",))

    def fill(self, rows: list[dict[str, Any]]) -> None:
        self.table.upsert_many(rows)

    def count(self) -> int:
        return self.table.count()

    def upsert(self, row: dict[str, Any]) -> None:
        self.table.upsert(row)


class SqliteTable:
    """WAL, synchronous=NORMAL; the record as JSON with the table's times, the upsert of bench_tables.py."""

    def __init__(self, root: str) -> None:
        Path(root).mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(Path(root) / "table.db"))
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, record TEXT NOT NULL, "
            "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, expires_at TEXT)"
        )

    def fill(self, rows: list[dict[str, Any]]) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.conn.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?, NULL)", [(r["id"], dumps(r).decode(), now, now) for r in rows]
        )
        self.conn.commit()

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM records").fetchone()[0])

    def upsert(self, row: dict[str, Any]) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.conn.execute(
            "INSERT INTO records VALUES (?, ?, ?, ?, NULL) ON CONFLICT (id) "
            "DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at, expires_at = NULL",
            (row["id"], dumps(row).decode(), now, now),
        )
        self.conn.commit()


def open_table(peer: str, root: str) -> StoreTable | SqliteTable:
    return StoreTable(root) if peer == "group_store" else SqliteTable(root)


def task_table_fill(p: dict[str, Any]) -> dict[str, float]:
    peer = open_table(p["peer"], p["root"])
    result: dict[str, float] = {}
    rows = [table_record(i) for i in range(p["n"])]
    with stopwatch(result):
        peer.fill(rows)
    return result


def task_table_upsert(p: dict[str, Any]) -> dict[str, float]:
    """``ops`` single upserts, alternately a random existing key and a new one; seconds per upsert."""
    if p["peer"] == "group_store":
        warm_up(p["scratch"])
    peer = open_table(p["peer"], p["root"])
    result: dict[str, float] = {}
    assert peer.count() >= p["n"]  # the untimed warm-up: both peers read their whole table once
    rng = random.Random(p["tag"])
    rows = [
        table_record(f"new-{p['tag']}-{k}") if k % 2 else table_record(rng.randrange(p["n"]), variant=k)
        for k in range(p["ops"])
    ]
    with stopwatch(result):
        for row in rows:
            peer.upsert(row)
    result["seconds"] /= p["ops"]
    return result


# -- syscall workloads (child side): the same code with count=0 is the baseline -------------

Workload = tuple[Callable[[int], object], Callable[[], object]]


def warm_up_async(scratch: str) -> None:
    """A save, flush and load on a separate DataStore: its first-use imports (the anyio backend) paid."""
    from group_store import DataStore

    async def go() -> None:
        async with DataStore(tempfile.mkdtemp(dir=scratch, prefix="warm-async-")) as store:
            store.save("a", {"x": 1})
            await store.flush()
            await store.load("a")

    asyncio.run(go())


def syscall_workload(peer: str, op: str, root: str, n: int, scratch: str) -> Workload:
    """Set up ``op`` (identically for any count) and return ``(run(count), finish())``."""
    docs = documents(n)
    if peer == "raw":
        return raw_workload(op, Path(root), docs)
    if op == "async-save":
        return async_workload(root, docs, scratch)
    from group_store import Store

    warm_up(scratch)
    store = Store(root)
    if op in {"load", "keys"}:
        for i, doc in enumerate(docs):
            store.save(f"k{i}", doc)

    def save(count: int) -> None:
        for i in range(count):
            store.save(f"k{i}", docs[i])

    def load(count: int) -> None:
        for i in range(count):
            store.load(f"k{i}")

    def append(count: int) -> None:
        for i in range(count):
            store.append("log", [docs[i]])

    def keys(count: int) -> None:
        if count:
            store.keys()

    return {"save": save, "load": load, "append": append, "keys": keys}[op], store.close


def async_workload(root: str, docs: list[Any], scratch: str) -> Workload:
    from group_store import DataStore

    warm_up(scratch)
    warm_up_async(scratch)
    store = DataStore(root)

    async def go(count: int) -> None:
        for i in range(count):
            store.save(f"k{i}", docs[i])
        await store.flush()

    return (lambda count: asyncio.run(go(count))), (lambda: asyncio.run(store.aclose()))


def raw_workload(op: str, root: Path, docs: list[Any]) -> Workload:
    """The suite's raw loop for each operation (one log descriptor kept open, as its W4)."""
    raw = Raw(root, 1.0)
    if op in {"load", "keys"}:
        for i, doc in enumerate(docs):
            raw._write(f"k{i}.json", dumps(doc))
    log = os.open(root / "log.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def save(count: int) -> None:
        for i in range(count):
            raw._write(f"k{i}.json", dumps(docs[i]))

    def load(count: int) -> None:
        for i in range(count):
            fd = os.open(root / f"k{i}.json", os.O_RDONLY)
            data = os.read(fd, 1 << 20)
            os.close(fd)
            orjson.loads(data)

    def append(count: int) -> None:
        for i in range(count):
            os.write(log, dumps(docs[i]) + b"\n")

    def keys(count: int) -> None:
        if count:
            os.listdir(root)

    runs = {"save": save, "async-save": save, "load": load, "append": append, "keys": keys}
    return runs[op], lambda: os.close(log)


def task_syscalls(p: dict[str, Any]) -> dict[str, float]:
    run, finish = syscall_workload(p["peer"], p["op"], p["root"], p["n"], p["scratch"])
    run(p["count"])
    finish()
    return {}


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, float]]] = {
    "save": task_save,
    "build": task_build,
    "load": task_load,
    "keys": task_keys,
    "sweep": task_sweep,
    "table-fill": task_table_fill,
    "table-upsert": task_table_upsert,
    "syscalls": task_syscalls,
}


# -- the parent: runs children, keeps the built directories ---------------------------------


class Runner:
    def __init__(self, scratch: Path, repeats: int) -> None:
        self.scratch = scratch
        self.repeats = repeats
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        self.built: dict[tuple[str, str, int], Path] = {}
        self.build_seconds: dict[tuple[str, str, int], list[float]] = {}
        self.counter = 0

    def fresh(self) -> Path:
        self.counter += 1
        path = self.scratch / f"c{self.counter}"
        path.mkdir()
        return path

    def child(self, task: str, prefix: list[str] | None = None, **params: Any) -> dict[str, float]:
        spec = json.dumps({"task": task, "scratch": str(self.scratch), **params})
        command = [*(prefix or []), sys.executable, str(Path(__file__).resolve()), "--child", spec]
        output = subprocess.run(command, env=self.env, capture_output=True, text=True, check=False)
        if output.returncode != 0:
            raise SystemExit(f"child {task} {params} failed:\n{output.stderr}")
        return json.loads(output.stdout.splitlines()[-1]) if output.stdout.strip() else {}

    def turns(self, cells: dict[str, Callable[[int], float]]) -> dict[str, list[float]]:
        """Each cell ``repeats`` times, the cells taking turns (the order rotates each repeat)."""
        names = list(cells)
        results: dict[str, list[float]] = {name: [] for name in cells}
        for repeat in range(self.repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                results[name].append(cells[name](repeat))
        return results

    def build(self, kind: str, layout: str, n: int, runs: int = 1) -> Path:
        """The store of ``n`` entries of this kind and layout, built (and timed) ``runs`` times at least."""
        key = (kind, layout, n)
        while len(self.build_seconds.setdefault(key, [])) < runs:
            root = self.fresh() / "store"
            seconds = self.child("build", kind=kind, layout=layout, n=n, root=str(root))["seconds"]
            if key in self.built:
                shutil.rmtree(self.built[key].parent)
            self.built[key] = root
            self.build_seconds[key].append(seconds)
            progress(f"built {kind} {layout} {n:,}: {duration(seconds / n)} per save")
        return self.built[key]


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- sections -------------------------------------------------------------------------------


def section_save(run: Runner, scale: float) -> str:
    n = max(100, round(5000 * scale))

    def cell(peer: str) -> Callable[[int], float]:
        return lambda _: run.child("save", peer=peer, n=n, root=str(run.fresh() / "store"))["seconds"]

    results = run.turns({"group_store": cell("group_store"), "raw": cell("raw")})
    gs, raw = median(results["group_store"]), median(results["raw"])
    rows = [
        [
            f"{n:,} distinct keys, one by one",
            figure(results["group_store"], n),
            figure(results["raw"], n),
            ratio(gs, raw),
            "<= 1.5x",
        ]
    ]
    header = ["per save", "group_store `Store(root).save`", "raw create/write/rename", "group_store / raw", "target"]
    return table(header, rows)


def section_ttl_keys(run: Runner, scale: float) -> str:
    n = max(100, round(10_000 * scale))
    roots = {kind: run.build(kind, "one", n) for kind in ("plain", "ttl")}

    def cell(kind: str, how: str) -> Callable[[int], float]:
        return lambda _: run.child("keys", layout="one", n=n, how=how, root=str(roots[kind]))["seconds"]

    results = run.turns({f"{kind} {how}": cell(kind, how) for kind in roots for how in ("store", "listdir")})
    rows = []
    for kind, label in (("plain", "no TTL"), ("ttl", f"all ttl={TTL}")):
        keys, listing = results[f"{kind} store"], results[f"{kind} listdir"]
        rows.append(
            [
                f"{n:,} entries, {label}",
                figure(keys),
                figure(keys, n),
                figure(listing),
                ratio(median(keys), median(listing)),
                "",
            ]
        )
    ttl_ratio = ratio(median(results["ttl store"]), median(results["plain store"]))
    rows.append(["TTL / plain", ttl_ratio, "", "", "", "<= 1.5x"])
    header = ["directory", "`Store.keys()`", "per key", "`os.listdir`", "keys() / listdir", "target"]
    return table(header, rows)


def section_sweep(run: Runner, scale: float) -> str:
    n = max(1000, round(100_000 * scale))
    root = run.build("ttl", "spread", n)

    def cell(how: str) -> Callable[[int], float]:
        return lambda _: run.child("sweep", layout="spread", n=n, how=how, root=str(root))["seconds"]

    results = run.turns({"store": cell("store"), "listdir": cell("listdir")})
    rows = [
        [
            f"{n:,} entries (ttl={TTL}) in {DIRECTORIES} directories",
            figure(results["store"]),
            figure(results["store"], n),
            figure(results["listdir"]),
            ratio(median(results["store"]), median(results["listdir"])),
            "<= 2x",
        ]
    ]
    header = [
        "nothing due",
        "`Store.sweep()`",
        "per entry",
        f"`os.listdir` of the {DIRECTORIES}",
        "sweep / listdir",
        "target",
    ]
    return table(header, rows)


def sizes(scale: float) -> list[int]:
    return [max(10, round(size * scale)) for size in (1000, 10_000, 100_000)]


def section_table(run: Runner, scale: float) -> str:
    ops = max(20, round(200 * scale))
    peers = ("group_store", "sqlite")
    per_upsert: dict[tuple[str, int], list[float]] = {}
    fills: dict[tuple[str, int], float] = {}
    for n in sizes(scale):
        roots = {peer: run.fresh() / "table" for peer in peers}
        for peer in peers:
            fills[(peer, n)] = run.child("table-fill", peer=peer, n=n, root=str(roots[peer]))["seconds"]

        def cell(peer: str, n: int = n, roots: dict[str, Path] = roots) -> Callable[[int], float]:
            return lambda tag: run.child("table-upsert", peer=peer, n=n, ops=ops, tag=tag, root=str(roots[peer]))[
                "seconds"
            ]

        for peer, values in run.turns({peer: cell(peer) for peer in peers}).items():
            per_upsert[(peer, n)] = values
        progress(f"table {n:,} done")
    return table_report(per_upsert, fills, sizes(scale), ops)


def table_report(
    per_upsert: dict[tuple[str, int], list[float]], fills: dict[tuple[str, int], float], ns: list[int], ops: int
) -> str:
    rows = [
        [
            f"{n:,}",
            figure(per_upsert[("group_store", n)]),
            figure(per_upsert[("sqlite", n)]),
            ratio(median(per_upsert[("group_store", n)]), median(per_upsert[("sqlite", n)])),
            duration(fills[("group_store", n)]),
            duration(fills[("sqlite", n)]),
            "",
        ]
        for n in ns
    ]
    first, last = ns[0], ns[-1]
    rows.append(
        [
            f"{count(last)} / {count(first)} per upsert",
            ratio(median(per_upsert[("group_store", last)]), median(per_upsert[("group_store", first)])),
            ratio(median(per_upsert[("sqlite", last)]), median(per_upsert[("sqlite", first)])),
            "",
            "",
            "",
            "<= 2x",
        ]
    )
    header = [
        "records",
        f"group_store `upsert` ({ops} one by one)",
        "SQLite WAL upsert + commit",
        "group_store / SQLite",
        "group_store fill (`upsert_many`)",
        "SQLite fill (executemany)",
        "target",
    ]
    return table(header, rows)


IMPORTS = [
    ("import group_store", "", "<= 30 ms"),
    ("from group_store import Store", "", ""),
    ("from group_store import DataStore", "", ""),
    ("from group_store import Table", "", ""),
    ("import group_store.pytest_plugin", "", "<= 5 ms"),
    ("import group_store.pytest_plugin", "import pytest", "<= 5 ms"),
    ("import asyncio", "", "(reference)"),
    ("import anyio", "", "(reference)"),
]
# argv: the scratch directory, then load or save. Prints the median empty asyncio.run (of 5,
# after one untimed), then the first and the second asyncio.run of the operation on one DataStore.
FIRST_AWAIT = """
import asyncio, statistics, sys, tempfile, time
from group_store import DataStore, KeyNotFoundError
async def empty():
    pass
async def load(store):
    try:
        await store.load("missing")
    except KeyNotFoundError:
        pass
async def save(store):
    await store.save("k", {"x": 1})
def timed(coroutine):
    start = time.perf_counter()
    asyncio.run(coroutine)
    return time.perf_counter() - start
asyncio.run(empty())
base = statistics.median(timed(empty()) for _ in range(5))
store = DataStore(tempfile.mkdtemp(dir=sys.argv[1]))
operation = load if sys.argv[2] == "load" else save
first = timed(operation(store))
second = timed(operation(store))
asyncio.run(store.aclose())
print(base, first, second)
"""


def bare(run: Runner, code: str, *argv: str) -> list[float]:
    """Run ``code`` in a fresh interpreter (cwd and argv[1]: the scratch directory); the floats it prints."""
    output = subprocess.run(
        [sys.executable, "-c", code, str(run.scratch), *argv],
        env=run.env,
        cwd=run.scratch,
        capture_output=True,
        text=True,
        check=False,
    )
    if output.returncode != 0:
        raise SystemExit(f"failed: {code}\n{output.stderr}")
    return [float(x) for x in output.stdout.split()]


def section_import(run: Runner, scale: float) -> str:
    repeats = max(7, run.repeats)
    timings: dict[int, list[float]] = {i: [] for i in range(len(IMPORTS))}
    awaits: dict[str, list[list[float]]] = {"load": [], "save": []}
    for _ in range(repeats):  # the statements take turns, as peers do
        for i, (statement, before, _target) in enumerate(IMPORTS):
            code = f"{before}\nimport time\nt = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t)"
            timings[i] += bare(run, code)
        for operation, runs in awaits.items():
            runs.append(bare(run, FIRST_AWAIT, operation))
    rows = [
        [f"`{statement}`" + (f" (after `{before}`)" if before else ""), figure(timings[i]), duration(min(timings[i])),
         target]
        for i, (statement, before, target) in enumerate(IMPORTS)
    ]  # fmt: skip
    empty = [base for runs in awaits.values() for base, _, _ in runs]
    rows.append(["`asyncio.run` of an empty coroutine (the baseline below)", figure(empty), duration(min(empty)), ""])
    for operation, call in (("load", "`await store.load(missing)`"), ("save", "`await store.save(k, v)`")):
        for index, which in ((1, "first"), (2, "second")):
            over = [run[index] - run[0] for run in awaits[operation]]
            label = f"{which} {call} of a fresh DataStore, over the baseline"
            rows.append([label, figure(over), duration(min(over)), ""])
    header = [f"in a fresh interpreter (median of {repeats})", "time", "min", "target"]
    return table(header, rows)


SCALING_ROWS = [
    ("save", "plain", "save"),
    (f"save, ttl={TTL}", "ttl", "save"),
    ("load", "plain", "load"),
    ("keys (per key)", "plain", "keys"),
    (f"keys, all ttl={TTL} (per key)", "ttl", "keys"),
    (f"sweep, nothing due (per entry, ttl={TTL})", "ttl", "sweep"),
]


def section_scaling(run: Runner, scale: float) -> str:
    ns = sizes(scale)
    per_op: dict[tuple[str, str, int], list[float]] = {}
    for layout in ("one", "spread"):
        for n in ns:
            runs = 1 if n == ns[-1] else run.repeats
            roots = {kind: run.build(kind, layout, n, runs) for kind in ("plain", "ttl")}
            for label, kind, op in SCALING_ROWS:
                if op == "save":
                    per_op[(label, layout, n)] = [s / n for s in run.build_seconds[(kind, layout, n)]]
            cells = {
                label: scaling_cell(run, op, layout, n, roots[kind]) for label, kind, op in SCALING_ROWS if op != "save"
            }
            for label, values in run.turns(cells).items():
                per_op[(label, layout, n)] = [v / n for v in values]
            progress(f"scaling {layout} {n:,} done")
    return scaling_report(per_op, ns)


def scaling_cell(run: Runner, op: str, layout: str, n: int, root: Path) -> Callable[[int], float]:
    params: dict[str, Any] = {"layout": layout, "n": n, "root": str(root), "how": "store"}
    return lambda _: run.child(op, **params)["seconds"]


def scaling_report(per_op: dict[tuple[str, str, int], list[float]], ns: list[int]) -> str:
    rows = []
    for label, _kind, _op in SCALING_ROWS:
        for layout, where in (("one", "one directory"), ("spread", f"{DIRECTORIES} directories")):
            cells = [figure(per_op[(label, layout, n)]) for n in ns]
            growth = ratio(median(per_op[(label, layout, ns[-1])]), median(per_op[(label, layout, ns[0])]))
            rows.append([label, where, *cells, growth])
    header = ["per op", "layout", *(f"{n:,} entries" for n in ns), f"{count(ns[-1])}/{count(ns[0])} per op"]
    return table(header, rows)


def strace_counts(path: Path) -> dict[str, tuple[int, int]]:
    """``strace -c`` output: syscall name -> (calls, errors)."""
    counts: dict[str, tuple[int, int]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 5 or not parts[0][0].isdigit() or parts[-1] == "total":
            continue
        counts[parts[-1]] = (int(parts[3]), int(parts[4]) if len(parts) == 6 else 0)
    return counts


def syscalls_per_op(run: Runner, peer: str, op: str, n: int) -> dict[str, tuple[float, float]]:
    """(calls, errors) per operation: the child with ``n`` operations minus the same child with none."""
    found = []
    for operations in (n, 0):
        out = run.fresh()
        prefix = ["strace", "-f", "-c", "-o", str(out / "strace.txt")]
        run.child("syscalls", prefix, peer=peer, op=op, n=n, count=operations, root=str(out / "store"))
        found.append(strace_counts(out / "strace.txt"))
    with_ops, baseline = found
    # n operations, or for keys one keys() of n entries, counted per key.
    return {
        name: (max(calls - baseline.get(name, (0, 0))[0], 0) / n, max(errors - baseline.get(name, (0, 0))[1], 0) / n)
        for name, (calls, errors) in with_ops.items()
    }


def section_syscalls(run: Runner, scale: float) -> str:
    if shutil.which("strace") is None:
        return "strace is not installed: no syscall counts."
    n = max(100, round(2000 * scale))
    rows = []
    for op, label in SYSCALL_OPS.items():
        gs, raw = syscalls_per_op(run, "group_store", op, n), syscalls_per_op(run, "raw", op, n)
        rows.append([f"**{label}**", "**total**", calls(gs, None), calls(raw, None)])
        top = sorted(gs, key=lambda name: -gs[name][0])[:8]
        top += [name for name in sorted(raw, key=lambda name: -raw[name][0])[:8] if name not in top]
        rows += [["", f"`{name}`", calls(gs, name), calls(raw, name)] for name in top if name in gs or name in raw]
        progress(f"syscalls {op} done")
    header = [f"operation ({n:,} of each)", "syscall", "group_store per op (errors)", "raw loop per op (errors)"]
    return table(header, [row for row in rows if row[2] != "0" or row[3] != "0"])


def calls(counts: dict[str, tuple[float, float]], name: str | None) -> str:
    if name is None:
        total, errors = sum(c for c, _ in counts.values()), sum(e for _, e in counts.values())
    else:
        total, errors = counts.get(name, (0.0, 0.0))
    if not total:
        return "0"
    return f"{total:.3g}" + (f" ({errors:.3g})" if errors else "")


SECTION_FUNCTIONS: dict[str, Callable[[Runner, float], str]] = {
    "save": section_save,
    "ttl-keys": section_ttl_keys,
    "sweep": section_sweep,
    "table": section_table,
    "import": section_import,
    "scaling": section_scaling,
    "syscalls": section_syscalls,
}


# -- --profile --------------------------------------------------------------------------------


def profile_loop(op: str, n: int, scratch: Path) -> Callable[[], object]:
    """Set up one loop of ``op`` on ``n`` entries under ``scratch``; return it."""
    from group_store import DataStore, Store

    docs = documents(min(n, 5000))
    store, data_store = Store(scratch / "store"), DataStore(scratch / "async")
    warm_up(str(scratch))
    warm_up_async(str(scratch))  # a separate DataStore: the profiled one starts its writer under the profiler
    if op in {"load", "keys", "keys-ttl", "sweep"}:
        for i in range(n):
            store.save(f"k{i}", docs[i % len(docs)], ttl=TTL if op in {"keys-ttl", "sweep"} else None)

    def each(operation: Callable[[int], object]) -> Callable[[], object]:
        def loop() -> None:
            for i in range(n):
                operation(i)

        return loop

    async def async_save() -> None:
        for i in range(n):
            data_store.save(f"k{i}", docs[i % len(docs)])
        await data_store.aclose()

    loops: dict[str, Callable[[], object]] = {
        "save": each(lambda i: store.save(f"k{i}", docs[i % len(docs)])),
        "load": each(lambda i: store.load(f"k{i}")),
        "append": each(lambda i: store.append("log", [docs[i % len(docs)]])),
        "async-save": lambda: asyncio.run(async_save()),
        "keys": store.keys,
        "keys-ttl": store.keys,
        "sweep": store.sweep,
    }
    return loops[op]


def profile(op: str, scale: float) -> None:
    """cProfile's top 20 by own time for one loop of ``op``, the threads it starts included."""
    import cProfile
    import pstats
    import threading

    scratch = Path(tempfile.mkdtemp(dir=Path.cwd(), prefix="bench-perf-profile-"))
    try:
        n = max(100, round((10_000 if op in {"keys", "keys-ttl", "sweep"} else 5000) * scale))
        loop = profile_loop(op, n, scratch)
        threads: list[cProfile.Profile] = []

        def start_thread_profile(*_: object) -> None:
            # Runs once in each thread started from here on: it hands the thread to its own profiler.
            threads.append(cProfile.Profile())
            threads[-1].enable()

        main = cProfile.Profile()
        threading.setprofile(start_thread_profile)
        start = time.perf_counter()
        main.enable()
        loop()
        main.disable()
        seconds = time.perf_counter() - start
        threading.setprofile(None)
        what = f"{n:,} operations" if op in {"save", "load", "append", "async-save"} else f"one call on {n:,} entries"
        print(f"--profile {op}: {what} in {seconds:.2f} s under cProfile ({len(threads)} other threads profiled)")
        pstats.Stats(main, *threads, stream=sys.stdout).sort_stats("tottime").print_stats(20)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- main -------------------------------------------------------------------------------------


def machine() -> str:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"group_store at {commit or '?'} ({ROOT})"
    )


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def chosen(only: str) -> list[str]:
    if not only:
        return list(SECTIONS)
    numbers = {title.split(".")[0]: name for name, title in SECTIONS.items()}
    names = [numbers.get(item.strip(), item.strip()) for item in only.split(",") if item.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown sections {unknown}; choose from {list(SECTIONS)} or 1-{len(SECTIONS)}")
    return [name for name in SECTIONS if name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every size (0.1 for a quick run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated sections, by name or number; default all")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/perf.md (without --only)")
    parser.add_argument("--profile", choices=PROFILE_OPS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(TASKS[spec["task"]](spec)))
        return
    if args.profile:
        profile(args.profile, args.scale)
        return
    report(args, chosen(args.only))


def report(args: argparse.Namespace, names: list[str]) -> None:
    started, load_start = time.perf_counter(), loadavg()
    scratch = Path(tempfile.mkdtemp(dir=Path.cwd(), prefix="bench-perf-"))
    parts: list[str] = []
    try:
        run = Runner(scratch, args.repeats)
        for name in names:
            parts.append(f"### {SECTIONS[name]}\n\n{SECTION_FUNCTIONS[name](run, args.scale)}\n\n{NOTES[name]}")
            progress(f"section {name} done after {time.perf_counter() - started:.0f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    head = (
        f"Machine: {machine()}.\nLoad average (1, 5, 15 min) at start {load_start}, at end {loadavg()}; "
        f"scale {args.scale:g}, median of {args.repeats} runs (each in a fresh process) unless stated; "
        f"the whole run took {time.perf_counter() - started:.0f} s."
    )
    text = "\n\n".join([head, *parts]) + "\n"
    print(text)
    out = args.out or (None if args.only else HERE / "results" / "perf.md")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


if __name__ == "__main__":
    main()
