"""The backend parametrization of tests/conftest.py (its guard on a store is in test_composition.py)."""

from __future__ import annotations

import pytest


def test_local_only_needs_a_reason(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("pytest_plugins = ['tests.conftest']")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.local_only
        def test_unexplained(backend):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*local_only needs a reason*"])
    assert result.ret != 0
