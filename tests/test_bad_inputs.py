"""Plant a random bad file beside good entries and run every operation over the store.

One bad file must never stop an operation over the others, nor be met with anything
but a typed error when it is read itself, nor cost a good entry its value. Each
round plants one file (random bytes, truncated or hostile JSON, a malformed sidecar
or key file, a symlink, a FIFO, a hard link) under a random name in a store of good
entries, then runs load/exists/keys/children/sweep/walk/verify/fmt/export/diff and
checks the good entries after each.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

from group_store import (
    GroupStoreError,
    Store,
    diff_stores,
    export_store,
    format_store,
    verify_store,
    walk,
)
from group_store.testing import FakeClock

ROUNDS = 400
GOOD: dict[str, object] = {"alpha": {"n": 1}, "beta": [1, 2, 3], "gamma": "text"}
NAMES = [
    "bad.json",
    "bad.jsonl",
    "bad.meta.json",
    "alpha.meta.json",
    "bad~~0123456789abcdef0123456789abcdef.json",
    "bad~~0123456789abcdef0123456789abcdef.key",
    "server.key",
    ".expiry.jsonl",
    ".important.tmp",
    "sub/bad.json",
    "sub/.key",
    "Weird Dir/x.json",
    "notes.txt",
]
PAYLOADS = [
    b"",
    b"{",
    b'{"a": 1, "a": 2}\n',
    b'{"a": 123456789012345678901234567890}\n',
    b"[1, 2\n",
    b'{"expires_at": {"x": 5}}\n',
    b'{"expires_at": {"0123": "not a time"}}\n',
    b"\xff\xfe\x00garbage",
    b"null\n",
    b'"\\ud800"\n',
    b"1\n2\n{broken\n",
    b"bad 1e400\nbad nan\n",
]


def _plant(root: Path, rng: random.Random, outside: Path) -> str:
    name = rng.choice(NAMES)
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = rng.choice(["bytes", "bytes", "bytes", "random", "symlink", "fifo", "hardlink"])
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "bytes":
        path.write_bytes(rng.choice(PAYLOADS))
    elif kind == "random":
        path.write_bytes(rng.randbytes(rng.randint(0, 64)))
    elif kind == "symlink":
        path.symlink_to(outside)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        os.link(outside, path)
    return f"{kind}:{name}"


def _check_good(store: Store, good: dict[str, object]) -> None:
    for key, value in good.items():
        assert store.load(key) == value
    assert store.narrow("good").load("deep") == {"ok": True}


def _single_entry_operations(store: Store) -> list[Callable[[], object]]:
    """Reads of the bad entry itself: a typed error is their contract."""
    return [lambda: store.exists("bad"), lambda: store.load("bad"), lambda: store.read("bad")]


def _many_entry_operations(store: Store, root: Path, archive: Path) -> list[Callable[[], object]]:
    """Operations over many entries: they skip and report a bad one, and never raise for it."""
    return [
        store.keys,
        store.children,
        store.sweep,
        lambda: list(walk(root, include_expired=True)),
        lambda: verify_store(root),
        lambda: verify_store(root, fix=True),
        lambda: format_store(root),
        lambda: export_store(root, archive),
        lambda: diff_stores(root, archive),
    ]


def test_one_bad_file_never_stops_an_operation_nor_costs_a_good_entry(tmp_path: Path) -> None:
    rng = random.Random(9)
    outside = tmp_path / "outside.json"
    outside.write_bytes(b'{"outside": true}\n')
    untyped = lost = stopped = 0
    for round_number in range(ROUNDS):
        root = tmp_path / f"store{round_number}"
        clock = FakeClock()
        store = Store(root, clock=clock)
        for key, value in GOOD.items():
            store.save(key, value)
        store.narrow("good").save("deep", {"ok": True})
        planted = _plant(root, rng, outside)
        # A planted sidecar of a good entry makes that entry itself the bad one (it raises
        # CorruptEntryError when read); every other entry must stay as it was.
        good = {key: value for key, value in GOOD.items() if not planted.endswith(f":{key}.meta.json")}
        single = _single_entry_operations(store)
        operations = single + _many_entry_operations(store, root, tmp_path / f"export{round_number}.jsonl")
        for operation in operations:
            try:
                operation()
            except GroupStoreError as exc:
                if operation not in single:
                    stopped += 1
                    print(f"an operation over many entries stopped after planting {planted}: {exc!r}")
            except Exception as exc:
                untyped += 1
                print(f"untyped error after planting {planted}: {exc!r}")
            try:
                _check_good(store, good)
            except (AssertionError, GroupStoreError) as exc:
                lost += 1
                print(f"good entry lost after planting {planted}: {exc!r}")
        assert outside.read_bytes() == b'{"outside": true}\n', planted
        assert set(store.keys()) >= set(good), planted
    print(
        f"bad-input-stats: rounds={ROUNDS} operations={ROUNDS * len(operations)}"
        f" untyped={untyped} stopped={stopped} lost={lost}"
    )
    assert (untyped, stopped, lost) == (0, 0, 0)
