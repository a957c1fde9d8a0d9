"""S3Storage against moto's server: what is S3-specific (the generic contract is
``group_store.testing.StorageContract``'s to check)."""

from __future__ import annotations

import errno
import socket
import threading
from collections import Counter

import obstore
import orjson
import pytest
from obstore.store import S3Store

from group_store._errors import InvalidArgumentError, LockTimeoutError, StorageError
from group_store.storage._base import Kind, Listing, Versioned
from group_store.storage._s3 import S3Storage

from ..processes import run_processes
from . import workers
from .server import S3Server


def raw_store(server: S3Server, bucket: str) -> S3Store:
    """The bucket through obstore with no prefix: the object names exactly as stored."""
    config = {key: value for key, value in server.options().items() if key != "allow_http"}
    return S3Store(bucket, config=config, client_options={"allow_http": True})  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- names and configuration ----------------------------------------------------------


def test_object_names_are_the_store_file_names(s3: S3Storage, s3_server: S3Server, s3_bucket: str) -> None:
    raw = raw_store(s3_server, s3_bucket)
    s3.write_many("a~b/c_d", [("x-y.json", b"1"), ("x-y.meta.json", b"2")], durable=False)
    obstore.put(raw, "store/.group_store", b'{"format":1}\n')
    objects = sorted(meta["path"] for batch in obstore.list(raw) for meta in batch)
    assert objects == ["store/.group_store", "store/a~b/c_d/x-y.json", "store/a~b/c_d/x-y.meta.json"]
    assert s3.read("", ".group_store") == b'{"format":1}\n'


def test_locator_and_capabilities(s3: S3Storage, s3_bucket: str) -> None:
    assert s3.locator("d/e", "a.json") == f"s3://{s3_bucket}/store/d/e/a.json"
    assert s3.locator("", "") == f"s3://{s3_bucket}/store"
    assert s3.local_path("d", "a.json") is None
    assert not s3.blocking_io_is_cheap
    assert s3.shared_between_processes
    assert S3Storage("s3://bucket").locator("", "a") == "s3://bucket/a"


