"""verify and fmt: what they report, what --fix may touch, and that one bad file never stops them."""

from __future__ import annotations

import errno
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from group_store import CorruptEntryError, GroupStoreError, Store, format_store, verify_store
from group_store._engine.engine import Engine
from group_store._format.expiry import digest, encode_sidecar
from group_store._format.layout import temp_name
from group_store.storage._local import LocalStorage
from tests.test_archive import _instrument
from tests.test_tools_crash import _build_fixable_store, _damage, _expected

LONG_KEY = "k" * 300  # hashed on disk, its text in NAME.key


def _files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def _kinds(root: Path, fix: bool = False) -> dict[str, tuple[str, bool, bool]]:
    report = verify_store(root, fix=fix)
    return {
        Path(problem.path).relative_to(root).as_posix(): (problem.kind, problem.fixable, problem.fixed)
        for problem in report.problems
    }


def _plant_ttl_document(directory: Path, name: str, raw: bytes, expiry: float) -> None:
    """A document written non-canonically, with a sidecar in the store's exact form binding it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.meta.json").write_bytes(encode_sidecar({digest(raw): expiry}))
    (directory / f"{name}.json").write_bytes(raw)


FOREIGN = {
    "server.key": b"-----BEGIN PRIVATE KEY-----\n",
    "node_modules/tls.key": b"secret\n",
    ".important.tmp": b"draft\n",
    "notes.meta.json": b'{"author": "me"}\n',
    "README.txt": b"hello\n",
    "Upper.json": b"{}\n",
    "a.b.json": b"{}\n",
    ".gitignore": b".lock\n",
    ".git/config": b"[core]\n",
    "My Stuff/x.meta.json": encode_sidecar({}),
    "x~~" + "0" * 32 + ".key": b"not the key of this hash",
}


@pytest.mark.local_only("plants foreign files on disk")
def test_verify_lists_foreign_files_and_fix_leaves_them_untouched(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = Store(root)
    store.save("plain", {"ok": 1})
    store.narrow("node_modules").save("pkg", {"v": 1})
    for name, data in FOREIGN.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    expected_foreign = {name.split("/")[0] if name.startswith((".git/", "My Stuff/")) else name for name in FOREIGN}
    found = _kinds(root)
    foreign = {path: kind for path, kind in found.items() if kind[0] == "foreign-file"}
    assert foreign == dict.fromkeys(expected_foreign, ("foreign-file", False, False))
    fixed = _kinds(root, fix=True)
    assert {path for path, kind in fixed.items() if kind[0] == "foreign-file" and not kind[2]} == expected_foreign
    files = _files(root)
    for name, data in FOREIGN.items():
        assert files[name] == data, f"{name} was changed or removed"
    assert store.load("plain") == {"ok": 1}
    assert store.narrow("node_modules").load("pkg") == {"v": 1}


@pytest.mark.local_only("plants leftover files on disk")
def test_fix_removes_only_the_stores_own_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = Store(root)
    store.save("kept", {"ok": 1})
    store.save(LONG_KEY, {"long": True})
    key_file = next(root.glob("*~~*.key"))
    key_file.with_suffix(".json").unlink()  # a crash after the data went: the key file is left
    (root / "gone.meta.json").write_bytes(encode_sidecar({digest(b"{}\n"): 1.0}))  # exact form, no document
    (root / temp_name("kept.json")).write_bytes(b"{")  # exactly the store's temporary-name pattern
    found = _kinds(root)
    assert found == {
        key_file.name: ("orphan-key-file", True, False),
        "gone.meta.json": ("orphan-sidecar", True, False),
        next(path.name for path in root.glob(".*.tmp")): ("temp-file", True, False),
    }
    assert all(fixed for _, _, fixed in _kinds(root, fix=True).values())
    assert sorted(p.name for p in root.iterdir() if p.name not in (".lock", ".group_store")) == ["kept.json"]
    assert verify_store(root).ok


INEXACT = {
    "big": ("big.json", b'{"a": 123456789012345678901234567890}', "inexact-json", "beyond 64 bits"),
    "dup": ("dup.json", b'{"a": 1, "a": 2}', "inexact-json", "duplicate key 'a'"),
    "biglog": ("biglog.jsonl", b'{"n":1}\n{"n": 123456789012345678901234567890}\n', "inexact-log-line", "64 bits"),
    "duplog": ("duplog.jsonl", b'{ "n": 1, "n": 2 }\n', "inexact-log-line", "duplicate key 'n'"),
}


@pytest.mark.local_only("writes non-canonical files on disk")
def test_load_verify_fix_and_fmt_never_change_a_value(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = Store(root)
    store.save("plain", {"ok": 1})
    for name, raw, _, _ in INEXACT.values():
        (root / name).write_bytes(raw)
    for key, (name, _, _, reason) in INEXACT.items():
        with pytest.raises(CorruptEntryError, match=reason) as info:
            store.load(key)
        assert info.value.path == str(root / name)
    expected = {name: (kind, False, False) for name, _, kind, _ in INEXACT.values()}
    assert _kinds(root) == expected
    assert _kinds(root, fix=True) == expected
    errors: list[GroupStoreError] = []
    assert format_store(root, on_error=errors.append) == 0
    assert sorted(Path(error.path).name for error in errors if error.path) == sorted(
        n for n, _, _, _ in INEXACT.values()
    )
    for name, raw, _, _ in INEXACT.values():
        assert (root / name).read_bytes() == raw


@pytest.mark.local_only("writes files on disk")
def test_verify_fix_carries_on_past_a_malformed_sidecar_beside_a_non_canonical_document(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "a").mkdir(parents=True)
    (root / "a" / "doc.json").write_bytes(b'{"x":1}')
    (root / "a" / "doc.meta.json").write_bytes(b"{oops")
    _plant_ttl_document(root / "b", "doc", b'{"y":2}', 4_000_000_000.0)
    found = _kinds(root, fix=True)
    assert found["a/doc.meta.json"] == ("malformed-sidecar", False, False)
    assert found["a/doc.json"] == ("non-canonical", False, False)
    assert found["b/doc.json"] == ("non-canonical", True, True)
    assert (root / "a" / "doc.json").read_bytes() == b'{"x":1}'
    assert (root / "a" / "doc.meta.json").read_bytes() == b"{oops"
    b = Store(root).narrow("b")
    assert (root / "b" / "doc.json").read_bytes() == b'{\n  "y": 2\n}\n'
    assert b.expires_at("doc") is not None
    assert b.expires_at("doc").timestamp() == 4_000_000_000.0  # type: ignore[union-attr]


@pytest.mark.local_only("symlinks")
def test_verify_fix_carries_on_past_a_symlinked_expiry_index(tmp_path: Path) -> None:
    root = tmp_path / "store"
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not the store's\n")
    _plant_ttl_document(root / "a", "doc", b'{"x":1}', 4_000_000_000.0)
    (root / "a" / ".expiry.jsonl").symlink_to(outside)
    _plant_ttl_document(root / "b", "doc", b'{"y":2}', 4_000_000_000.0)
    plain = verify_store(root)
    assert {(p.kind, Path(p.path).name) for p in plain.problems} >= {("unsafe-file", ".expiry.jsonl")}
    fixed = verify_store(root, fix=True)
    by_path = {Path(p.path).relative_to(root).as_posix(): p for p in fixed.problems}
    assert by_path["a/.expiry.jsonl"].kind == "unsafe-file"
    assert not by_path["a/doc.json"].fixed
    assert "repair failed" in by_path["a/doc.json"].detail
    assert by_path["b/doc.json"].fixed
    assert outside.read_bytes() == b"not the store's\n"
    assert (root / "a" / "doc.json").read_bytes() == b'{"x":1}'


def _refuse_scan_of(monkeypatch: pytest.MonkeyPatch, refused: str) -> None:
    real = LocalStorage.scan

    def scan(self: LocalStorage, directory: str) -> Any:
        if directory == refused:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self.path(directory)))
        return real(self, directory)

    monkeypatch.setattr(LocalStorage, "scan", scan)


@pytest.mark.local_only("an unreadable directory (POSIX permissions)")
@pytest.mark.parametrize("fix", [False, True])
def test_verify_reports_an_unreadable_directory_and_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fix: bool
) -> None:
    root = tmp_path / "store"
    store = Store(root)
    store.narrow("alice").save("agent", {"n": 1})
    store.narrow("bob").save("agent", {"n": 2})
    (root / "bob" / "spaced.json").write_bytes(b'{"a":1}')
    _refuse_scan_of(monkeypatch, "alice")  # tests run as root here, where chmod 000 stops nothing
    report = verify_store(root, fix=fix)
    kinds = {(p.kind, Path(p.path).relative_to(root).as_posix()) for p in report.problems}
    assert ("unreadable", "alice") in kinds
    assert ("non-canonical", "bob/spaced.json") in kinds
    assert not report.ok
    assert report.directories == 2  # the root and bob; alice could not be listed
    if fix:
        assert (root / "bob" / "spaced.json").read_bytes() == b'{\n  "a": 1\n}\n'


@pytest.mark.local_only("writes bad files on disk")
def test_fmt_skips_and_reports_bad_files_and_formats_the_rest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "store"
    (root / "a").mkdir(parents=True)
    (root / "a" / "doc.json").write_bytes(b'{"x":1}')
    (root / "a" / "doc.meta.json").write_bytes(b"{oops")  # malformed: the expiry is unknown
    (root / "a" / "broken.json").write_bytes(b"{oops")
    (root / "a" / "hand.meta.json").write_bytes(b'{"expires_at": {}}')  # parses, but not the store's exact form
    (root / "a" / "hand.json").write_bytes(b'{"h":1}')
    _plant_ttl_document(root / "b", "doc", b'{"y":2}', 4_000_000_000.0)
    with caplog.at_level("WARNING", logger="group_store"):
        assert format_store(root) == 1
    warned = " ".join(record.getMessage() for record in caplog.records if record.name == "group_store")
    for name in ("doc.meta.json", "broken.json", "hand.meta.json"):
        assert name in warned
    assert (root / "a" / "doc.json").read_bytes() == b'{"x":1}'
    assert (root / "a" / "hand.json").read_bytes() == b'{"h":1}'
    assert (root / "a" / "hand.meta.json").read_bytes() == b'{"expires_at": {}}'
    assert (root / "b" / "doc.json").read_bytes() == b'{\n  "y": 2\n}\n'
    assert Store(root).narrow("b").expires_at("doc").timestamp() == 4_000_000_000.0  # type: ignore[union-attr]


@pytest.mark.local_only("damages files on disk and instruments LocalStorage")
@pytest.mark.parametrize("operation", ["verify-fix", "fmt"])
def test_every_step_of_verify_fix_and_fmt_keeps_each_value_and_its_expiry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """After every storage call they make, each key reads as before, with the same expiry."""
    root = tmp_path / "store"
    expected = _build_fixable_store(root)
    _damage(Engine(LocalStorage(root), time.time, durable=False), random.Random(7))
    assert _expected(root) == expected
    broken: list[str] = []

    def check() -> None:
        if _expected(root) != expected:
            broken.append(calls[-1])

    calls = _instrument(monkeypatch, root, check)
    if operation == "fmt":
        assert format_store(root, on_error=lambda error: None) > 0
    else:
        assert not verify_store(root, fix=True).ok  # the inexact and foreign files remain
    assert len(calls) > 5
    assert not broken, broken
    assert _expected(root) == expected
    left = verify_store(root).problems
    assert all(p.kind != "non-canonical" for p in left)
    if operation == "verify-fix":
        assert all(not problem.fixable for problem in left)  # only the inexact and foreign files
