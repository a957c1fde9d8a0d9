"""The group-commit fan-out: parallel where it can be, and never dependent on a helper thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from group_store import Store
from group_store._api.writer import Writer
from group_store.storage._fsync import MAX_HELPERS, fan_out


def _refuse_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on no thread starts, as in an atexit hook on Python 3.12+."""

    def start(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", start)


def test_fan_out_returns_every_result_in_item_order() -> None:
    items = list(range(200))
    seen: set[str] = set()

    def square(item: int) -> int:
        seen.add(threading.current_thread().name)
        return item * item

    assert fan_out(square, items) == [item * item for item in items]
    assert len(seen) <= MAX_HELPERS + 1


def test_fan_out_works_when_no_helper_thread_can_start(monkeypatch: pytest.MonkeyPatch) -> None:
    import group_store.storage._fsync as fsync

    monkeypatch.setattr(fsync, "_helpers", fsync._Helpers())  # none started yet
    _refuse_threads(monkeypatch)
    assert fan_out(lambda item: item + 1, [1, 2, 3]) == [2, 3, 4]  # the caller did all three


def test_fan_out_in_a_forked_child_needs_none_of_the_parents_helpers() -> None:
    assert fan_out(lambda item: item, list(range(50))) == list(range(50))  # the parent has helpers now
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        ok = fan_out(lambda item: item * 2, list(range(50))) == [item * 2 for item in range(50)]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_close_writes_the_queue_itself_when_no_thread_can_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    writer = Writer(store._engine)
    _refuse_threads(monkeypatch)
    handle = writer.save(store._location("k"), b"1\n", None)  # queued; no writer thread could start
    assert not handle.done()
    writer.close()
    assert handle.done()
    assert handle.exception() is None
    assert store.load("k") == 1
