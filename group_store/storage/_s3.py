"""S3Storage: a store in an S3-compatible bucket, on obstore.

Object names are the store's relative file names under the URL's prefix
(``<prefix>/<directory>/<name>``), the same bytes as on disk, so a local store copied
into a bucket (``aws s3 sync``) is a valid S3 store and the reverse.

What holds on object storage, and what does not:

- every write is one PUT: readers see the old or the new object, never a part;
  ``durable`` is ignored (a PUT that returned is durable);
- ``write_if`` is a conditional PUT (``If-None-Match: *`` to create, ``If-Match`` on the
  ETag to replace), so read-modify-write runs as compare-and-swap with no lock;
- ``append`` is a compare-and-swap rewrite (GET with its ETag, conditional PUT of old +
  new, retried with jittered backoff on a conflict), so appends from many processes never
  lose or interleave records, even without the lock; it costs a GET and a PUT of the whole
  log, which is right for the store's logs (bounded by ``max_items``) and wrong for
  unbounded ones;
- ``read_versions`` of several names verifies with HEADs that no ETag moved after its
  GETs (bounded rounds, then once more under the directory's lock);
- ``lock`` is a lease object (``_s3_lease``): what a stalled holder loses is written there.

Errors are ``StorageError`` naming the object's ``s3://`` URL, with an ``errno`` telling
the kind (see ``_s3_client.translate``); a missing bucket is an error on first use, never
an empty store. Requests are retried as obstore's client does (5xx, 503 SlowDown,
connection errors; ``retry_config``), with fewer retries by default than obstore's
3 minutes, close to the AWS SDKs' standard mode.
"""

from __future__ import annotations

import errno
import random
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import obstore
from obstore.store import S3Store

from .._errors import InvalidArgumentError, StorageError
from .._format.layout import LOCK_NAME
from ._base import Kind, Listing, Storage, Tail, Version, Versioned
from ._s3_client import Requests, S3Version, is_conflict, translate
from ._s3_lease import Leases

if TYPE_CHECKING:
    from obstore import ObjectMeta, PutMode
    from obstore.store import ClientConfig, RetryConfig

# obstore takes these as client options, not S3 configuration; storage_options may name them too.
_CLIENT_KEYS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "http1_only",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_url",
        "proxy_ca_certificate",
        "proxy_excludes",
        "randomize_addresses",
        "read_timeout",
        "timeout",
        "user_agent",
    }
)
_DEFAULT_RETRY: RetryConfig = {
    "max_retries": 3,
    "retry_timeout": timedelta(seconds=30),
    "backoff": {"init_backoff": timedelta(milliseconds=50), "max_backoff": timedelta(seconds=5), "base": 2},
}
_SNAPSHOT_ROUNDS = 3


