"""Group Genie stores, written by genie 0.0.2's and 0.0.4's own code, migrated and read back intact."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from group_store import StorageError, Store, migrate_store, verify_store
from group_store._format.keys import encode_segment
from group_store._format.layout import FORMAT_MARKER
from group_store.cli import cli

from .genie import datastore_0_0_2 as genie2
from .genie import datastore_0_0_4 as genie4

LONG = "Kanal-" + "ä" * 120  # over the name limit once encoded: a hashed name with a key file
# (genie key, segments group_store reads it under): genie kept letters of any case and script.
KEYS = [
    ("C01ABCDEF", "C01ABCDEF"),
    ("Ünïcödé-日本", "Ünïcödé-日本"),
    ("@alice:matrix.org", "_alice_matrix_org"),  # genie's sanitizer replaced @ : . for good
    ("con", "con"),  # a Windows device name: group_store escapes it
    ("plain_key-1", "plain_key-1"),  # the same name in both encodings: left alone
    (LONG, LONG),
]
DIRECTORIES = [("Team-X", "Team-X"), ("#général", "_général"), ("Ä" * 120, "Ä" * 120)]  # the last one hashed
VALUE = {"text": "héllo ☃ \U0001f600", "n": [1, 2.5, None, True], "nested": {"K": "V"}}


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def write_genie_stores(root: Path) -> None:
    """Documents with genie 0.0.2, logs with genie 0.0.4, at the root and in narrowed directories."""

    async def write() -> None:
        async with genie2.DataStore(root) as store:
            for key, _ in KEYS:
                await store.save(key, {**VALUE, "key": key})
            for directory, _ in DIRECTORIES:
                async with store.narrow(directory) as sub, sub.narrow("Inner") as inner:
                    await inner.save("State", {"dir": directory})
        async with genie4.DataStore(root) as store:
            for directory, _ in DIRECTORIES:
                async with store.narrow(directory) as sub:
                    for key, _ in KEYS:
                        await sub.append(key, [{"line": 1, "key": key}, {"line": 2, "text": "ü"}])

    _run(write())


def tree_bytes(root: Path) -> dict[str, bytes | None]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


def test_group_genie_stores_migrate_with_every_value_and_log_line_intact(tmp_path: Path) -> None:
    write_genie_stores(tmp_path)
    report = migrate_store(tmp_path, source="group-genie")
    assert report.ok, report
    assert report.format == 1
    assert (tmp_path / FORMAT_MARKER).is_file()
    store = Store(tmp_path)
    assert store.keys() == sorted(key for _, key in KEYS)
    for _, key in KEYS:
        genie_key = next(original for original, read_as in KEYS if read_as == key)
        assert store.load(key) == {**VALUE, "key": genie_key}
    assert store.children() == sorted(read_as for _, read_as in DIRECTORIES)
    for directory, read_as in DIRECTORIES:
        sub = store.narrow(read_as)
        assert sub.narrow("Inner").load("State") == {"dir": directory}
        for genie_key, key in KEYS:
            assert sub.read(key) == [{"line": 1, "key": genie_key}, {"line": 2, "text": "ü"}]
    result = verify_store(tmp_path)
    assert result.ok, result.problems  # every genie file renamed and rewritten canonically
    assert (tmp_path / (encode_segment("C01ABCDEF") + ".json")).read_bytes().endswith(b"\n")


def test_a_second_migration_changes_nothing(tmp_path: Path) -> None:
    write_genie_stores(tmp_path)
    migrate_store(tmp_path)
    before = tree_bytes(tmp_path)
    again = migrate_store(tmp_path)
    assert (again.renamed, again.collisions, again.rewritten, again.errors) == ((), (), 0, ())
    assert tree_bytes(tmp_path) == before


def crashing_rename(real_rename: Callable[..., None], crash_at: int) -> Callable[..., None]:
    """``os.rename`` that dies before the migration's ``crash_at``-th rename (each one is atomic)."""
    renames = 0

    def rename(*args: Any, **kwargs: Any) -> None:
        nonlocal renames
        if not kwargs:  # the migration's renames (the store's own writes pass directory descriptors)
            renames += 1
            if renames == crash_at:
                raise KeyboardInterrupt
        real_rename(*args, **kwargs)

    return rename


def test_a_rerun_after_a_crash_at_any_rename_finishes_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference"
    write_genie_stores(reference)
    total = len(migrate_store(reference).renamed)
    expected = {name: data for name, data in tree_bytes(reference).items() if ".lock" not in name}
    real_rename = os.rename
    for crash_at in range(1, total + 1):  # bounded: one crash per rename the migration makes
        store = tmp_path / f"crash-{crash_at}"
        write_genie_stores(store)
        with monkeypatch.context() as patch:
            patch.setattr(os, "rename", crashing_rename(real_rename, crash_at))
            with pytest.raises(KeyboardInterrupt):
                migrate_store(store)
        assert migrate_store(store).ok
        migrated = {name: data for name, data in tree_bytes(store).items() if ".lock" not in name}
        assert migrated == expected, crash_at


