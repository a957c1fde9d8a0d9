"""Process bodies for the multiprocess S3 tests (spawned: each builds its own S3Storage)."""

from __future__ import annotations

from group_store.storage._s3 import S3Storage


def increment(url: str, options: dict[str, str], times: int) -> None:
    """``times`` read-modify-write increments of ``counter`` by compare-and-swap, no lock."""
    storage = S3Storage(url, storage_options=options)
    for _ in range(times):
        while True:
            found = storage.read_versioned("", "counter")
            if found is None:
                if storage.write_if("", "counter", b"1", version=None, durable=False):
                    break
                continue
            value = int(found.data) + 1
            if storage.write_if("", "counter", str(value).encode(), version=found.version, durable=False):
                break


def append_lines(url: str, options: dict[str, str], worker: int, times: int) -> None:
    """``times`` appends of one line each, naming the worker and the line's number."""
    storage = S3Storage(url, storage_options=options)
    for number in range(times):
        storage.append("", "log.jsonl", f"{worker}:{number}\n".encode(), keep=None, durable=False)


def locked_increment(url: str, options: dict[str, str], times: int) -> None:
    """``times`` unconditional read-then-write increments, each under the directory's lease."""
    storage = S3Storage(url, storage_options=options, lease=2.0)
    for _ in range(times):
        with storage.lock(""):
            data = storage.read("", "counter")
            storage.write("", "counter", str(int(data or b"0") + 1).encode(), durable=False)


def exercise_then_exit(url: str, options: dict[str, str], worker: int) -> None:
    """Batched and single requests and a lease, then a plain return: the process must exit 0."""
    storage = S3Storage(url, storage_options=options, lease=0.5)
    names = [f"{worker}-{number}" for number in range(8)]
    storage.write_many("w", [(name, name.encode()) for name in names], durable=False)
    assert storage.read_many("w", names) == [name.encode() for name in names]
    with storage.lock("w"):
        storage.append("", "log.jsonl", f"{worker}\n".encode(), keep=None, durable=False)
    # Exit right after a wide batch, while the most requests have just completed.
    storage.write_many("w", [(name, b"last") for name in names], durable=False)


def table_modify(url: str, options: dict[str, str], times: int) -> None:
    """``times`` increments of record ``counter``'s ``n`` by ``Table.modify`` (no lease on S3)."""
    from group_store import Store, Table

    table = Table(Store(storage=S3Storage(url, storage_options=options)), "t", fields=["id", "n"], key=["id"], shards=1)
    for _ in range(times):
        table.modify(["counter"], lambda current: {"id": "counter", "n": (current or {"n": 0})["n"] + 1})


def table_upsert(url: str, options: dict[str, str], worker: int, times: int) -> None:
    """``times`` upserts of records of its own, into the one partition file ``counter`` lives in."""
    from group_store import Store, Table

    table = Table(Store(storage=S3Storage(url, storage_options=options)), "t", fields=["id", "n"], key=["id"], shards=1)
    for number in range(times):
        table.upsert({"id": f"w{worker}-{number}", "n": number})
