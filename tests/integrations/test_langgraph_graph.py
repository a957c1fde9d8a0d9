"""A real StateGraph (no LLM) on GroupStoreSaver: invoke and ainvoke, resuming a thread from a new
process, state history, interrupt() resumed with Command(resume=...), a fork, delete_thread; and a
graph with GroupStoreStore as its store, keeping memory across threads until its TTL.

``ainvoke`` runs on asyncio only: LangGraph's async runtime (langchain-core's runnables) is asyncio-based.
"""

from __future__ import annotations

import operator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

# The langgraph extra and test peers are part of what CI installs: a missing one fails loudly, never skips.
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from group_store import DataStore, Store
from group_store.integrations.langgraph import GroupStoreSaver, GroupStoreStore
from group_store.testing import FakeClock

from ..processes import run_processes


class Counter(TypedDict):
    count: Annotated[int, operator.add]
    log: Annotated[list[str], operator.add]
    greeting: str


def increment(state: Counter) -> dict[str, Any]:
    return {"count": 1, "log": [f"step to {state['count'] + 1}"]}


def greet(state: Counter) -> dict[str, Any]:
    name = interrupt("what is your name?")
    return {"greeting": f"hello {name}"}


def counter_graph(
    saver: GroupStoreSaver | InMemorySaver, *, ask: bool = False
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(Counter)
    builder.add_node("increment", increment)
    builder.add_edge(START, "increment")
    if ask:
        builder.add_node("greet", greet)
        builder.add_edge("increment", "greet")
        builder.add_edge("greet", END)
    else:
        builder.add_edge("increment", END)
    return builder.compile(checkpointer=saver)


def thread(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


START_STATE: Any = {"count": 0, "log": [], "greeting": ""}


def test_invoke_keeps_counting_on_a_thread(tmp_path: Path) -> None:
    graph = counter_graph(GroupStoreSaver(tmp_path))
    assert graph.invoke(START_STATE, thread("a"))["count"] == 1
    assert graph.invoke(START_STATE, thread("a"))["count"] == 2
    assert graph.invoke(START_STATE, thread("b"))["count"] == 1
    assert graph.get_state(thread("a")).values["log"] == ["step to 1", "step to 2"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kind", ["store", "data_store"])
@pytest.mark.anyio
async def test_ainvoke_and_invoke_share_the_thread(kind: str, tmp_path: Path) -> None:
    async def run(saver: GroupStoreSaver) -> None:
        graph = counter_graph(saver)
        assert (await graph.ainvoke(START_STATE, thread("t")))["count"] == 1
        assert (await graph.ainvoke(START_STATE, thread("t")))["count"] == 2
        # The sync half on the same saver and files, from a worker thread as LangGraph users do.
        import anyio.to_thread

        result = await anyio.to_thread.run_sync(graph.invoke, START_STATE, thread("t"))
        assert result["count"] == 3
        assert (await graph.aget_state(thread("t"))).values["count"] == 3

    if kind == "store":
        await run(GroupStoreSaver(Store(tmp_path)))
    else:
        async with DataStore(tmp_path) as data_store:
            await run(GroupStoreSaver(data_store))
    assert counter_graph(GroupStoreSaver(tmp_path)).get_state(thread("t")).values["count"] == 3


def _resume_in_a_new_process(root: str) -> None:
    graph = counter_graph(GroupStoreSaver(root))
    assert graph.get_state(thread("shared")).values["count"] == 2
    assert graph.invoke(START_STATE, thread("shared"))["count"] == 3


@pytest.mark.local_only("a new process reopens the store")
def test_a_new_process_resumes_the_thread_by_its_id(tmp_path: Path) -> None:
    graph = counter_graph(GroupStoreSaver(tmp_path))
    graph.invoke(START_STATE, thread("shared"))
    graph.invoke(START_STATE, thread("shared"))
    run_processes([(_resume_in_a_new_process, (str(tmp_path),))])
    state = counter_graph(GroupStoreSaver(tmp_path)).get_state(thread("shared"))
    assert state.values["count"] == 3
    assert state.values["log"] == ["step to 1", "step to 2", "step to 3"]


def test_state_history_is_the_one_in_memory_saver_gives(tmp_path: Path) -> None:
    histories = []
    for saver in (GroupStoreSaver(tmp_path), InMemorySaver()):
        graph = counter_graph(saver)
        for _ in range(3):
            graph.invoke(START_STATE, thread("h"))
        histories.append(list(graph.get_state_history(thread("h"))))
    ours, reference = histories
    assert [(s.values, s.next, s.metadata and s.metadata["step"]) for s in ours] == [
        (s.values, s.next, s.metadata and s.metadata["step"]) for s in reference
    ]
    assert len(ours) == 9  # per invoke: an input checkpoint, the node's, and the first run's empty start
    ids = [snapshot.config["configurable"]["checkpoint_id"] for snapshot in ours]
    assert ids == sorted(ids, reverse=True)
    parents = [s.parent_config["configurable"]["checkpoint_id"] if s.parent_config else None for s in ours]
    assert parents == [*ids[1:], None]  # one chain: each one's parent is the next older


def test_interrupt_is_resumed_with_command_resume_even_from_a_new_saver(tmp_path: Path) -> None:
    graph = counter_graph(GroupStoreSaver(tmp_path), ask=True)
    paused = graph.invoke(START_STATE, thread("i"))
    assert [item.value for item in paused["__interrupt__"]] == ["what is your name?"]
    assert graph.get_state(thread("i")).next == ("greet",)
    again = counter_graph(GroupStoreSaver(Store(tmp_path)), ask=True)  # the pause survives on disk
    done = again.invoke(Command(resume="Ada"), thread("i"))
    assert done["greeting"] == "hello Ada"
    assert done["count"] == 1
    assert again.get_state(thread("i")).next == ()


def test_a_fork_from_an_older_checkpoint_branches_the_history(tmp_path: Path) -> None:
    graph = counter_graph(GroupStoreSaver(tmp_path))
    for _ in range(3):
        graph.invoke(START_STATE, thread("f"))
    older = next(s for s in graph.get_state_history(thread("f")) if s.values.get("count") == 1 and not s.next)
    forked = graph.update_state(older.config, {"count": 100, "log": ["forked"]})
    assert graph.get_state(thread("f")).values["count"] == 101
    result = graph.invoke(START_STATE, forked)
    assert result["count"] == 102
    assert result["log"] == ["step to 1", "forked", "step to 102"]
    history = list(graph.get_state_history(thread("f")))
    assert {s.values.get("count") for s in history} >= {3, 2, 101, 102}
    # The original branch is still there, reachable by its id.
    assert graph.get_state(older.config).values["count"] == 1


def test_delete_thread_forgets_the_thread(tmp_path: Path) -> None:
    saver = GroupStoreSaver(tmp_path)
    graph = counter_graph(saver)
    graph.invoke(START_STATE, thread("d"))
    graph.invoke(START_STATE, thread("keep"))
    saver.delete_thread("d")
    assert graph.get_state(thread("d")).values == {}
    assert list(graph.get_state_history(thread("d"))) == []
    assert graph.invoke(START_STATE, thread("d"))["count"] == 1  # a fresh start
    assert graph.get_state(thread("keep")).values["count"] == 1


class Chat(TypedDict):
    user: str
    fact: str
    known: list[str]


def remember(state: Chat, runtime: Runtime[Any]) -> dict[str, Any]:
    """Store the user's new fact (if any) in long-term memory; answer with everything remembered."""
    assert runtime.store is not None
    namespace = ("memories", state["user"])
    if state["fact"]:
        runtime.store.put(namespace, state["fact"].replace(" ", "-"), {"fact": state["fact"]})
    return {"known": sorted(item.value["fact"] for item in runtime.store.search(namespace))}


def memory_graph(saver: GroupStoreSaver, store: GroupStoreStore) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(Chat)
    builder.add_node("remember", remember)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", END)
    return builder.compile(checkpointer=saver, store=store)


def test_the_store_keeps_memory_across_threads_until_its_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    saver = GroupStoreSaver(Store(tmp_path / "threads", clock=clock))
    store = GroupStoreStore(Store(tmp_path / "memory", clock=clock), ttl={"default_ttl": 60}, clock=clock)
    graph = memory_graph(saver, store)
    graph.invoke({"user": "alice", "fact": "likes tea", "known": []}, thread("monday"))
    tuesday = graph.invoke({"user": "alice", "fact": "plays chess", "known": []}, thread("tuesday"))
    assert tuesday["known"] == ["likes tea", "plays chess"]  # another thread, the same memory
    assert graph.invoke({"user": "bob", "fact": "", "known": []}, thread("bob"))["known"] == []
    clock.advance(timedelta(minutes=45))
    # Reading refreshes (refresh_on_read defaults to True): both facts get another hour.
    assert graph.invoke({"user": "alice", "fact": "", "known": []}, thread("wed"))["known"] == [
        "likes tea",
        "plays chess",
    ]
    clock.advance(timedelta(minutes=45))
    assert graph.invoke({"user": "alice", "fact": "", "known": []}, thread("thu"))["known"] == [
        "likes tea",
        "plays chess",
    ]
    clock.advance(timedelta(minutes=61))
    assert graph.invoke({"user": "alice", "fact": "", "known": []}, thread("fri"))["known"] == []  # expired
    assert store.sweep_ttl() == 2
    assert list((tmp_path / "memory" / "memories" / "alice").glob("*.json")) == []
    assert graph.get_state(thread("monday")).values["known"] == ["likes tea"]  # threads have no TTL here
