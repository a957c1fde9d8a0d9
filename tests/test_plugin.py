"""The pytest plugin, run through pytester: fixtures, snapshots, masking, seeding, unused snapshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# pytest-asyncio is in the test extra (CI installs it): a missing one fails loudly, never skips.
import pytest_asyncio  # noqa: F401


@pytest.fixture(autouse=True)
def _settle_pytest_asyncio_option(request: pytest.FixtureRequest) -> None:
    # pytest-asyncio warns in every run whose configuration leaves this option unset,
    # so each inner run here would add a warning to the outer run's summary.
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester").makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


SNAPSHOT_TEST = """
import re
import pytest

def test_session(store, store_snapshot):
    agent = store.narrow("alice", "agent")
    agent.save("state", {"step": STEP, "id": "a1b2", "created_at": "2026-11-22T10:00:00"})
    store.append("messages", [{"id": "m-1", "text": "hi"}, {"id": "m-2", "text": "bye"}])
    store_snapshot.assert_match(store, mask=MASK)
"""


def write_test(pytester: pytest.Pytester, step: int = 1, mask: str = "()") -> None:
    pytester.makepyfile(test_snap=SNAPSHOT_TEST.replace("STEP", str(step)).replace("MASK", mask))


def golden(pytester: pytest.Pytester) -> Path:
    return pytester.path / "__store_snapshots__" / "test_snap" / "test_session"


def test_update_creates_then_a_plain_run_passes(pytester: pytest.Pytester) -> None:
    write_test(pytester)
    pytester.runpytest("--store-snapshot-update").assert_outcomes(passed=1)
    assert sorted(p.relative_to(golden(pytester)).as_posix() for p in golden(pytester).rglob("*.json*")) == [
        "alice/agent/state.json",
        "messages.jsonl",
    ]
    assert (golden(pytester) / "messages.jsonl").read_text() == (
        '{"id":"m-1","text":"hi"}\n{"id":"m-2","text":"bye"}\n'
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_failing_snapshot_shows_a_unified_diff(pytester: pytest.Pytester) -> None:
    write_test(pytester)
    pytester.runpytest("--store-snapshot-update").assert_outcomes(passed=1)
    write_test(pytester, step=2)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*store does not match snapshot*",
            "*--- golden/alice/agent/state.json*",
            "*+++ store/alice/agent/state.json*",
            '*-  "step": 1,*',
            '*+  "step": 2,*',
        ]
    )


def test_missing_and_unexpected_files_are_listed(pytester: pytest.Pytester) -> None:
    write_test(pytester)
    pytester.runpytest("--store-snapshot-update").assert_outcomes(passed=1)
    (golden(pytester) / "messages.jsonl").rename(golden(pytester) / "old.jsonl")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*missing from the store*", "*old.jsonl*", "*unexpected in the store*", "*messages.jsonl*"]
    )


def test_update_refreshes_and_prunes_stale_files(pytester: pytest.Pytester) -> None:
    write_test(pytester)
    pytester.runpytest("--store-snapshot-update").assert_outcomes(passed=1)
    stale = golden(pytester) / "bob" / "gone.json"
    stale.parent.mkdir()
    stale.write_text("{}\n")
    write_test(pytester, step=5)
    pytester.runpytest("--store-snapshot-update").assert_outcomes(passed=1)
    assert not stale.exists()
    assert not stale.parent.exists()
    assert '"step": 5' in (golden(pytester) / "alice" / "agent" / "state.json").read_text()


def test_a_first_run_says_no_snapshot_yet_and_never_writes(pytester: pytest.Pytester) -> None:
    write_test(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no snapshot yet: run pytest --store-snapshot-update to record*test_session*"])
    result.stdout.no_fnmatch_line("*unexpected in the store*")
    assert not (pytester.path / "__store_snapshots__").exists()


@pytest.mark.parametrize(
    "mask",
    [
        '["$.created_at", "$[*].id", "$.id"]',
        '[re.compile(r"2026-[0-9T:-]+"), re.compile(r"\\"(a1b2|m-[0-9])\\"")]',
        "lambda v: {k: ('<masked>' if k in ('id', 'created_at') else x) for k, x in v.items()}",
    ],
    ids=["json-path", "regex", "callable"],
)
def test_masks_hide_volatile_values(pytester: pytest.Pytester, mask: str) -> None:
    write_test(pytester, mask=mask)
    pytester.runpytest("--store-snapshot-update").assert_outcomes(passed=1)
    state = (golden(pytester) / "alice" / "agent" / "state.json").read_text()
    assert "a1b2" not in state
    assert "2026-11-22" not in state
    assert "<masked>" in state
    assert "m-1" not in (golden(pytester) / "messages.jsonl").read_text()
    pytester.runpytest().assert_outcomes(passed=1)


def test_sidecars_only_when_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_meta="""
        import re
        def test_ttl(store, store_snapshot):
            store.save("cache", {"v": 1}, ttl=60)
            store_snapshot.assert_match(store, name="plain")
            store_snapshot.assert_match(store, name="meta", include_metadata=True, mask=re.compile(r"[0-9]{4}-[^\\"]+"))
        """
    )
    pytester.runpytest("--store-snapshot-update").assert_outcomes(passed=1)
    base = pytester.path / "__store_snapshots__" / "test_meta" / "test_ttl"
    assert sorted(p.name for p in (base / "plain").iterdir()) == ["cache.json"]
    assert sorted(p.name for p in (base / "meta").iterdir()) == ["cache.json", "cache.meta.json"]


def test_store_fixture_seeds_from_a_committed_directory(pytester: pytest.Pytester) -> None:
    recorded = pytester.path / "recorded" / "alice"
    recorded.mkdir(parents=True)
    (recorded / "agent.json").write_text('{"step": 3}\n')
    pytester.makepyfile(
        test_seed="""
        def test_seeded(store_fixture):
            store = store_fixture("recorded")
            assert store.narrow("alice").load("agent") == {"step": 3}
            store.narrow("alice").save("agent", {"step": 4})
            store.save("new", 1)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    assert (recorded / "agent.json").read_text() == '{"step": 3}\n'
    assert sorted(p.name for p in recorded.parent.rglob("*")) == ["agent.json", "alice"]


def test_data_store_fixture_runs_on_both_backends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_async="""
        import pytest

        @pytest.fixture(params=["asyncio", "trio"])
        def anyio_backend(request):
            return request.param

        @pytest.mark.anyio
        async def test_queued_writes_land(data_store, store, anyio_backend):
            data_store.save("k", {"backend": anyio_backend})
            assert await data_store.load("k") == {"backend": anyio_backend}
            await data_store.flush()
            assert store.load("k") == {"backend": anyio_backend}

        @pytest.mark.anyio
        async def test_snapshot_flushes_a_data_store(data_store, store_snapshot):
            data_store.save("k", 1)
            store_snapshot.assert_match(data_store)
        """
    )
    result = pytester.runpytest("--store-snapshot-update")
    result.assert_outcomes(passed=4)
    assert (pytester.path / "__store_snapshots__" / "test_async").is_dir()


