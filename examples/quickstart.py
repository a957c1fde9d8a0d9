"""A simulated agent session on group_store: a message log, per-owner agent state,
a TTL cache, a sweep, and the resulting directory tree.

    python examples/quickstart.py [DIRECTORY]      (a temporary directory by default)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio

from group_store import DataStore


def print_tree(root: Path) -> None:
    """Print the store's files (hidden lock files left out) with their sizes."""
    print(f"{root}/")
    for path in sorted(root.rglob("*")):
        if path.name.startswith("."):
            continue
        depth = len(path.relative_to(root).parts)
        label = f"{path.name}/" if path.is_dir() else f"{path.name}  ({path.stat().st_size} B)"
        print("    " * depth + label)


async def run_session(root: Path) -> None:
    async with DataStore(root) as store:
        session = store.narrow("session-123")

        # 1. The conversation: a bounded JSON Lines log, one line per message.
        for turn, text in enumerate(["Plan a trip to Lisbon", "Book the 9:40 train", "Thanks!"]):
            session.append("messages", [{"role": "user", "content": text, "turn": turn}], max_items=500)
            session.append("messages", [{"role": "assistant", "content": f"(reply {turn})", "turn": turn}])

        # 2. Per-owner agent state: one canonical JSON document per owner.
        for owner in ["alice", "bob"]:
            agent = session.narrow(owner, "agent")
            agent.save("state", {"owner": owner, "plan": ["search", "book"], "step": 0})
            await agent.update("state", lambda state: {**state, "step": state["step"] + 1})

        # 3. A TTL cache: the weather lookup is valid for one second.
        await session.save("weather-lisbon", {"celsius": 21}, ttl=1)
        print("cached weather:", await session.get("weather-lisbon"))
        print("expires at:   ", await session.expires_at("weather-lisbon"))

        await store.flush()  # barrier: everything above is on disk now
        print("last 2 messages:", await session.read("messages", last=2))
        print("owners:", await session.children(), "entries:", await session.keys())

        await anyio.sleep(1.1)
        print("after 1.1 s the cache is gone:", await session.get("weather-lisbon", default="<expired>"))
        print("sweep removed", await store.sweep(), "expired entry")
    print_tree(root)


def main() -> None:
    if len(sys.argv) > 1:
        anyio.run(run_session, Path(sys.argv[1]))
        return
    with tempfile.TemporaryDirectory() as directory:
        anyio.run(run_session, Path(directory) / "store")


if __name__ == "__main__":
    main()
