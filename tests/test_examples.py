"""The example Table definitions of Genie's remaining tables run and give the expected results."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_approvals(tmp_path: Path) -> None:
    summary = load("approvals").main(tmp_path)
    assert summary == {
        "expired": 1,
        "thread-1": [("delete_file", "rejected"), ("send_email", "approved")],
        "pending": 0,
    }


def test_clarifications(tmp_path: Path) -> None:
    summary = load("clarifications").main(tmp_path)
    assert summary["answered"]["answer"] == "staging"
    assert summary["answered"]["status"] == "answered"
    assert summary["pending after restart"] == ["Should I notify the team?"]
    assert summary["expired at startup"] == ["Should I notify the team?"]
    assert summary["statuses"] == ["answered", "expired"]


def test_cron_tasks(tmp_path: Path) -> None:
    summary = load("cron_tasks").main(tmp_path)
    assert summary == {
        "runs": [["digest"], ["cleanup"], ["digest"]],
        "digest history": ["success", "success"],
        "failures": ["cleanup"],
    }


@pytest.mark.parametrize("name", ["approvals", "clarifications", "cron_tasks"])
def test_examples_run_as_scripts(tmp_path: Path, name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("{")
    assert list(tmp_path.iterdir())
