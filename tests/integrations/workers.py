"""Process workers for the session adapters' tests: light to import (no SDK), as each spawned process imports them."""

from __future__ import annotations

import anyio

from group_store import Store
from group_store.integrations.openai_agents import GroupStoreSession


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
