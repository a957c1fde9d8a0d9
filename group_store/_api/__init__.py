"""The user-facing shells over the engine: views, ``Store``, ``DataStore`` and its write
queue, and ``Table``. Their public names are re-exported by ``group_store``."""
