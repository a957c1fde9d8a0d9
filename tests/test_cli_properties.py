"""Property: no input makes the command line print a traceback (issue 15, item 3).

Every command of the click group (the list is read from the group, so a new
command is covered without editing this file) gets random trees, random archive
bytes, random words and random option values, in-process through CliRunner. The
outcome is always one of the documented ones: exit 0, 1 or 2; every stderr line
is the command line's own (``group-store: error|skipped|warning: ...``), an
error is exactly one line; under ``--json`` stdout is empty or one JSON value,
and an exit 2 prints ``{"error": {...}}``.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path

import click
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from group_store import Store
from group_store._format.expiry import encode_sidecar
from group_store.cli import cli


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    """Every command of ``group`` that runs something, by the words that invoke it (sub-groups walked)."""
    leaves: dict[tuple[str, ...], click.Command] = {}
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            leaves.update(_leaf_commands(command, (*prefix, name)))
        else:
            leaves[(*prefix, name)] = command
    return leaves


COMMANDS = _leaf_commands(cli)
LINE_PREFIXES = ("group-store: error: ", "group-store: skipped: ", "group-store: warning: ")

# Names the store gives meaning to, beside arbitrary ones (never "/", "." or "..": everything stays in the tree).
_NAMES = st.sampled_from(
    [
        *["a", "b", "A", "x.json", "x.jsonl", "x.meta.json", "x.key", ".key", ".expiry.jsonl", ".lock", "é", "a b"],
        *[".x.json.0123456789abcdef.tmp", "~~", "_x", "\udcff", "x" * 180 + "~~0d4e2ca9e9cbced7a7a5380eb29e1a37"],
    ]
) | st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=8).filter(
    lambda name: name not in (".", "..")
)
_CONTENTS = st.binary(max_size=48) | st.sampled_from(
    [b"{}", b'{"a": 1}\n', b"[1]\n", b'{"a": 1, "a": 2}', b"1\n2\n{", b"x\n", encode_sidecar({"0" * 64: 1.0})]
)
# (path parts, file bytes) or (path parts, None) for a directory.
_TREE = st.lists(st.tuples(st.lists(_NAMES, min_size=1, max_size=3), _CONTENTS | st.none()), max_size=8)
_WORDS = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), max_size=6).filter(lambda w: ".." not in w)
_NUMBERS = st.sampled_from(["0", "1", "3", "60", "-1", "1e400", "nan", "x"])
_OPTION_VALUES = _WORDS | st.sampled_from(
    ["-1", "0", "3", "1e400", "nan", '{"a": 1}', "[1, 2]", "{oops", "2100-01-01T00:00:00Z", "2100-01-01"]
)


def _build(root: Path, tree: list[tuple[list[str], bytes | None]]) -> list[str]:
    """A store at ``root`` (a few entries written by the library, then ``tree`` over it); its likely keys."""
    store = Store(root)
    store.save("a", {"n": 1})
    store.save("c", [1], ttl=3600)
    store.narrow("b").append("log", [1, 2])
    for parts, content in tree:
        path = root.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if content is None:
                path.mkdir(exist_ok=True)
            else:
                path.write_bytes(content)
        except OSError:
            continue  # a file where a directory was asked for, or the reverse: keep what was made
    return ["a", "b", "c", "log", *(part.partition(".")[0] or part for parts, _ in tree for part in parts)]


def _tar(path: Path, tree: list[tuple[list[str], bytes | None]], escape: bool) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for parts, content in tree:
            data = content or b""
            info = tarfile.TarInfo("/".join(["..", *parts] if escape else parts))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@st.composite
def _arguments(draw: st.DrawFn, command: click.Command, paths: list[str], keys: list[str]) -> list[str]:
    """Random arguments and options for ``command``, read from its click parameters;
    biased towards the store and the keys it holds, so commands get past their checks."""
    arguments: list[str] = []
    options: list[str] = []
    known = st.sampled_from(keys)
    for param in command.params:
        if isinstance(param, click.Argument):
            if param.nargs == -1:
                key = st.one_of(known, known, _NAMES, _WORDS)
                arguments += draw(st.one_of(st.lists(key, min_size=1, max_size=3), st.just([])))
            else:
                first = not arguments  # a STORE or SOURCE, most often the store
                likely = [paths[0]] * 4 + paths if first else paths
                arguments.append(draw(st.one_of(st.sampled_from(likely), st.sampled_from(likely), _WORDS)))
        elif isinstance(param, click.Option) and param.opts != ["--json"] and draw(st.booleans()):
            options.append(param.opts[0])
            if not param.is_flag:
                numeric = isinstance(param.type, click.types._NumberParamTypeBase)
                options.append(draw(st.one_of(_NUMBERS if numeric else _OPTION_VALUES, st.sampled_from(paths))))
    # Options before or after the arguments, in any order among themselves.
    options = list(draw(st.permutations(options)))
    words = options + arguments if draw(st.booleans()) else arguments + options
    return words


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), command=st.sampled_from(sorted(COMMANDS)), tree=_TREE, garbage=st.binary(max_size=200))
def test_no_input_makes_any_command_print_a_traceback(
    data: st.DataObject, command: tuple[str, ...], tree: list[tuple[list[str], bytes | None]], garbage: bytes
) -> None:
    as_json = data.draw(st.booleans(), label="--json")
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        keys = _build(base / "store", tree)
        header = data.draw(st.sampled_from([b"", b'{"group_store_archive": 1}\n']), label="jsonl header")
        (base / "garbage.jsonl").write_bytes(header + garbage)
        (base / "garbage.tar.gz").write_bytes(garbage)
        _tar(base / "tree.tar.gz", tree, escape=data.draw(st.booleans(), label="escaping tar"))
        paths = [str(base / name) for name in ("store", "garbage.jsonl", "garbage.tar.gz", "tree.tar.gz")]
        paths += [str(base / "missing"), "out.jsonl", "out.tar.gz", "out.zip", "."]
        # --json first: a random "--" among the words cannot turn it into a key.
        arguments = data.draw(_arguments(COMMANDS[command], paths, keys))
        args = [*command, *(["--json"] if as_json else []), *arguments]
        runner = CliRunner()
        with runner.isolated_filesystem(temp_dir=scratch):  # relative output names land in the scratch directory
            stdin = data.draw(st.binary(max_size=64) | st.sampled_from([b'{"a": 1}', b"[1, 2]"]), label="stdin")
            result = runner.invoke(cli, args, input=stdin, prog_name="group-store", catch_exceptions=False)
    assert result.exit_code in (0, 1, 2), (args, result.output)
    assert "Traceback" not in result.output, args
    lines = result.stderr.splitlines()
    assert all(line.startswith(LINE_PREFIXES) for line in lines), (args, result.stderr)
    assert not any("internal error" in line for line in lines), (args, result.stderr)
    errors = [line for line in lines if line.startswith("group-store: error: ")]
    assert len(errors) == (1 if result.exit_code == 2 else 0), (args, result.stderr)
    if as_json and result.stdout:
        value = json.loads(result.stdout)
        if result.exit_code == 2:
            assert set(value["error"]) == {"type", "message", "path", "key"}, args
    elif result.exit_code == 2:
        assert result.stdout == "", args
