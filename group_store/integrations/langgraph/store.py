"""``GroupStoreStore``: LangGraph's long-term memory store (``BaseStore``) as directories of JSON items.

Each namespace is a directory (``("users", "alice")`` is ``<root>/users/alice/``)
and each item one canonical JSON document in it::

    <root>/users/alice/preferences.json
    {
      "value": {"theme": "dark"},
      "created_at": "2026-11-22T10:00:00.000000+00:00",
      "updated_at": "2026-11-22T10:05:00.000000+00:00",
      "ttl_minutes": 60
    }

An item's TTL is group_store's own (a sidecar ``preferences.meta.json``): it is
invisible once expired, before any sweep, and ``sweep_ttl()`` (``Store.sweep``)
deletes it. Writes hold the namespace directory's lock; reads take none.

Semantics where LangGraph's references differ (InMemoryStore, SqliteStore,
PostgresStore); SqliteStore, the one with TTL, is followed unless said:

- ``batch`` runs its reads first and its puts after (both references do),
  and of several puts to one item the last one wins.
- A value is stored as ``orjson`` writes it (SqliteStore), so it reads back as
  SqliteStore gives it back: datetimes become ISO strings, NaN ``None``.
- ``created_at`` is kept when an item is updated, as PostgresStore does
  (``ON CONFLICT ... SET value, updated_at``); SqliteStore and InMemoryStore
  reset it. Times are aware UTC datetimes with microseconds (SqliteStore's
  are naive, to the second).
- ``search`` orders by ``updated_at``, newest first, then by namespace and
  key (SqliteStore leaves ties in no order). Filters: see ``_filters``.
  ``query`` without an index is ignored, as in SqliteStore.
- ``list_namespaces`` lists namespaces holding at least one live item, so a
  namespace disappears with its last item; ordered by their dot-joined text,
  ``max_depth`` truncating, ``*`` matching one label (SqliteStore).
- Expired items are never returned (as ``omit_expired=True``; SqliteStore
  returns them until its sweep). A TTL is refreshed by ``get`` and ``search``
  when the op asks (``refresh_ttl``, from ``TTLConfig.refresh_on_read``,
  default ``True`` as ``TTLConfig`` documents it; SqliteStore reads a missing
  ``refresh_on_read`` as ``False``). An update without a TTL clears the old one.
- No vector search: ``index=`` raises ``NotImplementedError``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)

from group_store import Store

from . import _filters
from ._backend import Backend

if TYPE_CHECKING:
    from ._backend import Target

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class GroupStoreStore(BaseStore):
    """A LangGraph ``BaseStore`` on a group_store ``Store``, ``DataStore`` or directory.

    Args:
        store: Where the items live (the store owns everything under it).
        ttl: LangGraph's ``TTLConfig``: ``default_ttl`` (minutes) for puts that
            name none, ``refresh_on_read``, ``sweep_interval_minutes`` for
            ``start_ttl_sweeper``.
        index: Not supported (no vector search); anything but ``None`` raises.
        clock: Time for ``created_at``/``updated_at``; give the one the
            ``Store`` was made with (e.g. a ``FakeClock``), since the store's
            clock is not public.

    Raises:
        NotImplementedError: if ``index`` asks for vector search.
    """

    supports_ttl = True

    def __init__(
        self,
        store: Target,
        *,
        ttl: TTLConfig | None = None,
        index: IndexConfig | None = None,
        clock: Clock = time.time,
    ) -> None:
        if index is not None:
            raise NotImplementedError(
                "GroupStoreStore has no vector search: create it without index= (filters, namespaces and "
                "TTL work without one)"
            )
        self._backend = Backend(store)
        self.store = self._backend.store
        self.ttl_config = ttl
        self._clock = clock
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()

    # -- BaseStore ---------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` (reads first, then puts), each result in the op's place."""
        return self._backend.call(self._batch, list(ops))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """``batch`` in one thread hop."""
        return await self._backend.acall(self._batch, list(ops))

    # -- TTL ---------------------------------------------------------------

    def sweep_ttl(self) -> int:
        """Delete expired items (and crash leftovers); return how many items."""
        return self._backend.call(Store.sweep)

    async def asweep_ttl(self) -> int:
        """``sweep_ttl`` in one thread hop."""
        return await self._backend.acall(Store.sweep)

    def start_ttl_sweeper(self, sweep_interval_minutes: int | None = None) -> concurrent.futures.Future[None]:
        """Sweep every ``sweep_interval_minutes`` (else the config's, else 5) in a daemon thread.

        Returns a future that completes when ``stop_ttl_sweeper`` stops it (cancel it to stop too).
        """
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if not self.ttl_config or (self._sweeper is not None and self._sweeper.is_alive()):
            future.set_result(None)
            return future
        interval = float(sweep_interval_minutes or self.ttl_config.get("sweep_interval_minutes") or 5)
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval * 60):
                try:
                    swept = self.sweep_ttl()
                    if swept:
                        logger.info("GroupStoreStore swept %d expired items", swept)
                except Exception:  # a failed sweep must not end the sweeper; the next one retries
                    logger.exception("GroupStoreStore TTL sweep failed")
            future.set_result(None)

        self._sweeper = threading.Thread(target=loop, name="group_store-langgraph-ttl", daemon=True)
        self._sweeper.start()
        future.add_done_callback(lambda f: self._stop.set() if f.cancelled() else None)
        return future

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper; ``True`` once it has stopped (or was not running)."""
        if self._sweeper is None or not self._sweeper.is_alive():
            return True
        self._stop.set()
        self._sweeper.join(timeout)
        stopped = not self._sweeper.is_alive()
        if stopped:
            self._sweeper = None
        return stopped

    # -- the work, on a blocking Store ---------------------------------------

    def _batch(self, store: Store, ops: list[Op]) -> list[Result]:
        for op in ops:
            validate_op_namespace(op)
        results: list[Result] = [None] * len(ops)
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for position, op in enumerate(ops):
            if isinstance(op, GetOp):
                results[position] = self._get(store, op)
            elif isinstance(op, SearchOp):
                results[position] = self._search(store, op)
            elif isinstance(op, ListNamespacesOp):
                results[position] = self._list_namespaces(store, op)
            elif isinstance(op, PutOp):
                puts.pop((op.namespace, op.key), None)
                puts[(op.namespace, op.key)] = op  # the last put of an item wins
            else:
                raise ValueError(f"unknown store operation {op!r}")
        for op in puts.values():
            self._put(store, op)
        return results

    def _refresh(self, op: GetOp | SearchOp) -> bool:
        config = self.ttl_config or {}
        return bool(op.refresh_ttl) and config.get("refresh_on_read", True)

    def _get(self, store: Store, op: GetOp) -> Item | None:
        view = _namespace(store, op.namespace)
        document = view.get(op.key)
        if not _is_item(document):
            return None
        if self._refresh(op):
            self._touch(view, op.key)
        return _item(op.namespace, op.key, document)

    def _touch(self, view: Store, key: str) -> None:
        """Restart an item's TTL (it keeps its content); a no-op for an item without one."""
        with view.lock():
            document = view.get(key)
            if _is_item(document) and document.get("ttl_minutes") is not None:
                view.save(key, document, ttl=float(document["ttl_minutes"]) * 60)

    def _put(self, store: Store, op: PutOp) -> None:
        view = _namespace(store, op.namespace)
        if op.value is None:
            view.delete(op.key)
            return
        value = orjson.loads(orjson.dumps(dict(op.value)))  # what SqliteStore stores and gives back
        now = _timestamp(self._clock())
        with view.lock():
            previous = view.get(op.key)
            created = previous["created_at"] if _is_item(previous) else now
            document: dict[str, Any] = {"value": value, "created_at": created, "updated_at": now}
            if op.ttl is None:
                view.save(op.key, document)
            else:
                document["ttl_minutes"] = op.ttl
                view.save(op.key, document, ttl=float(op.ttl) * 60)

    def _search(self, store: Store, op: SearchOp) -> list[SearchItem]:
        _filters.check(op.filter)
        found: list[tuple[tuple[str, ...], str, dict[str, Any]]] = []
        for namespace, view in _walk(_namespace(store, op.namespace_prefix), op.namespace_prefix):
            for key in view.keys():
                document = view.get(key)
                if _is_item(document) and _filters.matches(document["value"], op.filter):
                    found.append((namespace, key, document))
        found.sort(key=lambda entry: (".".join(entry[0]), entry[1]))
        found.sort(key=lambda entry: entry[2]["updated_at"], reverse=True)
        page = found[op.offset : op.offset + op.limit] if op.limit >= 0 else found[op.offset :]
        if self._refresh(op):
            for namespace, key, _ in page:
                self._touch(_namespace(store, namespace), key)
        return [
            SearchItem(namespace, key, document["value"], _when(document["created_at"]), _when(document["updated_at"]))
            for namespace, key, document in page
        ]

    def _list_namespaces(self, store: Store, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = [c for c in op.match_conditions or () if c.path]
        start = _fixed_prefix(conditions)
        namespaces = set()
        for namespace, view in _walk(_namespace(store, start), start):
            if view.keys() and all(_match(namespace, c) for c in conditions):
                namespaces.add(namespace if op.max_depth is None else namespace[: op.max_depth])
        ordered = sorted(namespaces, key=lambda namespace: ".".join(namespace))
        return ordered[op.offset : op.offset + op.limit] if op.limit >= 0 else ordered[op.offset :]


def _namespace(store: Store, namespace: Sequence[str]) -> Store:
    return store.narrow(*namespace) if namespace else store


def _walk(view: Store, namespace: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Store]]:
    """Every directory under ``view`` (included) with its namespace, depth first."""
    yield namespace, view
    for child in view.children():
        yield from _walk(view.narrow(child), (*namespace, child))


def _fixed_prefix(conditions: Sequence[MatchCondition]) -> tuple[str, ...]:
    """The labels every matching namespace starts with (to walk only that subtree)."""
    for condition in conditions:
        if condition.match_type == "prefix":
            fixed = []
            for label in condition.path:
                if label == "*":
                    break
                fixed.append(label)
            return tuple(fixed)
    return ()


def _match(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    """Label-wise prefix or suffix match, ``*`` standing for any one label."""
    if condition.match_type not in ("prefix", "suffix"):
        logger.warning("Unknown match_type in list_namespaces: %s", condition.match_type)
        return True  # SqliteStore skips such a condition
    path = tuple(condition.path)
    if len(path) > len(namespace):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path) :]
    return all(want == "*" or want == got for want, got in zip(path, part, strict=True))


def _is_item(document: Any) -> bool:
    return isinstance(document, dict) and "value" in document and "updated_at" in document


def _item(namespace: tuple[str, ...], key: str, document: dict[str, Any]) -> Item:
    return Item(
        value=document["value"],
        key=key,
        namespace=namespace,
        created_at=_when(document["created_at"]),
        updated_at=_when(document["updated_at"]),
    )


def _timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds")


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)
