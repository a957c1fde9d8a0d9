"""Process workers for the session adapters' tests: light to import (no SDK), as each spawned process imports them."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable

import anyio

from group_store import Store
from group_store.integrations.openai_agents import GroupStoreSession


def run_forked(targets: list[tuple[Callable[..., None], tuple[object, ...]]]) -> None:
    """Fork a process per ``(function, args)``, all at once, and assert each exits cleanly.

    For workers that need an SDK: a fork inherits the imports (seconds per process
    for the SDKs under spawn) but no session object, so each still starts from
    the files alone. Used only before any worker thread could hold a lock a child
    would need.
    """
    pids = []
    for target, args in targets:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            code = 1
            try:
                target(*args)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status), f"worker {pid} died: status {status}"
        assert os.WEXITSTATUS(status) == 0, f"worker {pid} failed (its traceback is on stderr)"


def add_items(root: str, worker: int, count: int) -> None:
    """``count`` add_items of two items each to the session "shared"."""

    async def main() -> None:
        session = GroupStoreSession("shared", root)
        for i in range(count):
            await session.add_items([{"worker": worker, "i": i}, {"worker": worker, "i": i, "second": True}])

    anyio.run(main)


def pop_items(root: str, worker: int, out: str) -> None:
    """Pop the session "shared" until it is empty; save the popped ``n`` values as ``popped-<worker>`` in ``out``."""

    async def main() -> None:
        session = GroupStoreSession("shared", root)
        popped: list[int] = []
        while (item := await session.pop_item()) is not None:
            popped.append(item["n"])
        Store(out).save(f"popped-{worker}", popped)

    anyio.run(main)


def adk_turn(root: str, turn: int, user_text: str, reply: str) -> None:
    """One turn of an ADK ``Runner`` with the SDK's mock model, in a fresh process (turn 1 creates the session).

    The agent's callback writes app, user, session and temp state; ``output_key`` saves the reply.
    Asserts that the model saw the earlier turns' messages before this one.
    """
    import asyncio

    from google.adk.agents import LlmAgent
    from google.adk.agents.callback_context import CallbackContext
    from google.adk.cli.agent_test_runner import MockModel
    from google.adk.runners import Runner
    from google.genai import types

    from group_store.integrations.adk import GroupStoreMemoryService, GroupStoreSessionService

    def before_agent(callback_context: CallbackContext) -> None:
        state = callback_context.state
        state["app:visits"] = state.get("app:visits", 0) + 1
        state["user:name"] = "Ada"
        state["temp:scratch"] = "not persisted"
        state["turn"] = state.get("turn", 0) + 1
        return None

    async def main() -> None:
        model = MockModel.create([types.Content(role="model", parts=[types.Part(text=reply)])])
        agent = LlmAgent(
            name="assistant",
            model=model,
            instruction="Be brief.",
            before_agent_callback=before_agent,
            output_key="last_reply",
        )
        sessions, memory = GroupStoreSessionService(root), GroupStoreMemoryService(root)
        if turn == 1:
            state = {"app:theme": "dark", "user:lang": "en", "temp:t": 1, "topic": "capitals"}
            await sessions.create_session(app_name="geo", user_id="ada", session_id="s1", state=state)
        runner = Runner(app_name="geo", agent=agent, session_service=sessions, memory_service=memory)
        message = types.Content(role="user", parts=[types.Part(text=user_text)])
        replies = [
            part.text
            async for event in runner.run_async(user_id="ada", session_id="s1", new_message=message)
            if event.content and event.content.parts
            for part in event.content.parts
        ]
        assert replies == [reply], replies
        (request,) = model.requests
        seen = [content.parts[0].text for content in request.contents if content.parts]
        expected = [user_text] if turn == 1 else ["Capital of France?", "Paris.", user_text]
        assert seen == expected, seen
        session = await sessions.get_session(app_name="geo", user_id="ada", session_id="s1")
        assert session is not None
        assert session.state["turn"] == turn
        await memory.add_session_to_memory(session)

    asyncio.run(main())


def adk_append(root: str, worker: int, count: int) -> None:
    """``count`` append_event calls to the ADK session a/u/s, each from a freshly loaded session, retried when stale."""
    import asyncio

    from google.adk.errors import StaleSessionError
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions

    from group_store.integrations.adk import GroupStoreSessionService

    async def main() -> None:
        service = GroupStoreSessionService(root)
        for i in range(count):
            delta = {f"w{worker}": i, f"user:w{worker}": i, "app:count": i}
            while True:
                session = await service.get_session(app_name="a", user_id="u", session_id="s")
                assert session is not None
                event = Event(
                    id=f"w{worker}-{i}", author="user", invocation_id="inv", actions=EventActions(state_delta=delta)
                )
                try:
                    await service.append_event(session, event)
                    break
                except StaleSessionError:
                    continue  # the other process appended in between: reload and retry, as a caller would

    asyncio.run(main())
