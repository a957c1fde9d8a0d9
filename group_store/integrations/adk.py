"""Google ADK session and memory services kept in a group_store.

``GroupStoreSessionService(store)`` is a ``BaseSessionService`` and
``GroupStoreMemoryService(store)`` a ``BaseMemoryService`` (extra ``adk``); each
takes a ``Store``, a ``DataStore`` or a directory path, and both can share one.
Layout, one directory per app, user and session::

    <app>/state.json                                    app state (the "app:" keys, without the prefix)
    <app>/users/<user>/state.json                       user state (the "user:" keys, without the prefix)
    <app>/users/<user>/sessions/<session>/session.json  the session: its own state, times, revision
    <app>/users/<user>/sessions/<session>/events.jsonl  its events, oldest first, one JSON object a line
    <app>/users/<user>/memory/order.json                memory: the user's session ids, in the order first added
    <app>/users/<user>/memory/sessions/<session>.json   memory: that session's events with content
    <app>/users/<user>/memory/deleted.json              memory: ids deleted (never re-added)

Semantics follow ``InMemorySessionService`` and, where it defines persistence
and staleness, the SDK's SQLite and database services:

- ``create_session``: the id is stripped, a new uuid when empty; an existing id
  raises ``AlreadyExistsError`` and changes nothing; ``app:``/``user:`` keys go
  to the app's and user's state, ``temp:`` keys are dropped, the rest is the
  session's state. The returned session (and every ``get_session``) has app and
  user state merged in under their prefixes.
- ``get_session`` with ``GetSessionConfig``: ``num_recent_events`` (0: none)
  reads only the newest lines; ``after_timestamp`` keeps the events after the
  newest one older than it (``InMemorySessionService``'s rule; the SQLite service
  filters ``timestamp >= t`` and re-sorts by timestamp, the same for the
  non-decreasing timestamps the Runner writes). Events stay in append order.
- ``list_sessions``: without events, with merged state, ordered by
  ``(last_update_time, user_id, id)``, for one user or, with ``user_id=None``, all.
- ``delete_session``: no error if missing.
- ``append_event``: partial events are returned untouched; ``temp:`` state is
  applied to the in-memory session only; state deltas are saved per scope; the
  event is appended as one line. Staleness is detected as the database service
  does: every session this service returns carries the stored revision (a
  counter in ``session.json``), and appending from a session whose revision is
  no longer the stored one raises ``StaleSessionError`` (the SQLite service
  compares ``last_update_time`` instead, which also catches every such case
  when timestamps increase, and misses it when they do not). A session without
  a revision (built by hand or by another service) is stale when storage was
  updated after its ``last_update_time`` and its last event is not storage's
  last event. Re-appending the stored last event (a retry) is a no-op, as in
  ``InMemorySessionService``.
- State is stored as JSON via pydantic's ``to_jsonable_python`` (datetimes
  become ISO strings, as in the SQLite service); a value it cannot convert
  raises, where the SQLite service stores its ``repr``.

Concurrency and crashes: ``create_session``, ``append_event`` and
``delete_session`` hold the session directory's lock, and also the app's and
the user's (taken first: parent before child) when they change those states,
so threads and processes sharing the directory lose no event or state key. An
acknowledged ``append_event`` survives SIGKILL (``Store(..., durable=True)`` for
power loss). There are no multi-file transactions: a crash inside an append can
leave its event written without its state deltas (the event line is written
first, ``session.json`` last).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.memory.base_memory_service import BaseMemoryService, SearchMemoryResponse
from google.adk.memory.memory_entry import MemoryEntry
from google.adk.platform import time as platform_time
from google.adk.platform import uuid as platform_uuid
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig, ListSessionsResponse
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from pydantic_core import to_jsonable_python
from typing_extensions import override

from group_store import KeyNotFoundError, Store

from ._blocking import BlockingRunner

if TYPE_CHECKING:
    from ._blocking import StoreArg

__all__ = ["URI_SCHEME", "GroupStoreMemoryService", "GroupStoreSessionService", "register_uri_scheme", "store_from_uri"]

URI_SCHEME = "groupstore"
_STALE = (
    "The session has been updated in storage since it was loaded (its revision is not the stored one). "
    "Please reload the session before appending more events."
)
_UNKNOWN_SESSION_ID = "__unknown_session_id__"  # InMemoryMemoryService's bucket for events without a session
_MAX_SEARCH_RESULTS = 10  # as InMemoryMemoryService


def _app(root: Store, app_name: str) -> Store:
    return root.narrow(app_name)


def _user(root: Store, app_name: str, user_id: str) -> Store:
    return root.narrow(app_name, "users", user_id)


def _session_dir(root: Store, app_name: str, user_id: str, session_id: str) -> Store:
    return root.narrow(app_name, "users", user_id, "sessions", session_id)


def _split_state(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``state`` split into app, user and session deltas (prefixes removed, ``temp:`` dropped), as JSON data."""
    deltas: dict[str, dict[str, Any]] = {"app": {}, "user": {}, "session": {}}
    for key, value in state.items():
        if key.startswith(State.APP_PREFIX):
            deltas["app"][key.removeprefix(State.APP_PREFIX)] = value
        elif key.startswith(State.USER_PREFIX):
            deltas["user"][key.removeprefix(State.USER_PREFIX)] = value
        elif not key.startswith(State.TEMP_PREFIX):
            deltas["session"][key] = value
    converted: dict[str, dict[str, Any]] = to_jsonable_python(deltas)
    return converted