def test_the_plugin_is_registered_by_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--store-snapshot-update*"])


TABLE_TEST = """
from group_store import Table

def test_tasks(store, store_snapshot):
    tasks = Table(store, "tasks", fields=("project", "task_id", "title"), key=("project", "task_id"))
    tasks.upsert({"project": "apollo", "task_id": "t1", "title": "TITLE"})
    store_snapshot.assert_match(store, mask=["$[*].created_at", "$[*].updated_at"])
"""


def test_table_snapshots_mask_the_tables_times(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tables=TABLE_TEST.replace("TITLE", "Land"))
    pytester.runpytest("--store-snapshot-update").assert_outcomes(passed=1)
    recorded = pytester.path / "__store_snapshots__" / "test_tables" / "test_tasks" / "tasks" / "apollo"
    assert '"created_at": "<masked>"' in (recorded / "records.json").read_text()
    pytester.runpytest().assert_outcomes(passed=1)  # a later run, later times: still equal
    pytester.makepyfile(test_tables=TABLE_TEST.replace("TITLE", "Launch"))
    pytester.runpytest().assert_outcomes(failed=1)


METADATA_TEST = """
import pytest

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param

def test_clocked(store, store_clock, store_snapshot):
    store.save("cache", {"v": 1}, ttl=60)
    store_snapshot.assert_match(store, include_metadata=True)

def test_masked(store, store_snapshot):
    store.save("cache", {"v": 1}, ttl=60)
    store_snapshot.assert_match(store, include_metadata=True, mask=["$.expires_at.*"])

@pytest.mark.anyio
async def test_async_clocked(data_store, store_clock, store_snapshot):
    data_store.save("cache", {"v": 1}, ttl=60)
    assert (await data_store.expires_at("cache")).timestamp() == store_clock() + 60
    store_snapshot.assert_match(data_store, include_metadata=True)
"""


def test_metadata_snapshots_pass_on_a_later_run_with_store_clock_or_a_sidecar_mask(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_meta=METADATA_TEST)
    pytester.runpytest("--store-snapshot-update").assert_outcomes(passed=4)
    base = pytester.path / "__store_snapshots__" / "test_meta"
    assert '"2027-01-15T08:01:00+00:00"' in (base / "test_clocked" / "cache.meta.json").read_text()
    assert '"<masked>"' in (base / "test_masked" / "cache.meta.json").read_text()
    # A later run: other wall-clock times, other sidecar bytes on disk; the snapshots still hold.
    pytester.runpytest("-W", "error::UserWarning").assert_outcomes(passed=4)


