"""Snapshots of a store subtree compared with a golden directory (used by the pytest plugin)."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ._codec import encode_document, encode_lines
from ._errors import GroupStoreError
from ._inventory import walk
from ._layout import SIDECAR_SUFFIX
from ._view import View

MASKED = "<masked>"
Mask = str | re.Pattern[str] | Callable[[Any], Any]
_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\*|\d+)\]")


def parse_json_path(path: str) -> list[str | int | None]:
    """``$.messages[*].id`` -> ``["messages", None, "id"]`` (``None`` is every element).

    Raises:
        ValueError: for a path that does not start with ``$`` or has a bad step.
    """
    if not path.startswith("$"):
        raise ValueError(f"a JSON path starts with '$': {path!r}")
    tokens: list[str | int | None] = []
    position = 1
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise ValueError(f"cannot parse JSON path {path!r} at {path[position:]!r}")
        name, index = match.groups()
        tokens.append(name if name is not None else (None if index == "*" else int(index)))
        position = match.end()
    return tokens


def _mask_path(value: Any, tokens: Sequence[str | int | None]) -> Any:
    if not tokens:
        return MASKED
    head, rest = tokens[0], tokens[1:]
    if isinstance(head, str) and isinstance(value, dict) and head in value:
        return {**value, head: _mask_path(value[head], rest)}
    if head is None and isinstance(value, list):
        return [_mask_path(item, rest) for item in value]
    if head is None and isinstance(value, dict):
        return {key: _mask_path(item, rest) for key, item in value.items()}
    if isinstance(head, int) and isinstance(value, list) and -len(value) <= head < len(value):
        return [_mask_path(item, rest) if i == head % len(value) else item for i, item in enumerate(value)]
    return value


class Masks:
    """Compiled masks: JSON paths and callables act on values, regular expressions on the rendered text."""

    def __init__(self, masks: Mask | Iterable[Mask] = ()) -> None:
        items = [masks] if isinstance(masks, str | re.Pattern) or callable(masks) else list(masks)
        self.paths = [parse_json_path(m) for m in items if isinstance(m, str)]
        self.patterns = [m for m in items if isinstance(m, re.Pattern)]
        self.functions = [m for m in items if callable(m) and not isinstance(m, str | re.Pattern)]

    def value(self, value: Any) -> Any:
        for tokens in self.paths:
            value = _mask_path(value, tokens)
        for function in self.functions:
            value = function(value)
        return value

    def text(self, text: str) -> str:
        for pattern in self.patterns:
            text = pattern.sub(MASKED, text)
        return text


def _strict(error: GroupStoreError) -> None:
    # A snapshot that silently left out an unreadable entry could pass where it must fail.
    raise error


def render(root: Path, masks: Masks, include_metadata: bool) -> dict[str, str]:
    """The subtree under ``root`` as ``{relative file path: masked canonical text}``.

    Raises:
        GroupStoreError: for the first entry or directory that cannot be read.
    """
    files: dict[str, str] = {}
    for entry in walk(root, include_expired=True, on_error=_strict):
        relative = entry.path.relative_to(root).as_posix()
        if entry.kind == "document":
            data = encode_document(entry.key, masks.value(entry.value()))
        else:
            data = encode_lines(entry.key, [masks.value(item) for item in entry.value()])
        files[relative] = masks.text(data.decode())
        sidecar = entry.path.with_name(entry.path.name[: -len(".json")] + SIDECAR_SUFFIX)
        if include_metadata and entry.kind == "document" and sidecar.is_file():
            files[sidecar.relative_to(root).as_posix()] = masks.text(sidecar.read_text())
    return files


def read_golden(directory: Path) -> dict[str, str]:
    """Every file of a golden directory as ``{relative path: text}``."""
    if not directory.is_dir():
        return {}
    return {
        path.relative_to(directory).as_posix(): path.read_text()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def compare(expected: dict[str, str], actual: dict[str, str], golden: Path) -> str | None:
    """A readable failure message, or ``None`` if the two trees are equal."""
    parts: list[str] = []
    missing = sorted(expected.keys() - actual.keys())
    unexpected = sorted(actual.keys() - expected.keys())
    for name in sorted(expected.keys() & actual.keys()):
        if expected[name] != actual[name]:
            diff = difflib.unified_diff(
                expected[name].splitlines(keepends=True),
                actual[name].splitlines(keepends=True),
                f"golden/{name}",
                f"store/{name}",
            )
            parts.append("".join(diff))
    if missing:
        parts.append("missing from the store (in the snapshot only):\n" + "".join(f"  {n}\n" for n in missing))
    if unexpected:
        parts.append("unexpected in the store (not in the snapshot):\n" + "".join(f"  {n}\n" for n in unexpected))
    if not parts:
        return None
    header = f"store does not match snapshot {golden}\n(run pytest --store-snapshot-update to accept the new state)\n"
    return header + "\n".join(parts)


def write_golden(directory: Path, files: dict[str, str]) -> None:
    """Make ``directory`` hold exactly ``files``: write new and changed ones, remove stale ones."""
    existing = read_golden(directory)
    for name in existing.keys() - files.keys():
        (directory / name).unlink()
    for name, text in files.items():
        if existing.get(name) != text:
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in sorted(directory.rglob("*"), reverse=True) if directory.is_dir() else []:
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


class StoreSnapshot:
    """Compares store subtrees with golden directories (the ``store_snapshot`` fixture)."""

    def __init__(self, directory: Path, update: bool) -> None:
        self.directory = directory
        self.update = update

    def assert_match(
        self,
        store: View | str | os.PathLike[str],
        *,
        mask: Mask | Iterable[Mask] = (),
        include_metadata: bool = False,
        name: str | None = None,
    ) -> None:
        """Assert that ``store`` (a Store, DataStore, narrowed view or directory) matches its snapshot.

        ``mask`` takes JSON paths (``"$.created_at"``, ``"$.messages[*].id"``),
        compiled regular expressions (applied to the file text) and callables
        (``value -> value``), applied before comparing and before writing golden
        files. Sidecars (expiry metadata) are left out unless ``include_metadata``.
        A DataStore's queued writes are flushed first. ``name`` keeps several
        snapshots apart in one test.

        Raises:
            AssertionError: with a unified diff per differing file and the lists
                of missing and unexpected files (unless updating).
        """
        golden = self.directory / name if name else self.directory
        root = Path(store.root_path if isinstance(store, View) else store)
        writer = getattr(store, "_writer", None)
        if writer is not None:
            writer.barrier().result()
        actual = render(root, Masks(mask), include_metadata)
        if self.update:
            write_golden(golden, actual)
            return
        message = compare(read_golden(golden), actual, golden)
        if message is not None:
            raise AssertionError(message)
