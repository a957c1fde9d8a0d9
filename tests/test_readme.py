"""The README is the front door: its examples run, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)


@pytest.mark.parametrize("code", PYTHON_BLOCKS, ids=[f"example-{i}" for i in range(len(PYTHON_BLOCKS))])
def test_python_examples_run(code: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    assert len(SHELL_BLOCKS) == 2
    quickstart, tests = (block.strip() for block in SHELL_BLOCKS)
    assert "examples/quickstart.py" in quickstart
    assert "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_quickstart_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "sweep removed 1 expired entry" in result.stdout
    assert (tmp_path / "store" / "session-123" / "alice" / "agent" / "state.json").exists()
    assert not (tmp_path / "store" / "session-123" / "weather-lisbon.json").exists()
