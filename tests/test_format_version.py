"""The on-disk format marker: written by the first write, read once, refused when newer, never an entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from group_store import DataStore, FormatVersionError, Store, verify_store, walk
from group_store._engine.sweep import sweep
from group_store._format.layout import FORMAT_MARKER, FORMAT_VERSION, is_temp_name, temp_name
from group_store.cli import cli
from group_store.storage._local import LocalStorage
from group_store.tools._snapshot import Masks, render

MARKER = b'{"format":1}\n'


def test_the_first_write_marks_the_format_and_reads_never_do(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    assert store.get("missing") is None
    assert store.keys() == []
    assert not (tmp_path / "s" / FORMAT_MARKER).exists()
    store.narrow("a", "b").save("k", 1)
    assert (tmp_path / "s" / FORMAT_MARKER).read_bytes() == MARKER
    assert not (tmp_path / "s" / "a" / FORMAT_MARKER).exists()


@pytest.mark.anyio
async def test_a_data_store_marks_the_format_with_its_first_write(tmp_path: Path) -> None:
    async with DataStore(tmp_path) as store:
        await store.append("log", [1])
    assert (tmp_path / FORMAT_MARKER).read_bytes() == MARKER


def test_a_store_in_a_newer_format_is_refused_untouched(tmp_path: Path) -> None:
    Store(tmp_path).save("k", {"v": 1})
    marker = tmp_path / FORMAT_MARKER
    marker.write_bytes(b'{"format": %d, "layout": "future"}\n' % (FORMAT_VERSION + 1))
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir() if p.name != ".lock")
    store = Store(tmp_path)
    for operation in (lambda: store.load("k"), lambda: store.save("k", 2), store.keys, lambda: store.delete("k")):
        with pytest.raises(FormatVersionError) as caught:
            operation()
        assert caught.value.path == str(marker)
        assert f"format {FORMAT_VERSION + 1}" in str(caught.value)
    with pytest.raises(FormatVersionError):
        verify_store(tmp_path)
    with pytest.raises(FormatVersionError):
        list(walk(tmp_path))
    result = CliRunner().invoke(cli, ["ls", str(tmp_path)])
    assert result.exit_code == 2
    assert "newer" in result.output
    assert "Traceback" not in result.output
    after = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir() if p.name != ".lock")
    assert after == before


def test_a_marker_that_is_not_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / FORMAT_MARKER).write_bytes(b"not json")
    with pytest.raises(FormatVersionError, match="not one group_store writes"):
        Store(tmp_path).save("k", 1)
    assert not (tmp_path / "k.json").exists()


def test_the_marker_is_read_once_per_store_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Store(tmp_path).save("seed", 0)
    reads: list[str] = []
    original = LocalStorage.read

    def counting(self: LocalStorage, directory: str, name: str) -> bytes | None:
        if name == FORMAT_MARKER:
            reads.append(directory)
        return original(self, directory, name)

    monkeypatch.setattr(LocalStorage, "read", counting)
    store = Store(tmp_path)
    for i in range(50):
        store.save(f"k{i}", i)
        store.load(f"k{i}")
        store.narrow("x").append("log", [i])
    assert store.keys()
    assert reads == [""]


def test_the_marker_is_the_stores_own_and_never_an_entry(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save("k", 1)
    store.narrow("sub").save("j", 2)
    Store(tmp_path / "sub").save("opened-as-its-own-store", 3)  # a sub-store with a marker of its own
    assert store.keys() == ["k"]
    assert [entry.key for entry in walk(tmp_path)] == ["k", "j", "opened-as-its-own-store"]
    report = verify_store(tmp_path)
    assert report.ok, report.problems
    assert set(render(tmp_path, Masks(), include_metadata=True)) == {
        "k.json",
        "sub/j.json",
        "sub/opened-as-its-own-store.json",
    }
    assert sweep(store._engine, "", ()) == 0
    assert (tmp_path / FORMAT_MARKER).read_bytes() == MARKER


def test_a_leftover_temporary_marker_is_the_stores_to_sweep() -> None:
    assert is_temp_name(temp_name(FORMAT_MARKER))
    assert not is_temp_name(".group_store.tmp")


@pytest.mark.anyio
async def test_a_data_store_in_a_newer_format_refuses_reads_and_writes(tmp_path: Path) -> None:
    (tmp_path / FORMAT_MARKER).write_bytes(b'{"format": %d}\n' % (FORMAT_VERSION + 1))
    store = DataStore(tmp_path)
    with pytest.raises(FormatVersionError):
        await store.keys()
    handle = store.save("k", 1)
    with pytest.raises(FormatVersionError):
        await handle
    await store.aclose()  # delivered through the awaited handle: not raised a second time
    assert not (tmp_path / "k.json").exists()
