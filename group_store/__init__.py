"""group_store: a hierarchical, file-based JSON datastore for agent applications.

The public names are imported on first use (PEP 562): ``import group_store`` and
``import group_store.pytest_plugin`` (which pytest loads in every run of every user)
load no store module until a name is used.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ._api.datastore import DataStore as DataStore
    from ._api.handle import WriteHandle as WriteHandle
    from ._api.store import Store as Store
    from ._api.table import AsyncTable as AsyncTable
    from ._api.table import Table as Table
    from ._api.writer import WriterStatistics as WriterStatistics
    from ._engine.inventory import Entry as Entry
    from ._engine.table_core import Record as Record
    from ._errors import CorruptEntryError as CorruptEntryError
    from ._errors import DuplicateKeyError as DuplicateKeyError
    from ._errors import EntryKindError as EntryKindError
    from ._errors import FormatVersionError as FormatVersionError
    from ._errors import GroupStoreError as GroupStoreError
    from ._errors import InvalidArgumentError as InvalidArgumentError
    from ._errors import InvalidKeyError as InvalidKeyError
    from ._errors import KeyNotFoundError as KeyNotFoundError
    from ._errors import LockTimeoutError as LockTimeoutError
    from ._errors import SchemaError as SchemaError
    from ._errors import SerializationError as SerializationError
    from ._errors import StorageError as StorageError
    from ._errors import StoreClosedError as StoreClosedError
    from ._errors import UnsafeFileError as UnsafeFileError
    from ._format.codec import InexactJSONError as InexactJSONError
    from ._format.codec import loads_exact as loads_exact
    from ._format.schema import TableSchema as TableSchema
    from .tools._archive import export_store as export_store
    from .tools._diff import EntryChange as EntryChange
    from .tools._diff import StoreDiff as StoreDiff
    from .tools._diff import diff_stores as diff_stores
    from .tools._import import import_store as import_store
    from .tools._migrate import MigrationReport as MigrationReport
    from .tools._migrate import Rename as Rename
    from .tools._migrate import migrate_store as migrate_store
    from .tools._migrate import migration_sources as migration_sources
    from .tools._tree import StoreStats as StoreStats
    from .tools._tree import StoreTree as StoreTree
    from .tools._tree import TreeEntry as TreeEntry
    from .tools._tree import TreeNode as TreeNode
    from .tools._tree import stats as stats
    from .tools._tree import tree as tree
    from .tools._verify import Problem as Problem
    from .tools._verify import VerifyReport as VerifyReport
    from .tools._verify import format_store as format_store
    from .tools._verify import verify_store as verify_store
    from .tools._walk import SweepReport as SweepReport
    from .tools._walk import sweep as sweep
    from .tools._walk import undecodable_names as undecodable_names
    from .tools._walk import walk as walk

# A literal, not importlib.metadata: it names the code actually imported (a source tree
# on PYTHONPATH can differ from the installed distribution). tests/test_version.py keeps it
# equal to pyproject.toml's version.
__version__ = "0.1.0"

# Where each public name lives; __getattr__ imports it from there on first use.
_EXPORTS = {
    "export_store": ".tools._archive",
    "DataStore": "._api.datastore",
    "EntryChange": ".tools._diff",
    "StoreDiff": ".tools._diff",
    "diff_stores": ".tools._diff",
    "CorruptEntryError": "._errors",
    "DuplicateKeyError": "._errors",
    "EntryKindError": "._errors",
    "FormatVersionError": "._errors",
    "GroupStoreError": "._errors",
    "InvalidArgumentError": "._errors",
    "InvalidKeyError": "._errors",
    "KeyNotFoundError": "._errors",
    "LockTimeoutError": "._errors",
    "SchemaError": "._errors",
    "SerializationError": "._errors",
    "StorageError": "._errors",
    "StoreClosedError": "._errors",
    "UnsafeFileError": "._errors",
    "WriteHandle": "._api.handle",
    "import_store": ".tools._import",
    "Entry": "._engine.inventory",
    "walk": ".tools._walk",
    "sweep": ".tools._walk",
    "SweepReport": ".tools._walk",
    "undecodable_names": ".tools._walk",
    "tree": ".tools._tree",
    "stats": ".tools._tree",
    "StoreTree": ".tools._tree",
    "StoreStats": ".tools._tree",
    "TreeNode": ".tools._tree",
    "TreeEntry": ".tools._tree",
    "MigrationReport": ".tools._migrate",
    "migration_sources": ".tools._migrate",
    "InexactJSONError": "._format.codec",
    "loads_exact": "._format.codec",
    "Rename": ".tools._migrate",
    "migrate_store": ".tools._migrate",
    "TableSchema": "._format.schema",
    "Store": "._api.store",
    "AsyncTable": "._api.table",
    "Table": "._api.table",
    "Record": "._engine.table_core",
    "Problem": ".tools._verify",
    "VerifyReport": ".tools._verify",
    "format_store": ".tools._verify",
    "verify_store": ".tools._verify",
    "WriterStatistics": "._api.writer",
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
    "InexactJSONError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "KeyNotFoundError",
    "LockTimeoutError",
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
    "StoreStats",
    "StoreTree",
    "SweepReport",
    "Table",
    "TableSchema",
    "TreeEntry",
    "TreeNode",
    "UnsafeFileError",
    "VerifyReport",
    "WriteHandle",
    "WriterStatistics",
    "diff_stores",
    "export_store",
    "format_store",
    "import_store",
    "loads_exact",
    "migrate_store",
    "migration_sources",
    "stats",
    "sweep",
    "tree",
    "undecodable_names",
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
