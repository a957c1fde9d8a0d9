"""The group-store command line, driven in-process through click's CliRunner (one
subprocess test runs the installed script)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from group_store import Store
from group_store.__main__ import main
from group_store._format.expiry import encode_sidecar
from group_store._format.layout import temp_name
from group_store.cli import cli
from group_store.testing import FakeClock


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of ``group`` as the words that invoke it (sub-groups walked)."""
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
    return paths


COMMANDS = _command_paths(cli)


def run(*args: str, stdin: str | bytes | None = None) -> Result:
    # catch_exceptions=False: an exception that escapes the command line's boundary fails the test.
    return CliRunner().invoke(cli, list(args), input=stdin, prog_name="group-store", catch_exceptions=False)


def run_json_any(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


def run_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def built(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    store = Store(root)
    store.narrow("alice").save("agent", {"mood": "curious"})
    store.narrow("alice").append("messages", [{"n": 1}, {"n": 2}])
    store.save("cache", {"celsius": 21}, ttl=3600)
    store.save("A/b", [1, 2])
    return root


def test_every_command_has_help() -> None:
    for command in COMMANDS:
        result = run(*command, "--help")
        assert result.exit_code == 0, command
        assert result.stdout.startswith(f"Usage: group-store {' '.join(command)} "), command
        assert "--json" in result.stdout, command


def test_the_installed_script_runs_the_command_line(built: Path) -> None:
    # The one subprocess test: the entry point that pip installs reaches the commands.
    [entry_point] = (ep for ep in entry_points(group="console_scripts") if ep.name == "group-store")
    assert entry_point.value == "group_store.__main__:main"
    script = Path(sys.executable).with_name("group-store")
    result = subprocess.run(
        [str(script) if script.exists() else "group-store", "ls", str(built), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {"keys": ["A/b", "cache"], "children": ["alice"]}


def test_main_runs_the_command_line_as_group_store(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["ls", str(built), "alice"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == "agent\nmessages\n"
    with pytest.raises(SystemExit) as exited:
        main(["get", str(built), "nope"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("group-store: error: ")


def test_ls_get_tree_stats(built: Path) -> None:
    assert run_json("ls", str(built)) == {"keys": ["A/b", "cache"], "children": ["alice"]}
    assert run_json("ls", str(built), "alice") == {"keys": ["agent", "messages"], "children": []}
    assert run_json("get", str(built), "alice", "agent") == {"mood": "curious"}
    assert run_json("get", str(built), "alice", "messages") == [{"n": 1}, {"n": 2}]
    assert run_json("get", str(built), "A/b") == [1, 2]
    assert run("get", str(built), "alice", "agent").stdout == '{\n  "mood": "curious"\n}\n'
    tree = run_json("tree", str(built))
    assert tree["total_entries"] == 4
    assert [entry["key"] for entry in tree["entries"]] == ["A/b", "cache"]
    assert tree["entries"][1]["expires_at"] is not None
    assert tree["children"][0]["name"] == "alice"
    text = run("tree", str(built)).stdout
    assert "alice/  (2 entries" in text
    assert "expires" in text
    stats = run_json("stats", str(built))
    assert stats["documents"] == 3
    assert stats["logs"] == 1
    assert stats["log_items"] == 2
    assert stats["with_ttl"] == 1


def test_put_from_argument_file_and_stdin(built: Path, tmp_path: Path) -> None:
    assert run("put", str(built), "bob", "state", "--value", '{"step": 1}', "--create").exit_code == 0
    value_file = tmp_path / "value.json"
    value_file.write_text('["from", "file"]')
    assert run("put", str(built), "from-file", "--file", str(value_file)).exit_code == 0
    piped = run("put", str(built), "piped", "--ttl", "60", "--json", stdin='{"x": 1}')
    assert piped.exit_code == 0
    assert json.loads(piped.stdout)["expires_at"] is not None
    store = Store(built)
    assert store.narrow("bob").load("state") == {"step": 1}
    assert store.load("from-file") == ["from", "file"]
    assert store.load("piped") == {"x": 1}


def test_rm_and_sweep(built: Path, tmp_path: Path) -> None:
    clock = FakeClock(start=1_000_000_000.0)  # long ago: anything saved with it has expired by now
    Store(built, clock=clock).save("stale", 1, ttl=1)
    dry = run_json("sweep", str(built), "--dry-run")
    assert dry == {"dry_run": True, "expired": [["stale"]], "would_remove": 1}
    assert (built / "stale.json").exists()
    assert run_json("sweep", str(built))["removed"] == 1
    assert not (built / "stale.json").exists()
    assert run_json("rm", str(built), "alice", "agent") == {"removed": ["alice", "agent"], "entries": 1}
    assert not Store(built).narrow("alice").exists("agent")


def test_errors_are_one_line_with_exit_2(built: Path, tmp_path: Path) -> None:
    cases = [
        ("get", str(tmp_path / "missing"), "k"),
        ("get", str(built), "nope"),
        ("get", str(built), ""),
        ("get", str(built)),
        ("rm", str(built), "nope"),
        ("diff", str(built), str(tmp_path / "missing")),
        ("import", str(tmp_path / "missing.tar.gz"), str(tmp_path / "x")),
        ("export", str(built), str(tmp_path / "archive.zip")),
    ]
    for args in cases:
        result = run(*args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("group-store: error:"), args
        assert len(result.stderr.strip().splitlines()) == 1, args
        assert "Traceback" not in result.stderr
    bad_json = run("put", str(built), "k", "--value", "{not json")
    assert bad_json.exit_code == 2
    assert "not valid JSON" in bad_json.stderr
    assert not Store(built).exists("k")
    usage = run("get")
    assert usage.exit_code == 2


def test_verify_fix_repairs_a_damaged_store(built: Path) -> None:
    with open(built / "alice" / "messages.jsonl", "ab") as log:
        log.write(b'{"n": 3')  # torn tail
    (built / "gone.meta.json").write_bytes(encode_sidecar({}))  # orphan sidecar
    (built / temp_name("cache.json")).write_text("{")  # leftover temporary file
    (built / "broken.json").write_text("{oops")  # invalid JSON: reported, never touched
    (built / "spaced.json").write_text('{"a":1}')  # valid but not canonical
    report = run("verify", str(built), "--json")
    assert report.exit_code == 1
    kinds = sorted(problem["kind"] for problem in json.loads(report.stdout)["problems"])
    assert kinds == ["invalid-json", "non-canonical", "orphan-sidecar", "temp-file", "torn-log"]
    fixed = run("verify", str(built), "--fix", "--json")
    assert fixed.exit_code == 1  # the invalid JSON remains
    problems = json.loads(fixed.stdout)["problems"]
    assert [p["kind"] for p in problems if not p["fixed"]] == ["invalid-json"]
    again = json.loads(run("verify", str(built), "--json").stdout)["problems"]
    assert [p["kind"] for p in again] == ["invalid-json"]
    store = Store(built)
    assert store.narrow("alice").read("messages") == [{"n": 1}, {"n": 2}]
    assert store.narrow("alice").load("agent") == {"mood": "curious"}
    assert store.load("cache") == {"celsius": 21}
    assert store.expires_at("cache") is not None
    assert store.load("spaced") == {"a": 1}
    assert (built / "broken.json").read_text() == "{oops"
    (built / "broken.json").unlink()
    assert run("verify", str(built)).exit_code == 0


def test_fmt_rewrites_canonically_keeping_ttl(built: Path) -> None:
    (built / "hand.json").write_text('{"b":1,   "a":[1,2]}')
    with open(built / "alice" / "messages.jsonl", "a") as log:
        log.write('{ "n" : 3 }\n')
    Store(built).update("cache", lambda v: v)  # keeps the expiry
    (built / "cache.json").write_text('{"celsius":21}')  # hand-edited: the sidecar no longer binds it
    assert run_json("fmt", str(built))["rewritten"] >= 2
    assert (built / "hand.json").read_text() == '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'
    assert (built / "alice" / "messages.jsonl").read_text().endswith('{"n":3}\n')
    assert run("verify", str(built)).exit_code == 0


@pytest.mark.parametrize("suffix", [".tar.gz", ".jsonl"])
def test_export_import_round_trip_and_diff(built: Path, tmp_path: Path, suffix: str) -> None:
    archive = tmp_path / f"archive{suffix}"
    exported = run("export", str(built), str(archive))
    assert exported.exit_code == 0, exported.stderr
    assert exported.stderr == ""  # no progress bar when piped
    copy = tmp_path / "copy"
    assert run("import", str(archive), str(copy)).exit_code == 0
    same = run("diff", str(built), str(copy))
    assert same.exit_code == 0, same.stdout
    assert "no differences" in same.stdout
    assert run("diff", str(built), str(archive)).exit_code == 0
    assert Store(copy).expires_at("cache") == Store(built).expires_at("cache")
    assert Store(copy).narrow("alice").read("messages") == [{"n": 1}, {"n": 2}]


def test_tar_exports_of_equal_stores_are_byte_identical(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    assert run("export", str(built), str(tmp_path / "one.tar.gz")).exit_code == 0
    assert run("export", str(copy), str(tmp_path / "two.tar.gz")).exit_code == 0
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()


def test_diff_reports_added_removed_changed_and_appended(built: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(built, other)
    store = Store(other)
    store.save("A/b", [1, 2, 3])
    store.delete("cache")
    store.save("new", {"x": 1})
    store.narrow("alice").append("messages", [{"n": 3}])
    result = run("diff", str(built), str(other), "--json")
    assert result.exit_code == 1
    changes = {" ".join(c["address"]): c for c in json.loads(result.stdout)["changes"]}
    assert changes["new"]["change"] == "added"
    assert changes["cache"]["change"] == "removed"
    assert changes["A/b"]["change"] == "changed"
    assert "+  3" in changes["A/b"]["detail"]
    assert changes["alice messages"]["detail"].startswith("appended 1 item(s)")
    text = run("diff", str(built), str(other)).stdout
    assert "4 entries differ" in text


def _skipped_lines(stderr: str) -> list[str]:
    lines = stderr.strip().splitlines()
    assert all(line.startswith("group-store: skipped: ") for line in lines), stderr
    assert "Traceback" not in stderr
    return lines


def test_tree_and_stats_carry_on_past_a_malformed_sidecar(built: Path) -> None:
    Store(built).save("ttl", {"n": 1}, ttl=3600)
    (built / "ttl.meta.json").write_bytes(b"{oops")
    for command in ("tree", "stats"):
        result = run(command, str(built), "--json")
        assert result.exit_code == 0, result.stderr
        [line] = _skipped_lines(result.stderr)
        assert "ttl.meta.json" in line
    assert run_json("tree", str(built))["total_entries"] == 4
    assert run_json("stats", str(built))["documents"] == 3


def test_export_and_diff_carry_on_past_invalid_json(built: Path, tmp_path: Path) -> None:
    (built / "broken.json").write_text("{oops")
    archive = tmp_path / "out.jsonl"
    exported = run("export", str(built), str(archive), "--json")
    assert exported.exit_code == 1  # the archive is incomplete: said on stderr and in the exit code
    [line] = _skipped_lines(exported.stderr)
    assert "broken.json" in line
    assert json.loads(exported.stdout)["entries"] == 4
    other = tmp_path / "other"
    shutil.copytree(built, other)
    Store(other).save("cache", {"celsius": 22}, ttl=3600)
    result = run("diff", str(built), str(other), "--json")
    assert result.exit_code == 1
    assert len(_skipped_lines(result.stderr)) == 2  # once per side
    report = json.loads(result.stdout)
    assert [change["address"] for change in report["changes"]] == [["cache"]]
    assert report["unreadable"] == 2
    same = run("diff", str(built), str(built))
    assert same.exit_code == 1  # equality cannot be confirmed for an unreadable entry
    assert "could not be read" in same.stdout


def test_fmt_and_import_exit_1_when_they_skip_something(built: Path, tmp_path: Path) -> None:
    (built / "dup.json").write_bytes(b'{"a": 1, "a": 2}')
    formatted = run("fmt", str(built))
    assert formatted.exit_code == 1
    [line] = _skipped_lines(formatted.stderr)
    assert "dup.json" in line
    assert "duplicate key" in line
    assert (built / "dup.json").read_bytes() == b'{"a": 1, "a": 2}'
    archive = tmp_path / "all.tar.gz"
    assert run("export", str(built), str(archive)).exit_code == 0  # the files as they are
    imported = run("import", str(archive), str(tmp_path / "copy"))
    assert imported.exit_code == 1
    assert "dup.json" in _skipped_lines(imported.stderr)[0]
    assert Store(tmp_path / "copy").narrow("alice").load("agent") == {"mood": "curious"}


def test_put_refuses_a_value_it_cannot_store_exactly(built: Path) -> None:
    for value in ('{"a": 1, "a": 2}', '{"a": 123456789012345678901234567890}'):
        result = run("put", str(built), "k", "--value", value)
        assert result.exit_code == 2
        assert "cannot be stored exactly" in result.stderr
    assert not Store(built).exists("k")


# -- one error boundary: every bad input is one line and exit 2 (issue 15 item 3) ----------


def _evil_tar(path: Path, member: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        data = b"{}\n"
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def bad_inputs(tmp_path: Path, built: Path) -> dict[str, list[str]]:
    garbage = bytes(range(256)) * 3
    (tmp_path / "garbage.jsonl").write_bytes(garbage)
    (tmp_path / "garbage.tar.gz").write_bytes(garbage)
    escaping = _evil_tar(tmp_path / "escaping.tar.gz", "../outside.json")
    absolute = _evil_tar(tmp_path / "absolute.tar.gz", "/tmp/absolute.json")
    dest = str(tmp_path / "dest")
    return {
        "import garbage.jsonl": ["import", str(tmp_path / "garbage.jsonl"), dest],
        "import garbage.tar.gz": ["import", str(tmp_path / "garbage.tar.gz"), dest],
        "import ../ member": ["import", str(escaping), dest],
        "import absolute member": ["import", str(absolute), dest],
        "diff garbage.tar.gz": ["diff", str(built), str(tmp_path / "garbage.tar.gz")],
        "diff garbage.jsonl": ["diff", str(tmp_path / "garbage.jsonl"), str(built)],
        "export to a bad name": ["export", str(built), str(tmp_path / "archive.zip")],
        "unknown option": ["tree", str(built), "--no-such-option"],
        "missing argument": ["get"],
    }


def _assert_one_error_line(result: Result) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("group-store: error: ")
    return line


def test_every_bad_input_is_one_stderr_line_and_exit_2(bad_inputs: dict[str, list[str]], tmp_path: Path) -> None:
    for name, args in bad_inputs.items():
        result = run(*args)
        _assert_one_error_line(result)
        assert result.stdout == "", name
    assert not (tmp_path / "dest").exists()  # refused archives write nothing
    assert not (tmp_path / "outside.json").exists()


def test_json_errors_are_one_object_on_stdout(bad_inputs: dict[str, list[str]], tmp_path: Path) -> None:
    for name, args in bad_inputs.items():
        result = run(*args, "--json")
        _assert_one_error_line(result)
        error = json.loads(result.stdout)["error"]
        assert set(error) == {"type", "message", "path", "key"}, name
        assert result.stderr == f"group-store: error: {error['message']}\n"
    damaged = json.loads(run(*bad_inputs["import garbage.tar.gz"], "--json").stdout)["error"]
    assert damaged["type"] == "CorruptEntryError"
    assert damaged["path"] == str(tmp_path / "garbage.tar.gz")
    assert json.loads(run("get", "--json").stdout)["error"]["type"] == "UsageError"
    missing = json.loads(run("get", str(tmp_path / "built-not"), "k", "--json").stdout)["error"]
    assert missing["type"] == "NotFound"


def test_a_damaged_archive_is_an_error_not_a_difference(bad_inputs: dict[str, list[str]]) -> None:
    result = run(*bad_inputs["diff garbage.tar.gz"])
    assert result.exit_code == 2  # exit 1 would tell a CI gate "the stores differ"


def test_a_bug_is_reported_in_one_line_not_a_traceback(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something the library never meant to raise")

    monkeypatch.setattr("group_store.cli.verify_store", broken)
    line = _assert_one_error_line(run("verify", str(built)))
    assert "internal error" in line
    assert "RuntimeError: something the library never meant to raise" in line
    monkeypatch.setenv("GROUP_STORE_TRACEBACK", "1")
    with pytest.raises(RuntimeError):
        run("verify", str(built))


def test_an_interrupt_exits_130(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("group_store.cli.verify_store", interrupted)
    result = run("verify", str(built))
    assert result.exit_code == 130
    assert result.stderr == "group-store: interrupted\n"


def test_storage_refusals_are_one_line(built: Path) -> None:
    (built / "alice" / "agent.json").unlink()
    (built / "alice" / "agent.json").symlink_to(built / "cache.json")
    result = run("get", str(built), "alice", "agent", "--json")
    _assert_one_error_line(result)
    assert json.loads(result.stdout)["error"]["type"] == "UnsafeFileError"


# -- rough edges (issue 15 item 4) ----------------------------------------------------------


def test_put_refuses_a_store_that_does_not_exist_without_create(tmp_path: Path) -> None:
    mistyped = tmp_path / "dta"
    line = _assert_one_error_line(run("put", str(mistyped), "k", "--value", "1"))
    assert "--create" in line
    assert not mistyped.exists()
    assert run("put", str(mistyped), "k", "--value", "1", "--create").exit_code == 0
    assert Store(mistyped).load("k") == 1


def test_put_refuses_a_sub_store_that_does_not_exist_without_create(built: Path) -> None:
    line = _assert_one_error_line(run("put", str(built), "alcie", "agent", "--value", "1"))
    assert "'alcie'" in line
    assert "--create" in line
    assert Store(built).children() == ["alice"]
    assert run("put", str(built), "alice", "agent", "--value", "1").exit_code == 0  # it exists: no flag needed
    assert run("put", str(built), "bob", "x", "state", "--value", "2", "--create").exit_code == 0
    assert Store(built).narrow("bob", "x").load("state") == 2


def test_ls_tree_and_sweep_of_a_missing_sub_store_exit_2(built: Path) -> None:
    for command in ("ls", "tree", "sweep"):
        line = _assert_one_error_line(run(command, str(built), "alcie"))
        assert "no sub-store 'alcie'" in line, command
    assert run("ls", str(built), "alice").exit_code == 0


def test_get_on_a_sub_store_says_it_is_a_sub_store(built: Path) -> None:
    line = _assert_one_error_line(run("get", str(built), "alice"))
    assert "is a sub-store" in line
    assert f"group-store ls {built} alice" in line
    assert "no such key" not in line


def test_rm_of_a_sub_store_without_r_says_to_use_r(built: Path) -> None:
    line = _assert_one_error_line(run("rm", str(built), "alice"))
    assert "rm -r" in line
    assert Store(built).narrow("alice").exists("agent")


def test_rm_r_deletes_every_entry_of_a_sub_store_and_keeps_foreign_files(built: Path) -> None:
    deep = Store(built).narrow("alice", "deep", "x" * 300)  # a hashed name: its key file goes too
    deep.save("state", {"n": 1}, ttl=3600)
    deep.append("log", [1, 2])
    Store(built, clock=FakeClock(start=1_000_000_000.0)).narrow("alice").save("stale", 1, ttl=1)  # expired: unlisted
    (built / "alice" / "notes.txt").write_text("mine, not the store's")
    result = run("rm", "-r", str(built), "alice", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"removed": ["alice"], "entries": 5}
    alice = Store(built).narrow("alice")
    assert alice.keys() == []
    assert not (built / "alice" / "stale.json").exists()
    assert alice.narrow("deep", "x" * 300).keys() == []
    assert (built / "alice" / "notes.txt").read_text() == "mine, not the store's"
    assert Store(built).keys() == ["A/b", "cache"]  # nothing outside the sub-store
    remaining = sorted(p.name for p in (built / "alice").rglob("*") if p.is_file())
    assert all(name in {".lock", ".expiry.jsonl", ".key", "notes.txt"} for name in remaining), remaining
    verified = run_json_any("verify", str(built))
    assert [(p["kind"], Path(p["path"]).name) for p in verified["problems"]] == [("foreign-file", "notes.txt")]
    assert run("rm", "-r", str(built), "A/b").stdout == "removed 1 entry\n"  # -r of an entry removes it


def test_tree_depth_limits_the_lines_but_not_the_totals(built: Path) -> None:
    Store(built).narrow("alice", "deep").save("x", 1)
    full = run("tree", str(built)).stdout.splitlines()
    top = run("tree", str(built), "--depth", "1").stdout.splitlines()
    assert top[0] == full[0]
    assert "(5 entries" in top[0]
    alice_line = next(line for line in full if line.startswith("  alice/"))
    assert "(3 entries, " in alice_line
    assert [line for line in top if line.startswith("  alice/")] == [alice_line]
    assert not any(line.startswith("    ") for line in top)
    assert len(top) < len(full)
    assert run("tree", str(built), "--depth", "0").stdout.splitlines() == [full[0]]
    shallow = run_json("tree", str(built), "--depth", "1")
    [alice] = shallow["children"]
    assert (alice["total_entries"], alice["entries"], alice["children"]) == (3, [], [])
    assert shallow["total_entries"] == 5
    assert len(shallow["entries"]) == 2


def test_get_last_n_reads_a_logs_newest_items(built: Path) -> None:
    Store(built).narrow("alice").append("messages", [{"n": 3}])
    assert run_json("get", str(built), "alice", "messages", "--last", "2") == [{"n": 2}, {"n": 3}]
    assert run_json("get", str(built), "alice", "messages", "--last", "0") == []
    result = run("get", str(built), "alice", "agent", "--last", "1", "--json")
    _assert_one_error_line(result)
    assert json.loads(result.stdout)["error"]["type"] == "EntryKindError"


def test_put_expires_at_sets_that_expiry(built: Path) -> None:
    when = "2100-01-02T03:04:05+00:00"
    result = run_json("put", str(built), "k", "--value", "1", "--expires-at", "2100-01-02T03:04:05Z")
    assert result["expires_at"] == when
    assert Store(built).expires_at("k") == datetime.fromisoformat(when)
    for bad in ("2100-01-02T03:04:05", "tomorrow"):
        line = _assert_one_error_line(run("put", str(built), "j", "--value", "1", "--expires-at", bad))
        assert "--expires-at" in line
    both = run("put", str(built), "j", "--value", "1", "--ttl", "5", "--expires-at", when)
    _assert_one_error_line(both)
    assert not Store(built).exists("j")


def test_sweep_dry_run_json_says_would_remove_not_removed(built: Path) -> None:
    Store(built, clock=FakeClock(start=1_000_000_000.0)).save("stale", 1, ttl=1)
    dry = run_json("sweep", str(built), "--dry-run")
    assert "removed" not in dry
    assert dry["would_remove"] == 1
    assert run("sweep", str(built), "--dry-run").stdout.endswith("would remove 1 expired entry\n")
    assert run_json("sweep", str(built)) == {"dry_run": False, "expired": [["stale"]], "removed": 1}


def test_counts_of_one_are_singular(built: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    Store(one).save("only", 1)
    assert "(1 entry, " in run("tree", str(one)).stdout
    assert "1 directory, 1 entry, 0 problems" in run("verify", str(one)).stdout
    assert (
        run("export", str(one), str(tmp_path / "one.jsonl")).stdout == f"exported 1 entry to {tmp_path / 'one.jsonl'}\n"
    )
    other = tmp_path / "other"
    Store(other).save("only", 2)
    assert "1 entry differs" in run("diff", str(one), str(other)).stdout
    (one / "only.json").write_text('{"a":1}')
    assert run("fmt", str(one)).stdout == "rewrote 1 file\n"


@pytest.mark.parametrize("suffix", [".tar.gz", ".jsonl"])
def test_export_and_import_count_entries_whatever_the_format(built: Path, tmp_path: Path, suffix: str) -> None:
    Store(built).save("x" * 300, {"hashed": True}, ttl=3600)  # a key file and a sidecar beside it
    archive = tmp_path / f"archive{suffix}"
    assert run_json("export", str(built), str(archive))["entries"] == 5
    assert run_json("import", str(archive), str(tmp_path / "copy"))["entries"] == 5


def test_library_warnings_are_the_command_lines_own_stderr_lines(built: Path) -> None:
    Store(built).save("x" * 300, 1)  # a hashed name: listed through its key file
    [key_file] = built.glob("*.key")
    key_file.unlink()
    key_file.symlink_to(built / "cache.json")
    result = run("ls", str(built))
    assert result.exit_code == 0
    [line] = result.stderr.splitlines()
    assert line.startswith("group-store: warning: keys() skipped a bad entry: is a symlink")
    assert key_file.name in line


def test_names_that_are_not_utf8_are_printed_escaped(built: Path) -> None:
    (built / os.fsdecode(b"caf\xe9")).mkdir()  # a Latin-1 name: not UTF-8, so not a key
    text = run("verify", str(built))
    assert text.exit_code == 1
    assert f"foreign-file: {built}/caf\\xe9: " in text.stdout
    report = run_json_any("verify", str(built))
    assert [p["path"] for p in report["problems"]] == [f"{built}/caf\\xe9"]


def _remove_chain(top: Path) -> None:
    """Remove a one-directory-per-level chain bottom up (shutil.rmtree, and pytest's
    cleanup, recurse once per level and fail past the recursion limit)."""
    chain = [top]
    while subdirectories := [child for child in chain[-1].iterdir() if child.is_dir()]:
        chain.extend(subdirectories)
    for directory in reversed(chain):
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()


def test_tree_of_a_store_nested_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    levels = sys.getrecursionlimit() + 10  # walking it costs O(levels**2) path lookups: keep it just past the limit
    deep = tmp_path / "deep"
    try:
        Store(deep).narrow(*["a"] * levels).save("k", 1)
        text = run("tree", str(deep))
        assert text.exit_code == 0, text.stderr
        assert len(text.stdout.splitlines()) == levels + 2
        too_deep = run("tree", str(deep), "--json")
        _assert_one_error_line(too_deep)
        assert json.loads(too_deep.stdout)["error"]["type"] == "OutputError"
    finally:
        _remove_chain(deep)
