"""The README is the front door: its examples run, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import click
import pytest

import group_store
import group_store.storage
from group_store.cli import cli
from tests.local_paths import root_of

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)
# Code as the README shows it: fenced blocks and `inline spans` (a public name is written as code).
_FENCED = re.compile(r"```.*?```", flags=re.DOTALL)
README_CODE = "\n".join([*_FENCED.findall(README), *re.findall(r"`([^`\n]+)`", _FENCED.sub("", README))])


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


# -- what the README documents comes from the code ---------------------------------------

# Options every command has: the CLI section says so once instead of in every row.
EVERY_COMMAND_HAS = ("--help", "--json")


def _section(title: str) -> str:
    assert f"\n## {title}\n" in README, f"the README has no '## {title}' section"
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command of ``group`` with the words that invoke it (sub-groups walked)."""
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in sorted(group.commands.items()):
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


def _undocumented_options(command: click.Command, text: str) -> list[str]:
    """The options of ``command`` none of whose spellings appear in ``text``."""
    return [
        param.opts[-1]
        for param in command.params
        if isinstance(param, click.Option)
        and not set(param.opts) & set(EVERY_COMMAND_HAS)
        and not any(re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text) for opt in param.opts)
    ]


def _cli_gaps(group: click.Group, section: str) -> list[str]:
    """What ``section`` leaves undocumented of ``group``: a command without a line showing
    `` `group-store WORDS ...` ``, an option missing from its command's lines, an option of the group."""
    gaps = [f"the group's option {option}" for option in _undocumented_options(group, section)]
    for words, command in _commands(group):
        usage = f"`group-store {' '.join(words)} "
        rows = "\n".join(line for line in section.splitlines() if usage in line)
        if not rows:
            gaps.append(f"command {' '.join(words)!r}: no line shows {usage}...`")
            continue
        gaps += [f"command {' '.join(words)!r}: option {option}" for option in _undocumented_options(command, rows)]
    return gaps


def test_the_cli_section_documents_every_command_and_its_options() -> None:
    section = _section("Command line")
    claim = "every command has " + " and ".join(f"`{option}`" for option in EVERY_COMMAND_HAS)
    assert claim in section  # tests/test_cli.py checks that every command does
    gaps = _cli_gaps(cli, section)
    assert not gaps, "undocumented in README.md's 'Command line' section:\n" + "\n".join(gaps)


def test_the_command_check_fails_on_an_undocumented_command_or_option() -> None:
    @click.command()
    @click.option("--shiny", is_flag=True)
    @click.option("-q", "--quiet", is_flag=True)
    @click.option("--json", is_flag=True)
    def inner(shiny: bool, quiet: bool, json: bool) -> None:
        """A command the README does not know."""

    group = click.Group(commands={"outer": click.Group("outer", commands={"inner": inner})})
    group.params.append(click.Option(["--colour"], is_flag=True))
    assert [words for words, _ in _commands(group)] == [("outer",), ("outer", "inner")]
    assert _cli_gaps(group, "`group-store outerinner`") == [
        "the group's option --colour",
        "command 'outer': no line shows `group-store outer ...`",
        "command 'outer inner': no line shows `group-store outer inner ...`",
    ]
    # A sub-group is shown by its commands' lines; a near miss of an option's name is not the option.
    assert _cli_gaps(group, "`group-store --colour`\n`group-store outer inner --shiny-new -q`") == [
        "command 'outer inner': option --shiny"
    ]
    documented = "`group-store --colour`\n`group-store outer CMD`\n`group-store outer inner [--shiny] [--quiet]`"
    assert _cli_gaps(group, documented) == []


@pytest.mark.parametrize("module", [group_store, group_store.storage], ids=lambda module: module.__name__)
def test_every_public_name_appears_in_the_readme_as_code(module: ModuleType) -> None:
    names: list[str] = module.__all__
    missing = [name for name in names if not re.search(rf"(?<!\w){name}(?!\w)", README_CODE)]
    assert not missing, f"README.md never shows these names of {module.__name__}: {missing}"
