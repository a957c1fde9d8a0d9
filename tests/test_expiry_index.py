"""The per-directory expiry index: sweeps read only what may have expired, and stay
correct without an index, with a damaged one, and after a crash between records."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from group_store import Store, export_store, format_store, import_store
from group_store._format.expiry import index_line, parse_index, render_index
from group_store.storage._local import LocalStorage
from group_store.testing import FakeClock
from tests.local_paths import root_of


def test_parse_keeps_the_earliest_time_and_skips_damage() -> None:
    raw = index_line("a", 50.0) + index_line("b", 10.0) + index_line("a", 20.0) + b"garbage\n" + b"c 12"
    assert parse_index(raw) == ({"a": 20.0, "b": 10.0}, 4)
    assert parse_index(render_index({"b": 10.0, "a": 20.5})) == ({"a": 20.5, "b": 10.0}, 2)
    assert parse_index(b"") == ({}, 0)
    assert index_line("k~2fx", 1800000000.25) == b"k~2fx 1800000000.25\n"


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Store:
    return Store(tmp_path, clock=clock)


def _count_sidecar_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    original = LocalStorage.read_many

    def read_many(self: LocalStorage, directory: str, names: tuple[str, ...]) -> list[bytes | None]:
        reads.extend(name for name in names if name.endswith(".meta.json"))
        return original(self, directory, names)

    monkeypatch.setattr(LocalStorage, "read_many", read_many)
    return reads


def test_sweep_reads_only_the_sidecars_that_may_have_expired(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(200):
        store.save(f"k{i}", i, ttl=10 if i % 50 == 0 else 1000)
    clock.advance(11)
    reads = _count_sidecar_reads(monkeypatch)
    assert store.sweep() == 4
    assert sorted(reads) == sorted(f"k{i}.meta.json" for i in range(0, 200, 50))
    reads.clear()
    assert store.sweep() == 0
    assert reads == []  # the compacted index has nothing due


def test_a_store_without_an_index_is_still_swept(store: Store, clock: FakeClock) -> None:
    for i in range(20):
        store.save(f"k{i}", i, ttl=5 if i < 3 else 500)
    (root_of(store) / ".expiry.jsonl").unlink()  # as written by a version without the index
    clock.advance(6)
    assert store.sweep() == 3
    assert sorted(store.keys()) == sorted(f"k{i}" for i in range(3, 20))
    indexed, _ = parse_index((root_of(store) / ".expiry.jsonl").read_bytes())
    assert indexed.keys() == {f"k{i}" for i in range(3, 20)}


def test_a_damaged_index_is_not_trusted_blindly(store: Store, clock: FakeClock) -> None:
    store.save("a", 1, ttl=5)
    store.save("b", 2, ttl=5)
    # What a crash or a bad disk leaves: unparseable lines and a torn last record.
    (root_of(store) / ".expiry.jsonl").write_bytes(b"garbage\n\x00\x00\nb 1")
    clock.advance(6)
    assert store.sweep() == 2
    assert store.keys() == []


def test_an_early_record_never_deletes_a_later_save(store: Store, clock: FakeClock) -> None:
    store.save("k", "v1", ttl=5)
    store.save("k", "v2", ttl=100)  # the index still holds the earlier time too
    clock.advance(6)
    assert store.sweep() == 0
    assert store.load("k") == "v2"
    clock.advance(100)
    assert store.sweep() == 1


def test_a_crash_between_the_index_record_and_the_entry(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save("k", "old", ttl=1000)
    original = LocalStorage.write

    def crash_on_sidecar(self: LocalStorage, directory: str, name: str, data: bytes, *, durable: bool) -> None:
        if name.endswith(".meta.json"):
            raise OSError(5, "simulated crash before the sidecar")
        original(self, directory, name, data, durable=durable)

    with monkeypatch.context() as patch:
        patch.setattr(LocalStorage, "write", crash_on_sidecar)
        with pytest.raises(OSError, match="simulated crash"):
            store.save("k", "new", ttl=1)
    indexed, _ = parse_index((root_of(store) / ".expiry.jsonl").read_bytes())
    assert indexed["k"] == clock.now + 1  # the record went in before the sidecar
    clock.advance(2)  # past the index record, not past the entry's real expiry
    assert store.sweep() == 0
    assert store.load("k") == "old"
    clock.advance(1000)
    assert store.sweep() == 1


def test_clearing_a_ttl_leaves_only_a_harmless_record(store: Store, clock: FakeClock) -> None:
    store.save("k", 1, ttl=5)
    store.save("k", 2)
    clock.advance(6)
    assert store.sweep() == 0
    assert store.load("k") == 2
    assert not (root_of(store) / ".expiry.jsonl").exists()  # compacted away


def test_the_index_is_left_out_of_tar_archives_and_rebuilt_after_import(tmp_path: Path, clock: FakeClock) -> None:
    source = Store(tmp_path / "source", clock=clock)
    for i in range(5):
        source.save(f"k{i}", i, ttl=5 if i < 2 else 500)
    source.narrow("sub").save("s", 1, ttl=5)
    archive = tmp_path / "store.tar.gz"
    export_store(root_of(source), archive)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "k0.meta.json" in names
    assert [name for name in names if name.rpartition("/")[2] == ".expiry.jsonl"] == []
    import_store(archive, tmp_path / "copy")
    copy = Store(tmp_path / "copy", clock=clock)
    indexed, _ = parse_index((root_of(copy) / ".expiry.jsonl").read_bytes())
    assert indexed.keys() == {f"k{i}" for i in range(5)}  # the import indexes what it writes
    (root_of(copy) / "sub" / ".expiry.jsonl").unlink()  # as after a git checkout: no index
    clock.advance(6)
    assert copy.sweep() == 3  # every sidecar the index does not list is checked
    assert copy.keys() == ["k2", "k3", "k4"]
    assert copy.narrow("sub").keys() == []


def test_equal_stores_export_equal_archives_whatever_their_ttl_history(tmp_path: Path, clock: FakeClock) -> None:
    churned = Store(tmp_path / "churned", clock=clock)
    for value, ttl in (("a", 50), ("b", 60), ("v", 70)):
        churned.save("k", value, ttl=ttl)  # three index lines and a stale binding, one entry
    fresh = Store(tmp_path / "fresh", clock=clock)
    fresh.save("k", "v", ttl=70)
    assert format_store(root_of(churned), clock=clock) == 1  # drops the stale bindings
    export_store(root_of(churned), tmp_path / "a.tar.gz")
    export_store(root_of(fresh), tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
