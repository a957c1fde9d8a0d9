"""OpenAI Agents SDK sessions kept in a group_store: ``GroupStoreSession``.

``GroupStoreSession(session_id, store)`` implements the SDK's ``Session``
protocol structurally (``session_id``, ``session_settings``, ``get_items``,
``add_items``, ``pop_item``, ``clear_session``), so ``Runner.run(agent, input,
session=...)`` takes it where it takes ``SQLiteSession``. This module does not
import the SDK (``openai-agents`` is needed only to pass a dict as
``session_settings``). ``session_settings`` defaults to ``None``, the protocol's
default, where ``SQLiteSession`` makes a ``SessionSettings()``: both mean no
default limit, and the default costs no SDK import. Layout, under the store given::

    agent_sessions/<session_id>/items.jsonl   the session's items, oldest first, one JSON object a line

Semantics, each where ``SQLiteSession`` (the SDK's reference) defines it:

- ``get_items(limit)``: the newest ``limit`` items, oldest first; ``limit=None``
  falls back to ``session_settings.limit``, then to all items; ``limit=0`` gives
  ``[]``; a negative limit gives every item (SQLite's ``LIMIT -1``; the SDK's
  Redis session returns ``[]`` there, we follow SQLite). A missing session is empty.
- ``add_items([])`` writes nothing; ``add_items`` appends every item in one write
  (all or none of them are visible, also after a crash).
- ``pop_item()`` removes and returns the newest item, ``None`` when empty. It
  records the removal by appending the line ``"pop"`` (the JSON string) under the
  session directory's lock, the lock every ``add_items`` takes too: two threads or
  processes popping never get the same item, and a pop is one atomic append, so a
  crash leaves the item either present or popped. Readers cancel each ``"pop"``
  line against the newest item before it that is still live. This is why items
  must be JSON objects (the protocol's ``TResponseInputItem`` always is): any
  other value is refused with ``TypeError``, where ``SQLiteSession`` stores any
  JSON value.
- ``clear_session()`` deletes the log (the session no longer shows in
  ``list_sessions``, as clearing deletes ``SQLiteSession``'s session row).
- ``max_items=N`` keeps the newest N log lines (the core's ``append(max_items=)``):
  at most N items, fewer while ``"pop"`` lines are among the newest N. Pruning
  drops only the oldest items: a ``"pop"`` whose item was pruned cancels nothing.
- ``close()`` marks the session closed; later calls raise ``RuntimeError`` as
  ``SQLiteSession``'s do. Nothing else is held open.

Performance: ``add_items`` is one append. ``get_items(limit)`` and ``pop_item``
ask the store for the newest lines only (``read(last=)``), so they cost what
the store's tail read costs; today that read loads and splits the whole file
(about 4 ms for 10,000 items of 200 B here), which the store's engine can cut
to a read from the end without any change here.

Items are stored as group_store stores JSON: values ``json.dumps`` accepts but JSON
cannot hold faithfully (NaN, integers beyond 64 bits) raise ``SerializationError``
(a ``TypeError``) and nothing is written. Durability is the store's: an
acknowledged ``add_items`` survives SIGKILL; pass a ``Store(..., durable=True)``
to survive power loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from group_store import KeyNotFoundError, Store

from ._blocking import BlockingRunner

if TYPE_CHECKING:
    from ._blocking import StoreArg

__all__ = ["DEFAULT_SESSIONS_DIR", "POP_LINE", "GroupStoreSession"]

DEFAULT_SESSIONS_DIR = "agent_sessions"  # SQLiteSession's default table name
POP_LINE = "pop"  # the log line a pop_item() appends
_ITEMS = "items"
_POP_WINDOW = 16  # lines pop_item() reads first (more only if they are all cancelled)


class GroupStoreSession:
    """A conversation session whose items are one JSON Lines log in a group_store.

    Args:
        session_id: the session's id (any non-empty string; it names the session's directory).
        store: a ``Store``, a ``DataStore`` (work runs in its writer thread, in order
            with its queued writes) or a directory path (opened as a ``Store``).
        session_settings: the SDK's ``SessionSettings`` (or a dict of its fields);
            its ``limit`` is the default for ``get_items``.
        max_items: keep only the newest ``max_items`` log lines (``None``: keep all).
        sessions_dir: the sub-store holding every session's directory.

    Raises:
        ValueError: for an empty session id or a ``max_items`` that is not a positive int.
    """

    def __init__(
        self,
        session_id: str,
        store: StoreArg,
        *,
        session_settings: Any = None,
        max_items: int | None = None,
        sessions_dir: str = DEFAULT_SESSIONS_DIR,
    ) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise ValueError(f"session_id must be a non-empty string, not {session_id!r}")
        if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1):
            raise ValueError(f"max_items must be a positive int or None, not {max_items!r}")
        self.session_id = session_id
        self.session_settings = _settings(session_settings)
        self.max_items = max_items
        self.sessions_dir = sessions_dir
        self._runner = BlockingRunner(store)
        self._closed = False

    def __repr__(self) -> str:
        return f"GroupStoreSession({self.session_id!r}, max_items={self.max_items!r})"

    @classmethod
    async def list_sessions(cls, store: StoreArg, *, sessions_dir: str = DEFAULT_SESSIONS_DIR) -> list[str]:
        """The ids of the sessions holding a log in ``store`` (cleared ones excluded), sorted."""

        def list_ids(root: Store) -> list[str]:
            sessions = root.narrow(sessions_dir)
            return [name for name in sessions.children() if sessions.narrow(name).exists(_ITEMS)]

        return await BlockingRunner(store).run(list_ids)

    def _session(self, root: Store) -> Store:
        return root.narrow(self.sessions_dir, self.session_id)

    def _check_not_closed(self) -> None:
        if self._closed:
            raise RuntimeError(f"GroupStoreSession {self.session_id!r} is closed")

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The newest ``limit`` items (default ``session_settings.limit``, else all), oldest first."""
        self._check_not_closed()
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        if limit == 0:
            return []
        want = None if limit is None or limit < 0 else limit
        items = await self._runner.run(lambda root: _newest(self._session(root), want, want))
        items.reverse()
        return items

    async def add_items(self, items: list[Any]) -> None:
        """Append ``items`` after the session's others, in one write.

        Raises:
            TypeError: if an item is not a JSON object (``dict``); nothing is written.
            SerializationError: if an item is not JSON data; nothing is written.
        """
        self._check_not_closed()
        if not items:
            return
        for item in items:
            if not isinstance(item, dict):
                raise TypeError(f"session items are JSON objects (dicts), not {type(item).__name__}: {item!r}")
        batch = list(items)
        await self._runner.run(lambda root: self._session(root).append(_ITEMS, batch, max_items=self.max_items))

    async def pop_item(self) -> Any | None:
        """Remove and return the newest item, or ``None`` if the session is empty.

        Exact across threads and processes: the read and the ``"pop"`` line happen
        under the session directory's lock.
        """
        self._check_not_closed()
        return await self._runner.run(lambda root: _pop(self._session(root)))

    async def clear_session(self) -> None:
        """Delete every item of the session."""
        self._check_not_closed()
        await self._runner.run(lambda root: _clear(self._session(root)))

    def close(self) -> None:
        """Refuse further calls (nothing is held open: every call opens what it needs)."""
        self._closed = True


