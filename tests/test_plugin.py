"""The pytest plugin, run through pytester: fixtures, snapshots, masking, seeding."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_a_reading_run_never_writes(pytester: pytest.Pytester) -> None:
    write_test(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unexpected in the store*"])
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
