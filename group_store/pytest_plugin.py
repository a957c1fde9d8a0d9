"""group_store's pytest plugin, registered through the ``pytest11`` entry point.

Fixtures: ``store`` (a sync Store on a fresh temporary directory), ``data_store``
(an async DataStore there, closed at teardown, under any async test plugin),
``store_clock`` (a FakeClock that both use when a test requests it),
``store_snapshot`` (golden-directory snapshots) and ``store_fixture`` (seed the
temporary store from a committed directory). Option: ``--store-snapshot-update``.
At the end of a run the terminal summary lists golden directories that no
collected test uses (and ``--store-snapshot-update`` removes them).

Importing this module stays cheap (pytest loads it in every run of an
environment where group-store is installed): group_store itself is imported
only when a fixture is used, or at the end of a run that collected a module
with a ``__store_snapshots__/<module>/`` directory beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import os

    from group_store import DataStore, Store
    from group_store.testing import FakeClock, StoreSnapshot

SNAPSHOT_DIRECTORY = "__store_snapshots__"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("group_store", "group_store snapshots")
    group.addoption(
        "--store-snapshot-update",
        action="store_true",
        default=False,
        help="Write or refresh golden store snapshots, remove stale files and unused snapshot directories.",
    )


class SnapshotSession:
    """What one run tells about golden directories: which tests exist, which passed, what they asserted.

    Registered as a plugin object for the run (its methods are pytest hooks),
    so an in-process run (pytester) has its own. A test's golden directory
    ``__store_snapshots__/<module>/<test>/`` is unused when the run collected
    every test of that module (nothing deselected by ``-k``/``-m``/``--lf``/
    ``--deselect``, no ``file.py::test`` argument, no collection error) and none
    of them has that name; inside the directory of a test that passed, the
    snapshots it no longer asserts (an old ``name=``) are unused too. A test
    that failed, was skipped or did not run keeps everything: it may not have
    reached its assertions.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.update = bool(config.getoption("--store-snapshot-update"))
        self.items: list[pytest.Item] | None = None
        self.partial: set[Path] = set()
        self.collection_failed = False
        self.passed: set[str] = set()
        self.unclean: set[str] = set()
        self.used: dict[str, set[str]] = {}
        self.unused: list[Path] = []
        for argument in config.args:
            if "::" in argument:
                self.partial.add((config.invocation_params.dir / argument.split("::")[0]).resolve())

    def record_use(self, nodeid: str, name: str) -> None:
        self.used.setdefault(nodeid, set()).add(name)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_failed = True

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.partial.update(item.path.resolve() for item in items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed or report.skipped:
            self.unclean.add(report.nodeid)
        elif report.when == "call":
            self.passed.add(report.nodeid)

    def pytest_sessionfinish(self) -> None:
        # Under xdist each worker sees only its share of the run: leave the decision to none of them.
        if self.items is None or self.collection_failed or hasattr(self.config, "workerinput"):
            return
        modules: dict[Path, list[pytest.Item]] = {}
        for item in self.items:
            modules.setdefault(item.path.resolve(), []).append(item)
        for module, items in sorted(modules.items()):
            directory = module.parent / SNAPSHOT_DIRECTORY / module.stem
            if module in self.partial or not directory.is_dir():
                continue
            # Only here, for a module that has snapshots, is group_store imported.
            from group_store.testing import remove_snapshot, unused_snapshots

            tests: dict[str, set[str] | None] = {}
            for item in items:
                # Tests of one name in two classes share a directory: it keeps what either may use.
                name = snapshot_directory_name(item.name)
                clean = item.nodeid in self.passed and item.nodeid not in self.unclean
                used = tests.get(name, set())
                tests[name] = None if not clean or used is None else used | self.used.get(item.nodeid, set())
            found = unused_snapshots(directory, tests)
            if self.update:
                for path in found:
                    remove_snapshot(path)
            self.unused.extend(found)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.unused:
            return
        terminalreporter.write_sep("-", "group_store snapshots")
        if self.update:
            terminalreporter.write_line(f"removed {len(self.unused)} unused snapshot(s):")
        else:
            terminalreporter.write_line(
                f"{len(self.unused)} unused snapshot(s), which no collected test asserts "
                "(run with --store-snapshot-update to remove them):"
            )
        root = self.config.rootpath
        for path in self.unused:
            terminalreporter.write_line(f"  {path.relative_to(root) if path.is_relative_to(root) else path}")


def snapshot_directory_name(name: str) -> str:
    """The directory of a test's snapshots under ``__store_snapshots__/<module>/``."""
    from group_store.testing import snapshot_directory_name as directory_name

    return directory_name(name)


_SESSION = pytest.StashKey[SnapshotSession]()


def pytest_configure(config: pytest.Config) -> None:
    session = SnapshotSession(config)
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "group_store_snapshots")


