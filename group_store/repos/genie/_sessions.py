"""Genie's session store on files: sessions, their events, app/user/session state and summaries."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from group_store import InvalidArgumentError, KeyNotFoundError, Store, Table

from ._base import SessionKey, StoreArg, Twin, UserKey, table


@dataclass
class Session:
    """A session with its state and events (oldest first)."""

    id: str
    app_name: str
    user_id: str
    state: dict[str, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> SessionKey:
        return SessionKey(self.app_name, self.user_id, self.id)


class SessionStore(Twin[dict[str, Table]]):
    """Sessions with events, app/user/session state and summaries.

    Differences from the Go store: sessions are returned as ``Session``
    dataclasses; ``state`` holds the session's own state (read app and user
    state with ``list_app_states``/``list_user_states``); events are JSON
    values stored as given (no state-delta merging and no summarizer:
    ``create_session_summary`` takes the summary text).
    """

    def __init__(self, store: StoreArg, *, event_limit: int = 0) -> None:
        super().__init__(store)
        if isinstance(event_limit, bool) or not isinstance(event_limit, int) or event_limit < 0:
            raise InvalidArgumentError(f"event_limit must be an int >= 0 (0 = unlimited), not {event_limit!r}")
        self.event_limit = event_limit

    @staticmethod
    def _build(store: Store) -> dict[str, Table]:
        return {
            "sessions": table(
                store, "sessions", ("app_name", "user_id", "session_id"), ("app_name", "user_id", "session_id")
            ),
            "app": table(store, "app_states", ("app_name", "key", "value"), ("app_name", "key")),
            "user": table(
                store, "user_states", ("app_name", "user_id", "key", "value"), ("app_name", "user_id", "key")
            ),
            "session": table(
                store,
                "session_states",
                ("app_name", "user_id", "session_id", "key", "value"),
                ("app_name", "user_id", "session_id", "key"),
            ),
            "summaries": table(
                store,
                "session_summaries",
                ("app_name", "user_id", "session_id", "filter_key", "summary", "topics"),
                ("app_name", "user_id", "session_id", "filter_key"),
            ),
        }

    @staticmethod
    def _events(store: Store, key: SessionKey) -> Store:
        return store.narrow("session_events", key.app_name, key.user_id)

    async def create_session(self, key: SessionKey, state: Mapping[str, Any] | None = None) -> Session:
        """Create a session (a new uuid4 id when ``key.session_id`` is empty) with its initial state.

        Raises:
            DuplicateKeyError: if the session exists.
        """
        if not key.session_id:
            key = SessionKey(key.app_name, key.user_id, uuid.uuid4().hex)
        return await self._run(self._create, key, dict(state or {}))

    def _create(self, key: SessionKey, state: dict[str, Any], store: Store) -> Session:
        tables = self._tables(store)
        row = tables["sessions"].insert(vars(key))
        for name, value in state.items():
            tables["session"].upsert({**vars(key), "key": name, "value": value})
        return Session(key.session_id, key.app_name, key.user_id, state, [], row.created_at, row.updated_at)

    async def get_session(self, key: SessionKey, *, event_num: int = 0) -> Session | None:
        """The session with its state and events (only the newest ``event_num`` if > 0), or ``None``."""
        return await self._run(self._get, key, event_num)

    def _get(self, key: SessionKey, event_num: int, store: Store) -> Session | None:
        tables = self._tables(store)
        row = tables["sessions"].get(key.app_name, key.user_id, key.session_id)
        if row is None:
            return None
        state = {r["key"]: r["value"] for r in tables["session"].find(vars(key))}
        events = (
            self._events(store, key).get(key.session_id, []) if event_num <= 0 else self._last(store, key, event_num)
        )
        return Session(key.session_id, key.app_name, key.user_id, state, events, row.created_at, row.updated_at)

    def _last(self, store: Store, key: SessionKey, count: int) -> list[Any]:
        try:
            return self._events(store, key).read(key.session_id, last=count)
        except KeyNotFoundError:
            return []

    async def list_sessions(self, user_key: UserKey) -> list[Session]:
        """The user's sessions with state and events, most recently updated first."""
        return await self._run(self._list, user_key)

    def _list(self, user_key: UserKey, store: Store) -> list[Session]:
        rows = self._tables(store)["sessions"].find(vars(user_key), order_by="updated_at", descending=True)
        keys = [SessionKey(r["app_name"], r["user_id"], r["session_id"]) for r in rows]
        return [s for s in (self._get(k, 0, store) for k in keys) if s is not None]

    async def delete_session(self, key: SessionKey) -> None:
        """Delete the session with its events, state and summaries (no error if missing)."""
        await self._run(self._delete, key)

    def _delete(self, key: SessionKey, store: Store) -> None:
        tables = self._tables(store)
        with tables["sessions"].lock(key.app_name, key.user_id):
            self._events(store, key).delete(key.session_id)
            tables["session"].delete_where(vars(key))
            tables["summaries"].delete_where(vars(key))
            tables["sessions"].delete(key.app_name, key.user_id, key.session_id)

    async def append_event(self, session: Session, event: Any) -> None:
        """Persist ``event`` after the session's others (pruning the oldest beyond ``event_limit``)
        and add it to ``session.events``.

        Raises:
            KeyNotFoundError: if the session does not exist.
            SerializationError: if the event is not JSON data.
        """
        await self._run(self._append, session.key, event)
        session.events.append(event)
        if self.event_limit:
            del session.events[: -self.event_limit]

    def _append(self, key: SessionKey, event: Any, store: Store) -> None:
        sessions = self._tables(store)["sessions"]
        with sessions.lock(key.app_name, key.user_id):
            self._require_session(sessions, key)
            self._events(store, key).append(key.session_id, [event], max_items=self.event_limit or None)
            sessions.upsert(vars(key))  # moves updated_at

    # -- state ---------------------------------------------------------------

    async def update_app_state(self, app_name: str, state: Mapping[str, Any]) -> None:
        """Set the app's state keys (others are kept)."""
        await self._run(self._put_state, "app", {"app_name": app_name}, dict(state))

    async def list_app_states(self, app_name: str) -> dict[str, Any]:
        """The app's state."""
        return await self._run(self._list_state, "app", {"app_name": app_name})

    async def delete_app_state(self, app_name: str, key: str) -> None:
        """Remove one key of the app's state."""
        await self._run(self._delete_state, "app", {"app_name": app_name}, key)

    async def update_user_state(self, user_key: UserKey, state: Mapping[str, Any]) -> None:
        """Set the user's state keys (others are kept)."""
        await self._run(self._put_state, "user", vars(user_key), dict(state))

    async def list_user_states(self, user_key: UserKey) -> dict[str, Any]:
        """The user's state."""
        return await self._run(self._list_state, "user", vars(user_key))

    async def delete_user_state(self, user_key: UserKey, key: str) -> None:
        """Remove one key of the user's state."""
        await self._run(self._delete_state, "user", vars(user_key), key)

    async def update_session_state(self, key: SessionKey, state: Mapping[str, Any]) -> None:
        """Set the session's state keys (others are kept).

        Raises:
            KeyNotFoundError: if the session does not exist.
        """
        await self._run(self._put_session_state, key, dict(state))

    def _put_session_state(self, key: SessionKey, state: dict[str, Any], store: Store) -> None:
        sessions = self._tables(store)["sessions"]
        # Under the session's lock, as delete_session: state never outlives a deleted session.
        with sessions.lock(key.app_name, key.user_id):
            self._require_session(sessions, key)
            self._put_state("session", vars(key), state, store)

    @staticmethod
    def _require_session(sessions: Table, key: SessionKey) -> None:
        values = (key.app_name, key.user_id, key.session_id)
        if sessions.get(*values) is None:
            raise sessions._core.not_found(values)

    def _put_state(self, level: str, owner: dict[str, str], state: dict[str, Any], store: Store) -> None:
        table = self._tables(store)[level]
        for name, value in state.items():
            table.upsert({**owner, "key": name, "value": value})

    def _list_state(self, level: str, owner: dict[str, str], store: Store) -> dict[str, Any]:
        return {r["key"]: r["value"] for r in self._tables(store)[level].find(owner)}

    def _delete_state(self, level: str, owner: dict[str, str], key: str, store: Store) -> None:
        self._tables(store)[level].delete(*owner.values(), key)

    # -- summaries -----------------------------------------------------------

    async def create_session_summary(
        self, session: Session, filter_key: str, summary: str, topics: Sequence[str] = ()
    ) -> None:
        """Store the summary of the session's events under ``filter_key`` (``""``: the whole session)."""
        record = {**vars(session.key), "filter_key": filter_key, "summary": summary, "topics": list(topics)}
        await self._run(lambda store: self._tables(store)["summaries"].upsert(record))

    async def get_session_summary_text(self, session: Session, filter_key: str = "") -> tuple[str, bool]:
        """``(summary, True)``, or ``("", False)`` when there is none for ``filter_key``."""
        key = session.key
        found = await self._run(
            lambda store: self._tables(store)["summaries"].get(key.app_name, key.user_id, key.session_id, filter_key)
        )
        return ("", False) if found is None else (found["summary"], True)
