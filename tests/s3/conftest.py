"""A real S3-compatible server for the S3 tests: moto's, started here, on an ephemeral port.

Nothing is started by hand: the session fixture starts the server, runs the canary and
stops it at the end. Every test gets a fresh bucket.
"""

from __future__ import annotations

from collections.abc import Iterator

import obstore
import pytest
from obstore.exceptions import AlreadyExistsError, PreconditionError
from obstore.store import S3Store

from group_store.storage._s3 import S3Storage

from .server import S3Server


def _canary(server: S3Server) -> None:
    """Fail loudly unless the server honours If-None-Match and If-Match on PUT."""
    bucket = server.create_bucket()
    options = server.options()
    config = {key: value for key, value in options.items() if key != "allow_http"}
    store = S3Store(bucket, config=config, client_options={"allow_http": True})  # type: ignore[arg-type]
    first = obstore.put(store, "canary", b"1", mode="create")
    problems = []
    try:
        obstore.put(store, "canary", b"2", mode="create")
        problems.append("If-None-Match: * did not refuse an existing object")
    except AlreadyExistsError:
        pass
    try:
        obstore.put(store, "canary", b"3", mode={"e_tag": '"0123456789abcdef0123456789abcdef"'})
        problems.append("If-Match with a stale ETag did not refuse")
    except PreconditionError:
        pass
    obstore.put(store, "canary", b"4", mode={"e_tag": first["e_tag"]})
    if bytes(obstore.get(store, "canary").bytes()) != b"4" or problems:
        problems.append("the conditional PUT did not write")
    if problems:
        pytest.fail("the S3 test server does not honour conditional PUTs: " + "; ".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    try:
        _canary(server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket()


@pytest.fixture
def s3(s3_server: S3Server, s3_bucket: str) -> Iterator[S3Storage]:
    """A fresh S3Storage under a prefix of a fresh bucket (short lease, so lease tests stay fast)."""
    yield S3Storage(f"s3://{s3_bucket}/store", storage_options=s3_server.options(), lease=0.5)
    # A test that failed half-way must not leave faults injected for the next one.
    s3_server.throttle(0)
    s3_server.refuse_conditional(0)
