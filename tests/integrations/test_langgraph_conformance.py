"""LangGraph's own checkpointer conformance suite (langgraph-checkpoint-conformance) against GroupStoreSaver.

Every capability, base and extended, on a ``Store`` and on a ``DataStore``;
the suite only awaits the saver's methods, so it runs on asyncio and trio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The langgraph extra and test peers are part of what CI installs: a missing one fails loudly, never skips.
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES, Capability

from group_store import DataStore, Store
from group_store.integrations.langgraph import GroupStoreSaver

CAPABILITIES = sorted(capability.value for capability in ALL_CAPABILITIES)


def _registered(kind: str, root: Path):
    counter = iter(range(1_000_000))

    async def factory() -> AsyncIterator[GroupStoreSaver]:
        directory = root / f"saver-{next(counter)}"  # a fresh directory per capability suite
        if kind == "store":
            yield GroupStoreSaver(Store(directory))
        else:
            async with DataStore(directory) as data_store:
                yield GroupStoreSaver(data_store)

    return checkpointer_test(name=f"GroupStoreSaver on {kind}")(factory)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["store", "data_store"])
async def test_conformance_full_suite_passes_all_81(kind: str, tmp_path: Path) -> None:
    report = await validate(_registered(kind, tmp_path))
    assert {Capability(name) for name in report.results} == set(Capability)
    for capability in CAPABILITIES:
        result = report.results[capability]
        assert result.detected, f"{capability} is not implemented"
        assert result.tests_failed == 0, f"{capability}: " + "\n".join(result.failures)
    assert report.passed_all()
    passed = sum(result.tests_passed for result in report.results.values())
    assert passed == 81, f"{passed} conformance tests passed (0.0.2 has 81)"
