"""DirectorDB twin (seed 002): the seed's semantics, SQLite parity and two processes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from group_store import Store
from group_store.repos.director import DirectorDB

from ..processes import run_processes
from .sqlite_seeds import SQLiteDB


def test_sessions_insert_or_ignore_and_newest_updated_first(tmp_path: Path) -> None:
    db = DirectorDB(str(tmp_path / "director.db"))
    assert db.health_check()
    db.create_session("s1", "v1", "c1", created_at=10, updated_at=10, metadata={"a": 1})
    db.create_session("s1", "other", "other", created_at=99, updated_at=99)
    db.create_session("s2", "v2", "c2", created_at=20, updated_at=30)
    assert db.get_session("s1") == {
        "session_id": "s1",
        "video_id": "v1",
        "collection_id": "c1",
        "created_at": 10,
        "updated_at": 10,
        "metadata": {"a": 1},
    }
    assert db.get_session("missing") == {}
    assert [s["session_id"] for s in db.get_sessions()] == ["s2", "s1"]
    before = int(time.time())
    db.create_session("s3", "v", "c")
    assert db.get_session("s3")["created_at"] >= before


def test_messages_upsert_by_msg_id_and_read_back_oldest_first(tmp_path: Path) -> None:
    db = DirectorDB(tmp_path)
    db.create_session("s", "v", "c")
    db.add_or_update_msg_to_conv("s", "c1", "m1", "input", ["a"], [], [{"text": "hi"}], created_at=1, updated_at=1)
    db.add_or_update_msg_to_conv("s", "c1", "m2", "output", ["a"], ["act"], [], status="progress", created_at=2)
    db.add_or_update_msg_to_conv("s", "c1", "m2", "output", ["a"], ["act"], [{"text": "done"}], status="success")
    conversation = db.get_conversations("s")
    assert [(m["msg_id"], m["status"]) for m in conversation] == [("m1", None), ("m2", "success")]
    assert conversation[1]["content"] == [{"text": "done"}]
    assert conversation[0]["agents"] == ["a"]
    assert db.get_conversations("other") == []


def test_context_messages(tmp_path: Path) -> None:
    db = DirectorDB(tmp_path)
    assert db.get_context_messages("s") == {}
    db.add_or_update_context_msg("s", [{"role": "user", "content": "x"}])
    db.add_or_update_context_msg("s", [{"role": "user", "content": "y"}])
    assert db.get_context_messages("s") == [{"role": "user", "content": "y"}]


def test_delete_session_returns_the_seeds_tuple(tmp_path: Path) -> None:
    db = DirectorDB(Store(tmp_path))
    db.create_session("s", "v", "c")
    db.add_or_update_msg_to_conv("s", "c", "m", "input", [], [], [])
    db.add_or_update_context_msg("s", [])
    assert db.delete_session("s") == (True, [])
    assert db.delete_session("s") == (False, ["conversation", "context", "session"])
    db.create_session("t", "v", "c")
    assert db.delete_session("t") == (True, ["conversation", "context"])
    assert db.get_session("t") == {}
    assert not db.delete_conversation("t")
    assert not db.delete_context("t")


@pytest.mark.local_only("a file on disk where the store directory should be")
def test_health_check_reports_an_unusable_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    assert not DirectorDB(tmp_path / "file").health_check()


def _scenario(db: Any) -> list[Any]:
    seen: list[Any] = []
    for i in range(12):
        db.create_session(
            f"s{i % 4}", f"v{i}", "col", created_at=100 + i, updated_at=200 + (i * 7) % 11, metadata={"i": i}
        )
        session = f"s{i % 3}"
        db.add_or_update_msg_to_conv(
            session,
            "conv",
            f"m{i % 5}",
            "output",
            ["agent"],
            [f"a{i}"],
            [{"n": i}],
            "ok",
            created_at=50,
            updated_at=60 + i,
            metadata={},
        )
        if i % 4 == 0:
            db.add_or_update_context_msg(session, [{"turn": i}], created_at=1, updated_at=2)
        seen.append((db.get_conversations(session), db.get_context_messages(session)))
    # SQLite leaves the order of equal updated_at values open; compare the order where it is defined.
    seen.append(sorted((s["updated_at"], s["session_id"]) for s in db.get_sessions()))
    seen.append([db.get_session(f"s{i}") for i in range(5)])
    seen.append([db.delete_session(f"s{i}") for i in range(5)])
    seen.append([db.delete_conversation("s0"), db.delete_context("s1"), db.get_sessions()])
    return seen


def test_behaves_like_the_sqlite_tables(tmp_path: Path) -> None:
    expected = _scenario(SQLiteDB(str(tmp_path / "director.sqlite")))
    assert _scenario(DirectorDB(tmp_path / "director.db")) == expected


def test_sessions_order_like_sqlite_when_updated_at_differs(tmp_path: Path) -> None:
    sqlite_db, file_db = SQLiteDB(str(tmp_path / "d.sqlite")), DirectorDB(tmp_path / "d")
    for db in (sqlite_db, file_db):
        for i, updated in enumerate([5, 3, 9, 1, 7]):
            db.create_session(f"s{i}", "v", "c", created_at=1, updated_at=updated)
    assert file_db.get_sessions() == sqlite_db.get_sessions()


ROUNDS = 100


def _write_messages(root: str, worker: int) -> None:
    db = DirectorDB(root)
    db.create_session("shared", "v", "c")
    for i in range(ROUNDS):
        db.add_or_update_msg_to_conv("shared", "c", f"w{worker}-{i}", "input", [], [], [{"i": i}])
        db.add_or_update_context_msg(f"ctx-{worker}", [i])


@pytest.mark.local_only("subprocesses share the store")
def test_two_processes_write_one_conversation_without_losses(tmp_path: Path) -> None:
    run_processes([(_write_messages, (str(tmp_path), worker)) for worker in range(2)])
    db = DirectorDB(tmp_path)
    messages = db.get_conversations("shared")
    assert len(messages) == 2 * ROUNDS
    for worker in range(2):
        assert [m["content"][0]["i"] for m in messages if m["msg_id"].startswith(f"w{worker}-")] == list(range(ROUNDS))
        assert db.get_context_messages(f"ctx-{worker}") == [ROUNDS - 1]
