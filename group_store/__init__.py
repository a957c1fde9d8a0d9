"""group_store: a hierarchical, file-based JSON datastore for agent applications."""

from ._datastore import DataStore as DataStore
from ._errors import CorruptEntryError as CorruptEntryError
from ._errors import EntryKindError as EntryKindError
from ._errors import GroupStoreError as GroupStoreError
from ._errors import InvalidArgumentError as InvalidArgumentError
from ._errors import InvalidKeyError as InvalidKeyError
from ._errors import KeyNotFoundError as KeyNotFoundError
from ._errors import SerializationError as SerializationError
from ._errors import StorageError as StorageError
from ._errors import StoreClosedError as StoreClosedError
from ._errors import UnsafeFileError as UnsafeFileError
from ._handle import WriteHandle as WriteHandle
from ._store import Store as Store
from ._writer import WriterStatistics as WriterStatistics

__all__ = [
    "CorruptEntryError",
    "DataStore",
    "EntryKindError",
    "GroupStoreError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "KeyNotFoundError",
    "SerializationError",
    "StorageError",
    "Store",
    "StoreClosedError",
    "UnsafeFileError",
    "WriteHandle",
    "WriterStatistics",
]
