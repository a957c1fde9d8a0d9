"""Shared by the LangGraph adapter tests: checkpoints to put, a sync-driven saver, file listings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    empty_checkpoint,
)
from langgraph.checkpoint.base.id import uuid6


def config(thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


class Chain:
    """Puts a chain of checkpoints on one thread and namespace, as a graph would (versions from the saver)."""

    def __init__(self, saver: BaseCheckpointSaver[Any], thread_id: str, checkpoint_ns: str = "") -> None:
        self.saver = saver
        self.config = config(thread_id, checkpoint_ns)
        self.versions: dict[str, Any] = {}
        self.ids: list[str] = []
        self.step = 0

    def put(self, values: dict[str, Any], *, metadata: dict[str, Any] | None = None, parent: str | None = None) -> str:
        """Put a checkpoint whose ``values`` are the channels changed in this step (others carried over)."""
        new_versions = {c: self.saver.get_next_version(self.versions.get(c), None) for c in values}
        self.versions.update(new_versions)
        checkpoint = empty_checkpoint()
        checkpoint["id"] = str(uuid6(clock_seq=self.step))
        checkpoint["channel_versions"] = dict(self.versions)
        checkpoint["channel_values"] = dict(values)
        checkpoint["versions_seen"] = {"node": dict(self.versions)}
        parent_config = (
            self.config
            if parent is None
            else {**self.config, "configurable": {**self.config["configurable"], "checkpoint_id": parent}}
        )
        md: CheckpointMetadata = {"source": "loop", "step": self.step, "parents": {}, **(metadata or {})}  # type: ignore[typeddict-item]
        self.config = self.saver.put(parent_config, checkpoint, md, new_versions)
        self.ids.append(checkpoint["id"])
        self.step += 1
        return checkpoint["id"]


class SyncDriven(BaseCheckpointSaver[str]):
    """Answers the async methods the conformance suite calls with ``inner``'s sync ones,
    so the suite's scenarios exercise the sync half."""

    def __init__(self, inner: BaseCheckpointSaver[str]) -> None:
        super().__init__(serde=inner.serde)
        self.inner = inner

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.inner.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in self.inner.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.inner.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.inner.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.inner.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.inner.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.inner.copy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.inner.prune(thread_ids, strategy=strategy)

    def get_next_version(self, current: str | None, channel: None) -> str:
        return self.inner.get_next_version(current, channel)


def files(root: Path) -> list[str]:
    """Every data file under ``root`` (no locks, no temporary files), relative, sorted."""
    return sorted(
        str(path.relative_to(root)) for path in root.rglob("*") if path.is_file() and not path.name.startswith(".")
    )


def summary(found: CheckpointTuple | None) -> Any:
    """What a checkpoint tuple says, minus what two savers may legitimately differ on (config objects)."""
    if found is None:
        return None
    return (
        found.config["configurable"]["checkpoint_id"],
        found.checkpoint["channel_values"],
        found.checkpoint["channel_versions"],
        dict(found.metadata),
        None if found.parent_config is None else found.parent_config["configurable"]["checkpoint_id"],
        found.pending_writes,
    )
