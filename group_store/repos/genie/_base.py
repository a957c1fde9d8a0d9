"""What Genie's four stores share: the key types and a set of tables on one DataStore."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from group_store import DataStore, Store, Table

T = TypeVar("T")
Built = TypeVar("Built")
if TYPE_CHECKING:
    import os

StoreArg: TypeAlias = "DataStore | str | os.PathLike[str]"


@dataclass(frozen=True)
class UserKey:
    app_name: str
    user_id: str


@dataclass(frozen=True)
class SessionKey:
    app_name: str
    user_id: str
    session_id: str


@dataclass(frozen=True)
class MemoryKey:
    app_name: str
    user_id: str
    memory_id: str


class Twin(ABC, Generic[Built]):
    """Tables on one DataStore, worked on in its writer thread."""

    def __init__(self, store: StoreArg) -> None:
        self._owns_store = not isinstance(store, DataStore)
        self.data_store = store if isinstance(store, DataStore) else DataStore(store)
        self._built: Built | None = None

    def _tables(self, store: Store) -> Built:
        # Built once (on the first call, in the writer thread), so the tables' caches last.
        if self._built is None:
            self._built = self._build(store)
        return self._built

    @staticmethod
    @abstractmethod
    def _build(store: Store) -> Built:
        """This twin's tables on ``store``."""

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await self.data_store.run_sync(partial(function, *args))

    async def close(self) -> None:
        """Close the DataStore if this store opened it from a path (the Go stores' Close)."""
        if self._owns_store:
            await self.data_store.aclose()


def table(
    store: Store, name: str, fields: Sequence[str], key: Sequence[str], partition_by: Sequence[str] | None = None
) -> Table:
    """A ``Table`` from positional schema arguments, to keep the twins' table definitions short."""
    return Table(store, name, fields=fields, key=key, partition_by=partition_by)
