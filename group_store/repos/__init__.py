"""File-backed twins of the relational stores in group_store's seed systems.

Each module keeps its seed's class and method names, arguments and return
values; only construction changes (a ``Store``/``DataStore`` or a directory
instead of a database connection). The differences are listed in each module.

- ``command_data``: the command data store's SQLAlchemy repositories (sync).
- ``nexus``: Nexus session persistence, bounded history per session tag (sync).
- ``director``: Director's ``SQLiteDB`` sessions and conversations (sync).
- ``genie``: Genie's session, memory, short-memory and checkpoint stores (async).
"""