def _settings(value: Any) -> Any:
    # A dict is coerced as SQLiteSession does, which needs the SDK: imported here, never at module import.
    if isinstance(value, dict):
        from agents.memory.session_settings import coerce_session_settings

        return coerce_session_settings(value)
    return value


def _read(session: Store, last: int | None) -> list[Any]:
    try:
        return session.read(_ITEMS, last=last)
    except KeyNotFoundError:
        return []


def _live_newest_first(lines: Sequence[Any], want: int | None) -> list[Any]:
    """The live items among ``lines`` (the newest lines of the log), newest first, at most ``want``.

    Walking back from the newest line, each ``"pop"`` cancels the newest earlier
    item it has not already cancelled: the item it popped. On the newest lines
    alone this still gives exactly the live items among them, since a ``"pop"``
    that finds no item left to cancel there had popped one older than them.
    """
    live: list[Any] = []
    pending_pops = 0
    for line in reversed(lines):
        if line == POP_LINE:
            pending_pops += 1
        elif pending_pops:
            pending_pops -= 1
        else:
            live.append(line)
            if want is not None and len(live) >= want:
                break
    return live


def _newest(session: Store, want: int | None, window: int | None) -> list[Any]:
    """The newest ``want`` live items (all if ``None``), newest first.

    Reads the newest ``window`` lines first, and 64 times as many while ``"pop"``
    lines among them leave fewer than ``want`` items (few steps: each read costs
    the whole file today, see the module's performance note).
    """
    while True:
        lines = _read(session, window)
        live = _live_newest_first(lines, want)
        if want is None or window is None or len(live) >= want or len(lines) < window:
            return live
        window *= 64


def _clear(session: Store) -> None:
    # Checked first so that clearing a session never written creates no directory (a lock
    # would); an add racing with it is simply ordered after the clear.
    if session.exists(_ITEMS):
        session.delete(_ITEMS)


def _pop(session: Store) -> Any | None:
    if not session.exists(_ITEMS):
        return None  # as _clear: no directory for a session never written
    with session.lock():
        live = _newest(session, 1, _POP_WINDOW)
        if not live:
            return None
        session.append(_ITEMS, [POP_LINE])
        return live[0]
