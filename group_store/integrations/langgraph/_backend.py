"""How the adapters reach their files: a blocking ``Store`` for the sync half, one thread hop for the async half."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import anyio
import anyio.to_thread

from group_store import DataStore, Store

T = TypeVar("T")
if TYPE_CHECKING:
    import os

    # What an adapter accepts as its store: a store, or the path of a local one.
    Target: TypeAlias = Store | DataStore | str | os.PathLike[str]


class Backend:
    """The store an adapter was given, as a sync call and an async call of the same function.

    Every operation is one plain function ``fn(store, *args)`` on a blocking
    ``Store`` (sync core, async shell):

    - on a ``Store`` (or a directory path): the sync half calls it in the
      caller's thread; the async half makes one ``anyio.to_thread`` hop;
    - on a ``DataStore``: the async half runs it with ``DataStore.run_sync``
      (in the store's writer thread, in order with the writes queued before
      it); the sync half calls it in the caller's thread on a blocking
      ``Store`` over the same files, clock and durability (saves that other
      code queued on the DataStore and has not awaited are not waited for).

    Cancellation: cancelling an async call stops only the waiting; the
    operation runs to its end in its thread (it is never left half done by
    the cancellation itself).
    """

    def __init__(self, target: Target) -> None:
        self._data_store: DataStore | None = None
        if isinstance(target, DataStore):
            self._data_store = target
            self.store = _blocking_twin(target)
        elif isinstance(target, Store):
            self.store = target
        else:
            self.store = Store(target)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(store, *args)`` in this thread."""
        return function(self.store, *args)

    async def acall(self, function: Callable[..., T], *args: Any) -> T:
        """``function(store, *args)`` in a worker thread (the DataStore's writer for a DataStore)."""
        if self._data_store is not None:
            return await self._data_store.run_sync(lambda store: function(store, *args))
        return await anyio.to_thread.run_sync(lambda: function(self.store, *args))


def _blocking_twin(data_store: DataStore) -> Store:
    """A blocking ``Store`` on the DataStore's files, engine and clock.

    ``DataStore`` has no public accessor for it, but ``run_sync`` hands one to
    its function; it is taken once, from a helper thread with its own event
    loop, so this works whether or not the caller is inside one.
    """
    found: list[Store] = []
    errors: list[BaseException] = []

    def take() -> None:
        try:
            found.append(anyio.run(data_store.run_sync, lambda store: store))
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    helper = threading.Thread(target=take, name="group_store-langgraph-twin")
    helper.start()
    helper.join()
    if errors:
        raise errors[0]
    return found[0]
