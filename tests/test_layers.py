"""The package's layers, enforced on its imports (issue 10).

Every module under ``group_store/`` is parsed with ``ast``; its runtime imports are
checked against the rules below. Runtime means: an import under ``if TYPE_CHECKING:``
(or ``if _typing.TYPE_CHECKING:``) is ignored, a function-local import counts (it runs
when the function does). Relative imports are resolved to absolute module names, and
``from package import name`` counts as importing ``package.name`` when that is a module.

Not checked: imports by string (``importlib.import_module(name)``, which the lazy
``__init__`` modules use: their names come from data), and file I/O through
``pathlib.Path`` methods (a ``Path`` is also a plain value, so its import proves nothing).

Each rule is a function from imports to violation messages, so the tests at the end
show each rule fires on a planted violation.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "group_store"

# The pure layer decides (key encoding, codec, expiry arithmetic, layout names, schema)
# and never touches a file, a thread or the event loop.
PURE_FORBIDDEN = frozenset(
    {"os", "io", "shutil", "tempfile", "tarfile", "fcntl", "filelock", "threading", "anyio", "socket", "subprocess"}
)

# Modules that reach the file system directly; only the allow-listed modules may import them.
IO_MODULES = frozenset({"os", "shutil", "tarfile", "fcntl", "filelock"})
IO_ALLOWED: dict[str, str] = {
    # The POSIX backend itself: files, atomic renames, directory descriptors.
    "group_store.storage._local": "the local backend",
    # The local backend's directory locks (fcntl on the kept .lock descriptor, filelock).
    "group_store.storage._locks": "the local backend's locks",
    # The local backend's directory opening and creation (O_DIRECTORY, O_NOFOLLOW, mkdir).
    "group_store.storage._directories": "the local backend's directories",
    # The local backend's durability: fsync of files and of their directories.
    "group_store.storage._fsync": "the local backend's fsync",
    # The local backend's version tokens: read-only descriptors that pin inodes, and their budget.
    "group_store.storage._pins": "the local backend's pinned descriptors",
    # os.getpid only: the S3 backend's request pool is rebuilt in a forked child.
    "group_store.storage._s3_client": "the S3 backend's fork check",
    # os.register_at_fork only (a forked child gets a fresh handle guard); no file is touched.
    "group_store._api.handle": "the fork hook of write handles",
    # Writes the archive file itself (.tar.gz through tarfile, or .jsonl): a file the user named, not the store.
    "group_store.tools._archive": "the archive file",
    # Reads the archive file, and unpacks a .tar.gz into a private temporary directory before importing.
    "group_store.tools._import": "the archive file",
}

# Each layer and the layers it may import (itself included). Anything else in
# group_store (the package facade, testing, cli, the plugin, repos, integrations) is above them all.
LAYERS: dict[str, frozenset[str]] = {
    "_errors": frozenset({"_errors"}),
    "_format": frozenset({"_format", "_errors"}),
    "storage": frozenset({"storage", "_format", "_errors"}),
    "_engine": frozenset({"_engine", "storage", "_format", "_errors"}),
    "_api": frozenset({"_api", "_engine", "storage", "_format", "_errors"}),
    "tools": frozenset({"tools", "_api", "_engine", "storage", "_format", "_errors"}),
}

# Adapters: thin shells over the public API. Each may import, from group_store, only the
# public modules and its own package (a subpackage's private modules included).
PUBLIC_MODULES = frozenset({"group_store", "group_store.storage", "group_store.testing"})
ADAPTERS: dict[str, str] = {
    "group_store.cli": "group_store.cli",
    "group_store.pytest_plugin": "group_store.pytest_plugin",
    "group_store.repos": "group_store.repos",
    "group_store.integrations": "group_store.integrations",
}


@dataclass(frozen=True)
class Import:
    """One runtime import: ``importer`` imports the absolute module ``target``."""

    importer: str
    target: str
    line: int
    statement: str

    def __str__(self) -> str:
        return f"{self.importer} imports {self.target} (line {self.line}: {self.statement})"

    @property
    def top(self) -> str:
        return self.target.partition(".")[0]


@dataclass(frozen=True)
class Module:
    name: str
    source: str
    is_package: bool


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``<anything>.TYPE_CHECKING`` (``typing.``, ``_typing.``)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _RuntimeImports(ast.NodeVisitor):
    def __init__(self, module: Module, known: frozenset[str]) -> None:
        self.module, self.known = module, known
        self.found: list[Import] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:  # the else branch runs
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._resolve(node)
        targets = [f"{base}.{alias.name}" for alias in node.names]
        # dict.fromkeys: one import per target module, in order (names from one module are one import).
        for target in dict.fromkeys(target if target in self.known else base for target in targets):
            self._add(node, target)

    def _resolve(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = self.module.name.split(".")
        if not self.module.is_package:
            parts = parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        return ".".join([*parts, *([node.module] if node.module else [])])

    def _add(self, node: ast.stmt, target: str) -> None:
        self.found.append(Import(self.module.name, target, node.lineno, ast.unparse(node)))


def modules_under(package: Path) -> list[Module]:
    """Every module of the package at ``package`` (a directory named after it)."""
    modules = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules.append(Module(name, path.read_text(), is_package))
    return modules


def runtime_imports(modules: Sequence[Module]) -> list[Import]:
    known = frozenset(module.name for module in modules)
    found: list[Import] = []
    for module in modules:
        visitor = _RuntimeImports(module, known)
        visitor.visit(ast.parse(module.source, filename=module.name))
        found += visitor.found
    return found


def _ours(name: str) -> bool:
    return name == "group_store" or name.startswith("group_store.")


def layer_of(name: str) -> str | None:
    """The layer of the group_store module ``name``, or ``None`` above the layers."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


