"""The adapters stay adapters: public group_store names only, and each framework imported only by its own module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

INTEGRATIONS = Path(__file__).resolve().parents[2] / "group_store" / "integrations"
FRAMEWORKS = {"agents": "openai_agents", "google": "adk"}


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(module, relative level, at module level)`` for every import in ``path``."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level, id(node) in top))
    return found


@pytest.mark.parametrize("path", sorted(INTEGRATIONS.glob("*.py")), ids=lambda p: p.name)
def test_adapters_use_public_names_and_their_own_framework(path: Path) -> None:
    for module, level, _ in _imports(path):
        assert not (level == 0 and module.startswith("group_store._")), f"{path.name} imports {module}"
        if level == 1:  # only the adapters' own private helpers, never another adapter
            assert module.startswith("_"), f"{path.name}: from .{module} import ..."
        assert level <= 1, f"{path.name} reaches outside group_store.integrations: {'.' * level}{module}"
        root = module.split(".")[0]
        if level == 0 and root in FRAMEWORKS:
            assert path.stem == FRAMEWORKS[root], f"{path.name} imports {root}, which belongs to {FRAMEWORKS[root]}.py"


def test_the_openai_adapter_imports_its_sdk_only_inside_functions() -> None:
    top_level = [module for module, level, top in _imports(INTEGRATIONS / "openai_agents.py") if top and level == 0]
    assert not [module for module in top_level if module.split(".")[0] == "agents"]
