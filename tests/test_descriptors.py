"""The descriptors the local backend holds at once are bounded, independent of batch
size: bursts of saves succeed under a low RLIMIT_NOFILE."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from group_store import Store
from group_store.storage._local import LocalStorage, group_commit_descriptors

BURST = 5000

BURST_CHILD = """
import resource, sys
import anyio
from group_store import DataStore, Store

root, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


async def burst(durable):
    failed = 0
    async with DataStore(root, durable=durable) as store:
        handles = [store.save(f"k{i}", i) for i in range(count)]  # issued at once: the writer batches them
        for handle in handles:
            try:
                await handle
            except Exception:
                failed += 1
    return failed


if mode == "sync":
    store = Store(root)
    for i in range(count):
        store.save(f"k{i}", i)
    failed = 0
elif mode == "sync, a directory each":
    store = Store(root)
    for i in range(count):
        store.narrow(f"d{i}").save("k", i)
    failed = 0
else:
    failed = anyio.run(burst, mode == "durable")
print(failed)
"""

MODES = ["sync", "sync, a directory each", "async", "durable"]


@pytest.mark.parametrize("mode", MODES)
def test_bursts_of_saves_succeed_under_a_256_descriptor_limit(tmp_path: Path, mode: str) -> None:
    count = BURST if mode != "sync, a directory each" else BURST // 5
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", BURST_CHILD, str(tmp_path), mode, str(count)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0"]
    store = Store(tmp_path)
    if mode == "sync, a directory each":
        assert len(store.children()) == count
        assert store.narrow(f"d{count - 1}").load("k") == count - 1
    else:
        assert len(store.keys()) == count
        assert all(store.load(f"k{i}") == i for i in range(0, count, 97))


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors via /proc/self/fd")
@pytest.mark.parametrize("durable", [False, True], ids=["not durable", "durable"])
def test_a_batch_write_holds_a_bounded_number_of_descriptors_whatever_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    storage = LocalStorage(tmp_path)
    storage.write("", "seed.json", b"0\n", durable=False)  # the root descriptor is open from here on
    before = _open_descriptors()
    peak = before
    real_write_all = LocalStorage._write_all

    def counting(self: LocalStorage, fd: int, data: bytes) -> None:
        nonlocal peak
        real_write_all(self, fd, data)
        peak = max(peak, _open_descriptors())

    monkeypatch.setattr(LocalStorage, "_write_all", counting)
    items = [(f"k{i}.json", b"%d\n" % i) for i in range(10 * group_commit_descriptors())]
    assert storage.write_many("", items, durable=durable) == [None] * len(items)
    assert peak - before <= (group_commit_descriptors() if durable else 1)
    assert (tmp_path / items[-1][0]).read_bytes() == items[-1][1]
    assert _open_descriptors() == before


def test_a_group_commit_holds_at_most_an_eighth_of_the_descriptor_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    try:
        assert group_commit_descriptors() == min(256, hard) // 8
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert group_commit_descriptors() <= max(1, soft // 8)