Rule = Callable[[Iterable[Import]], Iterator[str]]

# -- the rules --------------------------------------------------------------------------


def pure_layer_violations(imports: Iterable[Import]) -> Iterator[str]:
    for imp in imports:
        if layer_of(imp.importer) != "_format":
            continue
        if imp.top in PURE_FORBIDDEN:
            yield f"{imp}: the pure layer does no I/O"
        elif _ours(imp.target) and layer_of(imp.target) not in {"_format", "_errors"}:
            yield f"{imp}: the pure layer imports only _format and _errors"


def io_module_violations(imports: Iterable[Import]) -> Iterator[str]:
    for imp in imports:
        if imp.top in IO_MODULES and _ours(imp.importer) and imp.importer not in IO_ALLOWED:
            yield f"{imp}: only the local backend and the archive file handling import {imp.top}"


def layer_violations(imports: Iterable[Import]) -> Iterator[str]:
    for imp in imports:
        layer = layer_of(imp.importer)
        if layer is None or not _ours(imp.target):
            continue
        target_layer = layer_of(imp.target)
        if target_layer not in LAYERS[layer]:
            above = target_layer or "a module above the layers"
            yield f"{imp}: the {layer} layer imports only {', '.join(sorted(LAYERS[layer]))}, not {above}"


def adapter_violations(imports: Iterable[Import]) -> Iterator[str]:
    for imp in imports:
        own = next((package for package in ADAPTERS if _within(imp.importer, package)), None)
        if own is None or not _ours(imp.target):
            continue
        if imp.target not in PUBLIC_MODULES and not _within(imp.target, ADAPTERS[own]):
            yield f"{imp}: an adapter imports only {', '.join(sorted(PUBLIC_MODULES))} and its own package"


def modules_loaded_by(statement: str) -> list[str]:
    """The group_store modules a fresh interpreter loads to run ``statement``."""
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.split('.')[0] == 'group_store')))\n"
    )
    # This tree's code, whatever is installed.
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


# -- the rules on group_store ------------------------------------------------------------

IMPORTS = runtime_imports(modules_under(PACKAGE))


def _assert_none(violations: Iterable[str]) -> None:
    found = list(violations)
    if found:
        pytest.fail(f"{len(found)} violation(s):\n" + "\n".join(found), pytrace=False)


def test_the_pure_layer_imports_no_io_and_nothing_above_it() -> None:
    _assert_none(pure_layer_violations(IMPORTS))


def test_only_the_local_backend_and_the_archive_import_file_system_modules() -> None:
    _assert_none(io_module_violations(IMPORTS))


def test_layers_import_only_downward() -> None:
    _assert_none(layer_violations(IMPORTS))


def test_adapters_import_only_public_names() -> None:
    _assert_none(adapter_violations(IMPORTS))


def test_importing_the_plugin_loads_no_store_module() -> None:
    # pytest loads the plugin in every run of every user's environment.
    assert modules_loaded_by("import group_store.pytest_plugin") == ["group_store", "group_store.pytest_plugin"]


def test_importing_the_package_loads_only_its_init() -> None:
    assert modules_loaded_by("import group_store") == ["group_store"]


def test_the_scan_sees_every_layer_and_adapter() -> None:
    # A rule over no imports would pass: each rule's subject must be in the scan.
    importers = {imp.importer for imp in IMPORTS}
    assert {layer for name in importers if (layer := layer_of(name))} == set(LAYERS)
    assert all(any(_within(name, adapter) for name in importers) for adapter in ADAPTERS)
    assert set(IO_ALLOWED) <= {module.name for module in modules_under(PACKAGE)}, "an allow-list entry is stale"


# -- each rule can fail ------------------------------------------------------------------

KNOWN = [Module(module.name, "", module.is_package) for module in modules_under(PACKAGE)]


def _planted(name: str, source: str, *, is_package: bool = False) -> list[Import]:
    """The imports of one planted module (the real modules are known, so ``from . import x`` resolves)."""
    planted = Module(name, source, is_package)
    return runtime_imports([*(module for module in KNOWN if module.name != name), planted])