class S3Storage(Storage):
    """A store's files as objects in an S3-compatible bucket (AWS S3, MinIO, R2, Ceph, GCS).

    Args:
        url: ``s3://bucket`` or ``s3://bucket/prefix``.
        storage_options: obstore's S3 configuration keys (``endpoint``, ``access_key_id``,
            ``secret_access_key``, ``region``, ...) and client keys (``allow_http``,
            ``timeout``, ...). They win over the environment, which obstore reads for the
            rest (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
            ``AWS_REGION``, ``AWS_ALLOW_HTTP``, ...).
        retry_config: obstore's retry configuration (default: 3 retries, 30 s at most).
        max_concurrency: Requests one batch keeps in flight at once.
        lease: Seconds a directory lock's lease lasts without renewal.
        cas_attempts: Conditional PUTs one ``append`` tries before giving up.

    Raises:
        InvalidArgumentError: the URL is not ``s3://bucket[/prefix]`` or an option is out of range.
        StorageError: obstore refused the configuration. An unreachable endpoint, refused
            credentials or a missing bucket are reported by the first operation instead.
    """

    blocking_io_is_cheap = False
    shared_between_processes = True
    locks_are_cheap = False

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, str] | None = None,
        retry_config: RetryConfig | None = None,
        max_concurrency: int = 32,
        lease: float = 10.0,
        cas_attempts: int = 64,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise InvalidArgumentError(f"not an s3://bucket[/prefix] URL: {url!r}")
        if max_concurrency < 1 or cas_attempts < 1 or lease <= 0:
            raise InvalidArgumentError("max_concurrency, cas_attempts and lease must be positive")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        options = dict(storage_options or {})
        client: dict[str, Any] = {key: options.pop(key) for key in list(options) if key in _CLIENT_KEYS}
        client_options: ClientConfig | None = client or None  # type: ignore[assignment]
        try:
            self._store = S3Store(
                self.bucket,
                prefix=self.prefix or None,
                config=options,  # type: ignore[arg-type]
                client_options=client_options,
                retry_config=_DEFAULT_RETRY if retry_config is None else retry_config,
            )
        except Exception as exc:
            raise translate(exc, self.locator("")) from exc
        self._requests = Requests(max_concurrency)
        self._cas_attempts = cas_attempts
        self._leases = Leases(_LeaseObjects(self), lease=lease, locator=self._key_locator)
        self._checked = False
        self._check_mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Storage({self.locator('')!r})"

    # -- naming -------------------------------------------------------------------

    def locator(self, directory: str, name: str = "") -> str:
        return self._key_locator(_key(directory, name))

    def _key_locator(self, key: str) -> str:
        return "s3://" + "/".join(part for part in (self.bucket, self.prefix, key) if part)

    # -- reading ------------------------------------------------------------------

    def read_versions(self, directory: str, names: Sequence[str]) -> list[Versioned | None]:
        """Concurrent GETs; with one or more found of several, HEADs confirm no ETag moved since.

        Which moment the snapshot is of is the verification's: every object found was in
        the state returned between the last GET and the first HEAD (up to ETag reuse for
        identical bytes, see ``S3Version``). After ``_SNAPSHOT_ROUNDS`` unstable rounds the
        read runs once more under ``lock(directory)``, so it takes that lock while the
        caller may hold another (the lock order is the caller's to keep).
        """
        self._check()
        keys = [_key(directory, name) for name in names]
        for _ in range(_SNAPSHOT_ROUNDS):
            found = self._requests.all([partial(self._get, key) for key in keys])
            # Nothing found, or one name: nothing to combine. One found among absent ones is
            # verified too: its GET may have come before a replacement and the 404s after the
            # removal that followed it (the engine's clearing save), a pair never in place.
            if len(keys) < 2 or all(item is None for item in found):
                return found
            heads = [
                partial(self._head, key) if item is not None else _none for key, item in zip(keys, found, strict=True)
            ]
            versions = self._requests.all(heads)
            if all(item is None or item.version == version for item, version in zip(found, versions, strict=True)):
                return found
        with self.lock(directory):
            return self._requests.all([partial(self._get, key) for key in keys])

    def read_versioned(self, directory: str, name: str) -> Versioned | None:
        self._check()
        return self._get(_key(directory, name))

    def is_current(self, directory: str, name: str, version: Version) -> bool:
        """One HEAD: whether the object's ETag is still the one ``version`` holds."""
        self._check()
        return self._head(_key(directory, name)) == version

    def read_tail(self, directory: str, name: str, size: int) -> Tail | None:
        """One ranged GET (the last ``size`` bytes); the object's size comes with it."""
        self._check()
        key = _key(directory, name)
        if size <= 0:
            meta = self._head_meta(key)
            return None if meta is None else Tail(b"", meta["size"])
        return self._tail(key, size)

    def kinds(self, directory: str, names: Sequence[str]) -> list[Kind | None]:
        """One LIST for all the names: a name is a file if an object has it, else a
        directory if any key lies below it.

        Names sharing a prefix (a key's document, log and sidecar) are answered by one
        LIST starting after that prefix, read only while keys still begin with it (one
        page, whatever the directory holds). Names with none in common are answered by
        ``scan(directory)``: one LIST page per 1,000 entries of the directory, chosen
        over a request per name because such calls are batches (``save_many``).
        Rejected: a HEAD per name, and a LIST below it when the HEAD finds nothing (what
        this replaced): four requests for a save's two names, against one.
        """
        self._check()
        if not names:
            return []
        shared = _shared_prefix(names)
        if shared in names:
            # The LIST starts strictly after its offset: shorten it so the name itself is listed.
            shared = shared[:-1]
        if not shared:
            listed: dict[str, Kind] = {}
            for entry in self.scan(directory):
                # A name that is an object and has keys below it too is a file (as above).
                if listed.get(entry.name) is not Kind.FILE:
                    listed[entry.name] = entry.kind
            return [listed.get(name) for name in names]
        return self._kinds_after(directory, shared, names)

    def _kinds_after(self, directory: str, shared: str, names: Sequence[str]) -> list[Kind | None]:
        found: dict[str, Kind] = {}
        pending = set(names)
        offset = _key(directory, shared)
        start = len(directory) + 1 if directory else 0
        try:
            for chunk in obstore.list(self._store, directory or None, offset=offset, chunk_size=100):
                for meta in chunk:
                    relative = meta["path"][start:]
                    if not relative.startswith(shared):
                        return [found.get(name) for name in names]
                    first, below, _ = relative.partition("/")
                    if first in pending and first not in found:
                        # An object named exactly so sorts before every key below it: a file wins.
                        found[first] = Kind.DIRECTORY if below else Kind.FILE
                    # Keys come in order: a name is settled once it is found or listing passed it.
                    pending = {name for name in pending if name not in found and not _passed(relative, name)}
                    if not pending:
                        return [found.get(name) for name in names]
        except Exception as exc:
            raise translate(exc, self.locator(directory, shared)) from exc
        return [found.get(name) for name in names]

    def scan(self, directory: str) -> list[Listing]:
        """One LIST with delimiter (all its pages): objects are files, common prefixes directories."""
        self._check()
        prefix = directory or None
        try:
            listed = obstore.list_with_delimiter(self._store, prefix)
        except Exception as exc:
            raise translate(exc, self.locator(directory)) from exc
        entries = [Listing(meta["path"].rsplit("/", 1)[-1], Kind.FILE) for meta in listed["objects"]]
        entries += [Listing(path.rstrip("/").rsplit("/", 1)[-1], Kind.DIRECTORY) for path in listed["common_prefixes"]]
        return entries

    # -- writing ------------------------------------------------------------------

    def write_many(
        self, directory: str, items: Sequence[tuple[str, bytes]], *, durable: bool
    ) -> list[BaseException | None]:
        """Concurrent PUTs, at most ``max_concurrency`` in flight; ``durable`` is ignored.

        A name given twice is PUT once, with its last bytes (the final state of writing
        them in order); every item naming it shares that PUT's outcome.
        """
        self._check()
        last = dict(items)
        puts = [partial(self._put, _key(directory, name), data, "overwrite") for name, data in last.items()]
        outcomes = self._requests.all(puts, return_exceptions=True)
        by_name: dict[str, BaseException | None] = {
            name: outcome if isinstance(outcome, BaseException) else None
            for name, outcome in zip(last, outcomes, strict=True)
        }
        return [by_name[name] for name, _ in items]

    def write_if(self, directory: str, name: str, data: bytes, *, version: Version | None, durable: bool) -> bool:
        """A conditional PUT; ``False`` on 412, on 409 (a racing conditional write) and on 404."""
        self._check()
        mode: PutMode
        if version is None:
            mode = "create"
        elif isinstance(version, S3Version):
            mode = _if_match(version)
        else:
            raise InvalidArgumentError(f"not a version of this storage: {version!r}")
        return self._put(_key(directory, name), data, mode) is not None

    def append(
        self,
        directory: str,
        name: str,
        data: bytes,
        *,
        keep: int | None,
        durable: bool,
        if_version: Version | None = None,
    ) -> None:
        """Compare-and-swap rewrite of the whole object (see the module docstring).

        Returns no version, so ``if_version`` is never passed and is ignored: a rewrite
        needs the object's bytes, so a token could save no request.

        Raises:
            StorageError: errno EBUSY when ``cas_attempts`` conditional PUTs all lost a race,
                or, with ``keep``, at the first lost race (another writer changed the bytes
                the caller measured ``keep`` on, which its lock should have prevented).
        """
        self._check()
        key = _key(directory, name)
        delay = 0.002
        for _ in range(self._cas_attempts):
            current = self._get(key)
            if current is None:
                written = self._put(key, data, "create")
            else:
                base = current.data if keep is None else current.data[:keep]
                assert isinstance(current.version, S3Version)
                written = self._put(key, base + data, _if_match(current.version))
            if written is not None:
                return None
            if keep is not None:
                break
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.05)
        locator = self.locator(directory, name)
        raise StorageError("append lost every compare-and-swap race", path=locator, errno=errno.EBUSY)

    def remove_many(self, directory: str, names: Sequence[str], *, durable: bool) -> list[bool | BaseException]:
        """HEADs say which existed; one bulk DELETE (DeleteObjects) removes them all.

        A name given twice is removed once: its later items find it gone (``False``), as
        removing them in order would.
        """
        self._check()
        keys = list(dict.fromkeys(_key(directory, name) for name in names))
        if not keys:
            return []
        existed = dict(zip(keys, self._requests.all([partial(self._head, key) for key in keys]), strict=True))
        try:
            obstore.delete(self._store, keys)
        except Exception as exc:
            error = translate(exc, self.locator(directory))
            return [error for _ in names]
        outcomes: list[bool | BaseException] = []
        for name in names:
            key = _key(directory, name)
            outcomes.append(existed.pop(key, None) is not None)
        return outcomes

    # -- locking ------------------------------------------------------------------

    def lock(self, directory: str, *, timeout: float | None = None) -> AbstractContextManager[None]:
        """The lease ``<directory>/.lock`` (see ``_s3_lease`` for what a stall past it costs)."""
        self._check()
        return self._leases.hold(_key(directory, LOCK_NAME), timeout)

    # -- requests (obstore's blocking calls; see _s3_client) --------------------------------

    def _check(self) -> None:
        # A missing bucket answers GET and HEAD like a missing key; one LIST tells them apart.
        if self._checked:
            return
        with self._check_mutex:
            if not self._checked:
                self._probe()
                self._checked = True

    def _probe(self) -> None:
        try:
            for _ in obstore.list(self._store, None, chunk_size=1):
                break
        except Exception as exc:
            raise translate(exc, self.locator("")) from exc

    def _get(self, key: str) -> Versioned | None:
        try:
            result = obstore.get(self._store, key)
            data = bytes(result.bytes())
        except FileNotFoundError as exc:
            if "NoSuchBucket" in str(exc):
                raise translate(exc, self._key_locator(key)) from exc
            return None
        except Exception as exc:
            raise translate(exc, self._key_locator(key)) from exc
        return Versioned(data, self._version(result.meta, key))

    def _tail(self, key: str, size: int) -> Tail | None:
        try:
            result = obstore.get(self._store, key, options={"range": {"suffix": size}})
            data = bytes(result.bytes())
        except FileNotFoundError:
            return None
        except Exception as exc:
            if not _range_ignored(exc):
                raise translate(exc, self._key_locator(key)) from exc
            # A server may answer a range it cannot satisfy (an empty object's suffix,
            # on moto and some S3 implementations) with the whole object or a 416; a
            # plain GET then reads the whole of what is, at most, a small object.
            whole = self._get(key)
            return None if whole is None else Tail(whole.data[-size:], len(whole.data))
        return Tail(data, result.meta["size"])

    def _head_meta(self, key: str) -> ObjectMeta | None:
        """One HEAD: the object's metadata, or ``None`` if there is no such object."""
        try:
            return obstore.head(self._store, key)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise translate(exc, self._key_locator(key)) from exc

    def _head(self, key: str) -> S3Version | None:
        meta = self._head_meta(key)
        return None if meta is None else self._version(meta, key)

    def _put(self, key: str, data: bytes, mode: PutMode) -> S3Version | None:
        """The new version, or ``None`` if a conditional ``mode`` did not hold."""
        try:
            result = obstore.put(self._store, key, data, mode=mode, use_multipart=False)
        except Exception as exc:
            if mode != "overwrite" and is_conflict(exc):
                return None
            raise translate(exc, self._key_locator(key)) from exc
        return self._version(result, key)

    def _version(self, meta: Mapping[str, Any], key: str) -> S3Version:
        e_tag = meta.get("e_tag")
        if not e_tag:
            raise StorageError("the server returned no ETag", path=self._key_locator(key), errno=errno.EIO)
        return S3Version(e_tag, meta.get("version"))


