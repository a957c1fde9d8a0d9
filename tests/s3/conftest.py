"""Fixtures of the S3 tests: a fresh bucket, and an S3Storage under a prefix of it.

The server itself (``s3_server``) is the session fixture of ``tests/conftest.py``, which
the ``s3`` backend of the store suites shares.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from group_store.storage._s3 import S3Storage

from .server import S3Server


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
