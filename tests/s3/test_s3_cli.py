"""The group-store command line on ``s3://`` stores, in-process, against the moto server.

The store URL is configured as a user's would be: from the AWS environment, which the
``aws`` fixture points at the test server.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from group_store import Store
from group_store.cli import cli
from group_store.storage._s3 import S3Storage
from group_store.testing import FakeClock

from .server import S3Server

_ENVIRONMENT = {
    "endpoint": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
    "allow_http": "AWS_ALLOW_HTTP",
}


@pytest.fixture
def aws(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for option, variable in _ENVIRONMENT.items():
        monkeypatch.setenv(variable, s3_server.options()[option])
    return s3_server


@pytest.fixture
def url(aws: S3Server, s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/data"


def run(*args: str, stdin: str | None = None) -> Result:
    # catch_exceptions=False: an exception that escapes the command line's boundary fails the test.
    return CliRunner().invoke(cli, list(args), input=stdin, prog_name="group-store", catch_exceptions=False)


def run_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _fill(url: str) -> None:
    for words in (["alice", "agent"], ["alice", "memory", "notes"], ["config"]):
        assert run("put", url, *words, "--create", "--value", json.dumps({"at": words})).exit_code == 0


def test_put_get_ls_and_tree_on_an_s3_store(url: str) -> None:
    _fill(url)
    assert run_json("get", url, "alice", "agent") == {"at": ["alice", "agent"]}
    assert run_json("ls", url) == {"keys": ["config"], "children": ["alice"]}
    tree = run_json("tree", url)
    assert tree["total_entries"] == 3
    assert [child["name"] for child in tree["children"]] == ["alice"]
    assert run("tree", url).exit_code == 0


def test_the_objects_are_the_store_files_under_the_prefix(url: str, aws: S3Server) -> None:
    assert run("put", url, "config", "--value", "1").exit_code == 0
    storage = S3Storage(url, storage_options=aws.options())
    assert storage.read("", "config.json") == b"1\n"


def test_put_without_create_refuses_an_absent_sub_store(url: str) -> None:
    result = run("put", url, "nobody", "key", "--value", "1")
    assert result.exit_code == 2
    assert "pass --create" in result.stderr


def test_rm_deletes_an_entry_and_a_sub_store(url: str) -> None:
    _fill(url)
    assert run("rm", url, "config").exit_code == 0
    assert run_json("rm", url, "alice", "-r")["entries"] == 2
    assert run_json("tree", url)["total_entries"] == 0


def test_verify_reports_a_damaged_object_by_its_url(url: str, aws: S3Server) -> None:
    _fill(url)
    report = run_json("verify", url)
    assert report["ok"]
    assert report["entries"] == 3
    S3Storage(url, storage_options=aws.options()).write("", "config.json", b"{not json", durable=False)
    result = run("verify", url, "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert [problem["path"] for problem in problems] == [f"{url}/config.json"]


def test_sweep_removes_expired_entries(url: str) -> None:
    _fill(url)
    # Saved a day ago (on a clock set back): expired by now.
    Store(url, clock=FakeClock(time.time() - 86_400)).save("old", 1, ttl=60)
    assert run_json("sweep", url, "--dry-run")["would_remove"] == 1
    assert run_json("sweep", url) == {"dry_run": False, "expired": [["old"]], "removed": 1}
    assert run_json("stats", url)["documents"] == 3


def test_export_from_s3_import_into_a_directory_and_diff_finds_them_identical(url: str, tmp_path: Path) -> None:
    _fill(url)
    assert run("put", url, "later", "--value", "2", "--expires-at", "2999-01-01T00:00:00Z").exit_code == 0
    archive = tmp_path / "store.tar.gz"
    assert run_json("export", url, str(archive))["entries"] == 4
    local = tmp_path / "local"
    assert run_json("import", str(archive), str(local))["entries"] == 4
    result = run("diff", url, str(local))
    assert (result.exit_code, result.stdout.strip()) == (0, "no differences")
    assert run("diff", str(archive), url).exit_code == 0
    assert run("put", str(local), "config", "--value", "3").exit_code == 0
    assert run("diff", url, str(local)).exit_code == 1


def test_import_into_an_s3_store(url: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    assert run("put", str(local), "a", "b", "--create", "--value", "[1]").exit_code == 0
    archive = tmp_path / "store.jsonl"
    assert run("export", str(local), str(archive)).exit_code == 0
    assert run_json("import", str(archive), url)["entries"] == 1
    assert run_json("get", url, "a", "b") == [1]
    assert run("diff", str(local), url).exit_code == 0


@pytest.mark.parametrize("command", [["tree"], ["get", "k"], ["put", "k", "--value", "1"], ["verify"], ["sweep"]])
def test_a_missing_bucket_is_one_error_line(aws: S3Server, command: list[str]) -> None:
    store = "s3://no-such-bucket-here/data"
    result = run(command[0], store, *command[1:])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("group-store: error: ")
    assert "s3://no-such-bucket-here" in result.stderr


def test_an_unreachable_endpoint_is_one_error_line(aws: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # A port nothing listens on: the test server's own, once it has moved elsewhere, is not
    # knowable; port 9 (discard) on 127.0.0.1 is refused on this machine's loopback.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    result = run("tree", "s3://bucket/data", "--json")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("group-store: error: ")
    assert json.loads(result.stdout)["error"]["path"].startswith("s3://bucket")
