"""SIGKILL the tools at random moments: import (both formats), ``verify --fix`` and ``fmt``.

Each round forks a child (``run_then_kill`` from test_crash) that runs the operation
over and over on one store and kills it after a random delay; the parent then
checks every key: it holds its old or its new value with that state's exact
expiry, no file is torn, no key that exists in both states is missing, and no
foreign or inexact file was changed. The rounds accumulate on one store, so the
leftovers of one crash are the next round's starting point.

``GROUP_STORE_CRASH_SECONDS`` scales the budget (30 = the default: 4 s per loop).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from group_store import CorruptEntryError, Store, export_store, format_store, import_store, verify_store
from group_store._engine.engine import Engine
from group_store._format.codec import encode_document
from group_store._format.expiry import digest, encode_sidecar
from group_store._format.layout import encode_directory, temp_name
from group_store.storage._local import LocalStorage
from tests.test_archive import STATES, _observe, _write_state
from tests.test_crash import run_then_kill

SECONDS = 4.0 * float(os.environ.get("GROUP_STORE_CRASH_SECONDS", "30")) / 30
MIN_ROUNDS = 20

State = tuple[Any, datetime | None]


def _classify(seen: State | None, allowed: list[State], must_exist: bool) -> str | None:
    """What is wrong with ``seen`` given the states it may be in (``None`` if nothing)."""
    if seen is None:
        return "missing" if must_exist else None
    if seen in allowed:
        return None
    expiries = [expiry for value, expiry in allowed if value == seen[0]]
    if not expiries:
        return "lost"
    if seen[1] is None:
        return "late"
    return "early" if all(expiry is None or seen[1] < expiry for expiry in expiries) else "late"


def _torn_files(root: Path) -> int:
    """Store files that do not parse (a log may end in a torn line only where a test tears it)."""
    torn = 0
    for path in root.rglob("*.json*"):
        if path.name.startswith(".") or not path.is_file():
            continue
        raw = path.read_bytes()
        body = raw[: raw.rfind(b"\n") + 1] if path.suffix == ".jsonl" else raw
        try:
            for line in body.splitlines() if path.suffix == ".jsonl" else [body]:
                if line.strip():
                    json.loads(line)
        except ValueError:
            torn += 1
    return torn


def _loop(name: str, child: Callable[[int, int], None], check: Callable[[], Counter[str]]) -> None:
    rng = random.Random(name)
    totals: Counter[str] = Counter()
    rounds = 0
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline or rounds < MIN_ROUNDS:
        killed, _ = run_then_kill(child, rounds, rng.uniform(0.0, 0.04))
        totals["kills"] += killed
        totals.update(check())
        rounds += 1
    kinds = ["kills", "torn", "lost", "early", "late", "missing"]
    kinds += sorted(totals.keys() - set(kinds))
    print(f"crash-stats: {name} " + " ".join(f"{kind}={totals[kind]}" for kind in kinds))
    assert totals["kills"] == rounds
    assert sum(count for kind, count in totals.items() if kind != "kills") == 0, totals


# -- import ------------------------------------------------------------------------------


def _import_child(archives: list[Path], destination: Path, private: Path, write_fd: int, start: int) -> None:
    tempfile.tempdir = str(private)  # a killed tar import leaves its private directory here, not in /tmp
    i = start
    while True:
        import_store(archives[i % 2], destination, on_error=lambda error: None)
        i += 1


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".jsonl", ".tar.gz"])
def test_sigkill_during_import_leaves_every_key_old_or_new(tmp_path: Path, suffix: str) -> None:
    sides = [tmp_path / "a", tmp_path / "b"]
    for side, root in enumerate(sides):
        _write_state(root, side)
    states = [_observe(root) for root in sides]
    archives = [tmp_path / f"{root.name}{suffix}" for root in sides]
    for root, archive in zip(sides, archives, strict=True):
        export_store(root, archive)
    destination = tmp_path / "dest"
    shutil.copytree(sides[0], destination)  # a copy: the same expiries as side A, to the microsecond
    private = tmp_path / "private"
    private.mkdir()

    def check() -> Counter[str]:
        found: Counter[str] = Counter()
        try:
            seen = _observe(destination)
        except CorruptEntryError:  # a file a reader cannot parse
            return Counter(torn=1)
        for address in STATES:
            allowed = [state[address] for state in states if address in state]
            problem = _classify(seen.get(address), allowed, must_exist=address in states[0])
            if problem:
                found[problem] += 1
        found["torn"] += _torn_files(destination)
        return found

    name = "jsonl-import" if suffix == ".jsonl" else "tar-import"
    _loop(name, partial(_import_child, archives, destination, private), check)


# -- verify --fix and fmt ----------------------------------------------------------------

TTL = 30 * 86400
DOCUMENTS: dict[tuple[str, ...], tuple[Any, bool]] = {  # address -> (value, with a TTL)
    ("plain",): ({"b": 1, "a": [1, 2.5, "é"]}, False),
    ("ttl",): ({"n": 1, "pad": "x" * 2000}, True),
    ("alice", "agent", "state"): ({"turn": 3}, True),
    ("k" * 300,): ({"hashed": True}, True),
    ("stale",): ({"s": 1}, False),  # hand-edited after a TTL save: a sidecar binds its canonical bytes
}
LOGS: dict[tuple[str, ...], list[Any]] = {("messages",): [{"n": i, "role": "user"} for i in range(20)]}
UNTOUCHABLE = {
    "server.key": b"secret\n",
    "notes.meta.json": b'{"author": "me"}\n',
    ".important.tmp": b"draft\n",
    "big.json": b'{"a": 123456789012345678901234567890}',
    "dup.json": b'{"a": 1, "a": 2}',
    "duplog.jsonl": b'{"n": 1, "n": 2}\n',
}


def _build_fixable_store(root: Path) -> dict[tuple[str, ...], State]:
    store = Store(root)
    for address, (value, ttl) in DOCUMENTS.items():
        *segments, key = address
        (store.narrow(*segments) if segments else store).save(key, value, ttl=TTL if ttl else None)
    for (key,), items in LOGS.items():
        store.append(key, items)
    for name, data in UNTOUCHABLE.items():
        (root / name).write_bytes(data)
    return _expected(root)


def _expected(root: Path) -> dict[tuple[str, ...], State]:
    store = Store(root)
    seen: dict[tuple[str, ...], State] = {}
    for address in [*DOCUMENTS, *LOGS]:
        *segments, key = address
        view = store.narrow(*segments) if segments else store
        try:
            value = view.load(key)
        except CorruptEntryError:
            seen[address] = ("torn", None)
            continue
        except KeyError:
            continue
        seen[address] = (value, view.expires_at(key))
    return seen


def _damage(engine: Engine, rng: random.Random) -> None:
    """Undo the canonical layout the way a person or another tool would, keeping every value
    and expiry (through the store's own save and replace), and leave the store's own leftovers."""
    for address, (value, _) in DOCUMENTS.items():
        *segments, key = address
        directory = encode_directory(segments)
        loc = engine.location(directory, tuple(segments), key)
        with engine.lock(directory):
            expiry = engine.read_document(loc)[1]  # type: ignore[index]
            raw = orjson.dumps(value) if rng.random() < 0.5 else json.dumps(value, indent=3).encode()
            engine.save(loc, raw, expiry)
    with engine.lock(""):
        # The sidecar a TTL save of the canonical bytes left, after a person edited the file
        # (unbinding it: no expiry). Rewriting it canonically must not revive that expiry.
        stale = engine.location("", (), "stale")
        canonical = encode_document("stale", DOCUMENTS[("stale",)][0])
        bindings = {digest(canonical): time.time() + 3600, digest(engine.read_document(stale)[0]): None}  # type: ignore[index]
        engine.storage.write("", stale.sidecar, encode_sidecar(bindings), durable=False)
        items = LOGS[("messages",)]
        engine.storage.write("", "messages.jsonl", "".join(json.dumps(i) + "\n" for i in items).encode(), durable=False)
        engine.storage.append("", "messages.jsonl", b'{"torn": ', keep=None, durable=False)
        engine.storage.write("", "gone.meta.json", encode_sidecar({digest(b"1\n"): 1.0}), durable=False)
        engine.storage.write("", temp_name("plain.json"), b"{", durable=False)


def _tool_child(root: Path, operation: Callable[[Path], object], write_fd: int, start: int) -> None:
    rng = random.Random(start)
    engine = Engine(LocalStorage(root), time.time, durable=False)
    while True:
        _damage(engine, rng)
        operation(root)


def _fix(root: Path) -> None:
    verify_store(root, fix=True)


def _fmt(root: Path) -> None:
    format_store(root, on_error=lambda error: None)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "operation"), [("verify-fix", _fix), ("fmt", _fmt)])
def test_sigkill_during_verify_fix_and_fmt_never_changes_a_value(
    tmp_path: Path, name: str, operation: Callable[[Path], object]
) -> None:
    root = tmp_path / "store"
    expected = _build_fixable_store(root)
    assert all(state[1] is not None for address, state in expected.items() if DOCUMENTS.get(address, (0, 0))[1])

    def check() -> Counter[str]:
        found: Counter[str] = Counter()
        seen = _expected(root)
        for address, state in expected.items():
            got = seen.get(address)
            if got is not None and got[0] == "torn":
                found["torn"] += 1
            elif (problem := _classify(got, [state], must_exist=True)) is not None:
                found[problem] += 1
        for file, data in UNTOUCHABLE.items():
            path = root / file
            found["foreign-changed"] += not path.exists() or path.read_bytes() != data
        found["torn"] += _torn_files(root)
        return found

    _loop(name, partial(_tool_child, root, operation), check)
    verify_store(root, fix=True)
    assert _expected(root) == expected
