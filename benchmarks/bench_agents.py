"""Agent SDK sessions on group_store against the SDKs' own SQLite stores, at 10,000 items per session.

    python benchmarks/bench_agents.py [--items 10000] [--ops 200] [--repeats 3]

OpenAI Agents SDK: ``GroupStoreSession`` (on a ``Store``, ``durable=False`` and
``durable=True``) against ``SQLiteSession`` on a file (WAL, Python's default
``synchronous``). Google ADK: ``GroupStoreSessionService`` against
``SqliteSessionService`` on a file. Each peer gets a fresh directory and a
session filled to ``--items`` through its own API; then, ``--repeats`` times
(the peers taking turns), each workload runs ``--ops`` operations (fewer for the
whole-session reads) and the figure is the median over the repeats of the mean
time per operation. Items are ~200 B messages; events carry a ~150 B text part
and a one-key state delta, as a Runner's would.

Workloads:
- add_items: one item, to a session of ``--items``
- get_items(limit=50): with 100, 1,000 and ``--items`` items stored (the cost should not grow)
- pop_item: the newest item of a session of ``--items``
- append_event: one event with a state delta, to a session of ``--items`` events
- get_session: the whole session (every event parsed into an ``Event``)
- get_session(num_recent_events=50)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agents.memory import SQLiteSession
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.genai import types

from group_store import Store
from group_store.integrations.adk import GroupStoreSessionService
from group_store.integrations.openai_agents import GroupStoreSession

SESSION_PEERS: dict[str, Callable[[Path, str], Any]] = {
    "group_store": lambda root, sid: GroupStoreSession(sid, Store(root)),
    "group_store durable": lambda root, sid: GroupStoreSession(sid, Store(root, durable=True)),
    "SQLiteSession": lambda root, sid: SQLiteSession(sid, root / "sessions.db"),
}
SERVICE_PEERS: dict[str, Callable[[Path], BaseSessionService]] = {
    "group_store": lambda root: GroupStoreSessionService(Store(root)),
    "group_store durable": lambda root: GroupStoreSessionService(Store(root, durable=True)),
    "ADK SqliteSessionService": lambda root: SqliteSessionService(str(root / "sessions.db")),
}


def item(i: int) -> dict[str, Any]:
    return {"role": "user" if i % 2 else "assistant", "content": f"message {i} " + "x" * 150, "type": "message"}


def event(i: int) -> Event:
    return Event(
        invocation_id=f"inv-{i // 2}",
        author="user" if i % 2 else "assistant",
        content=types.Content(role="user" if i % 2 else "model", parts=[types.Part(text=f"turn {i} " + "y" * 150)]),
        actions=EventActions(state_delta={"turn": i}),
    )


async def timed(operations: list[Callable[[], Awaitable[Any]]]) -> float:
    """Mean seconds per operation."""
    start = time.perf_counter()
    for operation in operations:
        await operation()
    return (time.perf_counter() - start) / len(operations)


async def fill_session(session: Any, count: int) -> None:
    for start in range(0, count, 100):
        await session.add_items([item(i) for i in range(start, min(start + 100, count))])


async def session_cells(sessions: dict[int, Any], count: int, ops: int) -> dict[str, float]:
    big = sessions[count]
    cells = {"add_items (1 item)": await timed([partial(big.add_items, [item(i)]) for i in range(ops)])}
    for size, session in sessions.items():
        assert len(await session.get_items(limit=50)) == 50
        cells[f"get_items(limit=50), {size:,} stored"] = await timed(
            [partial(session.get_items, limit=50) for _ in range(ops)]
        )
    cells["pop_item"] = await timed([big.pop_item for _ in range(ops)])
    return cells


async def fill_service(service: BaseSessionService, count: int) -> Any:
    session = await service.create_session(app_name="bench", user_id="u", session_id="s")
    for i in range(count):
        await service.append_event(session, event(i))
    return session


async def service_cells(service: BaseSessionService, session: Any, count: int, ops: int) -> dict[str, float]:
    appended = [event(count + i) for i in range(ops)]
    cells = {"append_event": await timed([partial(service.append_event, session, e) for e in appended])}

    async def whole() -> None:
        got = await service.get_session(app_name="bench", user_id="u", session_id="s")
        assert got is not None
        assert len(got.events) >= count

    async def recent() -> None:
        config = GetSessionConfig(num_recent_events=50)
        got = await service.get_session(app_name="bench", user_id="u", session_id="s", config=config)
        assert got is not None
        assert len(got.events) == 50

    cells[f"get_session, {count:,} events"] = await timed([whole for _ in range(max(ops // 40, 3))])
    cells["get_session(num_recent_events=50)"] = await timed([recent for _ in range(ops)])
    return cells


def report(title: str, results: dict[str, list[dict[str, float]]], baseline: str) -> str:
    peers = list(results)
    workloads = list(results[peers[0]][0])
    median = {p: {w: statistics.median(run[w] for run in results[p]) for w in workloads} for p in peers}
    header = ["workload", *peers, f"group_store / {baseline}"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for w in workloads:
        cells = [f"{median[p][w] * 1e6:,.0f} µs" for p in peers]
        lines.append("| " + " | ".join([w, *cells, f"{median['group_store'][w] / median[baseline][w]:.2f}x"]) + " |")
    return "\n".join(lines)


def log_floor(root: Path, count: int, ops: int) -> str:
    """What reading a whole ``count``-line items log costs, against only its newest 50 lines (seek from the end)."""
    path = max(root.rglob("items.jsonl"), key=lambda found: found.stat().st_size)
    start = time.perf_counter()
    for _ in range(ops):
        lines = path.read_bytes().split(b"\n")
    whole = (time.perf_counter() - start) / ops
    assert len(lines) > count
    start = time.perf_counter()
    for _ in range(ops):
        with path.open("rb") as file:
            file.seek(max(file.seek(0, os.SEEK_END) - 64 * 1024, 0))
            tail = file.read().split(b"\n")[-51:]
    newest = (time.perf_counter() - start) / ops
    assert len(tail) == 51
    return (
        f"Reading the {count:,}-line log ({path.stat().st_size / 1e6:.1f} MB): whole file and split "
        f"{whole * 1e6:,.0f} µs; only its last 64 KiB {newest * 1e6:,.0f} µs."
    )


async def run(args: argparse.Namespace, fresh: Callable[[], Path]) -> str:
    sizes = sorted({100, 1_000, args.items})
    sessions: dict[str, dict[int, Any]] = {}
    for name, factory in SESSION_PEERS.items():
        root = fresh()
        sessions[name] = {}
        for size in sizes:
            sessions[name][size] = factory(root, f"s{size}")
            await fill_session(sessions[name][size], size)
        print(f"filled {name}", file=sys.stderr)
    services: dict[str, tuple[BaseSessionService, Any]] = {}
    for name, make_service in SERVICE_PEERS.items():
        service = make_service(fresh())
        services[name] = (service, await fill_service(service, args.items))
        print(f"filled {name}", file=sys.stderr)
    session_results: dict[str, list[dict[str, float]]] = {p: [] for p in SESSION_PEERS}
    service_results: dict[str, list[dict[str, float]]] = {p: [] for p in SERVICE_PEERS}
    for repeat in range(args.repeats):
        for name in list(SESSION_PEERS)[repeat % 3 :] + list(SESSION_PEERS)[: repeat % 3]:
            session_results[name].append(await session_cells(sessions[name], args.items, args.ops))
        for name in list(SERVICE_PEERS)[repeat % 3 :] + list(SERVICE_PEERS)[: repeat % 3]:
            service, session = services[name]
            service_results[name].append(await service_cells(service, session, args.items, args.ops))
        print(f"repeat {repeat + 1} done", file=sys.stderr)
    machine = f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return "\n\n".join(
        [
            f"Machine: {machine}; {args.items:,} items per session, {args.ops} operations per cell, "
            f"median of {args.repeats}.",
            report("OpenAI Agents SDK sessions (time per operation)", session_results, "SQLiteSession"),
            report("Google ADK session service (time per operation)", service_results, "ADK SqliteSessionService"),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "agents.md")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-agents-", dir="."))
    counter = iter(range(10**9))

    def fresh() -> Path:
        path = scratch / str(next(counter))
        path.mkdir()
        return path

    try:
        text = asyncio.run(run(args, fresh))
        text += "\n\n" + log_floor(scratch, args.items, args.ops)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
