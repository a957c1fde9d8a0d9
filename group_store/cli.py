"""The ``group-store`` command line: a thin shell over the library's public functions.

Every command takes the store first, a directory or an ``s3://bucket/prefix`` URL
(opened by the library as ``Store(url)`` does: an ``S3Storage`` configured from the
AWS environment), and a key as the ``narrow()`` segments followed by the entry key.
Exit codes: 0 success, 1 differences or problems found (``diff``, ``verify``, and
commands that skipped something), 2 any error or bad input (usage, a missing store
or key, a damaged archive, a refusal of the file system or object storage), 130
interrupted.

Errors: one boundary (``_Boundary``, the click group every command belongs to)
turns every exception a command lets out into ``Failure``: exactly one line on
stderr, ``group-store: error: MESSAGE``, and exit 2. Under ``--json`` the same
error is also printed on stdout as ``{"error": {"type", "message", "path", "key"}}``
(``type`` is the library's error class, ``OSError``, ``UsageError``, ``NotFound``
or ``InternalError``). Commands never catch errors themselves; they raise
``Failure`` (through ``_fail``) for what they find wrong. Rejected: a
``try``/``except`` per command (each new command would have to remember it, and
click's own usage errors would still print several lines). An exception that is
not ours (a bug) is reported the same way as ``InternalError``;
``GROUP_STORE_TRACEBACK=1`` lets it through with its traceback.

Commands over many entries never stop at a bad one (a malformed sidecar, invalid
JSON, an unreadable file or directory): each is named on one stderr line
(``group-store: skipped: ...``) and the command carries on. ``tree`` and ``stats``
still exit 0 (they show what they could read); ``fmt``, ``export`` and ``import``
exit 1 when they skipped something (their result is incomplete); ``diff`` exits 1
when an entry could not be read on either side (equality cannot be confirmed);
``verify`` lists such files as problems and exits 1.
"""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import IO, Any, NoReturn

import click
import orjson

from group_store import (
    GroupStoreError,
    InexactJSONError,
    KeyNotFoundError,
    Store,
    TreeNode,
    diff_stores,
    export_store,
    format_store,
    import_store,
    loads_exact,
    migrate_store,
    migration_sources,
    undecodable_names,
    verify_store,
)
from group_store import stats as store_stats
from group_store import sweep as sweep_store
from group_store import tree as store_tree

EXIT_FOUND = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
_JSON_REQUESTED = "group_store.json"  # ctx.meta key (meta is shared by the group's and the command's contexts)
_TRACEBACK_REQUESTED = "group_store.traceback"
# click >= 8.2 raises this usage error to print the help of a bare "group-store"; 8.1 exits 0 after it instead.
_NO_ARGS_HELP: tuple[type[Exception], ...] = tuple(
    error for error in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if error is not None
)
_LET_THROUGH: tuple[type[Exception], ...] = (click.exceptions.Exit, click.Abort, *_NO_ARGS_HELP)


def _one_line(text: str) -> str:
    """``text`` on one line: some messages (tarfile's, for one) span several."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _printable(text: str) -> str:
    """``text`` safe to print and to encode as JSON.

    A file name that is not UTF-8 reaches Python with lone surrogates (PEP 383),
    which neither a UTF-8 terminal nor JSON can hold: each is shown as ``\\xNN``
    (the byte it stands for), so the name is still recognisable.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_escape_surrogate(char) if "\ud800" <= char <= "\udfff" else char for char in text)
    return text


def _escape_surrogate(char: str) -> str:
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _printable_data(data: Any) -> Any:
    """``data`` (dicts, lists, strings...) with every string ``_printable``."""
    if isinstance(data, str):
        return _printable(data)
    if isinstance(data, dict):
        return {_printable(key): _printable_data(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_printable_data(item) for item in data]
    return data


def _echo(text: str, *, err: bool = False) -> None:
    """The one way the command line writes a line (so every line is printable)."""
    click.echo(_printable(text), err=err)


def _echo_json(data: Any, option: int = 0) -> None:
    try:
        encoded = orjson.dumps(data, option=option)
    except orjson.JSONEncodeError as exc:
        if "surrogates" not in str(exc):
            # orjson nests at most 254 levels (a tree of sub-stores that deep, say).
            _fail(f"the output cannot be written as JSON ({exc}); narrow it (tree --depth)", kind="OutputError")
        # A string with lone surrogates (a name from the disk): rare, so not looked for up front.
        encoded = orjson.dumps(_printable_data(data), option=option)
    click.echo(encoded.decode())


class Failure(click.ClickException):
    """A command's failure as the user sees it: one stderr line, exit 2, and under
    ``--json`` also ``{"error": {...}}`` on stdout.

    Attributes:
        kind: The ``type`` of the JSON error (an error class name, ``UsageError``, ``NotFound``...).
        path: The file or directory involved, if any. key: The key involved, if any.
        as_json: Set by the boundary: whether the command was given ``--json``.
    """

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, kind: str, path: str | None = None, key: str | None = None) -> None:
        super().__init__(_one_line(message))
        self.kind, self.path, self.key = kind, path, key
        self.as_json = False

    def show(self, file: IO[Any] | None = None) -> None:
        _echo(f"group-store: error: {self.message}", err=True)
        if self.as_json:
            _echo_json({"error": {"type": self.kind, "message": self.message, "path": self.path, "key": self.key}})


