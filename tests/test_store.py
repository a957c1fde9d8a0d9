"""The sync Store: API, on-disk format, TTL, logs, hostile files."""

from __future__ import annotations

import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from group_store import (
    CorruptEntryError,
    EntryKindError,
    InvalidArgumentError,
    InvalidKeyError,
    KeyNotFoundError,
    SerializationError,
    Store,
    UnsafeFileError,
)
from group_store._engine import engine as engine_module
from group_store._format.expiry import encode_sidecar
from group_store._format.layout import Location, temp_name
from group_store.testing import FakeClock
from tests.local_paths import root_of, store_bytes, stored


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Store:
    return Store(tmp_path / "root", clock=clock)


def test_save_load_and_canonical_file(store: Store, backend: str) -> None:
    store.save("state", {"step": 1, "tags": ["a"]})
    assert store.load("state") == {"step": 1, "tags": ["a"]}
    canonical = b'{\n  "step": 1,\n  "tags": [\n    "a"\n  ]\n}\n'
    assert stored(store, "state.json") == canonical
    if backend == "local":
        assert (root_of(store) / "state.json").read_bytes() == canonical


def test_equal_data_gives_identical_bytes(store: Store) -> None:
    store.save("a", {"x": [1, 2], "y": None})
    first = stored(store, "a.json")
    store.save("a", {"x": [1, 2], "y": None})
    assert first is not None
    assert stored(store, "a.json") == first


def test_missing_key(store: Store) -> None:
    with pytest.raises(KeyNotFoundError) as info:
        store.load("nope")
    assert isinstance(info.value, KeyError)
    assert info.value.key == "nope"
    assert "nope" in str(info.value)
    assert "nope.json" in str(info.value)
    assert store.get("nope", 7) == 7
    assert not store.exists("nope")
    assert store.delete("nope") is False


@pytest.mark.local_only("lists the file names on disk")
def test_distinct_keys_never_share_a_file(store: Store) -> None:
    for key in ["a/b", "a_b", "A_b", "a b", "a.b", "..", "con", "CON"]:
        store.save(key, key)
    for key in ["a/b", "a_b", "A_b", "a b", "a.b", "..", "con", "CON"]:
        assert store.load(key) == key
    assert store.keys() == sorted(["a/b", "a_b", "A_b", "a b", "a.b", "..", "con", "CON"])
    assert sorted(p.name for p in root_of(store).iterdir() if not p.name.startswith(".")) == sorted(
        [
            "a~2fb.json",
            "a_b.json",
            "~41_b.json",
            "a~20b.json",
            "a~2eb.json",
            "~2e~2e.json",
            "~63on.json",
            "~43~4f~4e.json",
        ]
    )


@pytest.mark.local_only("checks that nothing is created outside the root directory on disk")
def test_keys_cannot_escape_the_root(store: Store, tmp_path: Path) -> None:
    store.narrow("..", "..").save("../../escape", 1)
    store.save("/etc/x", 1)
    outside = {p for p in tmp_path.rglob("*") if not str(p).startswith(str(root_of(store)))}
    assert outside == set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


@pytest.mark.local_only("reads the hashed names' files on disk")
def test_long_keys_round_trip(store: Store) -> None:
    long_key, long_dir = "k" * 500 + "/é", "d" * 400
    view = store.narrow(long_dir)
    view.save(long_key, 1)
    view.append(long_key + "log", [1])
    assert view.load(long_key) == 1
    assert view.keys() == sorted([long_key, long_key + "log"])
    assert store.children() == [long_dir]
    for path in root_of(store).rglob("*"):
        assert len(path.name.encode()) <= 255
    assert view.delete(long_key)
    assert view.keys() == [long_key + "log"]


def test_empty_key_and_bad_narrow(store: Store) -> None:
    with pytest.raises(InvalidKeyError):
        store.save("", 1)
    with pytest.raises(InvalidKeyError):
        store.narrow()
    with pytest.raises(InvalidKeyError):
        store.narrow("a", "")


def test_unserializable_data_names_key_and_keeps_old_value(store: Store) -> None:
    store.save("k", {"ok": True})
    with pytest.raises(SerializationError, match="'k'"):
        store.save("k", {"bad": {1, 2}})
    assert store.load("k") == {"ok": True}


