"""SQLite implementations written from the seeds' schemas and code, for the twins to be compared with.

``SQLiteNexusStore`` and ``SQLiteDB`` follow the seeds' source (003, 002);
the command data repositories are written from seed 000's model and
documented behaviour (the seed runs them on SQLAlchemy over SQLite).
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from group_store.repos.command_data import CommandData

# -- nexus (seed 003) ----------------------------------------------------------

NEXUS_SCHEMA = """\
CREATE TABLE IF NOT EXISTS nexus_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    session_tag TEXT NOT NULL DEFAULT 'nexus'
);
CREATE INDEX IF NOT EXISTS idx_nexus_session ON nexus_messages(session_tag);
CREATE INDEX IF NOT EXISTS idx_nexus_ts ON nexus_messages(timestamp);
"""


class SQLiteNexusStore:
    MAX_MESSAGES = 500

    def __init__(self, db_path: Path) -> None:
        self._conn = sqlite3.connect(str(db_path), check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(NEXUS_SCHEMA)

    def append(self, role: str, content: str, *, timestamp: str | None = None, session_tag: str = "nexus") -> int:
        ts = timestamp or datetime.now(UTC).strftime("%H:%M:%S")
        with closing(self._conn.cursor()) as cur:
            cur.execute(
                "INSERT INTO nexus_messages (role, content, timestamp, session_tag) VALUES (?, ?, ?, ?)",
                (role, content, ts, session_tag),
            )
            row_id: int = cur.lastrowid  # type: ignore[assignment]
        self._conn.commit()
        self._prune(session_tag)
        return row_id

    def _prune(self, session_tag: str) -> None:
        with closing(self._conn.cursor()) as cur:
            cur.execute("SELECT COUNT(*) FROM nexus_messages WHERE session_tag = ?", (session_tag,))
            count = cur.fetchone()[0]
            if count > self.MAX_MESSAGES:
                cur.execute(
                    "DELETE FROM nexus_messages WHERE id IN ("
                    " SELECT id FROM nexus_messages WHERE session_tag = ? ORDER BY id ASC LIMIT ?)",
                    (session_tag, count - self.MAX_MESSAGES),
                )
                self._conn.commit()

    def get_history(self, session_tag: str = "nexus", limit: int = 200) -> list[dict[str, Any]]:
        with closing(self._conn.cursor()) as cur:
            cur.execute(
                "SELECT id, role, content, timestamp, session_tag FROM nexus_messages "
                "WHERE session_tag = ? ORDER BY id DESC LIMIT ?",
                (session_tag, limit),
            )
            rows = cur.fetchall()
        return [dict(r) for r in reversed(rows)]

    def message_count(self, session_tag: str = "nexus") -> int:
        with closing(self._conn.cursor()) as cur:
            cur.execute("SELECT COUNT(*) FROM nexus_messages WHERE session_tag = ?", (session_tag,))
            count: int = cur.fetchone()[0]
            return count

    def clear(self, session_tag: str = "nexus") -> int:
        with closing(self._conn.cursor()) as cur:
            cur.execute("DELETE FROM nexus_messages WHERE session_tag = ?", (session_tag,))
            deleted: int = cur.rowcount
        self._conn.commit()
        return deleted

    def clear_all(self) -> int:
        with closing(self._conn.cursor()) as cur:
            cur.execute("DELETE FROM nexus_messages")
            deleted: int = cur.rowcount
        self._conn.commit()
        return deleted

    def close(self) -> None:
        self._conn.close()


# -- director (seed 002) -------------------------------------------------------

DIRECTOR_SCHEMA = """\
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, video_id TEXT, collection_id TEXT,
    created_at INTEGER, updated_at INTEGER, metadata JSON
);
CREATE TABLE IF NOT EXISTS conversations (
    session_id TEXT, conv_id TEXT, msg_id TEXT PRIMARY KEY, msg_type TEXT, agents JSON, actions JSON,
    content JSON, status TEXT, created_at INTEGER, updated_at INTEGER, metadata JSON,
    FOREIGN KEY (session_id) REFERENCES sessions(session_id)
);
CREATE TABLE IF NOT EXISTS context_messages (
    session_id TEXT PRIMARY KEY, context_data JSON, created_at INTEGER, updated_at INTEGER, metadata JSON,
    FOREIGN KEY (session_id) REFERENCES sessions(session_id)
);
"""


class SQLiteDB:
    def __init__(self, db_path: str = "director.db") -> None:
        self.conn = sqlite3.connect(db_path, check_same_thread=True)
        self.conn.row_factory = sqlite3.Row
        self.cursor = self.conn.cursor()
        self.conn.executescript(DIRECTOR_SCHEMA)

    def create_session(
        self,
        session_id: str,
        video_id: str,
        collection_id: str,
        created_at: int | None = None,
        updated_at: int | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        created_at = created_at or int(time.time())
        updated_at = updated_at or int(time.time())
        self.cursor.execute(
            "INSERT OR IGNORE INTO sessions (session_id, video_id, collection_id, created_at, updated_at, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (session_id, video_id, collection_id, created_at, updated_at, json.dumps(metadata or {})),
        )
        self.conn.commit()

    def get_session(self, session_id: str) -> dict[str, Any]:
        self.cursor.execute("SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        row = self.cursor.fetchone()
        if row is None:
            return {}
        session = dict(row)
        session["metadata"] = json.loads(session["metadata"])
        return session

    def get_sessions(self) -> list[dict[str, Any]]:
        self.cursor.execute("SELECT * FROM sessions ORDER BY updated_at DESC")
        sessions = [dict(r) for r in self.cursor.fetchall()]
        for s in sessions:
            s["metadata"] = json.loads(s["metadata"])
        return sessions

    def add_or_update_msg_to_conv(
        self,
        session_id: str,
        conv_id: str,
        msg_id: str,
        msg_type: str,
        agents: list[str],
        actions: list[str],
        content: list[dict[str, Any]],
        status: str | None = None,
        created_at: int | None = None,
        updated_at: int | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        created_at = created_at or int(time.time())
        updated_at = updated_at or int(time.time())
        self.cursor.execute(
            "INSERT OR REPLACE INTO conversations (session_id, conv_id, msg_id, msg_type, agents, actions, content, "
            "status, created_at, updated_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
                conv_id,
                msg_id,
                msg_type,
                json.dumps(agents),
                json.dumps(actions),
                json.dumps(content),
                status,
                created_at,
                updated_at,
                json.dumps(metadata or {}),
            ),
        )
        self.conn.commit()

    def get_conversations(self, session_id: str) -> list[dict[str, Any]]:
        self.cursor.execute("SELECT * FROM conversations WHERE session_id = ?", (session_id,))
        conversations = []
        for row in self.cursor.fetchall():
            conv = dict(row)
            for name in ("agents", "actions", "content", "metadata"):
                conv[name] = json.loads(conv[name])
            conversations.append(conv)
        return conversations

    def get_context_messages(self, session_id: str) -> Any:
        self.cursor.execute("SELECT context_data FROM context_messages WHERE session_id = ?", (session_id,))
        result = self.cursor.fetchone()
        return json.loads(result[0]) if result else {}

    def add_or_update_context_msg(
        self,
        session_id: str,
        context_messages: list[Any],
        created_at: int | None = None,
        updated_at: int | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        created_at = created_at or int(time.time())
        updated_at = updated_at or int(time.time())
        self.cursor.execute(
            "INSERT OR REPLACE INTO context_messages (context_data, session_id, created_at, updated_at, metadata) "
            "VALUES (?, ?, ?, ?, ?)",
            (json.dumps(context_messages), session_id, created_at, updated_at, json.dumps(metadata or {})),
        )
        self.conn.commit()

    def delete_conversation(self, session_id: str) -> bool:
        self.cursor.execute("DELETE FROM conversations WHERE session_id = ?", (session_id,))
        self.conn.commit()
        return self.cursor.rowcount > 0

    def delete_context(self, session_id: str) -> bool:
        self.cursor.execute("DELETE FROM context_messages WHERE session_id = ?", (session_id,))
        self.conn.commit()
        return self.cursor.rowcount > 0

    def delete_session(self, session_id: str) -> tuple[bool, list[str]]:
        failed_components = []
        if not self.delete_conversation(session_id):
            failed_components.append("conversation")
        if not self.delete_context(session_id):
            failed_components.append("context")
        self.cursor.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
        self.conn.commit()
        if not self.cursor.rowcount > 0:
            failed_components.append("session")
        return len(failed_components) < 3, failed_components


# -- command data (seed 000) ---------------------------------------------------

COMMAND_SCHEMA = """\
CREATE TABLE IF NOT EXISTS command_data (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command_name TEXT NOT NULL, data_key TEXT NOT NULL, data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL, expires_at TIMESTAMP,
    UNIQUE (command_name, data_key)
);
CREATE TABLE IF NOT EXISTS chunked_command_responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, chunk TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS command_registry (command_name TEXT PRIMARY KEY, enabled BOOLEAN NOT NULL);
"""


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class SQLiteCommandData:
    """``CommandDataRepository``, ``ChunkedCommandResponseRepository`` and ``CommandRegistryRepository`` in one."""

    def __init__(self, db_path: Path) -> None:
        self.conn = sqlite3.connect(str(db_path))
        self.conn.executescript(COMMAND_SCHEMA)

    def save(self, command_name: str, data_key: str, data: str, expires_at: datetime | None = None) -> CommandData:
        now = datetime.now(UTC).replace(tzinfo=None).isoformat()
        expires = None if expires_at is None else expires_at.isoformat()
        existing = self.conn.execute(
            "SELECT id FROM command_data WHERE command_name = ? AND data_key = ?", (command_name, data_key)
        ).fetchone()
        if existing:
            self.conn.execute(
                "UPDATE command_data SET data = ?, updated_at = ?, expires_at = ? WHERE id = ?",
                (data, now, expires, existing[0]),
            )
        else:
            self.conn.execute(
                "INSERT INTO command_data (command_name, data_key, data, created_at, updated_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (command_name, data_key, data, now, now, expires),
            )
        self.conn.commit()
        entry = self.get(command_name, data_key)
        assert entry is not None
        return entry

    def _entry(self, row: tuple[Any, ...]) -> CommandData:
        created, updated = _time(row[3]), _time(row[4])
        assert created is not None
        assert updated is not None
        return CommandData(row[0], row[1], row[2], created, updated, _time(row[5]))

    _COLUMNS = "command_name, data_key, data, created_at, updated_at, expires_at"

    def get(self, command_name: str, data_key: str) -> CommandData | None:
        row = self.conn.execute(
            f"SELECT {self._COLUMNS} FROM command_data WHERE command_name = ? AND data_key = ?",
            (command_name, data_key),
        ).fetchone()
        return None if row is None else self._entry(row)

    def get_all(self, command_name: str) -> list[CommandData]:
        rows = self.conn.execute(
            f"SELECT {self._COLUMNS} FROM command_data WHERE command_name = ?", (command_name,)
        ).fetchall()
        return [self._entry(row) for row in rows]

    def delete(self, command_name: str, data_key: str) -> bool:
        cursor = self.conn.execute(
            "DELETE FROM command_data WHERE command_name = ? AND data_key = ?", (command_name, data_key)
        )
        self.conn.commit()
        return cursor.rowcount > 0

    def delete_all(self, command_name: str) -> int:
        cursor = self.conn.execute("DELETE FROM command_data WHERE command_name = ?", (command_name,))
        self.conn.commit()
        return cursor.rowcount

    def delete_expired(self) -> int:
        now = datetime.now(UTC).replace(tzinfo=None).isoformat()
        cursor = self.conn.execute("DELETE FROM command_data WHERE expires_at IS NOT NULL AND expires_at < ?", (now,))
        self.conn.commit()
        return cursor.rowcount

    def append_chunk(self, session_id: str, chunk: str) -> None:
        self.conn.execute(
            "INSERT INTO chunked_command_responses (session_id, chunk) VALUES (?, ?)", (session_id, chunk)
        )
        self.conn.commit()

    def get_chunks(self, session_id: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT chunk FROM chunked_command_responses WHERE session_id = ? ORDER BY id", (session_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def delete_session(self, session_id: str) -> None:
        self.conn.execute("DELETE FROM chunked_command_responses WHERE session_id = ?", (session_id,))
        self.conn.commit()

    def get_all_registry(self) -> dict[str, bool]:
        rows = self.conn.execute("SELECT command_name, enabled FROM command_registry").fetchall()
        return {name: bool(enabled) for name, enabled in rows}

    def set_enabled(self, command_name: str, enabled: bool) -> None:
        self.conn.execute("INSERT OR REPLACE INTO command_registry VALUES (?, ?)", (command_name, enabled))
        self.conn.commit()

    def ensure_registered(self, command_names: list[str]) -> None:
        for name in command_names:
            self.conn.execute("INSERT OR IGNORE INTO command_registry VALUES (?, 1)", (name,))
        self.conn.commit()
