"""What S3Storage needs around obstore: request threads, versions, error translation.

Requests are obstore's blocking calls, made on Python threads: one request runs on the
caller's thread, a batch (``write_many``, ``read_versions``) on a pool of at most
``max_concurrency`` threads, so N independent requests run concurrently on obstore's
connection pool (obstore releases the GIL while a request is on the network).

Rejected alternative: obstore's async API on a private asyncio loop thread. Its futures
are completed by tokio's threads, which enter the interpreter to call
``loop.call_soon_threadsafe``; the caller can see its result while such a thread is still
inside that call, and if the process then exits, the thread takes the GIL during
finalization, CPython ends it with ``pthread_exit``, the forced unwind meets obstore's
Rust frames, and the process aborts (SIGABRT, silently, after its work was done: about
one spawned test worker in ten). No stop-and-join at exit can wait for threads Python does
not know. With blocking calls, only Python's own threads ever run Python code: the
pool's are joined before the interpreter finalizes, and the lease renewal threads are
stopped at exit (``_s3_lease``).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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


class Requests:
    """Runs one storage's requests: inline when alone, on its own thread pool when batched.

    The pool is started on first use and again after fork (a forked child inherits the
    object but not the threads). Its threads are ``concurrent.futures``' own, which the
    interpreter joins before it finalizes, so a request in flight at exit completes first.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._mutex = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def all(self, calls: Sequence[Callable[[], T]], *, return_exceptions: bool = False) -> list[Any]:
        """Every call's result, in order, with at most ``limit`` running at once.

        Every call has finished when this returns. Raises the first failed call's error
        (by position) unless ``return_exceptions``, which puts each error in its place.
        """
        if len(calls) == 1 and not return_exceptions:
            return [calls[0]()]
        if not calls:
            return []
        futures: list[Future[T]] = []
        for call in calls:
            futures.append(self._submit(call))
        outcomes: list[Any] = []
        for future in futures:
            error = future.exception()
            outcomes.append(future.result() if error is None else error)
        if not return_exceptions:
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        return outcomes

    def _submit(self, call: Callable[[], T]) -> Future[T]:
        try:
            return self._running_pool().submit(call)
        except RuntimeError:
            # The interpreter is shutting down (an atexit hook writing): no new pool
            # threads may start, so the rest of the batch runs here, one at a time.
            done: Future[T] = Future()
            try:
                done.set_result(call())
            except BaseException as exc:
                done.set_exception(exc)
            return done

    def _running_pool(self) -> ThreadPoolExecutor:
        with self._mutex:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(self._limit, thread_name_prefix="group_store-s3")
                self._pid = os.getpid()
            return self._pool


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
