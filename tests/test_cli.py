"""The group-store command line, driven through its real entry point in subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from group_store import Store
from group_store._expiry import encode_sidecar
from group_store._layout import temp_name
from group_store.testing import FakeClock

COMMANDS = ["tree", "ls", "get", "put", "rm", "sweep", "stats", "verify", "fmt", "diff", "export", "import"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "group_store", *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def run_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr
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
        result = run(command, "--help")
        assert result.returncode == 0, command
        assert "Usage: group-store" in result.stdout
        assert "--json" in result.stdout


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for command in COMMANDS:
        assert f"`group-store {command} " in readme, command


def test_the_installed_script_runs() -> None:
    script = shutil.which("group-store") or str(Path(sys.executable).with_name("group-store"))
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "verify" in result.stdout


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
    assert run("put", str(built), "bob", "state", "--value", '{"step": 1}').returncode == 0
    value_file = tmp_path / "value.json"
    value_file.write_text('["from", "file"]')
    assert run("put", str(built), "from-file", "--file", str(value_file)).returncode == 0
    piped = run("put", str(built), "piped", "--ttl", "60", "--json", stdin='{"x": 1}')
    assert piped.returncode == 0
    assert json.loads(piped.stdout)["expires_at"] is not None
    store = Store(built)
    assert store.narrow("bob").load("state") == {"step": 1}
    assert store.load("from-file") == ["from", "file"]
    assert store.load("piped") == {"x": 1}


def test_rm_and_sweep(built: Path, tmp_path: Path) -> None:
    clock = FakeClock(start=1_000_000_000.0)  # long ago: anything saved with it has expired by now
    Store(built, clock=clock).save("stale", 1, ttl=1)
    dry = run_json("sweep", str(built), "--dry-run")
    assert dry == {"dry_run": True, "expired": [["stale"]], "removed": 1}
    assert (built / "stale.json").exists()
    assert run_json("sweep", str(built))["removed"] == 1
    assert not (built / "stale.json").exists()
    assert run_json("rm", str(built), "alice", "agent") == {"removed": ["alice", "agent"]}
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
        assert result.returncode == 2, args
        assert result.stderr.startswith("group-store: error:"), args
        assert len(result.stderr.strip().splitlines()) == 1, args
        assert "Traceback" not in result.stderr
    bad_json = run("put", str(built), "k", "--value", "{not json")
    assert bad_json.returncode == 2
    assert "not valid JSON" in bad_json.stderr
    assert not Store(built).exists("k")
    usage = run("get")
    assert usage.returncode == 2


def test_verify_fix_repairs_a_damaged_store(built: Path) -> None:
    with open(built / "alice" / "messages.jsonl", "ab") as log:
        log.write(b'{"n": 3')  # torn tail
    (built / "gone.meta.json").write_bytes(encode_sidecar({}))  # orphan sidecar
    (built / temp_name("cache.json")).write_text("{")  # leftover temporary file
    (built / "broken.json").write_text("{oops")  # invalid JSON: reported, never touched
    (built / "spaced.json").write_text('{"a":1}')  # valid but not canonical
    report = run("verify", str(built), "--json")
    assert report.returncode == 1
    kinds = sorted(problem["kind"] for problem in json.loads(report.stdout)["problems"])
    assert kinds == ["invalid-json", "non-canonical", "orphan-sidecar", "temp-file", "torn-log"]
    fixed = run("verify", str(built), "--fix", "--json")
    assert fixed.returncode == 1  # the invalid JSON remains
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
    assert run("verify", str(built)).returncode == 0


def test_fmt_rewrites_canonically_keeping_ttl(built: Path) -> None:
    (built / "hand.json").write_text('{"b":1,   "a":[1,2]}')
    with open(built / "alice" / "messages.jsonl", "a") as log:
        log.write('{ "n" : 3 }\n')
    Store(built).update("cache", lambda v: v)  # keeps the expiry
    (built / "cache.json").write_text('{"celsius":21}')  # hand-edited: the sidecar no longer binds it
    assert run_json("fmt", str(built))["rewritten"] >= 2
    assert (built / "hand.json").read_text() == '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'
    assert (built / "alice" / "messages.jsonl").read_text().endswith('{"n":3}\n')
    assert run("verify", str(built)).returncode == 0


@pytest.mark.parametrize("suffix", [".tar.gz", ".jsonl"])
def test_export_import_round_trip_and_diff(built: Path, tmp_path: Path, suffix: str) -> None:
    archive = tmp_path / f"archive{suffix}"
    exported = run("export", str(built), str(archive))
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr == ""  # no progress bar when piped
    copy = tmp_path / "copy"
    assert run("import", str(archive), str(copy)).returncode == 0
    same = run("diff", str(built), str(copy))
    assert same.returncode == 0, same.stdout
    assert "no differences" in same.stdout
    assert run("diff", str(built), str(archive)).returncode == 0
    assert Store(copy).expires_at("cache") == Store(built).expires_at("cache")
    assert Store(copy).narrow("alice").read("messages") == [{"n": 1}, {"n": 2}]


def test_tar_exports_of_equal_stores_are_byte_identical(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    assert run("export", str(built), str(tmp_path / "one.tar.gz")).returncode == 0
    assert run("export", str(copy), str(tmp_path / "two.tar.gz")).returncode == 0
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
    assert result.returncode == 1
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
        assert result.returncode == 0, result.stderr
        [line] = _skipped_lines(result.stderr)
        assert "ttl.meta.json" in line
    assert run_json("tree", str(built))["total_entries"] == 4
    assert run_json("stats", str(built))["documents"] == 3


def test_export_and_diff_carry_on_past_invalid_json(built: Path, tmp_path: Path) -> None:
    (built / "broken.json").write_text("{oops")
    archive = tmp_path / "out.jsonl"
    exported = run("export", str(built), str(archive), "--json")
    assert exported.returncode == 1  # the archive is incomplete: said on stderr and in the exit code
    [line] = _skipped_lines(exported.stderr)
    assert "broken.json" in line
    assert json.loads(exported.stdout)["items"] == 4
    other = tmp_path / "other"
    shutil.copytree(built, other)
    Store(other).save("cache", {"celsius": 22}, ttl=3600)
    result = run("diff", str(built), str(other), "--json")
    assert result.returncode == 1
    assert len(_skipped_lines(result.stderr)) == 2  # once per side
    report = json.loads(result.stdout)
    assert [change["address"] for change in report["changes"]] == [["cache"]]
    assert report["unreadable"] == 2
    same = run("diff", str(built), str(built))
    assert same.returncode == 1  # equality cannot be confirmed for an unreadable entry
    assert "could not be read" in same.stdout


def test_fmt_and_import_exit_1_when_they_skip_something(built: Path, tmp_path: Path) -> None:
    (built / "dup.json").write_bytes(b'{"a": 1, "a": 2}')
    formatted = run("fmt", str(built))
    assert formatted.returncode == 1
    [line] = _skipped_lines(formatted.stderr)
    assert "dup.json" in line
    assert "duplicate key" in line
    assert (built / "dup.json").read_bytes() == b'{"a": 1, "a": 2}'
    archive = tmp_path / "all.tar.gz"
    assert run("export", str(built), str(archive)).returncode == 0  # the files as they are
    imported = run("import", str(archive), str(tmp_path / "copy"))
    assert imported.returncode == 1
    assert "dup.json" in _skipped_lines(imported.stderr)[0]
    assert Store(tmp_path / "copy").narrow("alice").load("agent") == {"mood": "curious"}


def test_put_refuses_a_value_it_cannot_store_exactly(built: Path) -> None:
    for value in ('{"a": 1, "a": 2}', '{"a": 123456789012345678901234567890}'):
        result = run("put", str(built), "k", "--value", value)
        assert result.returncode == 2
        assert "cannot be stored exactly" in result.stderr
    assert not Store(built).exists("k")