@pytest.mark.parametrize("url", ["/tmp/x", "s3://", "https://bucket/x", "s3://bucket/x?versionId=1"])
def test_only_s3_urls_are_accepted(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        S3Storage(url)


def test_configuration_comes_from_the_aws_environment(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = s3_server.options()
    monkeypatch.setenv("AWS_ENDPOINT_URL", options["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", options["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", options["secret_access_key"])
    monkeypatch.setenv("AWS_REGION", options["region"])
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    storage = S3Storage(f"s3://{s3_bucket}/env")
    storage.write("", "a.json", b"1", durable=False)
    assert storage.read("", "a.json") == b"1"


def test_explicit_options_win_over_the_environment(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    storage = S3Storage(f"s3://{s3_bucket}/env", storage_options=s3_server.options())
    storage.write("", "a.json", b"1", durable=False)
    assert storage.read("", "a.json") == b"1"


# -- reading and listing -------------------------------------------------------------


def test_scan_lists_objects_as_files_and_common_prefixes_as_directories(s3: S3Storage) -> None:
    s3.write_many("", [("a.json", b"1"), ("sub/b.json", b"2"), ("sub/deeper/c.json", b"3")], durable=False)
    assert sorted(s3.scan("")) == [Listing("a.json", Kind.FILE), Listing("sub", Kind.DIRECTORY)]
    assert sorted(s3.scan("sub")) == [Listing("b.json", Kind.FILE), Listing("deeper", Kind.DIRECTORY)]
    assert s3.scan("absent") == []
    assert s3.kinds("", ["a.json", "sub", "su", "absent"]) == [Kind.FILE, Kind.DIRECTORY, None, None]


def test_scan_reads_every_page(s3: S3Storage) -> None:
    names = [f"n{number:04d}.json" for number in range(1100)]
    assert s3.write_many("big", [(name, b"1") for name in names], durable=False) == [None] * len(names)
    assert sorted(entry.name for entry in s3.scan("big")) == names


def test_read_tail_is_a_ranged_get(s3: S3Storage) -> None:
    s3.write("", "log.jsonl", b"1\n22\n333\n", durable=False)
    assert s3.read_tail("", "log.jsonl", 4) == (b"333\n", 9)
    assert s3.read_tail("", "log.jsonl", 100) == (b"1\n22\n333\n", 9)
    assert s3.read_tail("", "log.jsonl", 0) == (b"", 9)
    assert s3.read_tail("", "absent", 4) is None


def test_is_current_compares_the_etag(s3: S3Storage) -> None:
    s3.write("", "a.json", b"1", durable=False)
    found = s3.read_versioned("", "a.json")
    assert found is not None
    assert s3.is_current("", "a.json", found.version)
    s3.write("", "a.json", b"2", durable=False)
    assert not s3.is_current("", "a.json", found.version)
    s3.remove("", "a.json")
    assert not s3.is_current("", "a.json", found.version)


def tear_reads(storage: S3Storage, monkeypatch: pytest.MonkeyPatch, rounds: int) -> list[int]:
    """Make the first ``rounds`` reads of ["a", "b"] torn: once "a" has been read, a writer
    moves both objects on before "b" is read. Returns the list of reads of "a" seen."""
    real_get = storage._get
    a_read = threading.Event()
    torn = [0]

    def get(key: str) -> Versioned | None:
        if key == "a":
            found = real_get(key)
            a_read.set()
            return found
        if torn[0] < rounds:
            # The batch's GETs run on concurrent threads: "b" waits here for "a".
            assert a_read.wait(timeout=30)
            a_read.clear()
            torn[0] += 1
            obstore.put(storage._store, "a", str(torn[0]).encode())
            obstore.put(storage._store, "b", str(torn[0]).encode())
        return real_get(key)

    monkeypatch.setattr(storage, "_get", get)
    return torn


def test_read_versions_rereads_until_no_etag_moved(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.write_many("", [("a", b"0"), ("b", b"0")], durable=False)
    torn = tear_reads(s3, monkeypatch, rounds=1)
    assert s3.read_many("", ["a", "b"]) == [b"1", b"1"]
    assert torn == [1]


def test_read_versions_falls_back_to_the_lock_when_writers_keep_moving(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.write_many("", [("a", b"0"), ("b", b"0")], durable=False)
    torn = tear_reads(s3, monkeypatch, rounds=3)
    assert s3.read_many("", ["a", "b"]) == [b"3", b"3"]
    assert torn == [3]
    # The last read ran under the lock, which left its released record behind.
    assert orjson.loads(s3.read("", ".lock") or b"") == {"holder": None}


def test_one_found_among_absent_names_is_verified(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine's clearing save: the document is replaced, then the sidecar removed. A GET
    # of the old document and a 404 of the sidecar after its removal are a pair that was
    # never in place at one moment; the read must not return it.
    s3.write_many("", [("a", b"old"), ("b", b"sidecar")], durable=False)
    real_get = s3._get
    moved = threading.Event()

    def get(key: str) -> Versioned | None:
        if key == "a" and not moved.is_set():
            result = real_get(key)
            obstore.put(s3._store, "a", b"new")
            obstore.delete(s3._store, "b")
            moved.set()
            return result
        if key == "b":
            moved.wait(10)
        return real_get(key)

    monkeypatch.setattr(s3, "_get", get)
    assert s3.read_many("", ["a", "b"]) == [b"new", None]


def test_one_name_read_needs_no_verification(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.write("", "a", b"0", durable=False)

    def no_head(key: str) -> None:
        raise AssertionError("a HEAD for a read of one object")

    monkeypatch.setattr(s3, "_head", no_head)
    assert s3.read_many("", ["a"]) == [b"0"]
    assert s3.read_many("", ["absent", "missing"]) == [None, None]


# -- writing ---------------------------------------------------------------------------


def test_write_many_gives_one_outcome_per_item_and_the_last_bytes_win(s3: S3Storage) -> None:
    outcomes = s3.write_many("d", [("a", b"1"), ("b", b"2"), ("a", b"3")], durable=False)
    assert outcomes == [None, None, None]
    assert s3.read_many("d", ["a", "b"]) == [b"3", b"2"]


def test_write_if_is_a_conditional_put(s3: S3Storage) -> None:
    assert s3.write_if("", "a", b"1", version=None, durable=False)
    assert not s3.write_if("", "a", b"2", version=None, durable=False)
    first = s3.read_versioned("", "a")
    assert first is not None
    assert s3.write_if("", "a", b"3", version=first.version, durable=False)
    assert not s3.write_if("", "a", b"4", version=first.version, durable=False)
    s3.remove("", "a")
    assert not s3.write_if("", "a", b"5", version=first.version, durable=False)
    assert s3.read("", "a") is None


def test_write_if_refuses_a_foreign_version(s3: S3Storage) -> None:
    from group_store.storage._base import Version

    with pytest.raises(InvalidArgumentError):
        s3.write_if("", "a", b"1", version=Version(), durable=False)


def test_four_processes_increment_one_object_by_compare_and_swap(s3_server: S3Server, s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/cas"
    options = s3_server.options()
    run_processes([(workers.increment, (url, options, 100)) for _ in range(4)])
    assert S3Storage(url, storage_options=options).read("", "counter") == b"400"


def test_remove_many_says_which_existed_and_removes_them_in_bulk(s3: S3Storage) -> None:
    s3.write_many("d", [("a", b"1"), ("b", b"2")], durable=False)
    assert s3.remove_many("d", ["a", "absent", "b"], durable=False) == [True, False, True]
    assert s3.scan("d") == []
    assert s3.remove_many("d", [], durable=False) == []


# -- appending -------------------------------------------------------------------------


def test_append_creates_extends_and_cuts(s3: S3Storage) -> None:
    s3.append("", "log.jsonl", b"1\n", keep=None, durable=False)
    s3.append("", "log.jsonl", b"2\n", keep=None, durable=False)
    s3.write("", "log.jsonl", b"1\n2\n{torn", durable=False)
    s3.append("", "log.jsonl", b"3\n", keep=4, durable=False)
    assert s3.read("", "log.jsonl") == b"1\n2\n3\n"


def test_four_processes_appending_lose_and_duplicate_nothing(s3_server: S3Server, s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/logs"
    options = s3_server.options()
    run_processes([(workers.append_lines, (url, options, worker, 50)) for worker in range(4)])
    data = S3Storage(url, storage_options=options).read("", "log.jsonl")
    assert data is not None
    lines = data.decode().splitlines()
    assert Counter(lines) == Counter(f"{worker}:{number}" for worker in range(4) for number in range(50))
    for worker in range(4):
        mine = [line for line in lines if line.startswith(f"{worker}:")]
        assert mine == [f"{worker}:{number}" for number in range(50)]


def test_an_append_contended_past_its_attempts_is_a_typed_error_and_changes_nothing(
    s3_server: S3Server, s3_bucket: str
) -> None:
    storage = S3Storage(f"s3://{s3_bucket}/storm", storage_options=s3_server.options(), cas_attempts=5)
    storage.append("", "log.jsonl", b"1\n", keep=None, durable=False)
    s3_server.refuse_conditional(5)
    with pytest.raises(StorageError) as caught:
        storage.append("", "log.jsonl", b"2\n", keep=None, durable=False)
    assert caught.value.errno == errno.EBUSY
    assert caught.value.path == storage.locator("", "log.jsonl")
    assert storage.read("", "log.jsonl") == b"1\n"
    storage.append("", "log.jsonl", b"2\n", keep=None, durable=False)
    assert storage.read("", "log.jsonl") == b"1\n2\n"


# -- locking ---------------------------------------------------------------------------


def test_lock_is_reentrant_and_released(s3: S3Storage) -> None:
    with s3.lock("d"), s3.lock("d", timeout=0):
        record = orjson.loads(s3.read("d", ".lock") or b"")
        assert isinstance(record["holder"], str)
    assert orjson.loads(s3.read("d", ".lock") or b"") == {"holder": None}
    with s3.lock("d", timeout=0):
        pass


def test_a_renewed_lease_is_never_taken(s3_server: S3Server, s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/store"
    holder = S3Storage(url, storage_options=s3_server.options(), lease=0.3)
    waiter = S3Storage(url, storage_options=s3_server.options())
    # The waiter waits several leases: only renewal keeps the lease from it.
    with holder.lock("d"), pytest.raises(LockTimeoutError) as caught, waiter.lock("d", timeout=1.0):
        pass
    assert caught.value.path == waiter.locator("d", ".lock")
    with waiter.lock("d", timeout=5):
        pass


def test_an_abandoned_lease_is_taken_only_after_it_expires(s3: S3Storage) -> None:
    ghost = {"holder": "a process that stalled", "n": 0}
    s3.write("d", ".lock", orjson.dumps({**ghost, "lease": 3600}), durable=False)
    with pytest.raises(LockTimeoutError), s3.lock("d", timeout=0.5):
        pass
    s3.write("d", ".lock", orjson.dumps({**ghost, "lease": 0.2}), durable=False)
    with s3.lock("d", timeout=10):
        assert orjson.loads(s3.read("d", ".lock") or b"")["holder"] != ghost["holder"]


def test_a_holder_stalled_past_its_lease_loses_it_and_is_told_on_leaving(s3_server: S3Server, s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/store"
    stalled = S3Storage(url, storage_options=s3_server.options(), lease=0.3)
    other = S3Storage(url, storage_options=s3_server.options())

    def stall_while_another_takes_the_lease() -> None:
        with stalled.lock("d"):
            # Stall the renewal (as a SIGSTOP or a long pause would): the lease then lapses.
            held = stalled._leases._held["d/.lock"]
            held.stop.set()
            assert held.renewer is not None
            held.renewer.join()
            with other.lock("d", timeout=10):
                pass

    with pytest.raises(StorageError) as caught:
        stall_while_another_takes_the_lease()
    assert caught.value.errno == errno.ENOLCK
    assert caught.value.path == stalled.locator("d", ".lock")


def test_a_lock_this_process_released_is_taken_again_without_a_get(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    with s3.lock("d"):
        pass
    objects = s3._leases._objects

    def no_get(key: str) -> None:
        raise AssertionError("a GET of a lease this process left released")

    monkeypatch.setattr(objects, "get", no_get)
    with s3.lock("d"):
        assert orjson.loads(s3.read("d", ".lock") or b"")["holder"] is not None
    # Taken by someone else in between: the conditional PUT fails and the GET path runs.
    monkeypatch.undo()
    s3.write("d", ".lock", b"", durable=False)
    with s3.lock("d"):
        pass


def test_an_empty_lock_file_copied_from_a_local_store_is_free(s3: S3Storage) -> None:
    s3.write("d", ".lock", b"", durable=False)
    with s3.lock("d", timeout=0):
        pass


def test_four_processes_increment_under_the_lease(s3_server: S3Server, s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/leased"
    options = s3_server.options()
    run_processes([(workers.locked_increment, (url, options, 15)) for _ in range(4)])
    assert S3Storage(url, storage_options=options).read("", "counter") == b"60"


def test_worker_processes_exit_cleanly(s3_server: S3Server, s3_bucket: str) -> None:
    # A regression test for an abort at exit (SIGABRT after the work was done, in several
    # percent of workers) when obstore's threads completed requests into Python: every
    # worker must exit with 0. run_processes asserts each exit code.
    url = f"s3://{s3_bucket}/exits"
    options = s3_server.options()
    run_processes([(workers.exercise_then_exit, (url, options, worker)) for worker in range(8)])
    data = S3Storage(url, storage_options=options).read("", "log.jsonl")
    assert sorted((data or b"").split()) == sorted(str(worker).encode() for worker in range(8))


# -- bad conditions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        lambda storage: storage.read("", "a.json"),
        lambda storage: storage.scan(""),
        lambda storage: storage.write("", "a.json", b"1", durable=False),
        lambda storage: storage.kinds("", ["a.json"]),
    ],
    ids=["read", "scan", "write", "kinds"],
)
def test_a_missing_bucket_is_an_error_never_an_empty_store(s3_server: S3Server, operation) -> None:
    storage = S3Storage("s3://no-such-bucket/store", storage_options=s3_server.options())
    with pytest.raises(StorageError) as caught:
        operation(storage)
    assert caught.value.errno == errno.ENOENT
    assert str(caught.value.path).startswith("s3://no-such-bucket/store")


def test_a_bucket_deleted_after_first_use_is_an_error(s3_server: S3Server, s3_bucket: str) -> None:
    storage = S3Storage(f"s3://{s3_bucket}/store", storage_options=s3_server.options())
    storage.write("", "a.json", b"1", durable=False)
    storage.remove("", "a.json")
    obstore_store = raw_store(s3_server, s3_bucket)
    assert list(obstore.list(obstore_store)) in ([], [[]])
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(f"{s3_server.endpoint}/{s3_bucket}", method="DELETE")):
        pass
    with pytest.raises(StorageError) as caught:
        storage.read("", "a.json")
    assert caught.value.errno == errno.ENOENT
    assert caught.value.path == storage.locator("", "a.json")


def test_an_unreachable_endpoint_is_a_typed_error(s3_bucket: str, s3_server: S3Server) -> None:
    options = {**s3_server.options(), "endpoint": f"http://127.0.0.1:{closed_port()}"}
    storage = S3Storage(f"s3://{s3_bucket}/store", storage_options=options)
    with pytest.raises(StorageError) as caught:
        storage.read("", "a.json")
    assert caught.value.errno == errno.ECONNREFUSED
    assert caught.value.path == f"s3://{s3_bucket}/store"


def test_missing_credentials_are_a_typed_error(
    s3_bucket: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    options = {key: value for key, value in s3_server.options().items() if "access_key" not in key}
    # No keys: obstore asks the instance metadata service, which is not there.
    options["metadata_endpoint"] = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(StorageError) as caught:
        S3Storage(f"s3://{s3_bucket}/store", storage_options=options).read("", "a.json")
    assert caught.value.errno == errno.EACCES


def test_throttling_is_retried_then_a_typed_error(s3: S3Storage, s3_server: S3Server) -> None:
    s3.write("", "a.json", b"1", durable=False)
    s3_server.throttle(2)
    assert s3.read("", "a.json") == b"1"
    s3_server.throttle(1000)
    with pytest.raises(StorageError) as caught:
        s3.read("", "a.json")
    s3_server.throttle(0)
    assert caught.value.errno == errno.EAGAIN
    assert caught.value.path == s3.locator("", "a.json")
    assert s3.read("", "a.json") == b"1"


def test_a_throttled_item_of_a_batch_fails_alone(s3: S3Storage, s3_server: S3Server) -> None:
    s3.write_many("", [("a", b"0"), ("b", b"0")], durable=False)
    storage = S3Storage(s3.locator(""), storage_options=s3_server.options(), max_concurrency=1)
    storage.read("", "a")
    s3_server.throttle(4)
    outcomes = storage.write_many("", [("a", b"1"), ("b", b"1")], durable=False)
    assert isinstance(outcomes[0], StorageError)
    assert outcomes[0].errno == errno.EAGAIN
    assert outcomes[1] is None
    assert storage.read_many("", ["a", "b"]) == [b"0", b"1"]
