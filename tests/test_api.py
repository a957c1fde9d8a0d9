"""The public surface: __all__ is honest, errors are structured and pickle cleanly."""

from __future__ import annotations

import fnmatch
import inspect
import pickle
import tomllib
from pathlib import Path

import pytest

import group_store
import group_store.storage
from group_store import (
    CorruptEntryError,
    EntryKindError,
    GroupStoreError,
    InvalidArgumentError,
    InvalidKeyError,
    KeyNotFoundError,
    LockTimeoutError,
    SerializationError,
    StorageError,
    StoreClosedError,
    UnsafeFileError,
)


def test_all_is_sorted_and_complete() -> None:
    assert group_store.__all__ == sorted(group_store.__all__)
    # The names are imported on first use: each must resolve, and __all__ must list them all.
    assert set(group_store._EXPORTS) == set(group_store.__all__)
    for name in group_store.__all__:
        getattr(group_store, name)
    submodules = {"testing", "pytest_plugin", "repos", "integrations", "storage", "tools", "cli"}
    # pytest rewrites asserts in packages that ship a plugin and adds "@py_builtins" and the like.
    # dir() is what a user sees: exactly __all__ besides the submodules.
    public = {
        name for name in dir(group_store) if name.isidentifier() and not name.startswith("_") and name not in submodules
    }
    assert public == set(group_store.__all__)


def test_the_storage_seams_all_is_sorted_and_complete() -> None:
    seam = group_store.storage
    assert seam.__all__ == sorted(seam.__all__)
    assert set(seam._EXPORTS) == set(seam.__all__)
    for name in seam.__all__:
        assert getattr(seam, name).__doc__, name
    # dir() is what a user sees: __all__, and nothing public besides (the backends' modules are
    # private; pytest's assert rewriting may add "@py_builtins" and the like, not identifiers).
    public = {name for name in dir(seam) if name.isidentifier() and not name.startswith("_")}
    assert public == set(seam.__all__)


def test_every_public_function_is_documented() -> None:
    for name in group_store.__all__:
        obj = getattr(group_store, name)
        assert obj.__doc__, name
        for member_name, member in inspect.getmembers(obj, inspect.isfunction):
            if not member_name.startswith("_"):
                assert member.__doc__, f"{name}.{member_name}"


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (InvalidKeyError, ValueError),
        (InvalidArgumentError, ValueError),
        (KeyNotFoundError, KeyError),
        (SerializationError, TypeError),
        (CorruptEntryError, ValueError),
        (EntryKindError, TypeError),
        (UnsafeFileError, OSError),
        (StorageError, OSError),
        (StoreClosedError, RuntimeError),
        (LockTimeoutError, TimeoutError),
    ],
)
def test_errors_inherit_the_matching_builtin_and_pickle(error: type[GroupStoreError], builtin: type) -> None:
    instance = error("went wrong", key="k/1", path=Path("/s/k~2f1.json"))
    assert isinstance(instance, GroupStoreError)
    assert isinstance(instance, builtin)
    assert str(instance) == "went wrong (key='k/1', file='/s/k~2f1.json')"
    clone = pickle.loads(pickle.dumps(instance))
    assert type(clone) is error
    assert (clone.key, clone.path, str(clone)) == (instance.key, instance.path, str(instance))


def test_storage_error_keeps_errno_through_pickle() -> None:
    error = StorageError("No space left on device", key="k", path="/s/k.json", errno=28)
    assert pickle.loads(pickle.dumps(error)).errno == 28


def test_every_subpackage_is_packaged() -> None:
    root = Path(__file__).resolve().parent.parent
    find = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = {".".join(init.parent.relative_to(root).parts) for init in (root / "group_store").rglob("__init__.py")}
    # setuptools' find matches each package name against the include patterns with fnmatch.
    assert all(any(fnmatch.fnmatchcase(package, pattern) for pattern in find["include"]) for package in found)
    assert "exclude" not in find
