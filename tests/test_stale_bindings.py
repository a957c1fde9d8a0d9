"""A sidecar binds the old and the new bytes during a save; once the save is done the old
binding is dead weight that churns every commit. sweep, fmt and verify --fix drop it
under the directory lock, where the binding of the bytes on disk is the only live one."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from group_store import Store, format_store, verify_store
from group_store._format.expiry import digest, encode_sidecar
from group_store.storage._local import LocalStorage
from group_store.testing import FakeClock


def _bindings(root: Path, name: str) -> dict[str, str]:
    body: dict[str, dict[str, str]] = orjson.loads((root / f"{name}.meta.json").read_bytes())
    return body["expires_at"]


def _saved_twice(root: Path, clock: FakeClock) -> Store:
    store = Store(root, clock=clock)
    store.save("k", "v1", ttl=10)
    store.save("k", "v2", ttl=100)
    assert len(_bindings(root, "k")) == 2  # what every save over existing data leaves
    return store


def _only_live_binding(root: Path, clock: FakeClock, expiry: float) -> None:
    document = (root / "k.json").read_bytes()
    assert (root / "k.meta.json").read_bytes() == encode_sidecar({digest(document): expiry})


def test_sweep_drops_bindings_of_data_no_longer_on_disk(tmp_path: Path, clock: FakeClock) -> None:
    start = clock.now
    store = _saved_twice(tmp_path, clock)
    clock.advance(11)  # the index's early record for k is due: the sweep reads its sidecar
    assert store.sweep() == 0
    _only_live_binding(tmp_path, clock, start + 100)
    assert store.load("k") == "v2"
    assert store.expires_at("k") is not None
    assert store.expires_at("k").timestamp() == start + 100  # type: ignore[union-attr]


def test_fmt_drops_bindings_of_data_no_longer_on_disk(tmp_path: Path, clock: FakeClock) -> None:
    start = clock.now
    store = _saved_twice(tmp_path, clock)
    assert format_store(tmp_path, clock=clock) == 1
    _only_live_binding(tmp_path, clock, start + 100)
    assert format_store(tmp_path, clock=clock) == 0  # canonical now: a second run changes nothing
    assert store.load("k") == "v2"


def test_fmt_of_a_non_canonical_document_leaves_one_binding(tmp_path: Path, clock: FakeClock) -> None:
    start = clock.now
    store = Store(tmp_path, clock=clock)
    store.save("k", {"a": 1}, ttl=100)
    raw = b'{"a":   1}'
    (tmp_path / "k.meta.json").write_bytes(encode_sidecar({digest(raw): start + 100}))
    (tmp_path / "k.json").write_bytes(raw)
    assert format_store(tmp_path, clock=clock) == 1
    _only_live_binding(tmp_path, clock, start + 100)
    assert store.load("k") == {"a": 1}


def test_verify_fix_drops_bindings_of_data_no_longer_on_disk(tmp_path: Path, clock: FakeClock) -> None:
    start = clock.now
    _saved_twice(tmp_path, clock)
    assert verify_store(tmp_path, clock=clock).problems == ()  # harmless: a plain verify stays clean
    report = verify_store(tmp_path, fix=True, clock=clock)
    assert [(p.kind, p.path, p.fixed) for p in report.problems] == [
        ("stale-binding", str(tmp_path / "k.meta.json"), True)
    ]
    _only_live_binding(tmp_path, clock, start + 100)
    assert verify_store(tmp_path, fix=True, clock=clock).problems == ()


def test_a_crashed_save_keeps_the_binding_of_the_bytes_on_disk(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A save that crashed between its sidecar and its data write leaves a sidecar binding
    # the old bytes (still on disk) and the new ones (never written): compaction keeps the old.
    start = clock.now
    store = Store(tmp_path, clock=clock)
    store.save("k", "old", ttl=50)
    original = LocalStorage.write

    def crash_on_data(self: LocalStorage, directory: str, name: str, data: bytes, *, durable: bool) -> None:
        if name == "k.json":
            raise OSError(5, "simulated crash before the data write")
        original(self, directory, name, data, durable=durable)

    with monkeypatch.context() as patch:
        patch.setattr(LocalStorage, "write", crash_on_data)
        with pytest.raises(OSError, match="simulated crash"):
            store.save("k", "new", ttl=500)
    assert len(_bindings(tmp_path, "k")) == 2
    assert format_store(tmp_path, clock=clock) == 1
    _only_live_binding(tmp_path, clock, start + 50)
    assert store.load("k") == "old"
    clock.advance(51)
    assert store.sweep() == 1


def test_a_sidecar_that_binds_the_document_to_no_expiry_is_removed(tmp_path: Path, clock: FakeClock) -> None:
    store = Store(tmp_path, clock=clock)
    store.save("k", 1)
    (tmp_path / "k.meta.json").write_bytes(encode_sidecar({digest(b"0\n"): 5.0, digest(b"1\n"): None}))
    assert verify_store(tmp_path, fix=True, clock=clock).ok
    assert not (tmp_path / "k.meta.json").exists()
    assert store.load("k") == 1
    assert store.expires_at("k") is None