@pytest.mark.local_only("checks narrow_path() and the directory layout on disk")
def test_narrow_layout_and_paths(store: Store) -> None:
    agent = store.narrow("alice", "agent")
    agent.save("state", {"n": 1})
    assert (root_of(store) / "alice" / "agent" / "state.json").exists()
    assert store.narrow_path("alice", "agent") == root_of(agent) == root_of(store) / "alice" / "agent"
    assert store.children() == ["alice"]
    assert store.narrow("alice").children() == ["agent"]
    assert store.keys() == []
    with store.narrow("bob") as bob:
        bob.save("x", 1)
    assert store.children() == ["alice", "bob"]


def test_update_and_default_copy(store: Store) -> None:
    default: list[str] = []
    assert store.update("cart", lambda items: [*items, "milk"], default=default) == ["milk"]
    assert store.update("cart", lambda items: [*items, "eggs"]) == ["milk", "eggs"]
    store.update("other", lambda items: items.append(1) or items, default=default)
    assert default == []
    with pytest.raises(KeyNotFoundError):
        store.update("missing", lambda v: v)


def test_update_failure_writes_nothing(store: Store) -> None:
    store.save("n", 1)

    def boom(value: int) -> int:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.update("n", boom)
    with pytest.raises(SerializationError):
        store.update("n", lambda v: {v})
    assert store.load("n") == 1


