"""What the agent-session adapters share: a store argument, and one thread hop per operation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import anyio.to_thread

from group_store import DataStore, Store

T = TypeVar("T")
if TYPE_CHECKING:
    import os

    # What an adapter accepts as its store: a store, or the path of a local one.
    StoreArg: TypeAlias = Store | DataStore | str | os.PathLike[str]


class BlockingRunner:
    """Runs a blocking ``function(store)`` for an async method, one thread hop per call.

    A ``DataStore`` runs it in its writer thread (``run_sync``): in order with the
    writes queued there, so a caller mixing its own saves with a session sees
    them in issue order. A ``Store`` (or a path, opened as a ``Store``) runs it in
    a worker thread. Either way the function runs to the end once started:
    cancelling the caller does not interrupt a write half way (anyio waits for
    the thread, then delivers the cancellation), so a cancelled mutation either
    happened or did not, as the SDKs' own stores promise.
    """

    def __init__(self, store: StoreArg) -> None:
        self.data_store = store if isinstance(store, DataStore) else None
        self.store = None if isinstance(store, DataStore) else store if isinstance(store, Store) else Store(store)

    async def run(self, function: Callable[[Store], T]) -> T:
        if self.data_store is not None:
            return await self.data_store.run_sync(function)
        assert self.store is not None
        return await anyio.to_thread.run_sync(function, self.store)
