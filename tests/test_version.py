"""``group_store.__version__`` is the version pyproject.toml declares."""

from __future__ import annotations

import tomllib
from pathlib import Path

import group_store


def test_version_is_the_one_pyproject_declares() -> None:
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    assert group_store.__version__ == tomllib.loads(pyproject.read_text())["project"]["version"]
