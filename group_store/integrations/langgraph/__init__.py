"""LangGraph on group_store: a checkpointer (``GroupStoreSaver``) and a long-term memory store (``GroupStoreStore``).

Install with the ``langgraph`` extra (``langgraph-checkpoint``). Threads and
memories become directories of canonical JSON: readable, diffable, and
testable with ``store_snapshot``.
"""

from .saver import GroupStoreSaver as GroupStoreSaver
from .store import GroupStoreStore as GroupStoreStore

__all__ = ["GroupStoreSaver", "GroupStoreStore"]