def test_a_collision_is_refused_and_reported_and_nothing_is_overwritten(tmp_path: Path) -> None:
    Store(tmp_path).save("C01ABCDEF", {"written": "by group_store"})
    (tmp_path / "C01ABCDEF.json").write_text(json.dumps({"written": "by genie"}, indent=2))
    (tmp_path / "Other.json").write_text("{}")
    report = migrate_store(tmp_path)
    assert [(r.source.name, r.target.name) for r in report.collisions] == [
        ("C01ABCDEF.json", encode_segment("C01ABCDEF") + ".json")
    ]
    assert not report.ok
    assert json.loads((tmp_path / "C01ABCDEF.json").read_text()) == {"written": "by genie"}
    assert Store(tmp_path).load("C01ABCDEF") == {"written": "by group_store"}
    assert Store(tmp_path).load("Other") == {}  # the rest of the migration went on
    result = CliRunner().invoke(cli, ["migrate", str(tmp_path), "--from", "group-genie"])
    assert result.exit_code == 1
    assert "collision" in result.output


def test_a_dry_run_lists_what_it_would_do_and_changes_nothing(tmp_path: Path) -> None:
    write_genie_stores(tmp_path)
    before = tree_bytes(tmp_path)
    report = migrate_store(tmp_path, dry_run=True)
    assert tree_bytes(tmp_path) == before
    names = {r.source.relative_to(tmp_path).as_posix() for r in report.renamed}
    assert {"C01ABCDEF.json", "Team-X", "Team-X/C01ABCDEF.jsonl", "Team-X/Inner", "Team-X/Inner/State.json"} <= names
    assert "plain_key-1.json" not in names
    assert report.rewritten is None
    assert report.format is None
    real = migrate_store(tmp_path)
    assert [r.target.name for r in real.renamed] == [r.target.name for r in report.renamed]
    result = CliRunner().invoke(cli, ["migrate", str(tmp_path), "--from", "group-genie", "--dry-run", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["renamed"] == []


def test_a_name_that_is_both_a_document_and_a_log_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "Chat.json").write_text('{"old": true}')
    (tmp_path / "Chat.jsonl").write_text('{"line": 1}\n')
    report = migrate_store(tmp_path)
    assert [path.name for path in report.both] == [encode_segment("Chat") + ".json"]
    assert "document-and-log" in [p.kind for p in verify_store(tmp_path).problems]
    store = Store(tmp_path)
    with caplog.at_level(logging.WARNING, logger="group_store"):
        assert store.keys() == ["Chat"]
    assert "load() reads the document" in caplog.text
    assert encode_segment("Chat") + ".jsonl" in caplog.text
    assert store.load("Chat") == {"old": True}
    assert store.read("Chat") == [{"line": 1}]


@pytest.mark.parametrize(("value", "text"), [(float("nan"), "NaN"), (2**70, str(2**70))])
def test_values_genie_accepted_but_group_store_refuses_are_reported_and_left(
    tmp_path: Path, value: object, text: str
) -> None:
    (tmp_path / "Bad.json").write_text(json.dumps({"x": value}))
    report = migrate_store(tmp_path)
    assert not report.ok
    assert [encode_segment("Bad") in error for error in report.errors] == [True]
    assert (tmp_path / (encode_segment("Bad") + ".json")).read_text() == '{"x": ' + text + "}"


def test_an_unknown_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown migration source"):
        migrate_store(tmp_path, source="nope")


@pytest.mark.parametrize("command", ["tree", "ls"])
def test_listings_say_how_many_names_do_not_decode(tmp_path: Path, command: str) -> None:
    write_genie_stores(tmp_path)
    runner = CliRunner()
    before = runner.invoke(cli, [command, str(tmp_path)])
    assert before.exit_code == 0
    top_level = 7 if command == "ls" else None  # 4 documents to rename and 3 directories at the root
    note = before.stderr.strip().splitlines()[-1]
    assert note.endswith("names do not decode as keys and are not listed (run group-store migrate?)")
    if top_level is not None:
        assert (
            note == f"group-store: warning: {top_level} names do not decode as keys"
            " and are not listed (run group-store migrate?)"
        )
    migrate_store(tmp_path)
    after = runner.invoke(cli, [command, str(tmp_path)])
    assert after.exit_code == 0
    assert "do not decode" not in after.stderr
    assert "C01ABCDEF" in after.stdout


def test_verify_points_undecodable_names_at_migrate(tmp_path: Path) -> None:
    write_genie_stores(tmp_path)
    problems = verify_store(tmp_path).problems
    foreign = [p for p in problems if p.kind == "foreign-file"]
    assert {Path(p.path).name for p in foreign} >= {"C01ABCDEF.json", "Team-X"}
    assert all("group-store migrate" in p.detail for p in foreign)


def test_foreign_directories_are_never_entered_and_a_missing_store_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "not ours" / "Inner"  # a space: neither a genie name nor a key
    foreign.mkdir(parents=True)
    (foreign / "Doc.json").write_text("{}")
    report = migrate_store(tmp_path)
    assert report.ok
    assert report.renamed == ()
    assert sorted(p.name for p in (tmp_path / "not ours").iterdir()) == ["Inner"]
    assert sorted(p.name for p in foreign.iterdir()) == ["Doc.json"]
    with pytest.raises(StorageError):
        migrate_store(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