class _LeaseObjects:
    """The lease's three operations, on S3Storage's requests."""

    def __init__(self, storage: S3Storage) -> None:
        self._storage = storage

    def get(self, key: str) -> tuple[bytes, str] | None:
        found = self._storage._get(key)
        return None if found is None else (found.data, _tag(found.version))

    def create(self, key: str, data: bytes) -> str | None:
        version = self._storage._put(key, data, "create")
        return None if version is None else version.e_tag

    def replace(self, key: str, data: bytes, e_tag: str) -> str | None:
        version = self._storage._put(key, data, {"e_tag": e_tag})
        return None if version is None else version.e_tag


def _if_match(version: S3Version) -> PutMode:
    # obstore refuses a None version id; buckets without versioning have none.
    if version.version is None:
        return {"e_tag": version.e_tag}
    return {"e_tag": version.e_tag, "version": version.version}


def _tag(version: Version) -> str:
    assert isinstance(version, S3Version)
    return version.e_tag


def _range_ignored(exc: Exception) -> bool:
    """Whether a ranged GET failed because the server did not serve the range (200 or 416)."""
    text = str(exc)
    return "non-partial response" in text or "InvalidRange" in text or "416" in text


def _key(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory and name else directory or name


def _shared_prefix(names: Sequence[str]) -> str:
    """The longest string every name starts with (character by character, not by path)."""
    low, high = min(names), max(names)
    length = 0
    while length < min(len(low), len(high)) and low[length] == high[length]:
        length += 1
    return low[:length]


def _passed(relative: str, name: str) -> bool:
    """Whether a listing in key order at ``relative`` is past every key of ``name``
    (the object ``name`` and the keys below ``name/``)."""
    below = name + "/"
    return relative > below and not relative.startswith(below)


def _none() -> None:
    return None