def _failure(exc: Exception) -> Failure:
    """The ``Failure`` that reports ``exc`` (the one place exceptions become messages)."""
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, GroupStoreError):
        path = None if exc.path is None else str(exc.path)
        return Failure(str(exc), kind=type(exc).__name__, path=path, key=exc.key)
    if isinstance(exc, OSError):
        filename = None if exc.filename is None else _file_name(exc.filename)
        message = f"{exc.strerror or exc}: {filename}" if filename else str(exc.strerror or exc)
        return Failure(message, kind="OSError", path=filename)
    if isinstance(exc, click.UsageError):
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        return Failure(exc.format_message() + hint, kind="UsageError")
    if isinstance(exc, click.ClickException):
        return Failure(exc.format_message(), kind="UsageError")
    detail = f"{type(exc).__name__}: {exc}"
    return Failure(
        f"internal error, please report it ({detail}); GROUP_STORE_TRACEBACK=1 shows the traceback",
        kind="InternalError",
    )


def _file_name(filename: object) -> str:
    """An ``OSError.filename`` as text (bytes decoded as ``os.fsdecode`` does)."""
    if isinstance(filename, bytes):
        return filename.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
    return str(filename)


def _fail(
    message: str, *, kind: str = "UsageError", path: str | Path | None = None, key: str | None = None
) -> NoReturn:
    raise Failure(message, kind=kind, path=None if path is None else str(path), key=key)


class _StderrLines(logging.Handler):
    """Library warnings (entries a listing or sweep skipped) as the command line's own stderr lines."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().removeprefix("group_store: ")
        _echo(f"group-store: warning: {_one_line(message)}", err=True)


@contextmanager
def _library_warnings_on_stderr() -> Iterator[None]:
    # Without a handler, logging's last resort would print the bare message, unprefixed.
    logger, handler = logging.getLogger("group_store"), _StderrLines(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class _Command(click.Command):
    """Every command's class: a command line that does not parse still honours ``--json``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError:
            # The parser stopped before reading --json (an unknown option, say), so look
            # for the word itself, as click would have read it: before any "--".
            words = args[: args.index("--")] if "--" in args else args
            if "--json" in words:
                ctx.meta[_JSON_REQUESTED] = True
            raise