UNUSED_TEST = """
def test_a(store, store_snapshot):
    store.save("a", 1)
    store_snapshot.assert_match(store)

def test_SECOND(store, store_snapshot):
    store.save("b", 1)
    store_snapshot.assert_match(store)

def test_named(store, store_snapshot):
    FAIL
    store.save("n", 1)
    store_snapshot.assert_match(store, name="one")
    NAMED_TWO
"""


def write_unused_test(pytester: pytest.Pytester, second: str, named_two: bool, fail: bool = False) -> None:
    source = UNUSED_TEST.replace("SECOND", second).replace("FAIL", "assert False" if fail else "pass")
    two = 'store_snapshot.assert_match(store, name="two")' if named_two else "pass"
    pytester.makepyfile(test_unused=source.replace("NAMED_TWO", two))


def test_unused_snapshots_are_reported_and_removed_only_by_a_full_update_run(pytester: pytest.Pytester) -> None:
    write_unused_test(pytester, second="b", named_two=True)
    pytester.runpytest("--store-snapshot-update").assert_outcomes(passed=3)
    base = pytester.path / "__store_snapshots__" / "test_unused"
    assert sorted(p.name for p in base.iterdir()) == ["test_a", "test_b", "test_named"]

    write_unused_test(pytester, second="c", named_two=False)  # test_b renamed, name="two" dropped
    for partial in (["-k", "test_a or test_c"], ["test_unused.py::test_a", "test_unused.py::test_c"]):
        result = pytester.runpytest("--store-snapshot-update", *partial)
        result.assert_outcomes(passed=2)
        result.stdout.no_fnmatch_line("*unused snapshot*")
        assert (base / "test_b").is_dir()
        assert (base / "test_named" / "two").is_dir()

    result = pytester.runpytest()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*group_store snapshots*",
            "2 unused snapshot(s), which no collected test asserts (run with --store-snapshot-update to remove them):",
            "  __store_snapshots__/test_unused/test_b",
            "  __store_snapshots__/test_unused/test_named/two",
        ]
    )
    assert (base / "test_b").is_dir()

    result = pytester.runpytest("--store-snapshot-update")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["removed 2 unused snapshot(s):", "  __store_snapshots__/test_unused/test_b"])
    assert sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_dir()) == [
        "test_a",
        "test_c",
        "test_named",
        "test_named/one",
    ]
    pytester.runpytest().stdout.no_fnmatch_line("*unused snapshot*")

    # A test that fails before its assertions keeps its snapshots.
    write_unused_test(pytester, second="c", named_two=False, fail=True)
    result = pytester.runpytest("--store-snapshot-update")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.no_fnmatch_line("*unused snapshot*")
    assert (base / "test_named" / "one" / "n.json").is_file()


DATA_STORE_TEST = """
import pytest

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param

@pytest.mark.MARK
async def test_data_store(data_store, store):
    data_store.save("k", {"v": 1}, ttl=60)
    assert await data_store.load("k") == {"v": 1}
    await data_store.flush()
    assert store.load("k") == {"v": 1}
"""


@pytest.mark.parametrize(
    ("mark", "options", "passed"),
    [
        ("anyio", ["-p", "no:asyncio"], 2),
        ("anyio", [], 2),
        ("asyncio", [], 1),
        ("asyncio", ["-o", "asyncio_mode=auto"], 1),
    ],
    ids=["anyio", "anyio-beside-pytest-asyncio", "pytest-asyncio-strict", "pytest-asyncio-auto"],
)
def test_data_store_works_without_warnings_under_anyio_and_pytest_asyncio(
    pytester: pytest.Pytester, mark: str, options: list[str], passed: int
) -> None:
    if "no:asyncio" in options:
        (pytester.path / "tox.ini").unlink()  # without pytest-asyncio its option is unknown: a warning
    pytester.makepyfile(test_ds=DATA_STORE_TEST.replace("MARK", mark))
    pytester.runpytest("-W", "error", *options).assert_outcomes(passed=passed)


def test_importing_the_plugin_imports_no_store_module() -> None:
    # pytest loads the plugin in every run of every user: the package's names are lazy
    # (PEP 562), so importing it must load group_store's __init__ and the plugin, nothing more.
    code = (
        "import sys; before = set(sys.modules); import group_store.pytest_plugin; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith('group_store')))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert output.stdout.strip() == "['group_store', 'group_store.pytest_plugin']"


SYS_MODULES_CONFTEST = """
import sys

def pytest_unconfigure(config):
    loaded = sorted(m for m in sys.modules if m.startswith("group_store") and m != "group_store.pytest_plugin")
    (config.rootpath / "loaded.txt").write_text(" ".join(loaded))
"""


def test_a_run_that_uses_no_fixture_imports_no_snapshot_module(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SYS_MODULES_CONFTEST)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    assert (pytester.path / "loaded.txt").read_text() == "group_store"
    pytester.makepyfile(test_plain="def test_plain(store_snapshot, store_clock):\n    assert True\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    assert {"group_store.tools._snapshot", "group_store.testing"} <= set(
        (pytester.path / "loaded.txt").read_text().split()
    )
