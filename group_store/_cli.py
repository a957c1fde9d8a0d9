"""The ``group-store`` command line: a thin shell over the library's public functions.

Every command takes the store directory first and a key as the ``narrow()``
segments followed by the entry key. Exit codes: 0 success, 1 differences or
problems found, 2 usage or I/O errors (one line on stderr, no traceback).

Commands over many entries never stop at a bad one (a malformed sidecar, invalid
JSON, an unreadable file or directory): each is named on one stderr line
(``group-store: skipped: ...``) and the command carries on. ``tree`` and ``stats``
still exit 0 (they show what they could read); ``fmt``, ``export`` and ``import``
exit 1 when they skipped something (their result is incomplete); ``diff`` exits 1
when an entry could not be read on either side (equality cannot be confirmed);
``verify`` lists such files as problems and exits 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from ._archive import export_store
from ._codec import InexactJSONError, loads_exact
from ._diff import diff_stores
from ._errors import GroupStoreError
from ._import import import_store
from ._inventory import engine_for, ignore, read_entry, scan_directory, scan_tree, walk, walk_directories
from ._migrate import MIGRATIONS, migrate_store, undecodable_names, undecodable_note
from ._store import Store
from ._verify import format_store, verify_store

EXIT_FOUND = 1
EXIT_ERROR = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"group-store: error: {message}", err=True)
    raise SystemExit(EXIT_ERROR)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except GroupStoreError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


class _Skipped:
    """An ``on_error`` that names each skipped entry on one stderr line and counts them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, error: GroupStoreError) -> None:
        self.count += 1
        click.echo(f"group-store: skipped: {error}", err=True)

    def exit_if_any(self) -> None:
        if self.count:
            raise SystemExit(EXIT_FOUND)


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr); nothing at all when piped."""
    if not sys.stderr.isatty() or not total:
        yield lambda _: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _emit(as_json: bool, data: Any, text: str) -> None:
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    elif text:
        click.echo(text)


def _existing_store(path: str) -> Path:
    root = Path(path)
    if not root.is_dir():
        _fail(f"no store at {str(root)!r} (not a directory)")
    return root


def _view(root: Path, segments: tuple[str, ...]) -> Store:
    store = Store(root)
    return store.narrow(*segments) if segments else store


def _split_key(words: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    if not words:
        _fail("name the entry: the narrow() keys, then the key")
    return words[:-1], words[-1]


def _note_undecodable(count: int) -> None:
    note = undecodable_note(count)
    if note is not None:
        click.echo(f"group-store: {note}", err=True)


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"  # pragma: no cover - unreachable


def _directory_count(root: Path) -> int:
    return sum(1 for _ in walk_directories(engine_for(root), on_error=ignore))


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="group-store")
def cli() -> None:
    """Inspect and maintain group_store directories.

    STORE is the store's root directory; KEY... is the narrow() keys followed
    by the entry key (group-store get ./data alice agent).
    """


@cli.command()
@click.argument("store")
@click.argument("keys", nargs=-1)
@json_option
def tree(store: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Show the hierarchy with entry counts, sizes and TTLs."""
    root = _existing_store(store)
    skipped = _Skipped()
    with _errors():
        start = _view(root, keys).root_path
        nodes: dict[tuple[str, ...], dict[str, Any]] = {}
        undecodable = 0
        # Errors are named once, by the walk below, which lists the same directories.
        for scan in scan_tree(engine_for(start), "", ignore):
            segments = scan.segments
            undecodable += len(undecodable_names(scan))
            nodes[segments] = {"name": segments[-1] if segments else str(start), "entries": [], "children": []}
            if segments and segments[:-1] in nodes:
                nodes[segments[:-1]]["children"].append(nodes[segments])
        for entry in walk(start, on_error=skipped):
            if entry.segments not in nodes:
                continue  # a directory created after the listing above
            expires = entry.expires_at.isoformat() if entry.expires_at else None
            info = {"key": entry.key, "kind": entry.kind, "size": len(entry.raw), "expires_at": expires}
            nodes[entry.segments]["entries"].append(info)
    lines: list[str] = []

    def render(node: dict[str, Any], depth: int) -> tuple[int, int]:
        count = len(node["entries"])
        size = sum(item["size"] for item in node["entries"])
        at = len(lines)
        for child in node["children"]:
            child_count, child_size = render(child, depth + 1)
            count, size = count + child_count, size + child_size
        for item in node["entries"]:
            ttl = f"  expires {item['expires_at']}" if item["expires_at"] else ""
            lines.append(f"{'  ' * (depth + 1)}{item['key']}  {item['kind']}  {_size(item['size'])}{ttl}")
        node["total_entries"], node["total_size"] = count, size
        lines.insert(at, f"{'  ' * depth}{node['name']}/  ({count} entries, {_size(size)})")
        return count, size

    render(nodes[()], 0)
    _emit(as_json, nodes[()], "\n".join(lines))
    _note_undecodable(undecodable)


