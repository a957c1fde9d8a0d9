"""The storage conformance suite (``group_store.testing.StorageContract``) on every backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from group_store.storage import LocalStorage, MemoryStorage, Storage
from group_store.testing import StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Storage:
        return MemoryStorage()


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        return LocalStorage(tmp_path)


def test_importing_group_store_testing_loads_neither_pytest_nor_the_suite() -> None:
    # FakeClock users import group_store.testing outside pytest too: the suite is lazy.
    code = (
        "import sys; import group_store.testing; from group_store.testing import FakeClock; "
        "print(sorted(m for m in sys.modules if m.startswith(('group_store', 'pytest', 'hypothesis'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert output.stdout.strip() == "['group_store', 'group_store.testing', 'group_store.testing._clock']"