class _Boundary(click.Group):
    """The click group of every command, and the one error boundary of the command line.

    Whatever a command raises (a library error, an ``OSError``, a click usage
    error, a bug) leaves as a ``Failure``, which click's standalone mode shows
    (``Failure.show``) and turns into exit 2. Let through: click's ``Exit``
    (``--help``, ``--version``), ``SystemExit`` (exit 1 for "found"), a broken
    pipe (click quiets it), and the no-arguments help.
    """

    command_class = _Command

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _NO_ARGS_HELP:
            raise
        except click.ClickException as exc:  # an option of the group itself
            raise _failure(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _library_warnings_on_stderr():
                return super().invoke(ctx)
        except _LET_THROUGH:
            raise
        except KeyboardInterrupt:
            _echo("group-store: interrupted", err=True)
            raise SystemExit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
                raise  # the reader went away (| head): click's main exits quietly
            failure = _failure(exc)
            if failure.kind == "InternalError" and ctx.meta.get(_TRACEBACK_REQUESTED):
                raise
            failure.as_json = bool(ctx.meta.get(_JSON_REQUESTED))
            raise failure from exc


class _Skipped:
    """An ``on_error`` that names each skipped entry on one stderr line and counts them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, error: GroupStoreError) -> None:
        self.count += 1
        _echo(f"group-store: skipped: {_one_line(str(error))}", err=True)

    def exit_if_any(self) -> None:
        if self.count:
            raise SystemExit(EXIT_FOUND)


@contextmanager
def _progress(label: str, count: Callable[[], int] | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr), its length from ``count()`` (only called
    there: it reads the whole store); nothing at all when piped."""
    total = count() if count is not None and sys.stderr.isatty() else 0
    if not total:
        yield lambda _: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _emit(as_json: bool, data: Any, text: str) -> None:
    if as_json:
        _echo_json(data, orjson.OPT_INDENT_2)
    elif text:
        _echo(text)


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


# A store as the command line names it: a local directory, or an s3:// URL (kept a str,
# which the library's composition root opens as an S3Storage).
_Root = Path | str


def _is_url(text: str) -> bool:
    return text.startswith("s3://")


def _root(text: str) -> _Root:
    return text if _is_url(text) else Path(text)


def _existing_store(path: str) -> _Root:
    """The store at ``path``; a ``Failure`` if there is none.

    A directory must exist. A bucket has no directories: an ``s3://`` store exists once
    its bucket does, and one listing checks that now (a missing bucket, refused
    credentials or an unreachable endpoint fail here, with the library's error, not as
    an empty store).
    """
    if _is_url(path):
        Store(path).children()
        return path
    root = Path(path)
    if not root.is_dir():
        _fail(f"no store at {str(root)!r} (not a directory)", kind="NotFound", path=root)
    return root


def _store_or_path(text: str) -> Store | str:
    """What a tool is given for a store or archive argument: a store opened on an
    ``s3://`` URL (the tools read a bare string as a local path or archive), else ``text``."""
    return Store(_existing_store(text)) if _is_url(text) else text


def _view(root: _Root, segments: Sequence[str]) -> Store:
    store = Store(root)
    return store.narrow(*segments) if segments else store


def _existing_view(root: _Root, segments: Sequence[str]) -> Store:
    """The sub-store ``segments`` of the store at ``root``; a ``Failure`` if it does not exist
    (reading one would show an empty store, hiding a mistyped name)."""
    view = _view(root, segments)
    if segments and not _has_sub_stores(Store(root), segments):
        where = " ".join(segments)
        _fail(
            f"no sub-store {where!r} in {str(root)!r} (see group-store ls {root})",
            kind="NotFound",
            path=view.root_path,
        )
    return view


def _has_sub_stores(view: Store, segments: Sequence[str]) -> bool:
    """Whether ``view`` holds the sub-store ``segments`` (each level listed by the store)."""
    for key in segments:
        if key not in view.children():
            return False
        view = view.narrow(key)
    return True


def _is_sub_store(view: Store, key: str) -> bool:
    return _has_sub_stores(view, (key,))


def _split_key(words: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    if not words:
        _fail("name the entry: the narrow() keys, then the key")
    return words[:-1], words[-1]


def _note_undecodable(count: int) -> None:
    if count:
        names = "name does" if count == 1 else "names do"
        note = f"{count} {names} not decode as keys and are not listed (run group-store migrate?)"
        click.echo(f"group-store: warning: {note}", err=True)


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"  # pragma: no cover - unreachable


def _entry_count(root: _Root) -> int:
    counted = store_stats(root, on_error=_ignore)
    return counted.documents + counted.logs


def _directory_count(root: _Root) -> int:
    return store_stats(root, on_error=_ignore).directories


def _ignore(_: GroupStoreError) -> None:
    """An ``on_error`` for a count made only to size a progress bar (the command reports errors itself)."""


def _request_json(ctx: click.Context, _: click.Parameter, value: bool) -> bool:
    # Eager, so it is known before any other argument can fail: usage errors are JSON too.
    if value:
        ctx.meta[_JSON_REQUESTED] = True
    return value


json_option = click.option(
    "--json", "as_json", is_flag=True, is_eager=True, callback=_request_json, help="Print machine-readable JSON."
)


def _iso_datetime(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 date and time with a UTC offset (``2026-12-01T12:00:00Z``), or ``None``."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date and time (2026-12-01T12:00:00Z)") from None
    if parsed.utcoffset() is None:
        raise click.BadParameter(f"{value!r} has no UTC offset (add Z or +HH:MM)")
    return parsed


def _request_traceback(ctx: click.Context, _: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_TRACEBACK_REQUESTED] = True
    return value


@click.group(cls=_Boundary, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="group-store")
# GROUP_STORE_TRACEBACK=1, read by click (an environment variable, not an option users see):
# the command line touches the environment only through click.
@click.option(
    "--traceback",
    is_flag=True,
    hidden=True,
    envvar="GROUP_STORE_TRACEBACK",
    expose_value=False,
    callback=_request_traceback,
)
def cli() -> None:
    """Inspect and maintain group_store directories.

    STORE is the store's root directory or an s3://bucket/prefix URL (configured
    from the AWS environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...); KEY... is
    the narrow() keys followed by the entry key (group-store get ./data alice agent).
    """


def _tree_json(root: TreeNode) -> dict[str, Any]:
    """``tree --json``'s node for ``root`` and everything below it (built without recursion)."""

    def node(item: TreeNode) -> dict[str, Any]:
        entries = [
            {
                "key": entry.key,
                "kind": entry.kind,
                "size": entry.size,
                "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
            }
            for entry in item.entries
        ]
        return {
            "name": item.name,
            "entries": entries,
            "children": [],
            "total_entries": item.total_entries,
            "total_size": item.total_size,
        }

    top = node(root)
    pending = [(root, top)]
    while pending:
        item, built = pending.pop()
        for child in item.children:
            child_node = node(child)
            built["children"].append(child_node)
            pending.append((child, child_node))
    return top


def _prune(root: dict[str, Any], depth: int | None) -> None:
    """Cut ``root`` (a ``tree --json`` node) ``depth`` levels down: deeper sub-stores are
    left out and the entries of the last level shown too; totals still count everything."""
    if depth is None:
        return
    pending = [(root, 0)]
    while pending:
        node, level = pending.pop()
        if level == depth:
            node["entries"], node["children"] = [], []
        pending.extend((child, level + 1) for child in node["children"])


@cli.command()
@click.argument("store")
@click.argument("keys", nargs=-1)
@click.option("--depth", type=click.IntRange(min=0), help="Show sub-stores this many levels down (totals count all).")
@json_option
def tree(store: str, keys: tuple[str, ...], depth: int | None, as_json: bool) -> None:
    """Show the hierarchy with entry counts, sizes and TTLs."""
    skipped = _Skipped()
    found = store_tree(_existing_view(_existing_store(store), keys), on_error=skipped)
    root = _tree_json(found.root)
    undecodable = found.undecodable
    nodes = {(): root}
    lines: list[str] = []
    pending: list[tuple[dict[str, Any], int]] = [(nodes[()], 0)]
    while pending:
        node, level = pending.pop()
        if "key" in node:  # an entry, queued after its directory's sub-stores
            ttl = f"  expires {node['expires_at']}" if node["expires_at"] else ""
            lines.append(f"{'  ' * level}{node['key']}  {node['kind']}  {_size(node['size'])}{ttl}")
            continue
        total = f"{_count(node['total_entries'], 'entry', 'entries')}, {_size(node['total_size'])}"
        lines.append(f"{'  ' * level}{node['name']}/  ({total})")
        if depth is None or level < depth:
            below = [(child, level + 1) for child in node["children"]]
            below += [(item, level + 1) for item in node["entries"]]
            pending.extend(reversed(below))
    _prune(nodes[()], depth)
    _emit(as_json, nodes[()], "\n".join(lines))
    _note_undecodable(undecodable)


@cli.command(name="ls")
@click.argument("store")
@click.argument("keys", nargs=-1)
@json_option
def list_(store: str, keys: tuple[str, ...], as_json: bool) -> None:
    """List the entry keys and sub-stores at one level."""
    view = _existing_view(_existing_store(store), keys)
    result = {"keys": view.keys(), "children": view.children()}
    undecodable = undecodable_names(view)
    text = "\n".join([*(f"{name}/" for name in result["children"]), *result["keys"]])
    _emit(as_json, result, text)
    _note_undecodable(len(undecodable))


@cli.command()
@click.argument("store")
@click.argument("keys", nargs=-1)
@click.option("--last", type=click.IntRange(min=0), help="A log's newest N items only.")
@json_option
def get(store: str, keys: tuple[str, ...], last: int | None, as_json: bool) -> None:
    """Print an entry's value as JSON (a log prints its items as a list)."""
    segments, key = _split_key(keys)
    view = _view(_existing_store(store), segments)
    try:
        value = view.load(key) if last is None else view.read(key, last=last)
    except KeyNotFoundError:
        if not _is_sub_store(view, key):
            raise
        _fail(
            f"{' '.join(keys)!r} is a sub-store, not an entry: see it with group-store ls {store} {' '.join(keys)}",
            kind="KeyNotFoundError",
            path=view.narrow_path(key),
            key=key,
        )
    _echo_json(value, 0 if as_json else orjson.OPT_INDENT_2)


def _absent_sub_store(root: _Root, segments: tuple[str, ...]) -> str | None:
    """The first of ``root`` and its sub-stores ``segments`` that does not exist, as the user names it."""
    if isinstance(root, str):
        _existing_store(root)  # a bucket is never created here: its absence is an error
    elif not root.is_dir():
        return f"store at {str(root)!r}"
    for depth in range(1, len(segments) + 1):
        if not _has_sub_stores(Store(root), segments[:depth]):
            return f"sub-store {' '.join(segments[:depth])!r} of {str(root)!r}"
    return None


@cli.command()
@click.argument("store")
@click.argument("keys", nargs=-1, required=True)
@click.option("--value", "value_text", help="The JSON value (default: read standard input).")
@click.option("--file", "value_file", type=click.Path(dir_okay=False), help="Read the JSON value from a file.")
@click.option("--ttl", type=float, help="Expire after this many seconds.")
@click.option("--expires-at", callback=_iso_datetime, metavar="DATETIME", help="Expire at this ISO 8601 time.")
@click.option("--create", is_flag=True, help="Create the store and sub-stores if they do not exist.")
@json_option
def put(
    store: str,
    keys: tuple[str, ...],
    value_text: str | None,
    value_file: str | None,
    ttl: float | None,
    expires_at: datetime | None,
    create: bool,
    as_json: bool,
) -> None:
    """Save a JSON value (from --value, --file or standard input) under KEY."""
    segments, key = _split_key(keys)
    if value_text is not None and value_file is not None:
        _fail("pass --value or --file, not both")
    if ttl is not None and expires_at is not None:
        _fail("pass --ttl or --expires-at, not both")
    absent = None if create else _absent_sub_store(_root(store), segments)
    if absent is not None:
        _fail(f"no {absent}: check the name, or pass --create to create it", kind="NotFound", path=store)
    if value_text is not None:
        raw = value_text.encode("utf-8", "surrogateescape")
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
    view = _view(_root(store), segments)
    view.save(key, value, ttl=ttl, expires_at=expires_at)
    expires = view.expires_at(key)
    result = {"key": list(keys), "expires_at": expires.isoformat() if expires else None}
    _emit(as_json, result, "")


def _remove_tree(view: Store) -> int:
    """Delete every entry of ``view`` and of the sub-stores below it, one directory at
    a time under that directory's lock, through ``Store.delete``, then sweep the
    subtree (expired entries, which listings no longer show, and crash leftovers);
    return how many entries went.

    Only what the store owns is removed: files it does not own stay, and so do the
    directories with their lock files (unlinking a lock file another process holds or
    waits on would let two writers in at once). Not atomic: a write made meanwhile
    may survive.
    """
    removed = 0
    pending = [view]
    while pending:
        current = pending.pop()
        with current.lock():
            for key in current.keys():
                removed += current.delete(key)
        pending.extend(current.narrow(name) for name in reversed(current.children()))
    return removed + view.sweep()


@cli.command()
@click.argument("store")
@click.argument("keys", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Also delete the sub-store KEY... and everything in it.")
@json_option
def rm(store: str, keys: tuple[str, ...], recursive: bool, as_json: bool) -> None:
    """Delete an entry (with -r, also the sub-store of that name, recursively)."""
    segments, key = _split_key(keys)
    view = _view(_existing_store(store), segments)
    removed = int(view.delete(key))
    is_sub_store = _is_sub_store(view, key)
    if recursive and is_sub_store:
        removed += _remove_tree(view.narrow(key))
    elif is_sub_store and not removed:
        _fail(f"{' '.join(keys)!r} is a sub-store: rm -r deletes it with everything in it", key=key)
    elif not removed:
        _fail(f"no such key: {' '.join(keys)}", kind="KeyNotFoundError", key=key)
    text = f"removed {_count(removed, 'entry', 'entries')}" if recursive else ""
    _emit(as_json, {"removed": list(keys), "entries": removed}, text)


@cli.command()
@click.argument("store")
@click.argument("keys", nargs=-1)
@click.option("--dry-run", is_flag=True, help="List what would be removed; change nothing.")
@json_option
def sweep(store: str, keys: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Delete expired entries (and crash leftovers) in the subtree."""
    view = _existing_view(_existing_store(store), keys)
    report = sweep_store(view, dry_run=dry_run)
    expired = [list(address) for address in report.expired]
    verb = "would remove" if dry_run else "removed"
    lines = [
        *(" ".join(address) for address in expired),
        f"{verb} {_count(report.count, 'expired entry', 'expired entries')}",
    ]
    # A dry run removes nothing: its count must not be read as a removal.
    data = {"dry_run": dry_run, "expired": expired, ("would_remove" if dry_run else "removed"): report.count}
    _emit(as_json, data, "\n".join(lines))


@cli.command()
@click.argument("store")
@json_option
def stats(store: str, as_json: bool) -> None:
    """Count directories, entries, bytes, TTLs and leftovers."""
    root = _existing_store(store)
    result = asdict(store_stats(root, on_error=_Skipped()))
    _emit(as_json, result, "\n".join(f"{name}: {value}" for name, value in result.items()))


@cli.command()
@click.argument("store")
@click.option("--fix", is_flag=True, help="Repair what can be repaired without losing data.")
@json_option
def verify(store: str, fix: bool, as_json: bool) -> None:
    """Check every file; exit 1 if problems remain."""
    root = _existing_store(store)
    with _progress("verifying", lambda: _directory_count(root)) as advance:
        report = verify_store(root, fix=fix, progress=advance)
    problems = [
        {"kind": p.kind, "path": str(p.path), "detail": p.detail, "fixable": p.fixable, "fixed": p.fixed}
        for p in report.problems
    ]
    lines = [_one_line(f"{'fixed' if p['fixed'] else p['kind']}: {p['path']}: {p['detail']}") for p in problems]
    summary = ", ".join(
        [
            _count(report.directories, "directory", "directories"),
            _count(report.entries, "entry", "entries"),
            _count(len(problems), "problem", "problems"),
        ]
    )
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
    with _progress("formatting", lambda: _directory_count(root)) as advance:
        changed = format_store(root, progress=advance, on_error=skipped)
    _emit(as_json, {"rewritten": changed, "skipped": skipped.count}, f"rewrote {_count(changed, 'file', 'files')}")
    skipped.exit_if_any()


@cli.command()
@click.argument("a")
@click.argument("b")
@json_option
def diff(a: str, b: str, as_json: bool) -> None:
    """Compare two stores or archives entry by entry; exit 1 if they differ."""
    for side in (a, b):
        if not _is_url(side) and not Path(side).exists():
            _fail(f"no store or archive at {side!r}", kind="NotFound", path=side)
    skipped = _Skipped()
    result = diff_stores(_store_or_path(a), _store_or_path(b), on_error=skipped)
    changes = [{"address": list(c.address), "change": c.change, "detail": c.detail} for c in result.changes]
    lines = []
    for c in result.changes:
        lines.append(f"{c.change}: {' '.join(c.address)}")
        lines.extend("    " + line for line in c.detail.splitlines())
    lines.append(f"{_count(len(changes), 'entry differs', 'entries differ')}" if changes else "no differences")
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
    skipped = _Skipped()
    with _progress("exporting", lambda: _entry_count(root)) as advance:
        count = export_store(root, archive, progress=advance, on_error=skipped)
    result = {"archive": archive, "entries": count, "skipped": skipped.count}
    _emit(as_json, result, f"exported {_count(count, 'entry', 'entries')} to {archive}")
    skipped.exit_if_any()


@cli.command(name="import")
@click.argument("archive")
@click.argument("destination")
@json_option
def import_(archive: str, destination: str, as_json: bool) -> None:
    """Load a .tar.gz or .jsonl archive into a store."""
    if not Path(archive).is_file():
        _fail(f"no archive at {archive!r}", kind="NotFound", path=archive)
    skipped = _Skipped()
    target = _store_or_path(destination)
    with _progress("importing", None) as advance:
        count = import_store(archive, target, progress=advance, on_error=skipped)
    result = {"destination": destination, "entries": count, "skipped": skipped.count}
    _emit(as_json, result, f"imported {_count(count, 'entry', 'entries')} into {destination}")
    skipped.exit_if_any()


@cli.command()
@click.argument("store")
@click.option("--from", "source", type=click.Choice(migration_sources()), required=True, help="Who wrote the store.")
@click.option("--dry-run", is_flag=True, help="List what would be renamed; change nothing.")
@json_option
def migrate(store: str, source: str, dry_run: bool, as_json: bool) -> None:
    """Rename what another writer (or an older format) left into this format; exit 1 on collisions."""
    root = _existing_store(store)
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
