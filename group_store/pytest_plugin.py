"""group_store's pytest plugin, registered through the ``pytest11`` entry point.

Fixtures: ``store`` (a sync Store on a fresh temporary directory), ``data_store``
(an async DataStore there, closed at teardown, on the test's anyio backend),
``store_snapshot`` (golden-directory snapshots) and ``store_fixture`` (seed the
temporary store from a committed directory). Option: ``--store-snapshot-update``.

Importing this module stays cheap (pytest loads it in every run of an
environment where group-store is installed): group_store itself is imported
only when a fixture is used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from group_store import DataStore, Store
    from group_store._snapshot import StoreSnapshot

SNAPSHOT_DIRECTORY = "__store_snapshots__"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("group_store", "group_store snapshots")
    group.addoption(
        "--store-snapshot-update",
        action="store_true",
        default=False,
        help="Write or refresh golden store snapshots (and remove stale files) instead of comparing.",
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A sync ``Store`` on a fresh temporary directory (``tmp_path / "store"``)."""
    from group_store import Store

    return Store(tmp_path / "store")


@pytest.fixture
async def data_store(tmp_path: Path, anyio_backend: object) -> AsyncIterator[DataStore]:
    """An async ``DataStore`` on the same directory as ``store``; flushed and closed at teardown."""
    from group_store import DataStore

    async with DataStore(tmp_path / "store") as data_store:
        yield data_store


@pytest.fixture
def store_snapshot(request: pytest.FixtureRequest) -> StoreSnapshot:
    """Compare stores with ``__store_snapshots__/<test module>/<test name>/`` beside the test file."""
    from group_store._keys import encode_segment
    from group_store._snapshot import StoreSnapshot

    module = request.path.stem
    directory = request.path.parent / SNAPSHOT_DIRECTORY / module / encode_segment(request.node.name)
    return StoreSnapshot(directory, bool(request.config.getoption("--store-snapshot-update")))


@pytest.fixture
def store_fixture(request: pytest.FixtureRequest, store: Store) -> Callable[[str | os.PathLike[str]], Store]:
    """``store_fixture("path/to/dir")`` copies a committed store directory (relative to the
    test file) into the temporary store and returns the ``store``; the source is never changed."""

    def seed(source: str | os.PathLike[str]) -> Store:
        origin = request.path.parent / source
        if not origin.is_dir():
            raise FileNotFoundError(f"store_fixture: no directory at {origin}")
        shutil.copytree(
            origin,
            store.root_path,
            symlinks=True,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".lock", ".*.tmp"),
        )
        return store

    return seed
