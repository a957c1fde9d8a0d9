"""Genie's graph checkpoint saver on files: checkpoints per lineage with their pending writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from group_store import InvalidArgumentError, Store, Table

from ._base import Twin, table


@dataclass
class CheckpointTuple:
    """A checkpoint with the config that names it, its metadata, its parent's config and its pending writes."""

    config: dict[str, Any]
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    parent_config: dict[str, Any] | None
    pending_writes: list[dict[str, Any]]


_CHECKPOINT_FIELDS = (
    "lineage_id",
    "checkpoint_ns",
    "checkpoint_id",
    "sequence",
    "parent_checkpoint_id",
    "checkpoint",
    "metadata",
    "writes",
)


class CheckpointStore(Twin[Table]):
    """Graph checkpoints per lineage and namespace, with their pending writes.

    A config is ``{"configurable": {"lineage_id", "checkpoint_ns", "checkpoint_id"}}``
    (``checkpoint_ns`` defaults to ``""``). A checkpoint is a dict with an ``"id"``.
    A checkpoint and its writes are one record in one file, so ``put_full`` is
    atomic. Checkpoints are ordered by a per-lineage sequence number (the
    order they were first put), not by time.
    """

    @staticmethod
    def _build(store: Store) -> Table:
        key = ("lineage_id", "checkpoint_ns", "checkpoint_id")
        # Namespaces may be "" (the default one), so only the lineage names a directory.
        return table(store, "checkpoints", _CHECKPOINT_FIELDS, key, partition_by=("lineage_id",))

    @staticmethod
    def _configurable(config: Mapping[str, Any]) -> tuple[str, str, str]:
        try:
            configurable = config["configurable"]
            return (
                configurable["lineage_id"],
                configurable.get("checkpoint_ns", ""),
                configurable.get("checkpoint_id", ""),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidArgumentError(f"a config needs configurable.lineage_id, not {config!r}") from exc

    @staticmethod
    def _config(lineage: str, ns: str, checkpoint_id: str) -> dict[str, Any]:
        return {"configurable": {"lineage_id": lineage, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}

    async def put(
        self, config: Mapping[str, Any], checkpoint: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Store (or overwrite) a checkpoint and return its config.

        ``config``'s checkpoint_id, if it names another checkpoint, becomes the parent.
        """
        return await self.put_full(config, checkpoint, metadata, ())

    async def put_writes(self, config: Mapping[str, Any], writes: Sequence[Mapping[str, Any]], task_id: str) -> None:
        """Store a task's pending writes (``{"channel", "value"}`` each) for the checkpoint in ``config``.

        Each write is keyed by (task_id, its index), so a retry overwrites rather than duplicates.
        """
        lineage, ns, checkpoint_id = self._configurable(config)
        items = [{**w, "task_id": task_id} for w in writes]
        await self._run(self._put, lineage, ns, checkpoint_id, None, None, None, items)

    async def put_full(
        self,
        config: Mapping[str, Any],
        checkpoint: Mapping[str, Any],
        metadata: Mapping[str, Any] | None,
        pending_writes: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """Store a checkpoint and its writes (``{"task_id", "channel", "value"}`` each) in one atomic file write."""
        lineage, ns, parent = self._configurable(config)
        checkpoint_id = checkpoint.get("id")
        if not isinstance(checkpoint_id, str) or not checkpoint_id:
            raise InvalidArgumentError(f"a checkpoint needs a string 'id', not {checkpoint_id!r}")
        parent_id = parent if parent and parent != checkpoint_id else None
        args = (lineage, ns, checkpoint_id, dict(checkpoint), dict(metadata or {}), parent_id, list(pending_writes))
        await self._run(self._put, *args)
        return self._config(lineage, ns, checkpoint_id)

    def _put(
        self,
        lineage: str,
        ns: str,
        checkpoint_id: str,
        checkpoint: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        parent_id: str | None,
        writes: list[Mapping[str, Any]],
        store: Store,
    ) -> None:
        table = self._tables(store)
        with table.lock(lineage):
            current = table.get(lineage, ns, checkpoint_id)
            if current is None:
                sequence = 1 + max((r["sequence"] for r in table.find({"lineage_id": lineage})), default=0)
                current_writes: dict[str, Any] = {}
            else:
                sequence, current_writes = current["sequence"], current["writes"]
            counters: dict[str, int] = {}
            for write in writes:
                task = str(write.get("task_id", ""))
                index = counters.get(task, 0)
                counters[task] = index + 1
                current_writes[f"{task}:{index:06d}"] = {
                    "task_id": task,
                    "channel": write["channel"],
                    "value": write.get("value"),
                }
            if current is not None and checkpoint is None:
                # Writes alone keep the checkpoint they are for.
                checkpoint, metadata, parent_id = (
                    current["checkpoint"],
                    current["metadata"],
                    current["parent_checkpoint_id"],
                )
            record = {
                "lineage_id": lineage,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint_id,
                "sequence": sequence,
                "parent_checkpoint_id": parent_id,
                "checkpoint": checkpoint,
                "metadata": metadata if metadata is not None else {},
                "writes": current_writes,
            }
            table.upsert(record)

    async def get_tuple(self, config: Mapping[str, Any]) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the lineage/namespace's newest if it names none; ``None`` if absent."""
        lineage, ns, checkpoint_id = self._configurable(config)
        if checkpoint_id:
            found = await self._run(lambda store: self._tables(store).get(lineage, ns, checkpoint_id))
            return None if found is None or found["checkpoint"] is None else self._tuple(found)
        newest = await self.list(config, limit=1)
        return newest[0] if newest else None

    async def list(
        self, config: Mapping[str, Any], *, before: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> list[CheckpointTuple]:
        """The lineage/namespace's checkpoints, newest first; only those older than ``before``'s, at most ``limit``."""
        lineage, ns, _ = self._configurable(config)
        records = await self._run(
            lambda store: self._tables(store).find(
                {"lineage_id": lineage, "checkpoint_ns": ns}, order_by="sequence", descending=True
            )
        )
        records = [r for r in records if r["checkpoint"] is not None]
        if before is not None:
            _, _, before_id = self._configurable(before)
            cutoff = next((r["sequence"] for r in records if r["checkpoint_id"] == before_id), None)
            records = [r for r in records if cutoff is not None and r["sequence"] < cutoff]
        if limit is not None and limit > 0:
            records = records[:limit]
        return [self._tuple(r) for r in records]

    async def delete_lineage(self, lineage_id: str) -> None:
        """Delete every checkpoint and write of the lineage."""
        await self._run(lambda store: self._tables(store).delete_where({"lineage_id": lineage_id}))

    def _tuple(self, record: Mapping[str, Any]) -> CheckpointTuple:
        lineage, ns, parent = record["lineage_id"], record["checkpoint_ns"], record["parent_checkpoint_id"]
        return CheckpointTuple(
            config=self._config(lineage, ns, record["checkpoint_id"]),
            checkpoint=record["checkpoint"],
            metadata=record["metadata"],
            parent_config=None if parent is None else self._config(lineage, ns, parent),
            pending_writes=[record["writes"][name] for name in sorted(record["writes"])],
        )
