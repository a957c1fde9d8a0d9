"""Export and import: exact, through the store, old-or-new at every moment, and robust to bad input."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from group_store import CorruptEntryError, GroupStoreError, Store, diff_stores, export_store, import_store
from group_store.storage._local import LocalStorage

LONG_KEY = "long-" + "k" * 300  # a hashed file name, its text in NAME.key
LONG_DIR = "dir-" + "d" * 300  # a hashed directory name, its text in NAME/.key
MISSING: Any = object()

# address -> (value in A, ttl in A, value in B, ttl in B); None value: absent; ("log", items): a log
STATES: dict[tuple[str, ...], tuple[Any, float | None, Any, float | None]] = {
    ("same",): ({"v": 1}, 3600, {"v": 1}, None),  # same bytes; importing clears the expiry
    ("ttl-set",): ({"v": 1}, None, {"v": 2}, 7200),
    ("ttl-moved",): ({"v": 1}, 3600, {"v": 1}, 7200),
    ("changed",): ({"v": "a"}, None, {"v": "b"}, None),
    ("doc2log",): ({"d": 1}, 3600, ("log", [1, 2]), None),
    ("log2doc",): (("log", [{"n": 1}]), None, {"d": 1}, 3600),
    ("log2log",): (("log", [1]), None, ("log", [1, 2, 3]), None),
    ("alice", "agent", "state"): ({"turn": 1}, None, {"turn": 2}, 3600),
    (LONG_KEY,): ({"long": 1}, None, ("log", ["long"]), None),
    (LONG_DIR, "x"): ({"x": 1}, None, {"x": 2}, 3600),
    ("a-only",): ({"a": 1}, 3600, None, None),
    ("b-only",): (None, None, {"b": 1}, 3600),
}


def _write_state(root: Path, side: int) -> None:
    store = Store(root)
    for address, state in STATES.items():
        value, ttl = state[2 * side], state[2 * side + 1]
        *segments, key = address
        view = store.narrow(*segments) if segments else store
        if isinstance(value, tuple):
            view.append(key, value[1])
        elif value is not None:
            view.save(key, value, ttl=ttl)


def _observe(root: Path) -> dict[tuple[str, ...], tuple[Any, datetime | None]]:
    store = Store(root)
    seen: dict[tuple[str, ...], tuple[Any, datetime | None]] = {}
    for address in STATES:
        *segments, key = address
        view = store.narrow(*segments) if segments else store
        value = view.get(key, MISSING)
        if value is not MISSING:
            seen[address] = (value, view.expires_at(key))
    return seen


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, Path, dict[tuple[str, ...], Any], dict[tuple[str, ...], Any]]:
    a, b = tmp_path / "a", tmp_path / "b"
    _write_state(a, 0)
    _write_state(b, 1)
    return a, b, _observe(a), _observe(b)


def _allowed(old: Any, new: Any, seen: Any, address: tuple[str, ...]) -> str | None:
    """Why ``seen`` is neither the old nor the new state of ``address`` (``None`` if it is one of them)."""
    if seen is None:
        return None if old is None else "missing"
    if seen in (old, new):
        return None
    values = [state[0] for state in (old, new) if state is not None]
    return "wrong expiry" if seen[0] in values else "lost value"


@pytest.mark.parametrize("suffix", [".tar.gz", ".jsonl"])
def test_import_gives_each_entry_exactly_the_archived_state(sides: Any, tmp_path: Path, suffix: str) -> None:
    a, b, _, expected = sides
    archive = tmp_path / f"b{suffix}"
    export_store(b, archive)
    import_store(archive, a)
    after = _observe(a)
    assert after[("same",)] == ({"v": 1}, None), "importing bytes without a TTL must clear the old expiry"
    for address, state in expected.items():
        assert after[address] == state, address
    assert after[("a-only",)][0] == {"a": 1}  # entries the archive does not hold are kept
    assert not diff_stores(Store(b), archive)  # a path is probed on disk: the store is given


def _instrument(monkeypatch: pytest.MonkeyPatch, root: Path, check: Callable[[], None]) -> list[str]:
    """Run ``check()`` after every mutating storage call on ``root``; return the calls seen."""
    calls: list[str] = []
    for method in ("write", "write_many", "append", "remove"):
        real = getattr(LocalStorage, method)

        def wrapper(self: LocalStorage, *args: Any, __real: Any = real, __method: str = method, **kwargs: Any) -> Any:
            result = __real(self, *args, **kwargs)
            if self.root == root:
                calls.append(f"{__method} {args[0]}/{args[1] if __method != 'write_many' else '*'}")
                check()
            return result

        monkeypatch.setattr(LocalStorage, method, wrapper)
    return calls


@pytest.mark.local_only("instruments LocalStorage's methods")
@pytest.mark.parametrize("suffix", [".tar.gz", ".jsonl"])
def test_every_key_holds_its_old_or_new_value_at_every_moment_of_an_import(
    sides: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    a, b, old, new = sides
    archive = tmp_path / f"b{suffix}"
    export_store(b, archive)
    extracted: list[str] = []
    real_extract = tarfile.TarFile.extract

    def extract(self: tarfile.TarFile, member: Any, path: Any = "", **kwargs: Any) -> Any:
        extracted.append(str(path))
        return real_extract(self, member, path, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", extract)
    broken: list[str] = []

    def check() -> None:
        seen = _observe(a)
        for address in STATES:
            why = _allowed(old.get(address), new.get(address), seen.get(address), address)
            if why:
                broken.append(f"{address}: {why} after {calls[-1]}")

    calls = _instrument(monkeypatch, a, check)
    import_store(archive, a)
    assert not broken, broken[:5]
    assert not any(Path(path).resolve().is_relative_to(a.resolve()) for path in extracted)
    written = {call.split(" ")[1] for call in calls if call.startswith("write ")}
    assert {"/changed.json", "/doc2log.jsonl", "/log2doc.json", "alice/agent/state.json"} <= written
    assert _observe(a) == {**old, **new}


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "bad",
    [
        _member("../escape.json"),
        _member("alice/../../escape.json"),
        _member("/abs.json"),
        _member("link.json", tarfile.SYMTYPE, "/etc/passwd"),
        _member("hard.json", tarfile.LNKTYPE, "good.json"),
        _member("fifo.json", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "fifo"],
)
def test_tar_import_refuses_escaping_members_and_links_before_writing(tmp_path: Path, bad: tarfile.TarInfo) -> None:
    archive = tmp_path / "bad.tar.gz"
    _tar(archive, [(_member("good.json"), b'{"ok": 1}\n'), (bad, b'{"evil": 1}\n')])
    destination = tmp_path / "dest"
    with pytest.raises(CorruptEntryError, match="archive member"):
        import_store(archive, destination)
    assert not destination.exists()
    assert not (tmp_path / "escape.json").exists()


@pytest.mark.local_only("lists the imported files on disk")
def test_import_skips_and_reports_foreign_members_and_bad_records(tmp_path: Path) -> None:
    archive = tmp_path / "mixed.tar.gz"
    _tar(
        archive,
        [
            (_member("good.json"), b'{\n  "ok": 1\n}\n'),
            (_member("README.txt"), b"hello\n"),
            (_member("node_modules/tls.key"), b"secret\n"),
            (_member("broken.json"), b"{oops"),
            (_member("dup.json"), b'{"a": 1, "a": 2}'),
            (_member("notes.meta.json"), b'{"author": "me"}'),
        ],
    )
    destination = tmp_path / "dest"
    errors: list[GroupStoreError] = []
    assert import_store(archive, destination, on_error=errors.append) == 1
    reported = " ".join(str(error) for error in errors)
    for name in ("README.txt", "node_modules/tls.key", "broken.json", "dup.json", "notes.meta.json"):
        assert name in reported
    assert sorted(p.name for p in destination.rglob("*") if p.name not in (".lock", ".group_store")) == ["good.json"]
    jsonl = tmp_path / "mixed.jsonl"
    header = orjson.dumps({"group_store_archive": 1})
    record = {"path": [], "key": "k", "kind": "document", "value": 1, "expires_at": None}
    jsonl.write_bytes(
        b"\n".join(
            [
                header,
                orjson.dumps(record),
                b'{"path": [], "key": "dup", "kind": "document", "value": {"a": 1, "a": 2}, "expires_at": null}',
                b'{"path": [], "key": "", "kind": "document", "value": 1, "expires_at": null}',
                b"{oops",
                orjson.dumps({**record, "key": "last"}),
            ]
        )
        + b"\n"
    )
    errors.clear()
    assert import_store(jsonl, destination, on_error=errors.append) == 2
    assert len(errors) == 3
    assert Store(destination).load("last") == 1
    assert not Store(destination).exists("dup")


@pytest.mark.local_only("damages files on disk")
def test_export_and_diff_skip_and_report_bad_entries(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = Store(root)
    store.save("good", {"n": 1})
    store.save("sidecar", {"n": 2}, ttl=3600)
    (root / "sidecar.meta.json").write_bytes(b"{oops")
    (root / "broken.json").write_bytes(b"{oops")
    (root / "big.json").write_bytes(b"[123456789012345678901234567890]")
    errors: list[GroupStoreError] = []
    assert export_store(root, tmp_path / "out.jsonl", on_error=errors.append) == 1
    assert sorted(error.key or "" for error in errors) == ["big", "broken", "sidecar"]
    other = tmp_path / "other"
    shutil.copytree(root, other)
    Store(other).save("good", {"n": 2})
    errors.clear()
    difference = diff_stores(root, other, on_error=errors.append)
    assert [(change.address, change.change) for change in difference.changes] == [(("good",), "changed")]
    assert len(errors) == 6  # three on each side, none shown as added or removed
