"""SIGKILL a writing process at random moments, hundreds of times, and check what it leaves.

Each round forks a child (much cheaper than starting an interpreter) that keeps
writing to one durable store and reports every acknowledged operation through a
pipe; the parent kills it with SIGKILL after a random delay and then checks:

- every document parses (no torn file) and holds a value at least as new as
  its last acknowledged save (durable saves survive);
- the log parses, holds every acknowledged append, in order;
- the counter is at least its last acknowledged update;
- an entry saved with an expiry already past is never visible, even right
  after a crash between its data and sidecar writes (no resurrection);
- entries saved with a long TTL never read as expired (no early expiry).

The rounds accumulate on one store, so damage from one crash must also not
break the next round. ``GROUP_STORE_CRASH_SECONDS`` sets the budget (30 s).
"""

from __future__ import annotations

import os
import random
import signal
import struct
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import anyio
import pytest

from group_store import DataStore, Store, walk

BUDGET = float(os.environ.get("GROUP_STORE_CRASH_SECONDS", "30"))
DOC_KEYS = 4
RECORD = struct.Struct("<BQ")
DOC, LOG, COUNTER = 0, 1, 2


def _child_sync(root: Path, write_fd: int, start: int) -> None:
    store = Store(root, durable=True)
    i = start
    while True:
        _one_round(store, i, write_fd)
        i += 1


def _one_round(store: Store, i: int, write_fd: int) -> None:
    store.save(f"doc{i % DOC_KEYS}", {"n": i, "pad": "x" * (i * 37 % 3000)}, ttl=3600 if i % 2 else None)
    os.write(write_fd, RECORD.pack(DOC, i))
    store.append("log", [{"n": i}], max_items=None if i % 7 else 10_000)
    os.write(write_fd, RECORD.pack(LOG, i))
    value = store.update("counter", lambda n: n + 1, default=0)
    os.write(write_fd, RECORD.pack(COUNTER, value))
    store.save("ephemeral", {"n": i}, ttl=0)
    if i % 3 == 0:
        store.sweep()


def _child_async(root: Path, write_fd: int, start: int) -> None:
    async def main() -> None:
        store = DataStore(root, durable=True)
        i = start
        while True:
            await store.save(f"doc{i % DOC_KEYS}", {"n": i, "pad": "y" * (i * 41 % 3000)}, ttl=3600 if i % 2 else None)
            os.write(write_fd, RECORD.pack(DOC, i))
            await store.append("log", [{"n": i}])
            os.write(write_fd, RECORD.pack(LOG, i))
            value = await store.update("counter", lambda n: n + 1, default=0)
            os.write(write_fd, RECORD.pack(COUNTER, value))
            store.save("ephemeral", {"n": i}, ttl=0)
            i += 1

    anyio.run(main)


def _read_acks(read_fd: int) -> list[tuple[int, int]]:
    data = b""
    while chunk := os.read(read_fd, 1 << 16):
        data += chunk
    whole = len(data) - len(data) % RECORD.size
    return [RECORD.unpack_from(data, offset) for offset in range(0, whole, RECORD.size)]


def run_then_kill(
    child_main: Callable[[int, int], None], start: int, delay: float
) -> tuple[bool, list[tuple[int, int]]]:
    """Fork ``child_main(write_fd, start)``, SIGKILL it after ``delay`` seconds.

    Returns whether the signal killed it and the acknowledgements it wrote to ``write_fd``.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            os.close(read_fd)
            child_main(write_fd, start)
        finally:
            os._exit(0)
    os.close(write_fd)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    acks = _read_acks(read_fd)
    os.close(read_fd)
    return os.WIFSIGNALED(status), acks


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(1234)
    root = tmp_path / "store"
    next_i = 0
    acked_docs: dict[str, int] = {}
    acked_log: list[int] = []
    acked_counter = 0
    rounds = kills = 0
    deadline = time.monotonic() + BUDGET
    while time.monotonic() < deadline or rounds < 20:
        child_main = _child_async if rounds % 4 == 3 else _child_sync
        killed, acks = run_then_kill(partial(child_main, root), next_i, rng.uniform(0.0, 0.03))
        kills += killed
        rounds += 1
        for kind, value in acks:
            if kind == DOC:
                acked_docs[f"doc{value % DOC_KEYS}"] = value
            elif kind == LOG:
                acked_log.append(value)
            else:
                acked_counter = value
        attempted = max([value for kind, value in acks if kind != COUNTER], default=next_i - 1) + 1
        _check(root, acked_docs, acked_log, acked_counter)
        next_i = attempted + 1
    print(f"crash rounds={rounds} acked docs={acked_docs} appends={len(acked_log)} counter={acked_counter}")
    assert rounds >= 100 or BUDGET < 30, f"only {rounds} rounds fit in {BUDGET}s"
    assert kills == rounds
    assert acked_counter > 0
    assert acked_log
    store = Store(root)
    store.sweep()
    assert not list(root.rglob("*.tmp"))


def _check(root: Path, acked_docs: dict[str, int], acked_log: list[int], acked_counter: int) -> None:
    store = Store(root)
    for key, n in acked_docs.items():
        value = store.load(key)  # raises on a torn file or on an early expiry
        assert value["n"] >= n, f"{key}: acknowledged durable save {n} lost (found {value['n']})"
    if acked_log:
        items = [item["n"] for item in store.read("log")]
        assert items == sorted(items)
        missing = set(acked_log) - set(items)
        assert not missing, f"acknowledged appends lost: {sorted(missing)[:5]}"
    if acked_counter:
        assert store.load("counter") >= acked_counter
    assert not store.exists("ephemeral"), "an expired (swept) entry came back after a crash"
    raw = (root / "log.jsonl").read_bytes() if (root / "log.jsonl").exists() else b""
    body = raw[: raw.rfind(b"\n") + 1]
    assert all(line.startswith(b"{") and line.endswith(b"}") for line in body.split(b"\n") if line)


def _ttl_child(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = Store(root, durable=True)
    while True:
        key = f"t{rng.randrange(40)}"
        ttl = rng.choice([None, 0, 3600, 3600])
        store.save(key, {"seed": seed}, ttl=ttl)
        if rng.random() < 0.05:
            store.sweep()


@pytest.mark.slow
def test_sigkill_keeps_the_expiry_index_sound(tmp_path: Path) -> None:
    """After a crash anywhere, a sweep removes every expired entry and no live one."""
    rng = random.Random(99)
    root = tmp_path / "ttl"
    deadline = time.monotonic() + BUDGET / 3
    rounds = 0
    while time.monotonic() < deadline or rounds < 20:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                _ttl_child(root, rounds)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 0.02))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        rounds += 1
        now = time.time()
        before = {entry.key: entry.expires_at for entry in walk(root, include_expired=True)}
        Store(root).sweep()
        after = {entry.key: entry.expires_at for entry in walk(root, include_expired=True)}
        for key, expires in before.items():
            expired = expires is not None and expires.timestamp() <= now
            assert (key in after) != expired, f"{key}: expires {expires}, swept={key not in after}"
    assert rounds >= 20
