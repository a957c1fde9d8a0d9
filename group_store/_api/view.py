"""What ``Store`` and ``DataStore`` share: a position in the tree and argument checking (no I/O)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

from .._engine.engine import MISSING, SYNCHRONOUS_UPDATE, Engine
from .._errors import GroupStoreError, InvalidArgumentError, InvalidKeyError, located
from .._format.codec import encode_document, encode_lines
from .._format.expiry import resolve_expiry, to_datetime
from .._format.keys import check_segment
from .._format.layout import Location, encode_directory, join
from ..storage._base import Storage

Ttl = float | timedelta | None

_REMEMBERED_LOCATIONS = 1024


class View:
    """A directory of the store: the root, or a ``narrow()``-ed sub-store."""

    def __init__(self, engine: Engine, segments: tuple[str, ...]) -> None:
        self._engine = engine
        self._place(segments)

    def _place(self, segments: tuple[str, ...]) -> None:
        """Set this view's position in the tree: the one place it is set (``__init__``, ``_narrowed``)."""
        self._segments = segments
        self._directory = encode_directory(segments)
        self._root_locator = self._engine.storage.locator(self._directory)
        # Recent keys' locations in this directory (a view's own: a copy placed elsewhere
        # gets a fresh one). Encoding a key costs more than the dict lookup that replaces it.
        self._locations: dict[str, Location] = {}

    def _narrowed(self, keys: Sequence[str]) -> Self:
        """A copy of this view at ``keys`` below it, sharing its engine (and a DataStore's writer).

        The copy protocol rather than a second constructor call: a view is not a new
        store (no new engine, format check or writer thread), and ``__init__`` stays
        the one way to open one. Rejected: ``cls.__new__`` followed by ``View.__init__``,
        which skips the subclass's own state and breaks as soon as it gains some.
        """
        segments = self._child_segments(keys)
        view = copy.copy(self)
        view._place(segments)
        return view

    @property
    def storage(self) -> Storage:
        """The backend this store reads and writes (shared by every view of it)."""
        return self._engine.storage

    @property
    def locator(self) -> str:
        """The locator of this view's directory (a path locally, a URL elsewhere). Split at
        ``/``, locators sort in the order the lock rules of ``Storage`` take locks in."""
        return self._root_locator

    @property
    def root_path(self) -> Path | None:
        """The local directory this view reads and writes, or ``None`` for storage that
        keeps no local files (see ``Storage.local_path``)."""
        return self._engine.storage.local_path(self._directory)

    @property
    def segments(self) -> tuple[str, ...]:
        """The narrow() keys from the store's root to this view."""
        return self._segments

    def narrow_path(self, *keys: str) -> Path | None:
        """The local directory that ``narrow(*keys)`` would use (nothing is created), or
        ``None`` for storage that keeps no local files.

        Raises:
            InvalidKeyError: for an empty or non-string key (naming this view's directory).
        """
        with located(path=self._root_locator):
            return self._engine.storage.local_path(join(self._directory, encode_directory(keys)))

    def _child_segments(self, keys: Sequence[str]) -> tuple[str, ...]:
        if not keys:
            raise InvalidKeyError("narrow() needs at least one key", path=self._root_locator)
        with located(path=self._root_locator):
            return (*self._segments, *(check_segment(key) for key in keys))

    # Errors raised before any file is touched name the entry's file all the same (the
    # document for save/update, the log for append/read), so every error of an entry
    # operation carries a path. A key that cannot be encoded names no file: its error
    # names this view's directory instead.

    # try/except rather than ``located()`` on these paths: they run on every save and
    # append, and the path (a pathlib.Path, whose parts Python interns) is built only
    # when there is an error to name it in.

    def _location(self, key: str) -> Location:
        # Exactly str: anything else (unhashable, or a subclass with its own equality) is
        # encoded, and refused there if it is not a key.
        exact = type(key) is str
        if exact and (loc := self._locations.get(key)) is not None:
            return loc
        try:
            loc = self._engine.location(self._directory, self._segments, key)
        except GroupStoreError as exc:
            raise _naming(exc, None, self._root_locator) from exc.__cause__
        if exact:
            if len(self._locations) >= _REMEMBERED_LOCATIONS:
                self._locations.clear()
            self._locations[key] = loc
        return loc

    def _path(self, loc: Location, name: str) -> str:
        return self._engine.storage.locator(loc.directory, name)

    def _expiry(self, loc: Location, ttl: Ttl, expires_at: datetime | None) -> float | None:
        try:
            return resolve_expiry(self._engine.clock(), ttl, expires_at)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc), key=loc.key, path=self._path(loc, loc.document)) from exc

    def _update_expiry(self, key: str, ttl: Ttl, expires_at: datetime | None) -> float | object | None:
        return MISSING if ttl is None and expires_at is None else self._expiry(self._location(key), ttl, expires_at)

    def _check_update_function(self, key: str, function: Callable[[Any], Any]) -> None:
        """Refuse, before anything is queued or locked, a function ``update()`` cannot run.

        An async function's result would be a coroutine, which no JSON holds; one that
        this check cannot recognise is caught after the call (``Engine.update``).
        """
        import inspect  # here, not at the top: it costs 6 ms to import, and only update() needs it

        if callable(function) and not inspect.iscoroutinefunction(function):
            return
        loc = self._location(key)
        detail = SYNCHRONOUS_UPDATE if callable(function) else f"update() needs a function, not {function!r}"
        raise InvalidArgumentError(detail, key=key, path=self._path(loc, loc.document))

    def _document(
        self, key: str, data: Any, ttl: Ttl, expires_at: datetime | None
    ) -> tuple[Location, bytes, float | None]:
        loc = self._location(key)
        try:
            return loc, encode_document(key, data), self._expiry(loc, ttl, expires_at)
        except GroupStoreError as exc:
            raise _naming(exc, key, self._path(loc, loc.document)) from exc.__cause__

    def _lines(self, key: str, items: Sequence[Any], max_items: int | None) -> tuple[Location, bytes, int]:
        loc = self._location(key)
        if not isinstance(items, list | tuple):
            detail = f"append() takes a list of items, not {type(items).__name__}"
            raise InvalidArgumentError(detail, key=key, path=self._path(loc, loc.log))
        if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1):
            detail = f"max_items must be an int >= 1, not {max_items!r}"
            raise InvalidArgumentError(detail, key=key, path=self._path(loc, loc.log))
        try:
            return loc, encode_lines(key, items), len(items)
        except GroupStoreError as exc:
            raise _naming(exc, key, self._path(loc, loc.log)) from exc.__cause__

    def _check_last(self, key: str, last: int | None) -> None:
        if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 0):
            loc = self._location(key)
            detail = f"last must be an int >= 0, not {last!r}"
            raise InvalidArgumentError(detail, key=key, path=self._path(loc, loc.log))

    @staticmethod
    def _as_datetime(expiry: float | None) -> datetime | None:
        return None if expiry is None else to_datetime(expiry)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._root_locator!r})"


def _naming(exc: GroupStoreError, key: str | None, path: str) -> GroupStoreError:
    """``exc`` naming ``key`` and ``path`` where it names neither (its traceback kept)."""
    if (exc.key is None and key is not None) or exc.path is None:
        return exc.located(key=key, path=path).with_traceback(exc.__traceback__)
    return exc
