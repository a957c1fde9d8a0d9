"""The README is the front door: its examples run, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.local_paths import root_of

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


def _block(language: str) -> str:
    """The README's one fenced block of ``language`` (the git snippets are tested as shown)."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)
    assert len(blocks) == 1, f"the README shows one ```{language} block, not {len(blocks)}"
    return str(blocks[0])


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=60)
    return result.stdout


def test_readme_gitattributes_merge_logs_by_union(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitattributes").write_text(_block("gitattributes"))
    shown = _git(tmp_path, "check-attr", "merge", "text", "eol", "--", "a/messages.jsonl", "a/state.json")
    attributes = {}
    for line in shown.splitlines():  # "PATH: ATTRIBUTE: VALUE"
        path, attribute, value = line.split(": ")
        attributes[path, attribute] = value
    assert attributes == {
        ("a/messages.jsonl", "merge"): "union",
        ("a/messages.jsonl", "text"): "set",
        ("a/messages.jsonl", "eol"): "lf",
        ("a/state.json", "merge"): "unspecified",
        ("a/state.json", "text"): "set",
        ("a/state.json", "eol"): "lf",
    }


def test_readme_gitignore_keeps_the_store_internals_out_of_git(tmp_path: Path) -> None:
    from group_store import Store

    store = Store(tmp_path / "sessions")
    store.narrow("alice").save("state", {"turn": 1}, ttl=60)
    store.narrow("alice").save("state", {"turn": 2}, ttl=60)
    store.append("messages", [{"role": "user"}])
    (root_of(store) / ".state.json.0123456789abcdef.tmp").write_bytes(b"{")  # a crash's leftover
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text(_block("gitignore"))
    _git(tmp_path, "add", "-A")
    assert _git(tmp_path, "ls-files").split() == [
        ".gitignore",
        "sessions/.group_store",  # the format marker is the store's: archived with it
        "sessions/alice/state.json",
        "sessions/alice/state.meta.json",
        "sessions/messages.jsonl",
    ]


def test_the_two_commands_say_to_run_in_a_virtual_environment() -> None:
    section = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    before_the_commands = section.split("```sh", 1)[0]
    assert "python3 -m venv .venv" in before_the_commands
    assert ". .venv/bin/activate" in before_the_commands