@pytest.mark.parametrize(
    ("rule", "module", "source", "expected"),
    [
        (pure_layer_violations, "group_store._format.keys", "import os", "group_store._format.keys imports os"),
        (pure_layer_violations, "group_store._format.codec", "def f():\n    import anyio", "imports anyio (line 2"),
        (pure_layer_violations, "group_store._format.codec", "from io import BytesIO", "imports io"),
        (pure_layer_violations, "group_store._format.keys", "from ..storage import Storage", "group_store.storage"),
        (pure_layer_violations, "group_store._format.keys", "from .. import _engine", "imports group_store._engine"),
        (io_module_violations, "group_store._engine.sweep", "import shutil", "_engine.sweep imports shutil"),
        (io_module_violations, "group_store.cli", "from os import path", "group_store.cli imports os"),
        (io_module_violations, "group_store.storage._base", "import filelock", "imports filelock"),
        (io_module_violations, "group_store._api.store", "import os.path", "imports os.path"),
        (layer_violations, "group_store.storage._base", "from .._engine import engine", "not _engine"),
        (layer_violations, "group_store._format.keys", "from group_store._api import store", "not _api"),
        (layer_violations, "group_store._engine.sweep", "from ..tools._verify import x", "not tools"),
        (layer_violations, "group_store.tools._diff", "from .. import Store", "not a module above the layers"),
        (layer_violations, "group_store._api.store", "from ..testing import FakeClock", "above the layers"),
        (adapter_violations, "group_store.cli", "from ._api.store import Store", "imports group_store._api.store"),
        (adapter_violations, "group_store.cli", "from . import _errors", "imports group_store._errors"),
        (adapter_violations, "group_store.pytest_plugin", "from group_store.tools import _snapshot", "_snapshot"),
        (adapter_violations, "group_store.repos.nexus", "from ..storage._local import X", "storage._local"),
        (adapter_violations, "group_store.integrations.adk", "from ..repos import nexus", "group_store.repos"),
    ],
)
def test_each_rule_names_a_planted_violation(rule: Rule, module: str, source: str, expected: str) -> None:
    [violation] = rule(_planted(module, source))
    assert expected in violation
    assert module in violation


@pytest.mark.parametrize(
    ("rule", "module", "source"),
    [
        (
            pure_layer_violations,
            "group_store._format.keys",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import os",
        ),
        (
            pure_layer_violations,
            "group_store._format.keys",
            "import typing as _typing\nif _typing.TYPE_CHECKING:\n    import anyio",
        ),
        (
            pure_layer_violations,
            "group_store._format.keys",
            "from .._errors import InvalidKeyError\nfrom . import codec",
        ),
        (io_module_violations, "group_store.storage._local", "import os\nimport fcntl"),
        (io_module_violations, "group_store._api.store", "from pathlib import Path"),
        (
            layer_violations,
            "group_store._api.store",
            "from .._engine.engine import Engine\nfrom ..storage import Storage",
        ),
        (layer_violations, "group_store.tools._verify", "from .._api.store import Store"),
        (adapter_violations, "group_store.cli", "from . import Store\nfrom .storage import LocalStorage"),
        (
            adapter_violations,
            "group_store.repos.genie._sessions",
            "from ._base import X\nfrom ...testing import FakeClock",
        ),
        (
            adapter_violations,
            "group_store.integrations.langgraph.saver",
            "from group_store.integrations._blocking import x",
        ),
    ],
)
def test_each_rule_allows_what_it_should(rule: Rule, module: str, source: str) -> None:
    assert list(rule(_planted(module, source))) == []


def test_the_else_branch_of_type_checking_counts() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\nelse:\n    import os"
    [violation] = pure_layer_violations(_planted("group_store._format.keys", source))
    assert "imports os (line 5" in violation


def test_a_violation_planted_in_a_copy_of_the_package_is_found(tmp_path: Path) -> None:
    copy = tmp_path / "group_store"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = set(io_module_violations(runtime_imports(modules_under(copy))))
    with open(copy / "_format" / "keys.py", "a") as keys:
        keys.write("\n\ndef _planted() -> None:\n    import shutil\n")
    with open(copy / "storage" / "_base.py", "a") as base:
        base.write("\nfrom .._api import store as _planted\n")
    imports = runtime_imports(modules_under(copy))
    assert any("group_store._format.keys imports shutil" in v for v in pure_layer_violations(imports))
    [added] = set(io_module_violations(imports)) - before  # the function-local import, and only it
    assert "group_store._format.keys imports shutil" in added
    assert any("group_store.storage._base imports group_store._api.store" in v for v in layer_violations(imports))


def test_the_import_probe_sees_modules_loaded_beyond_the_init() -> None:
    # The two probes above pass only on a lazy package: the probe must see an eager load.
    loaded = modules_loaded_by("import group_store\ngroup_store.Store")
    assert "group_store._api.store" in loaded
