"""The composition root: what a store is opened on (a local path, or any ``Storage``).

``Store``, ``DataStore``, the tools, the command line, the pytest plugin and the twins
in ``repos`` all open a store through ``open_storage`` (the constructors) and
``resolve`` (the functions that take a store or a path), so there is one place that
decides which backend a store runs on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from .._engine.engine import Engine
from .._errors import InvalidArgumentError
from .._format.expiry import Clock
from ..storage._base import Storage

if TYPE_CHECKING:
    import os

    from .view import View


def open_storage(
    root_path: str | os.PathLike[str] | None, storage: Storage | None, *, file_mode: int, dir_mode: int
) -> Storage:
    """The backend of a new store: ``LocalStorage(root_path)``, ``S3Storage(root_path)`` for
    an ``s3://bucket/prefix`` URL (configured from the AWS environment; build an
    ``S3Storage`` with ``storage_options=`` and pass it as ``storage=`` to configure it
    explicitly), or ``storage`` as given.

    ``file_mode`` and ``dir_mode`` apply to a local path only (a given ``storage`` was
    configured when it was built).

    Raises:
        InvalidArgumentError: unless exactly one of ``root_path`` (a ``str`` or
            ``os.PathLike``) and ``storage`` (a ``Storage``) is given, naming what was.
    """
    if storage is not None:
        if root_path is not None:
            raise InvalidArgumentError(f"pass a root path or storage=, not both (got {root_path!r} and {storage!r})")
        if not isinstance(storage, Storage):
            raise InvalidArgumentError(f"storage= takes a group_store.storage.Storage, not {storage!r}")
        return storage
    if root_path is None:
        raise InvalidArgumentError("pass a root path or storage= (got neither)")
    if isinstance(root_path, str) and root_path.startswith("s3://"):
        # Imported here: obstore is the optional "s3" extra, loaded only for an s3:// store.
        from ..storage._s3 import S3Storage

        return S3Storage(root_path)
    # os.PathLike's own test (a __fspath__ on the type), without importing os here.
    if not isinstance(root_path, str) and not hasattr(type(root_path), "__fspath__"):
        raise InvalidArgumentError(f"a root path is a str or os.PathLike, not {root_path!r}")
    # Imported here, not at the top: a store opened on another backend never loads the local one.
    from ..storage._local import LocalStorage

    return LocalStorage(Path(root_path), file_mode=file_mode, dir_mode=dir_mode)


def resolve(
    store_or_path: View | str | os.PathLike[str], clock: Clock | None = None
) -> tuple[Engine, str, tuple[str, ...]]:
    """The engine, encoded directory and ``narrow()`` keys (from the store root) a tool works on.

    A ``Store``/``DataStore`` (or a view of one) gives its own engine and directory:
    the tool sees that view's subtree through the store's backend (and, unless
    ``clock`` is given, its clock). A path opens a local store there (nothing is
    created by opening it), on ``clock`` or the wall clock. A DataStore's queued
    writes are not waited for: flush it first.

    Raises:
        InvalidArgumentError: for anything that is neither a store nor a path.
    """
    from .view import View

    if isinstance(store_or_path, View):
        engine = store_or_path._engine
        if clock is not None and clock is not engine.clock:
            engine = Engine(engine.storage, clock, durable=engine.durable)
        return engine, store_or_path._directory, store_or_path.segments
    storage = open_storage(store_or_path, None, file_mode=0o600, dir_mode=0o700)
    return Engine(storage, time.time if clock is None else clock, durable=False), "", ()
