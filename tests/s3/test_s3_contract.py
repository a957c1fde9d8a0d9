"""The storage conformance suite (``group_store.testing.StorageContract``) on S3Storage.

Each test gets a fresh bucket on the session's moto server (``tests/s3/conftest.py``).
"""

from __future__ import annotations

import pytest

from group_store.storage import Storage
from group_store.storage._s3 import S3Storage
from group_store.testing import StorageContract


class TestS3Storage(StorageContract):
    # Every operation is a request to a server that serves one at a time.
    model_examples = 15

    @pytest.fixture
    def storage(self, s3: S3Storage) -> Storage:
        return s3
