"""A LangGraph thread's directory pinned with ``store_snapshot``: the files a person reviews.

Checkpoint ids name files, so the test makes them deterministic (LangGraph's id
generator and the savers' random version suffix are replaced for its length);
timestamps are masked. Refresh the golden files with ``--store-snapshot-update``.
"""

from __future__ import annotations

import itertools
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

# The langgraph extra and test peers are part of what CI installs: a missing one fails loudly, never skips.
import group_store.integrations.langgraph.saver as saver_module
from group_store import Store
from group_store.integrations.langgraph import GroupStoreSaver

from .test_langgraph_graph import START_STATE, counter_graph, thread

MASKS = ["$.checkpoint.ts"]


@pytest.fixture
def deterministic_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count(1)

    def uuid6(node: int | None = None, clock_seq: int | None = None) -> uuid.UUID:
        return uuid.UUID(f"1f000000-0000-6000-8000-{next(counter):012x}")

    monkeypatch.setattr("langgraph.pregel._checkpoint.uuid6", uuid6)
    monkeypatch.setattr(saver_module, "random", random.Random(0))


@pytest.mark.usefixtures("deterministic_ids")
@pytest.mark.local_only("the recorded golden directory is named after the local test id")
def test_a_thread_after_an_interrupt_and_its_resume(tmp_path: Path, store_snapshot: Any) -> None:
    store = Store(tmp_path)
    graph = counter_graph(GroupStoreSaver(store), ask=True)
    graph.invoke(START_STATE, thread("session-1"))  # pauses in "greet" for a name
    store_snapshot.assert_match(store, mask=MASKS, name="paused")
    from langgraph.types import Command

    graph.invoke(Command(resume="Ada"), thread("session-1"))
    store_snapshot.assert_match(store, mask=MASKS, name="resumed")
    # What a review sees: the readable files, and no value in a serializer's binary.
    head = (tmp_path / "session-1" / "head.jsonl").read_text()
    assert '"greeting":"hello Ada"' in head
    assert "msgpack" not in head
