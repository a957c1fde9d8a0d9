"""The storage conformance suite (``group_store.testing.StorageContract``) on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from group_store.storage import LocalStorage, MemoryStorage, Storage
from group_store.testing import StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Storage:
        return MemoryStorage()


# TEMPORARY (remove at merge): LocalStorage on main still has the old protocol; the seam
# branch ports it to the contract, and then every test here must pass.
@pytest.mark.xfail(strict=False, reason="ported by the seam branch")
class TestLocalStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        return LocalStorage(tmp_path)  # type: ignore[return-value]  # TEMPORARY: see the mark
