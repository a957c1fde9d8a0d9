"""Shared fixtures, and the ``backend`` parametrization (``local``, ``memory``, ``s3``).

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

``s3``: the suites in ``_S3_TOO`` (a subset, so the whole run stays fast: every S3
operation is a request to a server that answers one at a time) also run a third time,
with each path opened mapped the same way to an ``S3Storage`` on the session's moto
server (``s3_server``), one bucket per test and the path's place under pytest's base
temporary directory as the prefix. A test that the redirect cannot serve on S3 (it needs
``shared_between_processes`` false, counts descriptors, ...) is
``@pytest.mark.not_on_s3("why")``: its ``s3`` case is not generated. The ``s3`` case is
generated only where obstore and moto are installed (the ``s3`` extra and the test
requirements): elsewhere the suites run on local and memory as before.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from group_store.storage import MemoryStorage, _local
from group_store.testing import FakeClock

if TYPE_CHECKING:
    from group_store.storage._s3 import S3Storage

    from .s3.server import S3Server

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
# The subset of _BOTH_BACKENDS that also runs on s3 (measured: see _S3_TOO's users in the report).
_S3_TOO = (
    "test_store.py",
    "test_datastore.py",
    "test_table.py",
    "test_walk.py",
    "test_verify.py",
    "test_archive.py",
)
_S3_AVAILABLE = all(importlib.util.find_spec(name) is not None for name in ("obstore", "moto"))
_TESTS = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "local_only(reason): runs on the local backend only (POSIX files, processes, ...); reason required",
    )
    config.addinivalue_line(
        "markers",
        "not_on_s3(reason): its s3 backend case is not generated (needs local's or memory's semantics); reason needed",
    )


def _listed(path: Path, entries: tuple[str, ...]) -> bool:
    try:
        relative = path.relative_to(_TESTS).as_posix()
    except ValueError:
        return False
    return any(relative == entry or (entry.endswith("/") and relative.startswith(entry)) for entry in entries)


def _marker(metafunc: pytest.Metafunc, name: str) -> pytest.Mark | None:
    marker = metafunc.definition.get_closest_marker(name)
    if marker is not None and not (marker.args and isinstance(marker.args[0], str) and marker.args[0].strip()):
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.{name} needs a reason")
    return marker


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    local_only = _marker(metafunc, "local_only")
    not_on_s3 = _marker(metafunc, "not_on_s3")
    if "backend" not in metafunc.fixturenames:
        return
    path = metafunc.definition.path
    if local_only is None and _listed(path, _BOTH_BACKENDS):
        s3 = _S3_AVAILABLE and not_on_s3 is None and _listed(path, _S3_TOO)
        metafunc.parametrize("backend", ["local", "memory", *(["s3"] if s3 else [])], indirect=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 for the whole session, started on first use (after a
    canary that fails loudly unless it honours conditional PUTs) and stopped at the end."""
    from .s3.server import S3Server, check_conditional_writes

    server = S3Server()
    try:
        problems = check_conditional_writes(server)
        if problems:
            pytest.fail("the S3 test server does not honour conditional PUTs: " + "; ".join(problems), pytrace=False)
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``local``, ``memory`` or ``s3``: what the stores this test opens on a path are kept in."""
    name = str(getattr(request, "param", "local"))
    if name == "local":
        yield name
        return
    base = os.path.abspath(tmp_path_factory.getbasetemp())
    real = _local.LocalStorage
    storages: dict[str, MemoryStorage | S3Storage] = {}
    new = _memory_storage if name == "memory" else _s3_storages(request.getfixturevalue("s3_server"), base)

    def open_path(root: Path, *, file_mode: int, dir_mode: int) -> _local.LocalStorage | MemoryStorage | S3Storage:
        absolute = os.path.abspath(root)
        if os.path.commonpath([base, absolute]) != base:
            return real(root, file_mode=file_mode, dir_mode=dir_mode)
        if absolute not in storages:
            storages[absolute] = new(absolute)
        return storages[absolute]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_local, "LocalStorage", open_path)
        yield name


def _memory_storage(absolute: str) -> MemoryStorage:
    return MemoryStorage(absolute.lstrip("/"))


def _s3_storages(server: S3Server, base: str) -> Callable[[str], S3Storage]:
    """A factory of this test's S3Storages: one bucket (made on first use), a prefix per path."""
    from group_store.storage._s3 import S3Storage

    bucket: list[str] = []

    def storage(absolute: str) -> S3Storage:
        if not bucket:
            bucket.append(server.create_bucket())
        # The path's place under the base as the prefix: unlike memory's, a store opened
        # on a directory inside another's root sees that store's objects below it.
        prefix = os.path.relpath(absolute, base).replace(os.sep, "/")
        return S3Storage(f"s3://{bucket[0]}/{prefix}", storage_options=server.options())

    return storage


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


pytest_plugins = ["pytester"]