@pytest.mark.not_on_s3("~15 s of contended CAS round trips; tests/s3 runs 4 processes x 100 CAS increments on S3")
def test_update_is_atomic_across_threads(store: Store) -> None:
    def work() -> None:
        for _ in range(100):
            store.update("counter", lambda n: n + 1, default=0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.load("counter") == 400


# -- TTL ------------------------------------------------------------------


@pytest.mark.local_only("checks the sidecar files on disk")
def test_ttl_hides_before_sweep_and_sweep_removes(store: Store, clock: FakeClock) -> None:
    store.save("cache", {"t": 20}, ttl=60)
    store.save("forever", 1)
    assert store.expires_at("cache") == datetime.fromtimestamp(clock.now + 60, UTC)
    assert store.expires_at("forever") is None
    assert (root_of(store) / "cache.json").read_bytes() == b'{\n  "t": 20\n}\n'  # data file holds only user JSON
    clock.advance(60)
    assert not store.exists("cache")
    assert store.get("cache") is None
    assert store.keys() == ["forever"]
    with pytest.raises(KeyNotFoundError):
        store.expires_at("cache")
    assert (root_of(store) / "cache.json").exists()
    assert store.sweep() == 1
    assert not (root_of(store) / "cache.json").exists()
    assert not (root_of(store) / "cache.meta.json").exists()
    assert store.sweep() == 0


def test_ttl_forms(store: Store, clock: FakeClock) -> None:
    store.save("a", 1, ttl=timedelta(seconds=5))
    when = datetime.fromtimestamp(clock.now + 9, UTC)
    store.save("b", 1, expires_at=when)
    assert store.expires_at("b") == when
    clock.advance(6)
    assert store.keys() == ["b"]
    for bad in [{"ttl": -1}, {"expires_at": datetime(2030, 1, 1)}, {"ttl": 1, "expires_at": when}]:
        with pytest.raises(InvalidArgumentError):
            store.save("c", 1, **bad)  # type: ignore[arg-type]


@pytest.mark.local_only("checks the sidecar file on disk")
def test_saving_without_ttl_clears_expiry(store: Store, clock: FakeClock) -> None:
    store.save("k", 1, ttl=10)
    store.save("k", 1)
    assert store.expires_at("k") is None
    assert not (root_of(store) / "k.meta.json").exists()
    store.save("k", 2, ttl=10)
    store.save("k", 3)
    clock.advance(100)
    assert store.load("k") == 3


def test_update_keeps_expiry_unless_given(store: Store, clock: FakeClock) -> None:
    store.save("n", 1, ttl=10)
    store.update("n", lambda v: v + 1)
    assert store.expires_at("n") == datetime.fromtimestamp(clock.now + 10, UTC)
    store.update("n", lambda v: v + 1, ttl=100)
    clock.advance(50)
    assert store.load("n") == 3


@pytest.mark.local_only("plants leftover files on disk")
def test_sweep_covers_subtree_and_leftovers(store: Store, clock: FakeClock) -> None:
    deep = store.narrow("a", "b")
    deep.save("x", 1, ttl=1)
    deep.save("y", 1)
    (root_of(deep) / temp_name("y.json")).write_bytes(b"{")
    (root_of(deep) / "gone.meta.json").write_bytes(encode_sidecar({"0" * 32: None}))
    clock.advance(2)
    assert store.sweep() == 1
    assert sorted(p.name for p in root_of(deep).iterdir()) == [".lock", "y.json"]


@pytest.mark.local_only("writes a sidecar file on disk")
def test_stale_sidecar_binds_nothing(store: Store, clock: FakeClock) -> None:
    store.save("k", "old", ttl=1)
    # Simulate a crash after a no-TTL save replaced the data but before the sidecar was removed.
    (root_of(store) / "k.json").write_bytes(b'"new"\n')
    clock.advance(10)
    assert store.load("k") == "new"
    assert store.expires_at("k") is None
    assert store.sweep() == 0


@pytest.mark.local_only("writes a malformed sidecar file on disk")
def test_malformed_sidecar_is_typed_and_save_repairs_it(store: Store) -> None:
    store.save("k", 1, ttl=10)
    (root_of(store) / "k.meta.json").write_bytes(b"nonsense")
    with pytest.raises(CorruptEntryError, match="sidecar"):
        store.load("k")
    store.save("k", 2, ttl=10)
    assert store.load("k") == 2


# -- logs -----------------------------------------------------------------


def test_logs(store: Store, backend: str) -> None:
    store.append("messages", [{"m": 1}, {"m": 2}])
    store.append("messages", [{"m": 3}])
    store.append("messages", [])
    assert store.read("messages") == [{"m": 1}, {"m": 2}, {"m": 3}]
    assert store.read("messages", last=2) == [{"m": 2}, {"m": 3}]
    assert store.read("messages", last=0) == []
    assert store.load("messages") == [{"m": 1}, {"m": 2}, {"m": 3}]
    assert stored(store, "messages.jsonl") == b'{"m":1}\n{"m":2}\n{"m":3}\n'
    if backend == "local":
        assert (root_of(store) / "messages.jsonl").read_bytes() == b'{"m":1}\n{"m":2}\n{"m":3}\n'
    assert store.exists("messages")
    assert store.expires_at("messages") is None
    assert store.delete("messages")
    assert not store.exists("messages")


def test_max_items_prunes_oldest(store: Store) -> None:
    for i in range(10):
        store.append("log", [i, i + 100], max_items=5)
    assert store.read("log") == [107, 8, 108, 9, 109]
    store.append("log", list(range(20)), max_items=3)
    assert store.read("log") == [17, 18, 19]


def test_torn_tail_is_skipped_then_truncated(store: Store, backend: str) -> None:
    store.append("log", [1, 2])
    # A crash mid-append leaves a partial line: in place on disk (same inode), as a whole new
    # state of the file elsewhere.
    if backend == "local":
        with open(root_of(store) / "log.jsonl", "ab") as f:
            f.write(b'{"torn":')
    else:
        store_bytes(store, "log.jsonl", b'1\n2\n{"torn":')
    assert store.read("log") == [1, 2]
    store.append("log", [3])
    assert stored(store, "log.jsonl") == b"1\n2\n3\n"


def test_documents_and_logs_do_not_mix(store: Store) -> None:
    store.save("doc", 1)
    store.append("log", [1])
    with pytest.raises(EntryKindError):
        store.append("doc", [1])
    with pytest.raises(EntryKindError):
        store.save("log", 1)
    with pytest.raises(EntryKindError):
        store.read("doc")
    assert store.load("doc") == 1
    assert store.read("log") == [1]


def test_bad_append_arguments(store: Store) -> None:
    with pytest.raises(InvalidArgumentError):
        store.append("log", {"not": "a list"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        store.append("log", [1], max_items=0)
    with pytest.raises(InvalidArgumentError):
        store.read("log", last=-1)
    with pytest.raises(SerializationError):
        store.append("log", [1, {2}])
    assert not store.exists("log")


# -- hostile and damaged files --------------------------------------------


@pytest.mark.local_only("writes invalid JSON into a key file on disk")
def test_invalid_json_is_isolated(store: Store) -> None:
    store.save("good", 1)
    (root_of(store) / "bad.json").write_bytes(b"{not json")
    with pytest.raises(CorruptEntryError) as info:
        store.load("bad")
    assert info.value.key == "bad"
    assert info.value.path == str(root_of(store) / "bad.json")
    assert store.load("good") == 1
    assert store.keys() == ["bad", "good"]


@pytest.mark.local_only("symlinks")
def test_symlinked_entry_is_refused(store: Store, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('"secret"')
    store.save("x", 1)
    os.symlink(secret, root_of(store) / "link.json")
    with pytest.raises(UnsafeFileError) as info:
        store.load("link")
    assert info.value.key == "link"
    with pytest.raises(UnsafeFileError):
        store.save("link", "overwrite")
    assert secret.read_text() == '"secret"'
    assert "link" not in store.keys()


@pytest.mark.local_only("symlinks")
def test_symlinked_directory_is_never_followed(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store.save("x", 1)
    os.symlink(outside, root_of(store) / "evil")
    with pytest.raises(UnsafeFileError):
        store.narrow("evil").save("k", 1)
    with pytest.raises(UnsafeFileError):
        store.narrow("evil").load("k")
    assert list(outside.iterdir()) == []
    assert store.children() == []


@pytest.mark.local_only("a FIFO on disk")
def test_fifo_does_not_hang(store: Store) -> None:
    store.save("x", 1)
    os.mkfifo(root_of(store) / "pipe.json")
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        store.load("pipe")
    assert store.keys() == ["x"]


@pytest.mark.local_only("POSIX permission bits")
def test_private_permissions_by_default_and_configurable(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.narrow("d").save("k", 1)
    assert stat.S_IMODE((tmp_path / "s" / "d").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "s" / "d" / "k.json").stat().st_mode) == 0o600
    shared = Store(tmp_path / "t", file_mode=0o644, dir_mode=0o755)
    shared.narrow("d").save("k", 1)
    assert stat.S_IMODE((tmp_path / "t" / "d" / "k.json").stat().st_mode) == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.local_only("plants temporary files on disk")
def test_temporary_files_are_ignored(store: Store) -> None:
    store.save("k", 1)
    (root_of(store) / temp_name("k.json")).write_bytes(b"{")
    (root_of(store) / "notes.txt").write_bytes(b"hi")
    assert store.keys() == ["k"]


def test_a_batch_keeps_the_order_of_two_saves_to_one_key(store: Store, clock: FakeClock) -> None:
    # The group-commit path must not let the second (plain) save of a key jump ahead of its first.
    engine = store._engine
    loc = engine.location("", (), "k")
    batch: list[tuple[Location, bytes, float | None]] = [
        (loc, b'"A"\n', clock.now + 10),
        (loc, b'"A"\n', None),
        (engine.location("", (), "other"), b"1\n", None),
    ]
    with engine.lock(""):
        assert engine.save_many(batch) == [None, None, None]
    assert store.expires_at("k") is None
    clock.advance(20)
    assert store.load("k") == "A"
    assert store.load("other") == 1


@pytest.mark.local_only("writes log bytes on disk")
@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.text(max_size=40) | st.integers(-(2**63), 2**63 - 1) | st.none(), max_size=40),
    last=st.integers(min_value=0, max_value=50),
    window=st.sampled_from([1, 7, 64, 4096]),
    torn=st.binary(max_size=12).filter(lambda b: b"\n" not in b),
)
def test_reading_the_newest_items_from_the_end_equals_reading_the_whole_log(
    tmp_path_factory: pytest.TempPathFactory, items: list[object], last: int, window: int, torn: bytes
) -> None:
    # The tail read starts with a small window (patched down here to cross line
    # boundaries in every way) and grows it; it must agree with the whole read, torn tail included.
    store = Store(tmp_path_factory.mktemp("tail"))
    if items:
        store.append("log", items)
    with (root_of(store) / "log.jsonl").open("ab") as log:
        log.write(torn)
    original = engine_module._TAIL_WINDOW
    engine_module._TAIL_WINDOW = window
    try:
        assert store.read("log", last=last) == (items[-last:] if last else [])
    finally:
        engine_module._TAIL_WINDOW = original


@pytest.mark.local_only("writes a bad line into the log file on disk")
def test_a_bad_line_found_by_a_tail_read_names_its_true_line_number(store: Store) -> None:
    store.append("log", [{"n": i, "pad": "x" * 100} for i in range(2000)])
    path = root_of(store) / "log.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1990] = b"{not json\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(CorruptEntryError, match="line 1991"):
        store.read("log", last=20)
    assert store.read("log", last=5) == [{"n": i, "pad": "x" * 100} for i in range(1995, 2000)]
