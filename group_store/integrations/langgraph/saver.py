"""``GroupStoreSaver``: a LangGraph checkpointer whose threads are directories of readable JSON."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from group_store import InvalidArgumentError

from ._backend import Backend
from ._checkpoints import CheckpointFiles
from ._codec import ValueCodec
from ._space import Candidate, StoredCheckpoint

if TYPE_CHECKING:
    from ._backend import Target

_BATCH = 16  # checkpoints read per call (one thread hop for ``alist``), sharing one cache


class GroupStoreSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer on a group_store ``Store``, ``DataStore`` or directory.

    Both halves work on every target: ``invoke`` uses the sync methods,
    ``ainvoke`` the async ones (one thread hop each; see ``Backend``). Each
    thread is a directory (``<root>/<thread_id>/``), each subgraph namespace
    one inside it, with every checkpoint, its metadata, its pending writes and
    each channel value (once per channel and version) as a canonical JSON
    document: JSON values and LangChain messages as JSON, the rest of what the
    serializer handles as tagged, exact JSON (see ``_codec``). Several
    processes may share the directory: every change holds the thread's and the
    namespace's directory locks.

    Args:
        store: A ``Store``, a ``DataStore`` or a directory path; the saver owns
            what is under it.
        serde: The serializer for values JSON cannot hold (LangGraph's
            ``JsonPlusSerializer`` by default, whose msgpack is written as JSON).
        ttl: Thread time-to-live (seconds or a ``timedelta``), counted from the
            thread's last ``put``/``put_writes``. An expired thread is invisible
            at once; ``sweep()`` deletes its files.
        max_checkpoints_per_thread: Keep only the newest this many checkpoints
            of each thread and namespace; older ones are deleted by ``put``.

    Semantics where LangGraph's references differ:

    - ``list(limit=0)`` and negative limits return nothing (``InMemorySaver``;
      SQLite would read a negative limit as "no limit").
    - ``list(None)`` lists every thread, newest checkpoint id first across
      threads (``SqliteSaver``'s single ``ORDER BY checkpoint_id DESC``).
    - ``filter`` compares top-level metadata keys with ``==``, a missing key
      matching ``None`` (``InMemorySaver``).
    - ``put_writes``: each write with a special channel (negative index)
      replaces, each regular one is kept if its (task, index) is present
      (``InMemorySaver``, per write; ``SqliteSaver`` decides per call).
    - Versions are ``"<32-digit counter>.<random>"`` strings, as both
      references make them (the random part keeps forks from sharing a value file).
    - Retention and ``prune`` are not ``DeltaChannel``-aware (LangGraph's
      beta delta channels): do not prune threads whose graph uses one.
    """

    def __init__(
        self,
        store: Target,
        *,
        serde: SerializerProtocol | None = None,
        ttl: float | timedelta | None = None,
        max_checkpoints_per_thread: int | None = None,
    ) -> None:
        super().__init__(serde=serde)
        limit = max_checkpoints_per_thread
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidArgumentError(f"max_checkpoints_per_thread must be an int >= 1, not {limit!r}")
        if ttl is not None and (ttl.total_seconds() if isinstance(ttl, timedelta) else ttl) <= 0:
            raise InvalidArgumentError(f"ttl must be positive, not {ttl!r}")
        self._backend = Backend(store)
        self.store = self._backend.store
        self.ttl = ttl
        self.max_checkpoints_per_thread = limit
        self._files_cache: CheckpointFiles | None = None

    @property
    def _files(self) -> CheckpointFiles:
        # ``with_allowlist`` clones the saver and swaps its serde: the codec follows it.
        files = self._files_cache
        if files is None or files.codec.serde is not self.serde:
            files = CheckpointFiles(ValueCodec(self.serde), self.ttl, self.max_checkpoints_per_thread)
            self._files_cache = files
        return files

    # -- sync half ------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or its thread and namespace's newest; ``None`` if absent."""
        thread_id, checkpoint_ns, checkpoint_id = _address(config)
        found = self._backend.call(self._files.get, thread_id, checkpoint_ns, checkpoint_id)
        return None if found is None else _tuple(found, config if checkpoint_id else None)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace, if given), or of every thread."""
        if limit is not None and limit <= 0:
            return
        scope = _list_scope(config, before)
        for page in _pages(limit, filter):
            cache: dict[tuple[str, str], Any] = {}  # the namespaces' files, read once per pass
            candidates, complete = self._backend.call(self._files.candidates, *scope, page.window, cache)
            fresh = page.fresh(candidates)
            for start in range(0, len(fresh), page.batch):
                for found in self._backend.call(self._files.load, fresh[start : start + page.batch], cache):
                    if page.take(found, filter):
                        yield _tuple(found, None)  # type: ignore[arg-type]
                    if page.done:
                        return
            if complete:
                return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store ``checkpoint`` (values for ``new_versions``) as the child of ``config``'s; return its config."""
        args = _put_args(config, checkpoint, metadata, new_versions)
        self._backend.call(self._files.put, *args)
        return _stored_config(config, checkpoint)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes for the checkpoint ``config`` names."""
        self._backend.call(self._files.put_writes, *_writes_args(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, write and value of the thread (all namespaces)."""
        self._backend.call(self._files.delete_thread, str(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) made by these runs, in every thread."""
        self._backend.call(self._files.delete_for_runs, list(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and value of one thread into another (a missing source copies nothing)."""
        self._backend.call(self._files.copy_thread, str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"``: keep each namespace's newest checkpoint; ``"delete"``: delete the threads.

        Raises:
            ValueError: for another strategy.
        """
        self._backend.call(self._files.prune, [str(t) for t in thread_ids], strategy)

    def sweep(self) -> int:
        """Delete expired threads (and the store's expired entries and crash leftovers); return how many threads."""
        return self._backend.call(self._files.sweep)

    # -- async half -----------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """``get_tuple`` in one thread hop."""
        thread_id, checkpoint_ns, checkpoint_id = _address(config)
        found = await self._backend.acall(self._files.get, thread_id, checkpoint_ns, checkpoint_id)
        return None if found is None else _tuple(found, config if checkpoint_id else None)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """``list``: one hop for the candidates, then one per batch of checkpoints read."""
        if limit is not None and limit <= 0:
            return
        scope = _list_scope(config, before)
        for page in _pages(limit, filter):
            cache: dict[tuple[str, str], Any] = {}  # the namespaces' files, read once per pass
            candidates, complete = await self._backend.acall(self._files.candidates, *scope, page.window, cache)
            fresh = page.fresh(candidates)
            for start in range(0, len(fresh), page.batch):
                batch = fresh[start : start + page.batch]
                for found in await self._backend.acall(self._files.load, batch, cache):
                    if page.take(found, filter):
                        yield _tuple(found, None)  # type: ignore[arg-type]
                    if page.done:
                        return
            if complete:
                return

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """``put`` in one thread hop."""
        args = _put_args(config, checkpoint, metadata, new_versions)
        await self._backend.acall(self._files.put, *args)
        return _stored_config(config, checkpoint)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """``put_writes`` in one thread hop."""
        await self._backend.acall(self._files.put_writes, *_writes_args(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        """``delete_thread`` in one thread hop."""
        await self._backend.acall(self._files.delete_thread, str(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """``delete_for_runs`` in one thread hop."""
        await self._backend.acall(self._files.delete_for_runs, list(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """``copy_thread`` in one thread hop."""
        await self._backend.acall(self._files.copy_thread, str(source_thread_id), str(target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``prune`` in one thread hop."""
        await self._backend.acall(self._files.prune, [str(t) for t in thread_ids], strategy)

    async def asweep(self) -> int:
        """``sweep`` in one thread hop."""
        return await self._backend.acall(self._files.sweep)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The version after ``current``: a 32-digit counter and a random fraction, as SqliteSaver and InMemorySaver."""
        if current is None:
            counter = 0
        elif isinstance(current, int):
            counter = current
        else:
            counter = int(current.split(".")[0])
        return f"{counter + 1:032}.{random.random():016}"


def _address(config: RunnableConfig) -> tuple[str, str, str | None]:
    configurable = config["configurable"]
    return str(configurable["thread_id"]), configurable.get("checkpoint_ns", ""), get_checkpoint_id(config)


def _list_scope(
    config: RunnableConfig | None, before: RunnableConfig | None
) -> tuple[str | None, str | None, str | None, str | None]:
    before_id = get_checkpoint_id(before) if before else None
    if config is None:
        return None, None, None, before_id
    configurable = config["configurable"]
    return str(configurable["thread_id"]), configurable.get("checkpoint_ns"), get_checkpoint_id(config), before_id


def _put_args(
    config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, new_versions: ChannelVersions
) -> tuple[str, str, Checkpoint, CheckpointMetadata, str | None, ChannelVersions]:
    configurable = config["configurable"]
    return (
        str(configurable["thread_id"]),
        configurable.get("checkpoint_ns", ""),
        checkpoint,
        get_checkpoint_metadata(config, metadata),
        configurable.get("checkpoint_id"),
        new_versions,
    )


def _writes_args(
    config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
) -> tuple[str, str, str, list[tuple[str, Any]], str, str]:
    configurable = config["configurable"]
    return (
        str(configurable["thread_id"]),
        configurable.get("checkpoint_ns", ""),
        str(configurable["checkpoint_id"]),
        list(writes),
        task_id,
        task_path,
    )


def _stored_config(config: RunnableConfig, checkpoint: Checkpoint) -> RunnableConfig:
    configurable = config["configurable"]
    return {
        "configurable": {
            "thread_id": configurable["thread_id"],
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),
            "checkpoint_id": checkpoint["id"],
        }
    }


class _Page:
    """One pass of ``list``: a window of candidates, what was yielded so far, how many remain."""

    def __init__(self, window: int | None, remaining: int | None, seen: set[Candidate]) -> None:
        self.window = window
        self.remaining = remaining
        self.seen = seen

    @property
    def batch(self) -> int:
        """How many checkpoints to read in one call (sharing one cache of the files they use)."""
        return _BATCH if self.remaining is None else max(1, min(_BATCH, self.remaining))

    def fresh(self, candidates: list[Candidate]) -> list[Candidate]:
        """Candidates a previous (narrower) pass did not already consider."""
        new = [candidate for candidate in candidates if candidate not in self.seen]
        self.seen.update(new)
        return new

    def take(self, found: StoredCheckpoint | None, filter: dict[str, Any] | None) -> bool:
        if found is None or (filter and any(found.metadata.get(k) != v for k, v in filter.items())):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True

    @property
    def done(self) -> bool:
        return self.remaining == 0


def _pages(limit: int | None, filter: dict[str, Any] | None) -> Iterator[_Page]:
    """Passes of ``list``: with a limit (and no filter) each namespace's newest ``limit`` ids first,
    then four times as many if stale index lines left it short, ...; otherwise one pass over all."""
    seen: set[Candidate] = set()
    remaining = limit
    window = limit if limit is not None and not filter else None
    while True:
        page = _Page(window, remaining, seen)
        yield page
        remaining = page.remaining
        if window is None:
            return
        window *= 4


def _tuple(found: StoredCheckpoint, config: RunnableConfig | None) -> CheckpointTuple:
    """A ``CheckpointTuple``; ``config`` is the caller's own when it named the checkpoint (as the references)."""
    own: RunnableConfig = {
        "configurable": {
            "thread_id": found.thread_id,
            "checkpoint_ns": found.checkpoint_ns,
            "checkpoint_id": found.checkpoint_id,
        }
    }
    parent: RunnableConfig | None = None
    if found.parent_checkpoint_id:
        parent = {
            "configurable": {
                "thread_id": found.thread_id,
                "checkpoint_ns": found.checkpoint_ns,
                "checkpoint_id": found.parent_checkpoint_id,
            }
        }
    return CheckpointTuple(
        config=config if config is not None else own,
        checkpoint=found.checkpoint,  # type: ignore[arg-type]
        metadata=found.metadata,  # type: ignore[arg-type]
        parent_config=parent,
        pending_writes=found.pending_writes,
    )