def _merge(app_state: Mapping[str, Any], user_state: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(own)
    merged.update({State.APP_PREFIX + key: value for key, value in app_state.items()})
    merged.update({State.USER_PREFIX + key: value for key, value in user_state.items()})
    return merged


def _merge_into(store: Store, key: str, delta: Mapping[str, Any]) -> None:
    if delta:
        store.update(key, lambda state: {**state, **delta}, default={})


@contextmanager
def _locks(*stores: Store | None) -> Iterator[None]:
    """Hold the locks of ``stores`` (parents first; ``None`` skipped)."""
    with ExitStack() as stack:
        for store in stores:
            if store is not None:
                stack.enter_context(store.lock())
        yield


def _event_data(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)  # as the SQLite service stores it
    return data


class GroupStoreSessionService(BaseSessionService):
    """ADK sessions, their events and app/user/session state, one directory per app, user and session.

    Args:
        store: a ``Store``, a ``DataStore`` (work runs in its writer thread) or a directory path.
    """

    def __init__(self, store: StoreArg) -> None:
        self._runner = BlockingRunner(store)

    @override
    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        session_id = (session_id.strip() if session_id else None) or platform_uuid.new_uuid()
        deltas = _split_state(state or {})
        now = platform_time.get_time()  # read here: the time provider is a context variable

        def create(root: Store) -> Session:
            app, user = _app(root, app_name), _user(root, app_name, user_id)
            directory = _session_dir(root, app_name, user_id, session_id)
            with _locks(app if deltas["app"] else None, user if deltas["user"] else None, directory):
                if directory.exists("session"):
                    raise AlreadyExistsError(f"Session with id {session_id} already exists.")
                _merge_into(app, "state", deltas["app"])
                _merge_into(user, "state", deltas["user"])
                directory.delete("events")  # a crash inside an earlier delete_session may have left them
                record = {"id": session_id, "state": deltas["session"], "create_time": now, "last_update_time": now}
                directory.save("session", {**record, "revision": 0, "last_event_id": None})
                return self._session(root, app_name, user_id, record | {"revision": 0}, [])

        return await self._runner.run(create)

    @staticmethod
    def _session(root: Store, app_name: str, user_id: str, record: Mapping[str, Any], events: list[Event]) -> Session:
        app_state = _app(root, app_name).get("state", {})
        user_state = _user(root, app_name, user_id).get("state", {})
        session = Session(
            id=record["id"],
            app_name=app_name,
            user_id=user_id,
            state=_merge(app_state, user_state, record["state"]),
            events=events,
            last_update_time=record["last_update_time"],
        )
        session._storage_update_marker = str(record["revision"])
        return session

    @override
    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        session_id = session_id.strip() if session_id else session_id
        recent = config.num_recent_events if config else None
        after = config.after_timestamp if config else None

        def get(root: Store) -> Session | None:
            directory = _session_dir(root, app_name, user_id, session_id)
            record = directory.get("session")
            while record is not None:
                lines = (
                    [] if recent == 0 else directory.get("events", []) if recent is None else _tail(directory, recent)
                )
                again = directory.get("session")
                if again == record:  # no append landed between the two reads
                    break
                record = again
            if record is None:
                return None
            events = [Event.model_validate(line) for line in lines]
            if after is not None:
                events = _after(events, after)
            return self._session(root, app_name, user_id, record, events)

        return await self._runner.run(get)

    @override
    async def list_sessions(self, *, app_name: str, user_id: str | None = None) -> ListSessionsResponse:
        def list_all(root: Store) -> ListSessionsResponse:
            users = [user_id] if user_id is not None else root.narrow(app_name, "users").children()
            sessions: list[Session] = []
            for uid in users:
                directory = _user(root, app_name, uid).narrow("sessions")
                for name in directory.children():
                    record = directory.narrow(name).get("session")
                    if record is not None:
                        sessions.append(self._session(root, app_name, uid, record, []))
            sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
            return ListSessionsResponse(sessions=sessions)

        return await self._runner.run(list_all)

    @override
    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        session_id = session_id.strip() if session_id else session_id

        def delete(root: Store) -> None:
            directory = _session_dir(root, app_name, user_id, session_id)
            if not directory.exists("session"):
                return  # nothing to delete; and no lock, which would create the directory
            with directory.lock():
                directory.delete("session")  # first: the session is gone at once for every reader
                directory.delete("events")

        await self._runner.run(delete)

    @override
    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        state: dict[str, Any] = await self._runner.run(lambda root: _user(root, app_name, user_id).get("state", {}))
        return state

    @override
    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        deltas = _split_state(event.actions.state_delta if event.actions and event.actions.state_delta else {})
        line = _event_data(event)
        marker = session._storage_update_marker

        def append(root: Store) -> tuple[str, bool]:
            app, user = _app(root, session.app_name), _user(root, session.app_name, session.user_id)
            directory = _session_dir(root, session.app_name, session.user_id, session.id)
            with _locks(app if deltas["app"] else None, user if deltas["user"] else None, directory):
                record = directory.get("session")
                if record is None:
                    raise SessionNotFoundError(f"Session {session.id} not found.")
                if record["last_event_id"] == event.id and _tail(directory, 1) == [line]:
                    return str(record["revision"]), False  # a re-delivery of the stored last event
                if marker is not None:
                    if marker != str(record["revision"]):
                        raise StaleSessionError(_STALE)
                elif record["last_update_time"] > session.last_update_time:
                    mine = session.events[-1].id if session.events else None
                    if mine != record["last_event_id"]:
                        raise StaleSessionError(_STALE)
                directory.append("events", [line])
                _merge_into(app, "state", deltas["app"])
                _merge_into(user, "state", deltas["user"])
                revision = record["revision"] + 1
                directory.save(
                    "session",
                    {
                        **record,
                        "state": {**record["state"], **deltas["session"]},
                        "last_update_time": event.timestamp,
                        "revision": revision,
                        "last_event_id": event.id,
                    },
                )
                return str(revision), True

        revision, appended = await self._runner.run(append)
        session._storage_update_marker = revision
        if not appended:
            return event
        session.last_update_time = event.timestamp
        return self._commit_event_to_session(session, event)


def _tail(directory: Store, count: int | None) -> list[Any]:
    """The newest ``count`` event lines (all if ``None``), oldest first."""
    if count == 0:
        return []
    try:
        lines: list[Any] = directory.read("events", last=count)
    except KeyNotFoundError:
        return []
    return lines


def _after(events: list[Event], timestamp: float) -> list[Event]:
    """The events after the newest one older than ``timestamp`` (InMemorySessionService's rule)."""
    for index in range(len(events) - 1, -1, -1):
        if events[index].timestamp < timestamp:
            return events[index + 1 :]
    return events


class GroupStoreMemoryService(BaseMemoryService):
    """ADK memory by word match, as ``InMemoryMemoryService``, kept per app and user in a group_store.

    A search returns at most ten memories, those sharing the most words with the
    query; ties keep the order sessions were first added, then event order.

    Args:
        store: a ``Store``, a ``DataStore`` (work runs in its writer thread) or a directory path.
    """

    def __init__(self, store: StoreArg) -> None:
        self._runner = BlockingRunner(store)

    @staticmethod
    def _memory(root: Store, app_name: str, user_id: str) -> Store:
        return _user(root, app_name, user_id).narrow("memory")

    @staticmethod
    def _keep(memory: Store, session_id: str, change: Callable[[list[Any], set[str]], list[Any]]) -> None:
        with memory.lock():
            deleted = set(memory.get("deleted", []))
            sessions = memory.narrow("sessions")
            sessions.save(session_id, change(sessions.get(session_id, []), deleted))
            if session_id not in memory.get("order", []):
                memory.update("order", lambda order: [*order, session_id], default=[])

    @override
    async def add_session_to_memory(self, session: Session) -> None:
        lines = [_event_data(e) for e in session.events if e.content and e.content.parts]
        ids = [e.id for e in session.events if e.content and e.content.parts]

        def add(root: Store) -> None:
            def replace(_: list[Any], deleted: set[str]) -> list[Any]:
                return [line for line, event_id in zip(lines, ids, strict=True) if event_id not in deleted]

            self._keep(self._memory(root, session.app_name, session.user_id), session.id, replace)

        await self._runner.run(add)

    @override
    async def add_events_to_memory(
        self,
        *,
        app_name: str,
        user_id: str,
        events: Sequence[Event],
        session_id: str | None = None,
        custom_metadata: Mapping[str, object] | None = None,
    ) -> None:
        lines = [_event_data(e) for e in events if e.content and e.content.parts]

        def add(root: Store) -> None:
            def extend(existing: list[Any], deleted: set[str]) -> list[Any]:
                seen = {line["id"] for line in existing}
                for line in lines:
                    if line["id"] not in seen and line["id"] not in deleted:
                        existing.append(line)
                        seen.add(line["id"])
                return existing

            self._keep(self._memory(root, app_name, user_id), session_id or _UNKNOWN_SESSION_ID, extend)

        await self._runner.run(add)

    @override
    async def search_memory(self, *, app_name: str, user_id: str, query: str) -> SearchMemoryResponse:
        # The SDK's own tokenizers, so that a query matches exactly what it matches in memory.
        from google.adk.memory.in_memory_memory_service import _extract_searchable_words, _extract_words_lower

        def load(root: Store) -> list[list[Any]]:
            memory = self._memory(root, app_name, user_id)
            sessions = memory.narrow("sessions")
            return [sessions.get(session_id, []) for session_id in memory.get("order", [])]

        words_in_query = _extract_words_lower(query)
        scored: list[tuple[int, MemoryEntry]] = []
        for lines in await self._runner.run(load):
            for event in (Event.model_validate(line) for line in lines):
                if not event.content or not event.content.parts:
                    continue
                text = " ".join(part.text for part in event.content.parts if part.text)
                words_in_event = _extract_searchable_words(text)
                if not words_in_event:
                    continue
                text_lower = _nfc_lower(text)
                matched = sum(
                    1
                    for word in words_in_query
                    if word in words_in_event or (not word.isascii() and word in text_lower)
                )
                if matched:
                    entry = MemoryEntry(
                        id=event.id, content=event.content, author=event.author, timestamp=_format(event.timestamp)
                    )
                    scored.append((matched, entry))
        scored.sort(key=lambda pair: -pair[0])  # stable: equal scores keep their order
        return SearchMemoryResponse(memories=[entry for _, entry in scored[:_MAX_SEARCH_RESULTS]])

    @override
    async def delete_memory(self, *, app_name: str, user_id: str, memory_id: str | None = None) -> None:
        if not memory_id:
            return

        def delete(root: Store) -> None:
            memory = self._memory(root, app_name, user_id)
            if not memory.exists("order"):
                return
            with memory.lock():
                sessions = memory.narrow("sessions")
                found = False
                for session_id in memory.get("order", []):
                    lines = sessions.get(session_id, [])
                    kept = [line for line in lines if line["id"] != memory_id]
                    if len(kept) != len(lines):
                        sessions.save(session_id, kept)
                        found = True
                if found:
                    memory.update("deleted", lambda ids: sorted({*ids, memory_id}), default=[])

        await self._runner.run(delete)


def _nfc_lower(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", text).lower()


def _format(timestamp: float) -> str:
    from google.adk.memory._utils import format_timestamp

    result: str = format_timestamp(timestamp)
    return result


# -- the groupstore:// URI scheme (adk web / adk api_server) -----------------------------------


def store_from_uri(uri: str) -> Store:
    """The ``Store`` a ``groupstore://`` URI names.

    ``groupstore:///abs/dir`` is an absolute directory, ``groupstore://rel/dir``
    one relative to the current directory (as ``file://`` and ``sqlite://``
    spell them); percent-escapes are decoded.

    Raises:
        ValueError: for another scheme or an empty path.
    """
    parsed = urlparse(uri)
    if parsed.scheme != URI_SCHEME:
        raise ValueError(f"not a {URI_SCHEME}:// URI: {uri!r}")
    path = unquote(parsed.netloc + parsed.path)
    if not path:
        raise ValueError(f"a {URI_SCHEME}:// URI needs a directory, as in {URI_SCHEME}:///var/lib/agents: {uri!r}")
    return Store(path)


def register_uri_scheme(registry: Any = None) -> None:
    """Register ``groupstore://`` session and memory services with ADK's service registry.

    Call it from an agents directory's ``services.py`` (which ``adk web`` and
    ``adk api_server`` import before building their services), then run
    ``adk web --session_service_uri groupstore:///path --memory_service_uri groupstore:///path``.

    Args:
        registry: a ``ServiceRegistry`` (default: ADK's global one).
    """
    if registry is None:
        from google.adk.cli.service_registry import get_service_registry

        registry = get_service_registry()

    def session_factory(uri: str, **_: Any) -> GroupStoreSessionService:
        return GroupStoreSessionService(store_from_uri(uri))

    def memory_factory(uri: str, **_: Any) -> GroupStoreMemoryService:
        return GroupStoreMemoryService(store_from_uri(uri))

    registry.register_session_service(URI_SCHEME, session_factory)
    registry.register_memory_service(URI_SCHEME, memory_factory)
