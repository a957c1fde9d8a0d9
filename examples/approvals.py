"""Genie's ``approvals`` table on group_store: one record per tool call awaiting a human's decision.

python examples/approvals.py [DIRECTORY]      (a temporary directory by default)
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from group_store import Store, Table

APPROVAL_FIELDS = (
    "id", "thread_id", "run_id", "tenant_id", "tool_name", "args", "status", "expires_at",
    "resolved_at", "resolved_by", "created_by", "feedback", "sender_context", "question",
)  # fmt: skip


def approvals_table(store: Store) -> Table:
    """Approvals by id (the Go model's primary key), spread over 16 shard files."""
    return Table(store, "approvals", fields=APPROVAL_FIELDS, key=("id",), shards=16)


def request(table: Table, thread_id: str, tool_name: str, args: str, ttl: timedelta) -> str:
    """Record a pending approval for a tool call; return its id."""
    approval_id = str(uuid.uuid4())
    expires = (datetime.now(UTC) + ttl).isoformat()
    table.insert({"id": approval_id, "thread_id": thread_id, "run_id": "run-1", "tool_name": tool_name,
                  "args": args, "status": "pending", "expires_at": expires})  # fmt: skip
    return approval_id


def resolve(table: Table, approval_id: str, approved: bool, by: str, feedback: str = "") -> dict[str, Any] | None:
    """Approve or reject a pending approval (a resolved one is left as it is)."""

    def decide(current: dict[str, Any] | None) -> dict[str, Any] | None:
        if current is None or current["status"] != "pending":
            return current
        return {**current, "status": "approved" if approved else "rejected", "resolved_by": by,
                "feedback": feedback, "resolved_at": datetime.now(UTC).isoformat()}  # fmt: skip

    return table.modify((approval_id,), decide)


def expire_overdue(table: Table) -> int:
    """Mark pending approvals past their expiry as expired; return how many."""
    now = datetime.now(UTC).isoformat()
    overdue = [a for a in table.find({"status": "pending"}) if a["expires_at"] and a["expires_at"] < now]
    for approval in overdue:
        table.upsert({**approval, "status": "expired"})
    return len(overdue)


def main(root: Path) -> dict[str, Any]:
    table = approvals_table(Store(root))
    send = request(table, "thread-1", "send_email", '{"to": "bob"}', timedelta(minutes=10))
    delete = request(table, "thread-1", "delete_file", '{"path": "/tmp/x"}', timedelta(minutes=10))
    request(table, "thread-2", "deploy", "{}", timedelta(seconds=-1))
    resolve(table, send, approved=True, by="alice")
    resolve(table, delete, approved=False, by="alice", feedback="not that file")
    summary = {
        "expired": expire_overdue(table),
        "thread-1": sorted((a["tool_name"], a["status"]) for a in table.find({"thread_id": "thread-1"})),
        "pending": table.count({"status": "pending"}),
    }
    print(summary)
    return summary


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
