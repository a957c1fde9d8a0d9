"""The exception tree of group_store.

    GroupStoreError                      every error the store raises on purpose
    ├── InvalidKeyError (ValueError)     a key segment that cannot name an entry
    ├── InvalidArgumentError (ValueError) a bad ttl, expires_at, max_items or last
    ├── KeyNotFoundError (KeyError)      missing or expired entry
    ├── SerializationError (TypeError)   data JSON cannot hold faithfully
    ├── CorruptEntryError (ValueError)   a file on disk that is not valid JSON
    ├── EntryKindError (TypeError)       a document used as a log, or the reverse
    ├── UnsafeFileError (OSError)        a symlink, FIFO or other non-regular file
    ├── StorageError (OSError)           the file system refused (ENOSPC, EACCES, ...)
    ├── LockTimeoutError (TimeoutError)  a directory lock not acquired within its timeout
    ├── StoreClosedError (RuntimeError)  a write after ``aclose()``
    ├── SchemaError (ValueError)         a Table field, key or record outside its schema
    ├── DuplicateKeyError (ValueError)   Table.insert() of a key that already holds a record
    └── FormatVersionError               a store marked with a format this version does not know

Every error carries ``.key`` (the key as the caller spelled it, or ``None``) and
``.path`` (the locator of the file or directory involved, or ``None``); its message names
both. A locator is a string: an absolute path for a local store, a URL such as
``memory://...`` or ``s3://bucket/...`` for other storage.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class GroupStoreError(Exception):
    """Base of every error raised by group_store.

    Attributes:
        key: The key the operation was about, as the caller wrote it.
        path: The locator (a string) of the file or directory the operation touched.
        detail: What went wrong, without the key and path.
    """

    def __init__(self, detail: str, *, key: str | None = None, path: Path | str | None = None) -> None:
        self.detail = detail
        self.key = key
        self.path = str(path) if path is not None else None
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [self.detail]
        if self.key is not None:
            parts.append(f"key={self.key!r}")
        if self.path is not None:
            parts.append(f"file={str(self.path)!r}")
        return parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"

    def __str__(self) -> str:
        # KeyError's own __str__ would repr() the message; every subclass reads the same way.
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.detail, self.key, self.path))

    def with_key(self, key: str) -> GroupStoreError:
        """A copy of this error that names ``key`` (errors from below the key layer lack it)."""
        return self.located(key=key)

    def located(self, *, key: str | None = None, path: Path | str | None = None) -> GroupStoreError:
        """A copy of this error naming ``key`` and ``path`` where it names none.

        What the error already names is kept: the layer that raised it knew better.
        """
        clone = copy.copy(self)
        if clone.key is None:
            clone.key = key
        if clone.path is None and path is not None:
            clone.path = str(path)
        clone.args = (clone._message(),)
        return clone


@contextmanager
def located(*, key: str | None = None, path: Path | str | None = None) -> Iterator[None]:
    """Re-raise a GroupStoreError from inside that lacks a key or path, naming ``key`` and ``path``.

    For the layers above the codec and the key encoder, which raise before any
    file is touched and so know neither; the original cause and traceback are kept.
    """
    try:
        yield
    except GroupStoreError as exc:
        if (exc.key is None and key is not None) or (exc.path is None and path is not None):
            raise exc.located(key=key, path=path).with_traceback(exc.__traceback__) from exc.__cause__
        raise


def _rebuild(cls: type[GroupStoreError], detail: str, key: str | None, path: str | None) -> GroupStoreError:
    return cls(detail, key=key, path=path)


class InvalidKeyError(GroupStoreError, ValueError):
    """A key or narrow() segment that cannot name an entry (empty or not a string)."""


class InvalidArgumentError(GroupStoreError, ValueError):
    """An argument other than the key is out of range (ttl, expires_at, max_items, last)."""


class KeyNotFoundError(GroupStoreError, KeyError):
    """The entry does not exist, or it has expired."""


class SerializationError(GroupStoreError, TypeError):
    """The data cannot be stored as JSON and loaded back equal (sets, NaN, huge ints, ...)."""


class CorruptEntryError(GroupStoreError, ValueError):
    """A file in the store holds bytes that are not valid JSON (or a valid log)."""


class EntryKindError(GroupStoreError, TypeError):
    """A document was used as a log or a log as a document."""


class UnsafeFileError(GroupStoreError, OSError):
    """The store met a symlink, FIFO, device or other non-regular file where it expected its own."""


class StorageError(GroupStoreError, OSError):
    """The file system refused an operation; ``errno`` is that of the underlying OSError."""

    def __init__(
        self,
        detail: str,
        *,
        key: str | None = None,
        path: Path | str | None = None,
        errno: int | None = None,
    ) -> None:
        super().__init__(detail, key=key, path=path)
        self.errno = errno

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_storage, (self.detail, self.key, self.path, self.errno))


def _rebuild_storage(detail: str, key: str | None, path: str | None, errno: int | None) -> StorageError:
    return StorageError(detail, key=key, path=path, errno=errno)


class LockTimeoutError(GroupStoreError, TimeoutError):
    """A directory lock was not acquired within its timeout (``.path`` is the lock's locator)."""


class StoreClosedError(GroupStoreError, RuntimeError):
    """A write was issued to a DataStore after ``aclose()``."""


class SchemaError(GroupStoreError, ValueError):
    """A ``Table`` was given a field name, key or record that its schema does not allow."""


class DuplicateKeyError(GroupStoreError, ValueError):
    """``Table.insert()`` met a live record with the same primary key (nothing was written)."""


class FormatVersionError(GroupStoreError):
    """The store's format marker names a newer format than this library knows, or is not
    a marker at all: the store is refused rather than misread (``.path`` is the marker)."""
