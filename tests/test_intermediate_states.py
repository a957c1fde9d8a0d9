"""Every intermediate state a write leaves on disk is its old or its new state, with the right expiry.

Each scenario runs its operation once per step: the n-th storage mutation is
replaced by an exception (``tests/steps.py``), which leaves on disk exactly what
a crash at that step leaves and what a lock-free reader can meet between two
steps. At every step each key must read as its old state or its new state
(value and expiry exactly: never an earlier expiry, never a key missing that is
present before and after, never a deleted or expired value back), listings
must agree, a sweep must change nothing, and a sweep after every expiry has
passed must remove exactly the entries that have one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from group_store import KeyNotFoundError, Store
from group_store._format.codec import encode_document
from group_store._format.layout import Location
from group_store.testing import FakeClock

from .local_paths import root_of
from .steps import StoppedError, stopping_store

START = 1_800_000_000.0
MISSING = "missing"
LONG = "x" * 300  # a hashed name, with a key file
State = tuple[Any, float | None] | str
"""``(value, expiry relative to START or None)``, or ``MISSING``."""


@dataclass(frozen=True)
class Scenario:
    setup: Callable[[Store, FakeClock], object]
    operation: Callable[[Store], object]
    old: dict[str, State]
    new: dict[str, State]


def _saved(*saves: tuple[str, Any, float | None], advance: float = 0) -> Callable[[Store, FakeClock], None]:
    """A setup that saves each ``(key, value, ttl)`` in turn, then moves the clock on by ``advance``."""

    def setup(store: Store, clock: FakeClock) -> None:
        for key, value, ttl in saves:
            store.save(key, value, ttl=ttl)
        clock.advance(advance)

    return setup


def _save_many_plain(store: Store, items: list[tuple[str, Any]]) -> None:
    engine = store._engine
    batch: list[tuple[Location, bytes, float | None]] = [
        (engine.location("", (), key), encode_document(key, value), None) for key, value in items
    ]
    with engine.lock(""):
        for outcome in engine.save_many(batch):
            if outcome is not None:
                raise outcome


def _orphan_sidecar(store: Store, clock: FakeClock) -> None:
    store.save("k", "A", ttl=10)
    (root_of(store) / "k.json").unlink()  # what a delete stopped after its first step leaves


def _expired_mix(store: Store, clock: FakeClock) -> None:
    store.save("gone", "A", ttl=10)
    store.save("live", "B", ttl=1000)
    store.save("plain", "C")
    store.save(LONG, "D", ttl=10)
    clock.advance(20)


SCENARIOS: dict[str, Scenario] = {
    # The case of issue 9 item 3: the sidecar still binds A (to 10) when A is saved again without a TTL.
    "clear-ttl-of-bytes-an-earlier-save-bound": Scenario(
        _saved(("k", "A", 10), ("k", "B", 1000)),
        lambda s: s.save("k", "A"),
        {"k": ("B", 1000.0)},
        {"k": ("A", None)},
    ),
    "clear-ttl-new-bytes": Scenario(
        _saved(("k", "A", 10)), lambda s: s.save("k", "B"), {"k": ("A", 10.0)}, {"k": ("B", None)}
    ),
    "clear-ttl-same-bytes": Scenario(
        _saved(("k", "A", 10)), lambda s: s.save("k", "A"), {"k": ("A", 10.0)}, {"k": ("A", None)}
    ),
    "clear-ttl-hashed-key": Scenario(
        _saved((LONG, "A", 10), (LONG, "B", 1000)),
        lambda s: s.save(LONG, "A"),
        {LONG: ("B", 1000.0)},
        {LONG: ("A", None)},
    ),
    "set-ttl": Scenario(
        _saved(("k", "A", None)), lambda s: s.save("k", "B", ttl=1000), {"k": ("A", None)}, {"k": ("B", 1000.0)}
    ),
    "set-ttl-hashed-key": Scenario(
        _saved((LONG, "A", None)),
        lambda s: s.save(LONG, "B", ttl=1000),
        {LONG: ("A", None)},
        {LONG: ("B", 1000.0)},
    ),
    "shorten-ttl-same-bytes": Scenario(
        _saved(("k", "A", 1000)),
        lambda s: s.save("k", "A", ttl=10),
        {"k": ("A", 1000.0)},
        {"k": ("A", 10.0)},
    ),
    "replace-with-longer-ttl": Scenario(
        _saved(("k", "A", 10)),
        lambda s: s.save("k", "B", ttl=1000),
        {"k": ("A", 10.0)},
        {"k": ("B", 1000.0)},
    ),
    "save-without-ttl-over-an-orphan-sidecar-of-the-same-bytes": Scenario(
        _orphan_sidecar, lambda s: s.save("k", "A"), {"k": MISSING}, {"k": ("A", None)}
    ),
    "save-with-ttl-over-an-orphan-sidecar": Scenario(
        _orphan_sidecar, lambda s: s.save("k", "A", ttl=1000), {"k": MISSING}, {"k": ("A", 1000.0)}
    ),
    "update-keeps-the-expiry": Scenario(
        _saved(("k", "A", 1000)),
        lambda s: s.update("k", lambda v: "B"),
        {"k": ("A", 1000.0)},
        {"k": ("B", 1000.0)},
    ),
    "update-back-to-bytes-an-earlier-save-bound": Scenario(
        _saved(("k", "A", 10), ("k", "B", 1000)),
        lambda s: s.update("k", lambda v: "A"),
        {"k": ("B", 1000.0)},
        {"k": ("A", 1000.0)},
    ),
    "update-sets-a-ttl": Scenario(
        _saved(("k", "A", 10)),
        lambda s: s.update("k", lambda v: "B", ttl=1000),
        {"k": ("A", 10.0)},
        {"k": ("B", 1000.0)},
    ),
    "update-of-an-expired-entry-starts-from-the-default": Scenario(
        _saved(("k", "A", 10), ("k", "B", 15), advance=20),
        lambda s: s.update("k", lambda v: v, default="A"),
        {"k": MISSING},
        {"k": ("A", None)},
    ),
    "delete": Scenario(_saved(("k", "A", 1000)), lambda s: s.delete("k"), {"k": ("A", 1000.0)}, {"k": MISSING}),
    "delete-hashed-key": Scenario(
        _saved((LONG, "A", 1000)), lambda s: s.delete(LONG), {LONG: ("A", 1000.0)}, {LONG: MISSING}
    ),
    "delete-without-ttl": Scenario(
        _saved(("k", "A", None)), lambda s: s.delete("k"), {"k": ("A", None)}, {"k": MISSING}
    ),
    "sweep": Scenario(
        _expired_mix,
        lambda s: s.sweep(),
        {"gone": MISSING, "live": ("B", 1000.0), "plain": ("C", None), LONG: MISSING},
        {"gone": MISSING, "live": ("B", 1000.0), "plain": ("C", None), LONG: MISSING},
    ),
    "save-many-plain-path-next-to-a-sidecar": Scenario(
        _saved(("k", "A", 10), ("k", "B", 1000), ("p", "P0", None)),
        lambda s: _save_many_plain(s, [("k", "A"), ("p", "P1")]),
        {"k": ("B", 1000.0), "p": ("P0", None)},
        {"k": ("A", None), "p": ("P1", None)},
    ),
}


def _observe(store: Store, key: str) -> State:
    try:
        value = store.load(key)
        expires = store.expires_at(key)
    except KeyNotFoundError:
        return MISSING
    return value, None if expires is None else expires.timestamp() - START


def _check_step(root: Path, clock: FakeClock, scenario: Scenario, finished: bool, step: int) -> None:
    store = Store(root, clock=clock)
    observed = {key: _observe(store, key) for key in scenario.old}
    for key, state in observed.items():
        allowed = [scenario.new[key]] if finished else [scenario.old[key], scenario.new[key]]
        assert state in allowed, f"step {step}: {key!r} reads as {state}, expected one of {allowed}"
    assert sorted(store.keys()) == sorted(key for key, state in observed.items() if state != MISSING)
    store.sweep()
    after = {key: _observe(store, key) for key in scenario.old}
    assert after == observed, f"step {step}: a sweep changed live entries: {observed} -> {after}"
    clock.advance(1e7)
    store.sweep()
    for key, state in observed.items():
        expected = MISSING if state == MISSING or state[1] is not None else state
        assert _observe(store, key) == expected, f"step {step}: {key!r} after its expiry and a sweep"
    leftovers = sorted(path.name for path in root.rglob("*") if path.name.endswith(".meta.json"))
    assert leftovers == [], f"step {step}: sidecars binding nothing survive a sweep: {leftovers}"
    assert not (root / ".expiry.jsonl").exists()


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_step_of_a_write_reads_as_its_old_or_new_state(tmp_path: Path, name: str) -> None:
    scenario = SCENARIOS[name]
    for step in itertools.count():
        root = tmp_path / f"step{step}"
        clock = FakeClock(START)
        scenario.setup(Store(root, clock=clock), clock)
        store, _ = stopping_store(root, clock, stop_at=step)
        try:
            scenario.operation(store)
        except StoppedError:
            finished = False
        else:
            finished = True
        _check_step(root, clock, scenario, finished, step)
        if finished:
            break
    assert step >= 1, "the operation never reached the disk"
