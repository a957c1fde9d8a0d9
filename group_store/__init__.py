"""group_store: a hierarchical, file-based JSON datastore for agent applications.

The public names are imported on first use (PEP 562): ``import group_store`` and
``import group_store.pytest_plugin`` (which pytest loads in every run of every user)
load no store module until a name is used.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ._archive import export_store as export_store
    from ._datastore import DataStore as DataStore
    from ._diff import EntryChange as EntryChange
    from ._diff import StoreDiff as StoreDiff
    from ._diff import diff_stores as diff_stores
    from ._errors import CorruptEntryError as CorruptEntryError
    from ._errors import DuplicateKeyError as DuplicateKeyError
    from ._errors import EntryKindError as EntryKindError
    from ._errors import FormatVersionError as FormatVersionError
    from ._errors import GroupStoreError as GroupStoreError
    from ._errors import InvalidArgumentError as InvalidArgumentError
    from ._errors import InvalidKeyError as InvalidKeyError
    from ._errors import KeyNotFoundError as KeyNotFoundError
    from ._errors import SchemaError as SchemaError
    from ._errors import SerializationError as SerializationError
    from ._errors import StorageError as StorageError
    from ._errors import StoreClosedError as StoreClosedError
    from ._errors import UnsafeFileError as UnsafeFileError
    from ._handle import WriteHandle as WriteHandle
    from ._import import import_store as import_store
    from ._inventory import Entry as Entry
    from ._inventory import walk as walk
    from ._migrate import MigrationReport as MigrationReport
    from ._migrate import Rename as Rename
    from ._migrate import migrate_store as migrate_store
    from ._schema import TableSchema as TableSchema
    from ._store import Store as Store
    from ._table import AsyncTable as AsyncTable
    from ._table import Table as Table
    from ._table_core import Record as Record
    from ._verify import Problem as Problem
    from ._verify import VerifyReport as VerifyReport
    from ._verify import format_store as format_store
    from ._verify import verify_store as verify_store
    from ._writer import WriterStatistics as WriterStatistics

# A literal, not importlib.metadata: it names the code actually imported (a source tree
# on PYTHONPATH can differ from the installed distribution). tests/test_version.py keeps it
# equal to pyproject.toml's version.
__version__ = "0.1.0"

# Where each public name lives; __getattr__ imports it from there on first use.
_EXPORTS = {
    "export_store": "._archive",
    "DataStore": "._datastore",
    "EntryChange": "._diff",
    "StoreDiff": "._diff",
    "diff_stores": "._diff",
    "CorruptEntryError": "._errors",
    "DuplicateKeyError": "._errors",
    "EntryKindError": "._errors",
    "FormatVersionError": "._errors",
    "GroupStoreError": "._errors",
    "InvalidArgumentError": "._errors",
    "InvalidKeyError": "._errors",
    "KeyNotFoundError": "._errors",
    "SchemaError": "._errors",
    "SerializationError": "._errors",
    "StorageError": "._errors",
    "StoreClosedError": "._errors",
    "UnsafeFileError": "._errors",
    "WriteHandle": "._handle",
    "import_store": "._import",
    "Entry": "._inventory",
    "walk": "._inventory",
    "MigrationReport": "._migrate",
    "Rename": "._migrate",
    "migrate_store": "._migrate",
    "TableSchema": "._schema",
    "Store": "._store",
    "AsyncTable": "._table",
    "Table": "._table",
    "Record": "._table_core",
    "Problem": "._verify",
    "VerifyReport": "._verify",
    "format_store": "._verify",
    "verify_store": "._verify",
    "WriterStatistics": "._writer",
}

__all__ = [
    "AsyncTable",
    "CorruptEntryError",
    "DataStore",
    "DuplicateKeyError",
    "Entry",
    "EntryChange",
    "EntryKindError",
    "FormatVersionError",
    "GroupStoreError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "KeyNotFoundError",
    "MigrationReport",
    "Problem",
    "Record",
    "Rename",
    "SchemaError",
    "SerializationError",
    "StorageError",
    "Store",
    "StoreClosedError",
    "StoreDiff",
    "Table",
    "TableSchema",
    "UnsafeFileError",
    "VerifyReport",
    "WriteHandle",
    "WriterStatistics",
    "diff_stores",
    "export_store",
    "format_store",
    "import_store",
    "migrate_store",
    "verify_store",
    "walk",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Not cached in globals(): each lookup names what the module in sys.modules holds now,
    # so a caller that drops and re-imports submodules (pytester's in-process runs do)
    # never mixes a class from the old module with instances of the new one.
    return getattr(_importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
