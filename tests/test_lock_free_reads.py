"""Lock-free reads see one state of an entry: never the data of one state with the expiry of another.

A read takes no lock: it reads the data file, then its sidecar. The deterministic
tests run a rival write exactly between those two reads (a hook on ``os.open``);
the two-process test races a writer cycling TTL set/set/clear against a reader.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from group_store import KeyNotFoundError, Store
from group_store.storage import _local as local_module
from group_store.testing import FakeClock


@contextmanager
def between_data_and_sidecar_reads(
    monkeypatch: pytest.MonkeyPatch, sidecar: str, rival: Callable[[], object], times: int = 1
) -> Iterator[list[int]]:
    """Run ``rival`` just before a reader opens ``sidecar`` (after it read the data file), ``times`` times."""
    real_open = os.open
    fired: list[int] = []
    busy = False

    def hooked_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        nonlocal busy
        reading = flags & os.O_ACCMODE == os.O_RDONLY and not flags & os.O_DIRECTORY
        if path == sidecar and reading and not busy and len(fired) < times:
            busy = True
            try:
                rival()
            finally:
                busy = False
            fired.append(1)
        return real_open(path, flags, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", hooked_open)
        yield fired


def test_a_read_racing_a_sweep_never_shows_the_expired_entry(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, sweeper = Store(tmp_path, clock=clock), Store(tmp_path, clock=clock)
    reader.save("k", "A", ttl=10)
    clock.advance(20)
    with between_data_and_sidecar_reads(monkeypatch, "k.meta.json", sweeper.sweep) as fired:
        assert not reader.exists("k"), "the expired entry read as live (its sidecar was gone when read)"
    assert fired == [1]
    assert not (tmp_path / "k.json").exists()


def test_a_read_racing_a_ttl_clear_never_resurrects_the_expired_value(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = Store(tmp_path, clock=clock), Store(tmp_path, clock=clock)
    reader.save("k", "B", ttl=10)
    clock.advance(20)  # B has expired: the old state is "missing", the new one is A
    with between_data_and_sidecar_reads(monkeypatch, "k.meta.json", lambda: writer.save("k", "A")) as fired:
        assert reader.get("k") == "A"
    assert fired == [1]


def test_a_read_racing_a_delete_never_drops_the_expiry(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = Store(tmp_path, clock=clock), Store(tmp_path, clock=clock)
    reader.save("k", "A", ttl=10)
    racing = between_data_and_sidecar_reads(monkeypatch, "k.meta.json", lambda: writer.delete("k"))
    with racing, pytest.raises(KeyNotFoundError):
        reader.expires_at("k")  # old state: expires at +10; new state: missing; never "no expiry"


def test_a_read_that_writers_keep_racing_ends_under_their_lock(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = Store(tmp_path, clock=clock), Store(tmp_path, clock=clock)
    reader.save("k", 0, ttl=1000)
    attempts = local_module._SNAPSHOT_ATTEMPTS

    def rewrite() -> None:
        writer.update("k", lambda n: n + 1)

    with between_data_and_sidecar_reads(monkeypatch, "k.meta.json", rewrite, times=attempts) as fired:
        assert reader.load("k") == attempts  # every lock-free attempt lost the race; the locked one cannot
    assert len(fired) == attempts


# -- two processes -------------------------------------------------------------------------

CYCLE = 3  # save(A, T1), save(B, T2), save(A) without a TTL: the sequence of issue 9 item 3


def _expiry_after(step: int, t1: float, t2: float) -> float | None:
    """The expiry of the entry once save number ``step`` (from 0; -1: the initial save) is done."""
    return (t1, t2, None)[step % CYCLE] if step >= 0 else None


def _cycling_writer(root: str, acknowledged: Any, started: Any, stop: Any, t1: float, t2: float) -> None:
    store = Store(root)
    started.set()
    first, second = datetime.fromtimestamp(t1, UTC), datetime.fromtimestamp(t2, UTC)
    step = 0
    while not stop.is_set():
        if step % CYCLE == 0:
            store.save("k", {"v": "A"}, expires_at=first)
        elif step % CYCLE == 1:
            store.save("k", {"v": "B"}, expires_at=second)
        else:
            store.save("k", {"v": "A"})
        step += 1
        acknowledged.value = step


def _same(seen: float | None, expiry: float | None) -> bool:
    if seen is None or expiry is None:
        return seen is expiry
    return abs(seen - expiry) < 1e-3  # the sidecar keeps microseconds


@pytest.mark.slow
def test_a_lock_free_reader_in_another_process_never_sees_an_early_expiry(tmp_path: Path) -> None:
    """A read overlapping saves j..m shows the state after one of saves j-1..m, expiry exactly:
    never an earlier expiry (issue 9 item 3: A bound to T1 while its no-TTL save runs), never a
    later one, never a missing key."""
    now = time.time()
    t1, t2 = now + 100_000, now + 200_000  # both far off: an entry that reads as expired is an error
    store = Store(tmp_path)
    store.save("k", {"v": "A"})
    context = multiprocessing.get_context("spawn")
    acknowledged, started, stop = context.Value("q", 0, lock=False), context.Event(), context.Event()
    writer = context.Process(target=_cycling_writer, args=(str(tmp_path), acknowledged, started, stop, t1, t2))
    writer.start()
    reads = in_clear_window = 0
    wrong: list[tuple[int, int, float | None]] = []
    early = missing = 0
    try:
        assert started.wait(timeout=120), "the writer process did not start"
        # At least 30,000 reads, and more (up to 300,000) until they overlapped 100 cycles.
        for count in range(300_000):
            if count >= 30_000 and acknowledged.value >= 100 * CYCLE:
                break
            before = acknowledged.value
            try:
                expires = store.expires_at("k")
            except KeyNotFoundError:
                missing += 1
                continue
            after = acknowledged.value
            reads += 1
            in_clear_window += before == after and before % CYCLE == 2
            seen = None if expires is None else expires.timestamp()
            allowed = [_expiry_after(step, t1, t2) for step in range(before - 1, after + 1)]
            if not any(_same(seen, expiry) for expiry in allowed):
                wrong.append((before, after, seen))
                finite = [expiry for expiry in allowed if expiry is not None]
                early += seen is not None and (not finite or seen < min(finite))
    finally:
        stop.set()
        writer.join(timeout=60)
    cycles = acknowledged.value // CYCLE
    print(
        f"crash-stats: lock-free-reader reads={reads} cycles={cycles} in-clear-window={in_clear_window}"
        f" missing={missing} early={early} not-a-state={len(wrong)}"
    )
    assert writer.exitcode == 0
    assert missing == 0, f"{missing} reads found the key missing or expired"
    assert wrong == [], f"{early} early; reads saw an expiry of no state they overlapped: {wrong[:5]}"
    assert cycles >= 100, "the writer did not cycle often enough to mean anything"
    assert in_clear_window >= 100, "too few reads fell inside a TTL clear to mean anything"
