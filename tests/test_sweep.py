"""The sweep deletes only what the store provably wrote, and one bad entry never stops it (or a listing)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from group_store import CorruptEntryError, Store, UnsafeFileError
from group_store._format.expiry import digest, encode_sidecar
from group_store._format.keys import encode_segment
from group_store._format.layout import EXPIRY_INDEX, temp_name
from group_store.storage._local import LocalStorage
from group_store.testing import FakeClock

from .local_paths import root_of
from .steps import StoppingStorage, store_on

LONG = "y" * 300


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Store:
    return Store(tmp_path / "root", clock=clock)


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file() or path.is_symlink()} - {
        ".lock",
        ".group_store",
        *(str(p.relative_to(root)) for p in root.rglob(".lock")),
    }


# -- item 6: nothing foreign is deleted --------------------------------------------------


@pytest.mark.local_only("plants foreign files on disk")
def test_sweep_leaves_key_files_the_store_did_not_write(store: Store) -> None:
    root = root_of(store)
    store.save("server", 1)
    store.save(LONG, 1)
    hashed = encode_segment(LONG)
    (root / "server.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\n")  # beside an entry of that name
    (root / "client.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\n")  # no entry at all
    impostor = "z" * 166 + "~~" + "0" * 32
    (root / f"{impostor}.key").write_bytes(b"not the key of this name")
    (root / f"{hashed}.json").unlink()  # the store's own key file, left without its entry
    assert store.sweep() == 0
    assert _files(root) == {"server.json", "server.key", "client.key", f"{impostor}.key"}


@pytest.mark.local_only("plants an undecodable directory on disk")
def test_sweep_never_enters_a_directory_whose_name_does_not_decode(store: Store) -> None:
    root = root_of(store)
    store.save("x", 1)
    ours = store.narrow("sub")
    ours.save("k", 1, ttl=10)
    (root_of(ours) / "k.json").unlink()  # an orphan sidecar in a directory of ours: removed
    (root / "node_modules").mkdir()
    (root / "node_modules" / "tls.key").write_bytes(b"secret")
    for foreign in ["Node_Modules", "my docs", ".git"]:
        (root / foreign).mkdir()
        (root / foreign / "gone.meta.json").write_bytes(encode_sidecar({"0" * 32: None}))
        (root / foreign / temp_name("gone.json")).write_bytes(b"{")
        (root / foreign / "gone.key").write_bytes(b"gone")
    before = _files(root) - {"sub/k.meta.json", "sub/.expiry.jsonl"}
    store.sweep()
    assert _files(root) == before


@pytest.mark.local_only("plants temp-like files on disk")
def test_sweep_leaves_temp_like_names_it_did_not_make(store: Store) -> None:
    root = root_of(store)
    store.save("k", 1)
    own = temp_name("k.json")
    for name in [own, ".important.tmp", ".k.json.tmp", ".k.json.0123.tmp", ".K.json.0123456789abcdef.tmp"]:
        (root / name).write_bytes(b"{")
    store.sweep()
    assert _files(root) == {
        "k.json",
        ".important.tmp",
        ".k.json.tmp",
        ".k.json.0123.tmp",
        ".K.json.0123456789abcdef.tmp",
    }


@pytest.mark.local_only("plants foreign sidecars on disk")
def test_sweep_leaves_sidecars_the_store_did_not_write(store: Store, clock: FakeClock) -> None:
    root = root_of(store)
    (root / "notes.meta.json").parent.mkdir(parents=True)
    (root / "notes.meta.json").write_bytes(b'{"author": "me"}\n')  # foreign, next to nothing
    (root / "Gone.meta.json").write_bytes(encode_sidecar({"0" * 32: None}))  # the store's bytes, a foreign name
    hashed = encode_segment(LONG)
    (root / f"{hashed}.meta.json").write_bytes(encode_sidecar({"0" * 32: None}))  # hashed, but no key file
    (root / "gone.meta.json").write_bytes(encode_sidecar({"0" * 32: None}))  # an orphan of ours: removed
    store.save("hand", "edited", ttl=5)
    compact = b'{"expires_at":{"%s":"2020-01-01T00:00:00+00:00"}}' % digest(b'"edited"\n').encode()
    (root / "hand.meta.json").write_bytes(compact)  # hand-written: its data is hidden, but not ours to delete
    clock.advance(10)
    assert store.sweep() == 0
    assert {"notes.meta.json", "Gone.meta.json", f"{hashed}.meta.json", "hand.json", "hand.meta.json"} <= _files(root)
    assert "gone.meta.json" not in _files(root)


@pytest.mark.local_only("plants leftover files on disk")
def test_sweep_still_removes_its_own_leftovers(store: Store, clock: FakeClock) -> None:
    root = root_of(store)
    store.save("live", 1, ttl=1000)
    store.save("expired", 1, ttl=5)
    store.save(LONG, 1, ttl=5)
    store.save("plain", 1)
    store.save("stale", "new")
    (root / "stale.meta.json").write_bytes(encode_sidecar({digest(b'"old"\n'): 1.0}))  # binds other bytes
    store.save("orphan", 1, ttl=1000)
    (root / "orphan.json").unlink()
    store.save("long-orphan" * 30, 1)
    (root / f"{encode_segment('long-orphan' * 30)}.json").unlink()
    (root / temp_name("plain.json")).write_bytes(b"{")
    clock.advance(10)
    assert store.sweep() == 2
    assert _files(root) == {"live.json", "live.meta.json", ".expiry.jsonl", "plain.json", "stale.json"}
    assert store.load("stale") == "new"
    assert store.expires_at("stale") is None


# -- item 11: a bad entry is skipped, reported and raised only when read ----------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "group_store" and r.levelno == logging.WARNING]


@pytest.mark.local_only("writes a malformed sidecar file on disk")
@pytest.mark.parametrize("index", ["kept", "removed"])
def test_keys_skips_and_reports_an_entry_with_a_malformed_sidecar_unless_the_index_proves_it_live(
    store: Store, caplog: pytest.LogCaptureFixture, index: str
) -> None:
    # keys() reads a sidecar only where the expiry index cannot prove the entry live (as the
    # sweep does); a proven entry is listed unread, like a document, and a malformed sidecar
    # shows when the entry is read. Without an index, every sidecar is read.
    store.save("good", 1, ttl=100)
    store.save("plain", 2)
    store.save("bad", 3, ttl=100)
    (root_of(store) / "bad.meta.json").write_bytes(b"nonsense")
    if index == "removed":
        (root_of(store) / EXPIRY_INDEX).unlink()
    with caplog.at_level(logging.WARNING, logger="group_store"):
        if index == "kept":
            assert store.keys() == ["bad", "good", "plain"]
            assert _warnings(caplog) == []
        else:
            assert store.keys() == ["good", "plain"]
            [warning] = _warnings(caplog)
            assert "'bad'" in warning
            assert "bad.meta.json" in warning
    with pytest.raises(CorruptEntryError):
        store.load("bad")
    with pytest.raises(CorruptEntryError):
        store.exists("bad")
    with pytest.raises(CorruptEntryError):
        store.expires_at("bad")


def test_keys_never_lists_an_expired_entry_the_index_lists_too_early(store: Store, clock: FakeClock) -> None:
    # The index is early, never late: an entry saved again with a shorter TTL has two index
    # records, and only the earliest may prove it live.
    store.save("k", 1, ttl=1000)
    store.save("k", 2, ttl=10)
    clock.advance(20)
    assert store.keys() == []
    store.save("j", 1, ttl=10)
    store.save("j", 2, ttl=1000)
    clock.advance(20)
    assert store.keys() == ["j"]


@pytest.mark.local_only("symlinks")
def test_keys_skips_and_reports_an_entry_with_a_symlinked_sidecar(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.save("good", 1)
    store.save("linked", 2)
    outside = tmp_path / "outside.json"
    outside.write_bytes(encode_sidecar({}))
    os.symlink(outside, root_of(store) / "linked.meta.json")
    with caplog.at_level(logging.WARNING, logger="group_store"):
        assert store.keys() == ["good"]
    assert any("linked.meta.json" in warning for warning in _warnings(caplog))
    with pytest.raises(UnsafeFileError):
        store.load("linked")


@pytest.mark.local_only("symlinks")
def test_sweep_carries_on_past_a_symlinked_index(
    store: Store, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.save("gone", 1, ttl=5)
    store.save("live", 1, ttl=1000)
    store.narrow("sub").save("gone", 1, ttl=5)
    index = root_of(store) / ".expiry.jsonl"
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(index.read_bytes())
    index.unlink()
    os.symlink(outside, index)
    clock.advance(10)
    with caplog.at_level(logging.WARNING, logger="group_store"):
        assert store.sweep() == 2
    assert store.keys() == ["live"]
    assert index.is_symlink()
    assert outside.read_bytes().count(b"\n") == 2
    assert any(".expiry.jsonl" in warning for warning in _warnings(caplog))


def _refusing(root: Path, clock: FakeClock, directory: str) -> Store:
    """A store whose storage refuses every call on ``directory`` and below (as chmod 000 would)."""
    storage = StoppingStorage(LocalStorage(root))
    inside = lambda where, *_, **__: where == directory or where.startswith(directory + "/")  # noqa: E731
    for method in ("scan", "lock", "read", "read_many", "kind", "kinds"):
        storage.refuse[method] = inside
    return store_on(storage, clock)


@pytest.mark.local_only("an unreadable directory (POSIX permissions)")
def test_sweep_carries_on_past_an_unreadable_directory(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    for directory in ["a", "locked", "z"]:
        store.narrow(directory).save("gone", 1, ttl=5)
    store.narrow("locked", "below").save("gone", 1, ttl=5)
    clock.advance(10)
    with caplog.at_level(logging.WARNING, logger="group_store"):
        assert _refusing(root_of(store), clock, "locked").sweep() == 2
    assert store.narrow("a").keys() == store.narrow("z").keys() == []
    assert store.narrow("locked").get("gone", "still there") == "still there"  # expired, but not swept
    assert (root_of(store) / "locked" / "gone.json").exists()
    [warning] = _warnings(caplog)
    assert "locked" in warning


@pytest.mark.local_only("an unreadable directory (POSIX permissions)")
def test_children_skips_and_reports_an_unreadable_sub_store(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store.narrow("a").save("k", 1)
    store.narrow(LONG).save("k", 1)
    with caplog.at_level(logging.WARNING, logger="group_store"):
        assert _refusing(root_of(store), clock, encode_segment(LONG)).children() == ["a"]
    assert any(encode_segment(LONG) in warning for warning in _warnings(caplog))
    assert store.children() == sorted(["a", LONG])


@pytest.mark.local_only("writes a malformed sidecar file on disk")
def test_sweep_skips_and_reports_a_malformed_sidecar(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store.save("bad", 1, ttl=5)
    store.save("gone", 1, ttl=5)
    (root_of(store) / "bad.meta.json").write_bytes(b"nonsense")
    clock.advance(10)
    with caplog.at_level(logging.WARNING, logger="group_store"):
        assert store.sweep() == 1
    assert {"bad.json", "bad.meta.json"} <= _files(root_of(store))
    assert any("bad.meta.json" in warning for warning in _warnings(caplog))