@cli.command(name="ls")
@click.argument("store")
@click.argument("keys", nargs=-1)
@json_option
def list_(store: str, keys: tuple[str, ...], as_json: bool) -> None:
    """List the entry keys and sub-stores at one level."""
    root = _existing_store(store)
    with _errors():
        view = _view(root, keys)
        result = {"keys": view.keys(), "children": view.children()}
        engine = engine_for(view.root_path)
        listing = engine.storage.scan("")
        undecodable = undecodable_names(scan_directory(engine, "", (), listing, ignore))
    text = "\n".join([*(f"{name}/" for name in result["children"]), *result["keys"]])
    _emit(as_json, result, text)
    _note_undecodable(len(undecodable))


@cli.command()
@click.argument("store")
@click.argument("keys", nargs=-1)
@json_option
def get(store: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Print an entry's value as JSON (a log prints its items as a list)."""
    segments, key = _split_key(keys)
    root = _existing_store(store)
    with _errors():
        value = _view(root, segments).load(key)
    click.echo(orjson.dumps(value, option=0 if as_json else orjson.OPT_INDENT_2).decode())


@cli.command()
@click.argument("store")
@click.argument("keys", nargs=-1, required=True)
@click.option("--value", "value_text", help="The JSON value (default: read standard input).")
@click.option("--file", "value_file", type=click.Path(dir_okay=False), help="Read the JSON value from a file.")
@click.option("--ttl", type=float, help="Expire after this many seconds.")
@json_option
def put(
    store: str,
    keys: tuple[str, ...],
    value_text: str | None,
    value_file: str | None,
    ttl: float | None,
    as_json: bool,
) -> None:
    """Save a JSON value (from --value, --file or standard input) under KEY."""
    segments, key = _split_key(keys)
    if value_text is not None and value_file is not None:
        _fail("pass --value or --file, not both")
    with _errors():
        if value_text is not None:
            raw = value_text.encode()
        elif value_file is not None:
            raw = Path(value_file).read_bytes()
        else:
            raw = sys.stdin.buffer.read()
    try:
        value = loads_exact(raw)
    except orjson.JSONDecodeError as exc:
        _fail(f"the value is not valid JSON: {exc}")
    except InexactJSONError as exc:
        _fail(f"the value cannot be stored exactly: {exc}")
    with _errors():
        view = _view(Path(store), segments)
        view.save(key, value, ttl=ttl)
        expires = view.expires_at(key)
    result = {"key": list(keys), "expires_at": expires.isoformat() if expires else None}
    _emit(as_json, result, "")


@cli.command()
@click.argument("store")
@click.argument("keys", nargs=-1, required=True)
@json_option
def rm(store: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Delete an entry."""
    segments, key = _split_key(keys)
    root = _existing_store(store)
    with _errors():
        removed = _view(root, segments).delete(key)
    if not removed:
        _fail(f"no such key: {' '.join(keys)}")
    _emit(as_json, {"removed": list(keys)}, "")


@cli.command()
@click.argument("store")
@click.argument("keys", nargs=-1)
@click.option("--dry-run", is_flag=True, help="List what would be removed; change nothing.")
@json_option
def sweep(store: str, keys: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Delete expired entries (and crash leftovers) in the subtree."""
    root = _existing_store(store)
    with _errors():
        view = _view(root, keys)
        now = datetime.now(UTC)
        expired = [
            list(entry.address)
            for entry in walk(view.root_path, include_expired=True)
            if entry.expires_at is not None and entry.expires_at <= now
        ]
        removed = len(expired) if dry_run else view.sweep()
    verb = "would remove" if dry_run else "removed"
    text = "\n".join([*(" ".join(address) for address in expired), f"{verb} {removed} expired entries"])
    _emit(as_json, {"dry_run": dry_run, "expired": expired, "removed": removed}, text)


@cli.command()
@click.argument("store")
@json_option
def stats(store: str, as_json: bool) -> None:
    """Count directories, entries, bytes, TTLs and leftovers."""
    root = _existing_store(store)
    skipped = _Skipped()
    with _errors():
        now = datetime.now(UTC)
        result = {"directories": 0, "documents": 0, "logs": 0, "log_items": 0}
        result.update({"bytes": 0, "with_ttl": 0, "expired_unswept": 0, "temporary_files": 0})
        engine = engine_for(root)
        for scan in scan_tree(engine, "", skipped):
            result["directories"] += 1
            result["temporary_files"] += len(scan.temps)
            for name in scan.entries:
                try:
                    entry = read_entry(engine, scan, name, True, now.timestamp())
                except GroupStoreError as exc:
                    skipped(exc)
                    continue
                if entry is None:
                    continue
                result["documents" if entry.kind == "document" else "logs"] += 1
                result["bytes"] += len(entry.raw)
                if entry.kind == "log":
                    result["log_items"] += entry.raw.count(b"\n")
                if entry.expires_at is not None:
                    result["with_ttl"] += 1
                    result["expired_unswept"] += entry.expires_at <= now
    _emit(as_json, result, "\n".join(f"{name}: {value}" for name, value in result.items()))


@cli.command()
@click.argument("store")
@click.option("--fix", is_flag=True, help="Repair what can be repaired without losing data.")
@json_option
def verify(store: str, fix: bool, as_json: bool) -> None:
    """Check every file; exit 1 if problems remain."""
    root = _existing_store(store)
    with _errors(), _progress("verifying", _directory_count(root)) as advance:
        report = verify_store(root, fix=fix, progress=advance)
    problems = [
        {"kind": p.kind, "path": str(p.path), "detail": p.detail, "fixable": p.fixable, "fixed": p.fixed}
        for p in report.problems
    ]
    lines = [f"{'fixed' if p['fixed'] else p['kind']}: {p['path']}: {p['detail']}" for p in problems]
    summary = f"{report.directories} directories, {report.entries} entries, {len(problems)} problems"
    fixed = sum(1 for p in problems if p["fixed"])
    lines.append(summary + (f", {fixed} fixed" if fix else ""))
    data = {"directories": report.directories, "entries": report.entries, "ok": report.ok, "problems": problems}
    _emit(as_json, data, "\n".join(lines))
    if not report.ok:
        raise SystemExit(EXIT_FOUND)


@cli.command()
@click.argument("store")
@json_option
def fmt(store: str, as_json: bool) -> None:
    """Rewrite every file canonically (expiries kept)."""
    root = _existing_store(store)
    skipped = _Skipped()
    with _errors(), _progress("formatting", _directory_count(root)) as advance:
        changed = format_store(root, progress=advance, on_error=skipped)
    _emit(as_json, {"rewritten": changed, "skipped": skipped.count}, f"rewrote {changed} files")
    skipped.exit_if_any()


@cli.command()
@click.argument("a")
@click.argument("b")
@json_option
def diff(a: str, b: str, as_json: bool) -> None:
    """Compare two stores or archives entry by entry; exit 1 if they differ."""
    for side in (a, b):
        if not Path(side).exists():
            _fail(f"no store or archive at {side!r}")
    skipped = _Skipped()
    with _errors():
        result = diff_stores(a, b, on_error=skipped)
    changes = [{"address": list(c.address), "change": c.change, "detail": c.detail} for c in result.changes]
    lines = []
    for c in result.changes:
        lines.append(f"{c.change}: {' '.join(c.address)}")
        lines.extend("    " + line for line in c.detail.splitlines())
    lines.append(f"{len(changes)} entries differ" if changes else "no differences")
    if skipped.count:
        lines[-1] += f" among readable entries; {skipped.count} could not be read"
    equal = not changes and not skipped.count
    _emit(as_json, {"equal": equal, "changes": changes, "unreadable": skipped.count}, "\n".join(lines))
    if not equal:
        raise SystemExit(EXIT_FOUND)


@cli.command(name="export")
@click.argument("source")
@click.argument("archive")
@json_option
def export_(source: str, archive: str, as_json: bool) -> None:
    """Write a store to one .tar.gz or .jsonl file."""
    root = _existing_store(source)
    total = sum(1 for path in root.rglob("*") if path.is_file())
    skipped = _Skipped()
    with _errors(), _progress("exporting", total) as advance:
        count = export_store(root, archive, progress=advance, on_error=skipped)
    result = {"archive": archive, "items": count, "skipped": skipped.count}
    _emit(as_json, result, f"exported {count} items to {archive}")
    skipped.exit_if_any()


@cli.command(name="import")
@click.argument("archive")
@click.argument("destination")
@json_option
def import_(archive: str, destination: str, as_json: bool) -> None:
    """Load a .tar.gz or .jsonl archive into a store."""
    if not Path(archive).is_file():
        _fail(f"no archive at {archive!r}")
    skipped = _Skipped()
    with _errors(), _progress("importing", None) as advance:
        count = import_store(archive, destination, progress=advance, on_error=skipped)
    result = {"destination": destination, "items": count, "skipped": skipped.count}
    _emit(as_json, result, f"imported {count} items into {destination}")
    skipped.exit_if_any()


@cli.command()
@click.argument("store")
@click.option("--from", "source", type=click.Choice(sorted(MIGRATIONS)), required=True, help="Who wrote the store.")
@click.option("--dry-run", is_flag=True, help="List what would be renamed; change nothing.")
@json_option
def migrate(store: str, source: str, dry_run: bool, as_json: bool) -> None:
    """Rename what another writer (or an older format) left into this format; exit 1 on collisions."""
    root = _existing_store(store)
    with _errors():
        report = migrate_store(root, source=source, dry_run=dry_run)
    renames = [{"from": str(r.source), "to": str(r.target), "kind": r.kind} for r in report.renamed]
    collisions = [{"from": str(r.source), "to": str(r.target), "kind": r.kind} for r in report.collisions]
    verb = "would rename" if dry_run else "renamed"
    lines = [f"{verb}: {r['from']} -> {r['to']}" for r in renames]
    lines += [f"collision (not renamed): {r['from']} -> {r['to']} exists" for r in collisions]
    lines += [f"both a document and a log (load reads the document): {path}" for path in report.both]
    lines += [f"left as it was: {error}" for error in report.errors]

    def count(number: int, noun: str) -> str:
        return f"{number} {noun}" if number == 1 else f"{number} {noun}s"

    rewritten = "" if report.rewritten is None else f", rewrote {count(report.rewritten, 'file')} canonically"
    summary = f"{verb} {count(len(renames), 'name')}{rewritten}, {count(len(collisions), 'collision')}"
    lines.append(f"{summary}, format {report.format}")
    data = {
        "source": source,
        "dry_run": dry_run,
        "renamed": renames,
        "collisions": collisions,
        "rewritten": report.rewritten,
        "both": [str(path) for path in report.both],
        "errors": list(report.errors),
        "format": report.format,
        "ok": report.ok,
    }
    _emit(as_json, data, "\n".join(lines))
    if not report.ok:
        raise SystemExit(EXIT_FOUND)
