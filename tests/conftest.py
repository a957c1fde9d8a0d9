"""Shared fixtures, and the ``backend`` parametrization (``local``, ``memory``).

The suites named in ``_BOTH_BACKENDS`` run every test twice: once as written (``local``)
and once with every store the test opens on a path kept in a ``MemoryStorage``
(``memory``). The mechanism sits at the composition root: on ``memory``,
``group_store.storage._local.LocalStorage`` (the name ``open_storage`` imports when it
is given a path) is replaced by a factory that returns the ``MemoryStorage`` registered
for that path. This is faithful because every ``Store``, ``DataStore``, ``Table``,
tool, twin and plugin fixture opened on a path goes through ``open_storage``: the code
under test is unchanged and only the backend differs. One ``MemoryStorage`` per
absolute path per test, so two stores opened on one path share their files and locks
as two local stores on one directory do.

Only paths under pytest's base temporary directory (``tmp_path`` and friends, where
tests put their stores) are redirected. Anything the library opens elsewhere on its
own (the tar import's extraction directory, a local directory by construction) stays
local, as it is in production.

Not covered by the redirect: a store opened on a directory *inside* another store's
root shares nothing with it on ``memory`` (the two paths get unrelated storages); a
test that needs that, or that reads or writes the files under a store directly,
symlinks, fsync order, permissions, descriptors, subprocesses or SIGKILL, is
``@pytest.mark.local_only("why")``: its ``memory`` case is not generated (not skipped).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from group_store.storage import MemoryStorage, _local
from group_store.testing import FakeClock

# Module paths relative to tests/, and directories (ending in "/") whose every module runs on both.
_BOTH_BACKENDS = (
    "test_store.py",
    "test_datastore.py",
    "test_table.py",
    "test_expiry.py",
    "test_expiry_index.py",
    "test_update_functions.py",
    "test_sweep.py",
    "test_walk.py",
    "test_verify.py",
    "test_archive.py",
    "test_snapshot.py",
    "test_composition.py",
    "test_stateful.py",
    "repos/",
    "genie/",
    "integrations/",
)
_TESTS = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "local_only(reason): runs on the local backend only (POSIX files, processes, ...); reason required",
    )


def _runs_on_both(path: Path) -> bool:
    try:
        relative = path.relative_to(_TESTS).as_posix()
    except ValueError:
        return False
    return any(relative == entry or (entry.endswith("/") and relative.startswith(entry)) for entry in _BOTH_BACKENDS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("local_only")
    if marker is not None and not (marker.args and isinstance(marker.args[0], str) and marker.args[0].strip()):
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.local_only needs a reason")
    if "backend" not in metafunc.fixturenames:
        return
    if marker is None and _runs_on_both(metafunc.definition.path):
        metafunc.parametrize("backend", ["local", "memory"], indirect=True)


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``local`` or ``memory``: what the stores this test opens on a path are kept in."""
    name = str(getattr(request, "param", "local"))
    if name == "local":
        yield name
        return
    base = os.path.abspath(tmp_path_factory.getbasetemp())
    real = _local.LocalStorage
    storages: dict[str, MemoryStorage] = {}

    def open_path(root: Path, *, file_mode: int, dir_mode: int) -> _local.LocalStorage | MemoryStorage:
        absolute = os.path.abspath(root)
        if os.path.commonpath([base, absolute]) != base:
            return real(root, file_mode=file_mode, dir_mode=dir_mode)
        if absolute not in storages:
            storages[absolute] = MemoryStorage(absolute.lstrip("/"))
        return storages[absolute]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_local, "LocalStorage", open_path)
        yield name


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


pytest_plugins = ["pytester"]
