"""SIGKILL a process writing a durable Table at random moments and check what each crash leaves.

- every partition file parses, and each holds one whole ``upsert_many`` batch
  (a file is replaced atomically: never half of one batch and half of another);
- no acknowledged batch, insert or ``modify`` increment is lost (``durable=True``).
"""

from __future__ import annotations

import os
import random
import time
from functools import partial
from pathlib import Path

import pytest

from group_store import Store, Table

from .test_crash import RECORD, run_then_kill  # the same fork-and-kill round and acknowledgement records

BUDGET = float(os.environ.get("GROUP_STORE_CRASH_SECONDS", "30")) / 3
BATCH, INSERT, COUNTER = 0, 1, 2
PARTITIONS = ["p0", "p1", "p2"]


def table(root: Path) -> Table:
    return Table(Store(root, durable=True), "t", fields=("part", "id", "batch", "pad"), key=("part", "id"))


def _child(root: Path, write_fd: int, start: int) -> None:
    t = table(root)
    i = start
    while True:
        t.upsert_many(
            [{"part": p, "id": f"r{r}", "batch": i, "pad": "x" * (i % 500)} for p in PARTITIONS for r in range(5)]
        )
        os.write(write_fd, RECORD.pack(BATCH, i))
        t.insert({"part": "log", "id": f"e{i:08d}", "batch": i})
        os.write(write_fd, RECORD.pack(INSERT, i))
        value = t.modify(
            ("log", "counter"), lambda r: {"part": "log", "id": "counter", "batch": (r["batch"] if r else 0) + 1}
        )
        assert value is not None
        os.write(write_fd, RECORD.pack(COUNTER, value["batch"]))
        i += 1


@pytest.mark.slow
def test_sigkill_leaves_whole_partition_files_and_keeps_acknowledged_writes(tmp_path: Path) -> None:
    rng = random.Random(7)
    root = tmp_path / "store"
    batch = counter = rounds = 0
    inserts: set[int] = set()
    next_i = 1
    deadline = time.monotonic() + BUDGET
    while time.monotonic() < deadline or rounds < 20:
        _, acks = run_then_kill(partial(_child, root), next_i, rng.uniform(0.0, 0.05))
        rounds += 1
        for kind, value in acks:
            if kind == BATCH:
                batch = value
            elif kind == INSERT:
                inserts.add(value)
            else:
                counter = value
        next_i = max([value for kind, value in acks if kind != COUNTER], default=next_i) + 2
        t = table(root)
        for part in PARTITIONS:
            batches = {r["batch"] for r in t.find({"part": part})}
            assert len(batches) <= 1, f"{part}: a torn batch {batches}"
            assert not batch or batches.pop() >= batch, f"{part}: acknowledged batch {batch} lost"
        stored = {r["batch"] for r in t.find({"part": "log"}) if r["id"] != "counter"}
        assert inserts <= stored, f"acknowledged inserts lost: {sorted(inserts - stored)[:5]}"
        found = t.get("log", "counter")
        assert counter == 0 or (found is not None and found["batch"] >= counter)
    assert rounds >= 20
    assert batch > 0
    assert counter > 0
