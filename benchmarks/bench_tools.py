"""Tools benchmark: verify, export and diff on a store of 100,000 entries, beside plain Unix tools.

    python benchmarks/bench_tools.py [--entries 100000]

Builds a store of ``--entries`` documents (about 200 B each, 1,000 per session
directory, every tenth session with a message log) in a directory under the
current one, then times each operation once, next to the plainest tool that
does comparable work on the same files:

- verify (read, parse and check every file) beside a loop that reads and parses every file;
- export to .tar.gz beside ``tar czf``; export to .jsonl;
- diff of the store with its .jsonl export beside ``diff -r`` of the store with a copy.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from group_store import Store, diff_stores, export_store, verify_store
from group_store._format.codec import encode_document

PER_SESSION = 1000


def build(root: Path, entries: int) -> None:
    """Write the store directly in its on-disk format (faster than saving through the API)."""
    for index in range(entries):
        session, item = divmod(index, PER_SESSION)
        directory = root / f"session-{session:04d}"
        if item == 0:
            directory.mkdir(parents=True)
        document = {"id": index, "role": "agent", "state": {"step": item, "notes": "n" * 120}}
        (directory / f"entry-{item:04d}.json").write_bytes(encode_document("k", document))
    for session in range(0, entries // PER_SESSION, 10):
        Store(root).narrow(f"session-{session:04d}").append("messages", [{"n": n} for n in range(50)])


def read_and_parse_all(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            data = (Path(directory) / name).read_bytes()
            if name.endswith(".json"):
                orjson.loads(data)


def timed(action: Callable[[], object]) -> float:
    os.sync()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix="bench-tools-") as directory:
        work = Path(directory)
        store = work / "store"
        build_time = timed(lambda: build(store, args.entries))
        copy = work / "copy"
        copy_time = timed(lambda: shutil.copytree(store, copy))
        rows = [
            (
                "verify",
                timed(lambda: verify_store(store)),
                "read + parse every file",
                timed(lambda: read_and_parse_all(store)),
            ),
            (
                "export .tar.gz",
                timed(lambda: export_store(store, work / "a.tar.gz")),
                "tar czf",
                timed(
                    lambda: subprocess.run(["tar", "czf", str(work / "b.tar.gz"), "-C", str(store), "."], check=True)
                ),
            ),
            ("export .jsonl", timed(lambda: export_store(store, work / "a.jsonl")), "", None),
            (
                "diff (store vs its .jsonl export)",
                timed(lambda: diff_stores(store, work / "a.jsonl")),
                "diff -r (store vs a copy)",
                timed(lambda: subprocess.run(["diff", "-r", "-q", str(store), str(copy)], check=True)),
            ),
        ]
    print(f"# {args.entries:,} entries; built in {build_time:.1f} s, copied in {copy_time:.1f} s")
    print(f"# {platform.platform()}, Python {platform.python_version()}")
    print()
    print("| operation | group_store | baseline | baseline time | ratio |")
    print("|---|---|---|---|---|")
    for name, ours, baseline, theirs in rows:
        if theirs is None:
            print(f"| {name} | {ours:.1f} s | - | - | - |")
        else:
            print(f"| {name} | {ours:.1f} s | {baseline} | {theirs:.1f} s | {ours / theirs:.1f}x the time |")


if __name__ == "__main__":
    main()
