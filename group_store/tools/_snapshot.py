"""Snapshots of a store subtree compared with a golden directory (used by the pytest plugin).

Masks hide volatile values before comparing: JSON paths (``$.a``, ``$.a.*``,
``$..id``, ``$[0]``, ``$['a.b']``) and callables act on parsed values,
regular expressions on the rendered text. Each JSON path and regular
expression counts what it matched, so a mask that matched nothing in a whole
snapshot (a typo, or a field that moved) is reported instead of passing
silently.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import GroupStoreError, InvalidArgumentError
from .._format.codec import encode_document, encode_lines
from .._format.expiry import digest, encode_sidecar
from .._format.keys import encode_segment
from .._format.layout import DOCUMENT_SUFFIX, LOG_SUFFIX, SIDECAR_SUFFIX, encode_directory, join
from ._walk import StoreOrPath, walk

if TYPE_CHECKING:
    from .._engine.inventory import Entry

MASKED = "<masked>"
Mask = str | re.Pattern[str] | Callable[[Any], Any]
Selector = str | int | None
"""A member name, a list index, or ``None`` for every member or element."""


class UnmatchedMaskWarning(UserWarning):
    """A snapshot mask (JSON path or regular expression) matched nothing in a whole snapshot."""


@dataclass(frozen=True)
class Step:
    """One step of a JSON path: ``selector`` applied to the current values' children
    (``descendant=False``) or to every value below them at any depth (``..``)."""

    selector: Selector
    descendant: bool = False


_NAME = re.compile(r"[^.\[\]]+")
_BRACKET = re.compile(r"\[(?:(\*)|(-?\d+)|'([^']*)'|\"([^\"]*)\")\]")
_SYNTAX = "supported steps: .name, .*, ..name, ..*, [n], [*], ['name'], each of them after .. too"


def parse_json_path(path: str) -> list[Step]:
    """``$.messages[*].id`` -> steps ``messages``, every element, ``id``.

    ``.*`` and ``[*]`` select every member of an object and every element of a
    list; ``..`` before a step applies it at every depth (``$..id`` is every
    ``id`` anywhere); ``['a.b']`` names a member that holds ``.``, ``[`` or
    ``*``. Filters, slices and unions are not supported.

    Raises:
        InvalidArgumentError: (a ``ValueError``) for a path that does not start
            with ``$`` or has a step outside this grammar, naming where.
    """
    if not path.startswith("$"):
        raise InvalidArgumentError(f"a JSON path mask starts with '$': {path!r}")
    steps: list[Step] = []
    position = 1
    while position < len(path):
        descendant = path.startswith("..", position)
        dotted = descendant or path[position] == "."
        position += 2 if descendant else 1 if dotted else 0
        name = _NAME.match(path, position) if dotted else None
        bracket = None if name else _BRACKET.match(path, position)
        if name is not None:
            steps.append(Step(None if name.group() == "*" else name.group(), descendant))
            position = name.end()
        elif bracket is not None and (descendant or not dotted):
            star, index, single, double = bracket.groups()
            selector: Selector = None if star else int(index) if index is not None else single or double or ""
            steps.append(Step(selector, descendant))
            position = bracket.end()
        else:
            raise InvalidArgumentError(f"cannot parse JSON path {path!r} at {path[position:]!r} ({_SYNTAX})")
    return steps


class _Hits:
    """How many values one mask replaced, over a whole snapshot."""

    def __init__(self) -> None:
        self.count = 0


def _selects(selector: Selector, container: Any, place: str | int) -> bool:
    if selector is None:
        return True
    if isinstance(selector, str):
        return isinstance(container, dict) and place == selector
    # An index selects list elements only; a negative one counts from the end.
    return (
        isinstance(container, list)
        and -len(container) <= selector < len(container)
        and place == selector % len(container)
    )


def _mask(value: Any, steps: Sequence[Step], hits: _Hits) -> Any:
    if not steps:
        hits.count += 1
        return MASKED
    step, rest = steps[0], steps[1:]

    def replace(place: str | int, item: Any) -> Any:
        if _selects(step.selector, value, place):
            item = _mask(item, rest, hits)
        if step.descendant:
            # ``..`` searches every depth: the same steps again one level down (in the
            # masked child, so a subtree already replaced is not searched).
            item = _mask(item, steps, hits)
        return item

    if isinstance(value, dict):
        return {key: replace(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [replace(index, item) for index, item in enumerate(value)]
    return value


class Masks:
    """Compiled masks: JSON paths and callables act on values, regular expressions on the rendered text.

    Each JSON path and regular expression counts its matches across every call,
    so ``unmatched()`` names those that matched nothing in a whole snapshot
    (callables are opaque: they are never reported).

    Raises:
        InvalidArgumentError: for a JSON path outside ``parse_json_path``'s grammar
            or a mask that is neither a string, a compiled pattern nor a callable.
    """

    def __init__(self, masks: Mask | Iterable[Mask] = ()) -> None:
        items = [masks] if isinstance(masks, str | re.Pattern) or callable(masks) else list(masks)
        self.paths: list[tuple[str, list[Step], _Hits]] = []
        self.patterns: list[tuple[re.Pattern[str], _Hits]] = []
        self.functions: list[Callable[[Any], Any]] = []
        for mask in items:
            if isinstance(mask, str):
                self.paths.append((mask, parse_json_path(mask), _Hits()))
            elif isinstance(mask, re.Pattern):
                self.patterns.append((mask, _Hits()))
            elif callable(mask):
                self.functions.append(mask)
            else:
                raise InvalidArgumentError(
                    f"a mask is a JSON path string, a compiled regular expression or a callable, not {mask!r}"
                )

    def value(self, value: Any) -> Any:
        """``value`` with every JSON path and then every callable applied."""
        return self.functions_only(self.paths_only(value))

    def paths_only(self, value: Any) -> Any:
        """``value`` with every JSON path applied (sidecars get these, not the callables)."""
        for _, steps, hits in self.paths:
            value = _mask(value, steps, hits)
        return value

    def functions_only(self, value: Any) -> Any:
        for function in self.functions:
            value = function(value)
        return value

    def text(self, text: str) -> str:
        """``text`` with every regular expression's matches replaced."""
        for pattern, hits in self.patterns:
            text, count = pattern.subn(MASKED, text)
            hits.count += count
        return text

    def unmatched(self) -> list[str]:
        """The JSON paths and patterns that have matched nothing so far, as written."""
        return [text for text, _, hits in self.paths if not hits.count] + [
            f"re.compile({pattern.pattern!r})" for pattern, hits in self.patterns if not hits.count
        ]


def _strict(error: GroupStoreError) -> None:
    # A snapshot that silently left out an unreadable entry could pass where it must fail.
    raise error


def _render_sidecar(masks: Masks, data: bytes, expires_at: float) -> str:
    # The store's own sidecar is not copied: its keys are digests of the unmasked bytes
    # (different on every run once a mask hides an id) and it may still bind earlier
    # bytes (a crash-safety detail that depends on history). The snapshot gets the
    # sidecar the store would write for the golden data file itself, so a golden
    # directory stays a valid store (seeded with store_fixture, its expiry holds).
    value = masks.paths_only(orjson.loads(encode_sidecar({digest(data): expires_at})))
    return masks.text(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode())


def render(store: StoreOrPath, masks: Masks, include_metadata: bool) -> dict[str, str]:
    """The subtree of ``store`` (a store or view, or a path) as ``{relative file path:
    masked canonical text}``, read through the store's backend.

    Documents get every mask; each log line gets the JSON paths and callables,
    the whole log the patterns. With ``include_metadata`` an entry with an
    expiry also gets its sidecar (JSON paths and patterns, never callables,
    which are written for the application's data), binding the golden data
    bytes to the entry's expiry.

    Raises:
        GroupStoreError: for the first entry or directory that cannot be read.
    """
    files: dict[str, str] = {}
    for entry in walk(store, include_expired=True, on_error=_strict):
        stem = _relative_stem(entry)
        if entry.kind == "document":
            data = encode_document(entry.key, masks.value(entry.value()))
        else:
            data = encode_lines(entry.key, [masks.value(item) for item in entry.value()])
        text = files[stem + (DOCUMENT_SUFFIX if entry.kind == "document" else LOG_SUFFIX)] = masks.text(data.decode())
        if include_metadata and entry.expires_at is not None:
            files[stem + SIDECAR_SUFFIX] = _render_sidecar(masks, text.encode(), entry.expires_at.timestamp())
    return files


def _relative_stem(entry: Entry) -> str:
    """The entry's file path without suffix, relative to the walked store: the store's own
    names (encoded), so a golden directory is laid out as a store and can seed one."""
    return join(encode_directory(entry.segments), encode_segment(entry.key))


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
    """A readable failure message, or ``None`` if the two trees are equal.

    A golden directory that does not exist yet (and a store that is not empty)
    gets one line saying so, instead of every file listed as unexpected.
    """
    if not expected and actual and not golden.is_dir():
        return (
            f"no snapshot yet: run pytest --store-snapshot-update to record {golden}\n"
            f"(the store holds {len(actual)} file(s): {', '.join(sorted(actual)[:5])}"
            f"{', ...' if len(actual) > 5 else ''})"
        )
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
    """Make ``directory`` hold exactly ``files``: write new and changed ones, remove stale ones.

    A directory left empty is removed (git keeps no empty directories, so an
    empty snapshot is the absence of its directory).
    """
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
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


class StoreSnapshot:
    """Compares store subtrees with golden directories (the ``store_snapshot`` fixture).

    ``on_use`` is told the name (``""`` for none) of every snapshot asserted,
    so the plugin can tell which golden directories a test still uses.
    """

    def __init__(self, directory: Path, update: bool, on_use: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.update = update
        self._on_use = on_use

    def assert_match(
        self,
        store: StoreOrPath,
        *,
        mask: Mask | Iterable[Mask] = (),
        include_metadata: bool = False,
        name: str | None = None,
    ) -> None:
        """Assert that ``store`` (a Store, DataStore, narrowed view or directory) matches its snapshot.

        ``mask`` takes JSON paths (``"$.created_at"``, ``"$.messages[*].id"``,
        ``"$.a.*"``, ``"$..id"``; see ``parse_json_path``), compiled regular
        expressions (applied to the file text) and callables (``value -> value``),
        applied before comparing and before writing golden files. A JSON path or
        pattern that matched nothing in the whole snapshot raises an
        ``UnmatchedMaskWarning``. Sidecars (expiry metadata) are left out unless
        ``include_metadata``; then each entry with an expiry gets the sidecar the
        store would write for its masked bytes, with the JSON paths and patterns
        applied (use the ``store_clock`` fixture for times that do not change
        between runs, or mask ``"$.expires_at.*"``). A DataStore's queued writes
        are flushed first. ``name`` keeps several snapshots apart in one test.

        Raises:
            AssertionError: with a unified diff per differing file and the lists
                of missing and unexpected files, or "no snapshot yet" when the
                golden directory does not exist (unless updating).
            InvalidArgumentError: for a mask outside the grammar above.
        """
        masks = Masks(mask)
        if self._on_use is not None:
            self._on_use(name or "")
        golden = self.directory / name if name else self.directory
        writer = getattr(store, "_writer", None)
        if writer is not None:
            writer.barrier().result()
        actual = render(store, masks, include_metadata)
        for unmatched in masks.unmatched():
            warnings.warn(
                UnmatchedMaskWarning(f"mask {unmatched} matched nothing in snapshot {golden}"),
                stacklevel=2,
            )
        if self.update:
            write_golden(golden, actual)
            return
        message = compare(read_golden(golden), actual, golden)
        if message is not None:
            raise AssertionError(message)


def unused_snapshots(module_directory: Path, tests: dict[str, set[str] | None]) -> list[Path]:
    """The golden files and directories under ``__store_snapshots__/<module>/`` that no test uses.

    ``tests`` maps the directory name of every test of the module that was
    collected to the snapshot names it asserted (``""`` for an unnamed one), or
    to ``None`` when that is not known (the test failed, was skipped or did not
    run): a test that is not collected uses nothing; an unknown one keeps its
    whole directory; one that passed keeps what it asserted. The caller must
    pass a module only when every one of its tests was collected.
    """
    unused: list[Path] = []
    for child in sorted(module_directory.iterdir()):
        if child.name not in tests:
            unused.append(child)
        elif (used := tests[child.name]) is not None:
            unused.extend(_unused_within(child, "", used))
    return unused


def _unused_within(path: Path, relative: str, used: set[str]) -> list[Path]:
    if relative in used:
        return []
    prefix = f"{relative}/" if relative else ""
    if not any(name.startswith(prefix) for name in used) or not path.is_dir():
        return [path]
    return [found for child in sorted(path.iterdir()) for found in _unused_within(child, prefix + child.name, used)]


def snapshot_directory_name(name: str) -> str:
    """The directory of a test's snapshots under ``__store_snapshots__/<module>/``: the test's
    name encoded as a store key (so any test name is a valid, unambiguous directory name)."""
    return encode_segment(name)


def remove_snapshot(path: Path) -> None:
    """Remove an unused golden file or directory, and its module directory if that is left empty."""
    if path.is_dir() and not path.is_symlink():
        _remove_tree(path)
    else:
        path.unlink()
    parent = path.parent
    while parent.name != "__store_snapshots__" and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def _remove_tree(directory: Path) -> None:
    """Remove ``directory`` and everything in it, never following a symlink (as ``shutil.rmtree``),
    deepest first: a golden directory is small, and pathlib keeps this module free of ``os``."""
    for path in sorted(directory.rglob("*"), key=lambda found: len(found.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    directory.rmdir()
