"""What S3Storage needs around obstore: one private event loop, versions, error translation.

obstore's async API is driven from one daemon thread running an asyncio loop, shared by
every S3Storage in the process: a batch (``write_many``, ``read_versions``) becomes one
``gather`` on that loop, so N independent requests cost one thread hop and run
concurrently on obstore's connection pool. Rejected alternative: a thread pool calling
obstore's blocking API, which holds one OS thread per request in flight and gives no
better throughput (the requests wait on the network, not on Python).
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)

from .._errors import StorageError
from ._base import Version

T = TypeVar("T")


class S3Version(Version):
    """One state of one object: its ETag, and its version id where the bucket keeps versions.

    ETags of single-part PUTs are content hashes, so a later state with the very same
    bytes gets an equal token. That is harmless for compare-and-swap (swapping against
    identical bytes is swapping against that state) and is the one way the base
    contract's "equal only for the same state" is weakened here.
    """

    __slots__ = ("e_tag", "version")

    def __init__(self, e_tag: str, version: str | None) -> None:
        self.e_tag = e_tag
        self.version = version

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Version) and (self.e_tag, self.version) == (other.e_tag, other.version)

    def __hash__(self) -> int:
        return hash((self.e_tag, self.version))

    def __repr__(self) -> str:
        return f"S3Version({self.e_tag!r}, {self.version!r})"


class _Loop:
    """The process's private event loop thread, started on first use and again after fork."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and return its result (or raise its error)."""
        loop = self._running_loop()
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("S3Storage called from its own event loop thread")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._mutex:
            # A forked child inherits the object but not the thread: start a new one.
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(target=_serve, args=(loop, ready), name="group_store-s3", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                atexit.register(self._stop, loop, thread)
            return self._loop

    @staticmethod
    def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        # Left running into interpreter shutdown, the loop thread dies inside obstore's
        # tokio callbacks and the process aborts (SIGABRT, seen in spawned workers).
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


LOOP = _Loop()


def is_conflict(exc: BaseException) -> bool:
    """Whether a conditional request failed because the object was not in the expected state.

    412 (PreconditionError, AlreadyExistsError), 404 on ``If-Match`` of an absent object
    (obstore reports it as a precondition failure or FileNotFoundError), and 409
    ConditionalRequestConflict (AWS, when two conditional writes race).
    """
    if _names_missing_bucket(exc):
        return False
    if isinstance(exc, PreconditionError | AlreadyExistsError | FileNotFoundError):
        return True
    return isinstance(exc, BaseError) and "409 Conflict" in str(exc)


def _names_missing_bucket(exc: BaseException) -> bool:
    return "NoSuchBucket" in str(exc)


def translate(exc: BaseException, locator: str) -> StorageError:
    """The typed error for an obstore failure on the object named by ``locator``.

    The ``errno`` says what kind of failure it was, for callers that branch on it:
    ENOENT a missing bucket, EACCES refused or missing credentials, EAGAIN throttling (503 SlowDown)
    past the client's retries, ECONNREFUSED/ETIMEDOUT an unreachable endpoint, EIO the rest.
    """
    text = str(exc)
    summary = _first_line(text)
    if _names_missing_bucket(exc):
        return StorageError(f"the bucket does not exist: {summary}", path=locator, errno=errno.ENOENT)
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError) or "403 Forbidden" in text:
        return StorageError(f"the credentials were refused: {summary}", path=locator, errno=errno.EACCES)
    if "/latest/api/token" in text or "/latest/meta-data" in text:
        # No key in the options or environment: obstore fell back to the instance metadata service.
        return StorageError(
            f"no credentials configured, and none from the instance metadata service: {summary}",
            path=locator,
            errno=errno.EACCES,
        )
    if "503 Service Unavailable" in text or "SlowDown" in text:
        return StorageError(f"throttled past the client's retries: {summary}", path=locator, errno=errno.EAGAIN)
    if "Connection refused" in text or "tcp connect error" in text:
        return StorageError(f"the endpoint is unreachable: {summary}", path=locator, errno=errno.ECONNREFUSED)
    if "timed out" in text.lower() or "deadline has elapsed" in text:
        return StorageError(f"the endpoint did not answer in time: {summary}", path=locator, errno=errno.ETIMEDOUT)
    if "credential" in text.lower():
        return StorageError(f"no usable credentials: {summary}", path=locator, errno=errno.EACCES)
    return StorageError(f"object storage refused: {summary}", path=locator, errno=errno.EIO)


def _first_line(text: str) -> str:
    # obstore's messages carry the response body and a debug dump after the first line.
    line = text.strip().splitlines()[0] if text.strip() else "no detail"
    return line if len(line) <= 300 else line[:297] + "..."
