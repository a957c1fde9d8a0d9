"""Genie's ``clarifications`` table on group_store: questions the agent asked, durable across restarts.

python examples/clarifications.py [DIRECTORY]      (a temporary directory by default)
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from group_store import Store, Table

CLARIFICATION_FIELDS = ("id", "question", "context", "answer", "status", "sender_context", "answered_at")


def clarifications_table(store: Store) -> Table:
    """Clarifications by id; the table keeps created_at."""
    return Table(store, "clarifications", fields=CLARIFICATION_FIELDS, key=("id",), shards=8)


def ask(table: Table, question: str, context: str = "", sender: str = "") -> str:
    """Record a question awaiting the user's answer; return its id."""
    clarification_id = str(uuid.uuid4())
    table.insert({"id": clarification_id, "question": question, "context": context, "answer": "",
                  "status": "pending", "sender_context": sender})  # fmt: skip
    return clarification_id


def answer(table: Table, clarification_id: str, text: str) -> None:
    """Store the user's answer (pending -> answered)."""
    table.upsert({"id": clarification_id, "answer": text, "status": "answered",
                  "answered_at": datetime.now(UTC).isoformat()}, merge=True)  # fmt: skip


def recover_pending(table: Table, expire: bool) -> list[str]:
    """At startup: the questions still pending, oldest first; with ``expire``, mark them expired instead."""
    pending = table.find({"status": "pending"}, order_by="created_at")
    if expire:
        for item in pending:
            table.upsert({"id": item["id"], "status": "expired", "answered_at": datetime.now(UTC).isoformat()},
                         merge=True)  # fmt: skip
    return [item["question"] for item in pending]


def main(root: Path) -> dict[str, Any]:
    table = clarifications_table(Store(root))
    which = ask(table, "Which environment should I deploy to?", sender="slack:U1:C1")
    ask(table, "Should I notify the team?")
    answer(table, which, "staging")
    summary = {
        "answered": table.get(which),
        "pending after restart": recover_pending(table, expire=False),
        "expired at startup": recover_pending(table, expire=True),
        "statuses": sorted(c["status"] for c in table.find()),
    }
    print(summary)
    return summary


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
