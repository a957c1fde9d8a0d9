"""S3 benchmark: group_store on S3Storage against raw obstore and raw boto3 loops.

    python benchmarks/bench_s3.py [--documents 500] [--repeats 3] [--output benchmarks/results/s3.md]

Starts the S3 tests' server (moto's, serialised behind one lock, tests/s3/server.py) on
127.0.0.1 in this process and runs every (peer, workload) cell against it on a fresh
bucket, the peers taking turns within each repeat; prints and writes the median time,
operations per second and the ratio raw obstore / group_store (above 1: group_store
is faster). Workloads, on documents of about 1 KiB (the suite's agent messages):

- W1 save N distinct keys, then wait until all are stored (DataStore: the writer's
  batches are concurrent PUTs; also sync ``Store.save``, one PUT per call)
- W2 save one hot key N times, then wait (the final value is verified)
- W3 load the N distinct keys one by one
- W4 append N messages to one log (raw loops: GET and PUT the whole log per append,
  which is what appending to an object costs without a batching writer)
- W5 read that log back
- W6 TTL sweep of 2,000 entries, 10% expired (raw loops: LIST, GET each, bulk DELETE)
- W7 list the keys of 1,000 entries (LIST)

Plus: S3Storage.write_many (concurrent PUTs) against the same PUTs one after another.
The server answers one request at a time, so concurrency here overlaps only the
client's and the network's share of a request, not the server's: on real S3, whose
requests run in parallel, the gap is wider. Not measured: latency over a real network.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.s3.server

from suite import documents as make_documents  # the same ~1 KiB agent messages as the full suite

from tests.s3.server import S3Server

W6_ENTRIES = 2_000
W6_EXPIRED_EVERY = 10
W7_ENTRIES = 1_000

WORKLOADS = {
    "W1": "save distinct keys + flush",
    "W1s": "save distinct keys, sync Store.save",
    "W2": "save one hot key + flush",
    "W3": "load distinct keys",
    "W4": "append to one log",
    "W5": "read the log back",
    "W6": f"TTL sweep of {W6_ENTRIES:,}, {100 // W6_EXPIRED_EVERY}% expired",
    "W7": f"list keys of {W7_ENTRIES:,}",
}


# -- peers: ``prepare(workload)`` runs untimed, then ``run(workload)`` is timed ------------------


class Peer:
    name = ""

    def __init__(self, server: S3Server, docs: list[dict[str, Any]]) -> None:
        self.server = server
        self.docs = docs
        self.bucket = ""

    def fresh(self) -> None:
        self.bucket = self.server.create_bucket()

    def prepare(self, workload: str) -> None:
        """Untimed set-up: W3 needs W1's keys, W5 W4's log, W6 and W7 their entries."""
        self.fresh()
        if workload == "W3":
            self.run("W1")
        elif workload == "W5":
            self.run("W4")
        elif workload in ("W6", "W7"):
            self.fill(W6_ENTRIES if workload == "W6" else W7_ENTRIES, expiring=workload == "W6")

    def run(self, workload: str) -> None:
        getattr(self, workload.lower())()

    def fill(self, entries: int, *, expiring: bool) -> None:
        raise NotImplementedError


class GroupStore(Peer):
    name = "group_store"

    def storage(self) -> Any:
        from group_store.storage._s3 import S3Storage

        return S3Storage(f"s3://{self.bucket}/store", storage_options=self.server.options())

    def data_store(self) -> Any:
        from group_store import DataStore

        return DataStore(storage=self.storage())

    def _run(self, body: Callable[[Any], Any]) -> None:
        async def go() -> None:
            store = self.data_store()
            try:
                await body(store)
            finally:
                await store.aclose()

        asyncio.run(go())

    def w1(self) -> None:
        async def body(store: Any) -> None:
            for i, doc in enumerate(self.docs):
                store.save(f"k{i}", doc)
            await store.flush()

        self._run(body)

    def w1s(self) -> None:
        from group_store import Store

        store = Store(storage=self.storage())
        for i, doc in enumerate(self.docs):
            store.save(f"k{i}", doc)

    def w2(self) -> None:
        async def body(store: Any) -> None:
            for doc in self.docs:
                store.save("hot", doc)
            await store.flush()
            assert await store.load("hot") == self.docs[-1]

        self._run(body)

    def w3(self) -> None:
        async def body(store: Any) -> None:
            for i in range(len(self.docs)):
                assert await store.load(f"k{i}") is not None

        self._run(body)

    def w4(self) -> None:
        async def body(store: Any) -> None:
            for doc in self.docs:
                store.append("log", [doc])
            await store.flush()

        self._run(body)

    def w5(self) -> None:
        async def body(store: Any) -> None:
            assert len(await store.read("log")) == len(self.docs)

        self._run(body)

    def w6(self) -> None:
        async def body(store: Any) -> None:
            assert await store.sweep() == W6_ENTRIES // W6_EXPIRED_EVERY

        self._run(body)

    def w7(self) -> None:
        async def body(store: Any) -> None:
            assert len(await store.keys()) == W7_ENTRIES

        self._run(body)

    def fill(self, entries: int, *, expiring: bool) -> None:
        async def body(store: Any) -> None:
            for i in range(entries):
                expired = expiring and i % W6_EXPIRED_EVERY == 0
                store.save(f"k{i}", {"i": i}, ttl=(0 if expired else 3600) if expiring else None)
            await store.flush()

        self._run(body)


class RawLoop(Peer):
    """The same work as plain requests, one after another; entries are ``{"value", "expires"}``."""

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def listing(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def delete(self, keys: list[str]) -> None:
        raise NotImplementedError

    def w1(self) -> None:
        for i, doc in enumerate(self.docs):
            self.put(f"store/k{i}.json", orjson.dumps({"value": doc}))

    w1s = w1

    def w2(self) -> None:
        for doc in self.docs:
            self.put("store/hot.json", orjson.dumps({"value": doc}))
        assert orjson.loads(self.get("store/hot.json") or b"")["value"] == self.docs[-1]

    def w3(self) -> None:
        for i in range(len(self.docs)):
            assert self.get(f"store/k{i}.json") is not None

    def w4(self) -> None:
        for doc in self.docs:
            log = self.get("store/log.jsonl") or b""
            self.put("store/log.jsonl", log + orjson.dumps(doc) + b"\n")

    def w5(self) -> None:
        data = self.get("store/log.jsonl") or b""
        assert len([orjson.loads(line) for line in data.splitlines()]) == len(self.docs)

    def w6(self) -> None:
        now = time.time()
        expired = []
        for key in self.listing("store/"):
            data = self.get(key)
            if data is not None and orjson.loads(data)["expires"] <= now:
                expired.append(key)
        self.delete(expired)
        assert len(expired) == W6_ENTRIES // W6_EXPIRED_EVERY

    def w7(self) -> None:
        assert len(self.listing("store/")) == W7_ENTRIES

    def fill(self, entries: int, *, expiring: bool) -> None:
        now = time.time()
        for i in range(entries):
            expires = now - 1 if expiring and i % W6_EXPIRED_EVERY == 0 else now + 3600
            self.put(f"store/k{i}.json", orjson.dumps({"value": {"i": i}, "expires": expires}))


class RawObstore(RawLoop):
    name = "raw obstore"

    def fresh(self) -> None:
        import obstore
        from obstore.store import S3Store

        super().fresh()
        config = {key: value for key, value in self.server.options().items() if key != "allow_http"}
        self.store = S3Store(self.bucket, config=config, client_options={"allow_http": True})  # type: ignore[arg-type]
        self.obstore = obstore

    def put(self, key: str, data: bytes) -> None:
        self.obstore.put(self.store, key, data)

    def get(self, key: str) -> bytes | None:
        try:
            return bytes(self.obstore.get(self.store, key).bytes())
        except FileNotFoundError:
            return None

    def listing(self, prefix: str) -> list[str]:
        return [meta["path"] for batch in self.obstore.list(self.store, prefix) for meta in batch]

    def delete(self, keys: list[str]) -> None:
        self.obstore.delete(self.store, keys)


class RawBoto3(RawLoop):
    name = "raw boto3"

    def fresh(self) -> None:
        import boto3  # type: ignore[import-untyped]

        super().fresh()
        options = self.server.options()
        self.client = boto3.client(
            "s3",
            endpoint_url=options["endpoint"],
            aws_access_key_id=options["access_key_id"],
            aws_secret_access_key=options["secret_access_key"],
            region_name=options["region"],
        )

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes | None:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None

    def listing(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})


# -- concurrent against sequential PUTs ------------------------------------------------------


def put_throughput(server: S3Server, docs: list[dict[str, Any]], repeats: int) -> tuple[float, float]:
    """Median PUTs per second of S3Storage.write_many (concurrent) and of single writes in turn."""
    from group_store.storage._s3 import S3Storage

    items = [(f"k{i}.json", orjson.dumps(doc)) for i, doc in enumerate(docs)]
    concurrent, sequential = [], []
    for _ in range(repeats):
        storage = S3Storage(f"s3://{server.create_bucket()}/store", storage_options=server.options())
        storage.scan("")  # the first-use bucket check, untimed
        start = time.perf_counter()
        assert all(error is None for error in storage.write_many("", items, durable=False))
        concurrent.append(len(items) / (time.perf_counter() - start))
        start = time.perf_counter()
        for name, data in items:
            storage.write("", name, data, durable=False)
        sequential.append(len(items) / (time.perf_counter() - start))
    return statistics.median(concurrent), statistics.median(sequential)


def log_designs(server: S3Server, docs: list[dict[str, Any]], flushes: int, repeats: int) -> list[str]:
    """The two designs for a log several processes append to, measured on the same server.

    CAS rewrite (what ``S3Storage.append`` does): a flush is a GET of the log with its
    ETag and a conditional PUT of the whole of it; a read is one GET. Segments (a lower
    bound, raw obstore, no compaction or ordering work): a flush is one create-only PUT of
    a new object; a read is a LIST and a GET per segment. ``flushes`` flushes of 10 items.
    """
    import obstore
    from obstore.store import S3Store

    from group_store.storage._s3 import S3Storage

    batch = b"".join(orjson.dumps(doc) + b"\n" for doc in docs[:10])
    results: dict[str, list[float]] = {}
    for _ in range(repeats):
        bucket = server.create_bucket()
        storage = S3Storage(f"s3://{bucket}/store", storage_options=server.options())
        storage.scan("")  # the first-use bucket check, untimed
        start = time.perf_counter()
        for _ in range(flushes):
            storage.append("", "log.jsonl", batch, keep=None, durable=False)
        results.setdefault("cas flush", []).append((time.perf_counter() - start) / flushes)
        start = time.perf_counter()
        assert storage.read("", "log.jsonl") == batch * flushes
        results.setdefault("cas read", []).append(time.perf_counter() - start)
        config = {key: value for key, value in server.options().items() if key != "allow_http"}
        store = S3Store(bucket, config=config, client_options={"allow_http": True})  # type: ignore[arg-type]
        start = time.perf_counter()
        for number in range(flushes):
            obstore.put(store, f"segments/{number:08d}", batch, mode="create")
        results.setdefault("segment flush", []).append((time.perf_counter() - start) / flushes)
        start = time.perf_counter()
        names = sorted(item["path"] for page in obstore.list(store, "segments/") for item in page)
        assert b"".join(bytes(obstore.get(store, name).bytes()) for name in names) == batch * flushes
        results.setdefault("segment read", []).append(time.perf_counter() - start)
    median = {name: statistics.median(values) * 1000 for name, values in results.items()}
    return [
        f"Log designs, {flushes} flushes of 10 items (~10 KiB each), median of {repeats}:",
        "",
        "| design | per flush | requests per flush | read after the flushes | requests per read |",
        "|---|---|---|---|---|",
        f"| CAS rewrite (S3Storage.append) | {median['cas flush']:.1f} ms | 2 (GET, conditional PUT) "
        f"| {median['cas read']:.1f} ms | 1 GET |",
        f"| segment objects (raw obstore, no compaction) | {median['segment flush']:.1f} ms | 1 (create-only PUT) "
        f"| {median['segment read']:.1f} ms | 1 LIST + {flushes} GET |",
    ]


# -- running and reporting -------------------------------------------------------------------


def measure(
    server: S3Server, peers: list[Peer], workloads: list[str], repeats: int
) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], int]]:
    """Seconds per cell and repeat, and the requests the server answered for each cell."""
    times: dict[tuple[str, str], list[float]] = {}
    requests: dict[tuple[str, str], int] = {}
    for _ in range(repeats):
        for workload in workloads:
            for peer in peers:
                peer.prepare(workload)
                answered = server.app.requests
                start = time.perf_counter()
                peer.run(workload)
                times.setdefault((peer.name, workload), []).append(time.perf_counter() - start)
                requests[peer.name, workload] = server.app.requests - answered
                print(f"{workload} {peer.name}: {times[peer.name, workload][-1]:.2f} s", file=sys.stderr, flush=True)
    return times, requests


def operations(workload: str, documents: int) -> int:
    return {"W5": 1, "W6": W6_ENTRIES, "W7": W7_ENTRIES}.get(workload, documents)


def table(
    times: dict[tuple[str, str], list[float]],
    requests: dict[tuple[str, str], int],
    peers: list[Peer],
    workloads: list[str],
    documents: int,
) -> str:
    names = [peer.name for peer in peers]
    header = "| workload | " + " | ".join(names) + " | raw obstore / group_store | raw boto3 / group_store |"
    lines = [header, "|---" * (len(names) + 3) + "|"]
    for workload in workloads:
        cells = []
        medians = {}
        for name in names:
            found = times.get((name, workload))
            if not found:
                cells.append("-")
                continue
            median = medians[name] = statistics.median(found)
            rate = operations(workload, documents) / median
            cells.append(f"{median * 1000:,.0f} ms ({rate:,.0f}/s, {requests[name, workload]:,} req)")
        ours = medians.get("group_store")
        ratios = [
            f"{medians[peer] / ours:.2f}x" if ours and peer in medians else "-" for peer in ("raw obstore", "raw boto3")
        ]
        lines.append(f"| {workload} {WORKLOADS[workload]} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--peers", default="group_store,raw obstore,raw boto3")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "s3.md")
    args = parser.parse_args()
    docs = make_documents(args.documents)
    workloads = [workload for workload in args.workloads.split(",") if workload]
    server = S3Server()
    try:
        chosen = [peer for peer in (GroupStore, RawObstore, RawBoto3) if peer.name in args.peers.split(",")]
        peers: list[Peer] = [peer(server, docs) for peer in chosen]
        times, requests = measure(server, peers, workloads, args.repeats)
        report = [
            f"Machine: {platform.platform()}, Python {platform.python_version()}; moto's S3 server on 127.0.0.1 "
            f"(one request at a time); {args.documents:,} documents of ~1 KiB; median of {args.repeats}.",
            "",
            table(times, requests, peers, workloads, args.documents),
        ]
        if any(peer.name == "group_store" for peer in peers):
            concurrent, sequential = put_throughput(server, docs, args.repeats)
            report += [
                "",
                f"S3Storage.write_many (concurrent PUTs): {concurrent:,.0f} PUT/s; the same PUTs one after "
                f"another: {sequential:,.0f} PUT/s; {concurrent / sequential:.2f}x.",
                "",
                *log_designs(server, docs, 100, args.repeats),
            ]
    finally:
        server.stop()
    text = "\n".join(report) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