def _clock(request: pytest.FixtureRequest) -> Callable[[], float] | None:
    # A test that asks for store_clock (directly, through a fixture, or autouse in a
    # conftest) gets it in store and data_store; any other keeps the wall clock.
    if "store_clock" in request.fixturenames:
        clock: FakeClock = request.getfixturevalue("store_clock")
        return clock
    return None


@pytest.fixture
def store_clock() -> FakeClock:
    """A ``FakeClock`` (starting at 1,800,000,000, 2027-01-15T08:00:00Z) for ``store`` and ``data_store``.

    Requesting it makes both fixtures use it, so TTL tests never sleep and
    expiry times (``include_metadata=True`` snapshots, table times) are the same
    on every run. Override it to start elsewhere; make it autouse in a
    conftest.py to give every test's store a fake clock.
    """
    from group_store.testing import FakeClock

    return FakeClock()


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A sync ``Store`` on a fresh temporary directory (``tmp_path / "store"``), on ``store_clock`` if requested."""
    from group_store import Store

    clock = _clock(request)
    return Store(tmp_path / "store") if clock is None else Store(tmp_path / "store", clock=clock)


@pytest.fixture
def data_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataStore]:
    """An async ``DataStore`` on the same directory as ``store``; flushed and closed at teardown.

    A plain (sync) fixture: a DataStore binds to no event loop, so the one made
    here serves the test under anyio's plugin (asyncio or trio), pytest-asyncio
    (strict or auto mode) or any other, and no plugin has to run an async
    fixture. Teardown waits for every queued write and raises the first that
    failed.
    """
    from group_store import DataStore

    clock = _clock(request)
    path = tmp_path / "store"
    data_store = DataStore(path) if clock is None else DataStore(path, clock=clock)
    yield data_store
    # What aclose() does, without an event loop: none runs during a sync teardown.
    data_store._writer.close()
    data_store._raise_failures()


@pytest.fixture
def store_snapshot(request: pytest.FixtureRequest) -> StoreSnapshot:
    """Compare stores with ``__store_snapshots__/<test module>/<test name>/`` beside the test file."""
    from group_store.testing import StoreSnapshot

    module = request.path.stem
    directory = request.path.parent / SNAPSHOT_DIRECTORY / module / snapshot_directory_name(request.node.name)
    session = request.config.stash[_SESSION]
    nodeid = request.node.nodeid
    return StoreSnapshot(directory, session.update, on_use=lambda name: session.record_use(nodeid, name))


@pytest.fixture
def store_fixture(request: pytest.FixtureRequest, store: Store) -> Callable[[str | os.PathLike[str]], Store]:
    """``store_fixture("path/to/dir")`` copies a committed store directory (relative to the
    test file) into the temporary store and returns the ``store``; the source is never changed.

    Every regular file is written through the store's storage (lock files and temporary
    files are left out; symlinks and other special files are not copied)."""

    def seed(source: str | os.PathLike[str]) -> Store:
        origin = request.path.parent / source
        if not origin.is_dir():
            raise FileNotFoundError(f"store_fixture: no directory at {origin}")
        seed_store(store, origin)
        return store

    return seed


def _left_out(name: str) -> bool:
    # As copytree's ignore_patterns(".lock", ".*.tmp") did: the lock and temporary files.
    return name == ".lock" or (name.startswith(".") and name.endswith(".tmp"))


def seed_store(store: Store, origin: Path) -> None:
    """Write every regular file under the local directory ``origin`` into ``store`` (a
    store directory on disk, so its relative paths are the store's own names)."""
    pending = [origin]
    while pending:
        directory = pending.pop()
        for path in sorted(directory.iterdir()):
            if path.is_symlink():
                continue
            if path.is_dir():
                pending.append(path)
            elif (
                path.is_file()
                and path.name != ".lock"
                and not (path.name.startswith(".") and path.name.endswith(".tmp"))
            ):
                relative = path.parent.relative_to(origin).as_posix()
                store.storage.write("" if relative == "." else relative, path.name, path.read_bytes(), durable=False)
