"""Genie's ``cron_tasks`` and ``cron_history`` tables on group_store: recurring tasks and their runs.

python examples/cron_tasks.py [DIRECTORY]      (a temporary directory by default)
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from group_store import Store, Table

TASK_FIELDS = ("name", "id", "expression", "action", "enabled", "source", "last_triggered_at", "next_run_at")
HISTORY_FIELDS = ("task_id", "id", "task_name", "started_at", "finished_at", "status", "error", "run_id")


def cron_tables(store: Store) -> tuple[Table, Table]:
    """Tasks keyed by their unique name (one file); history partitioned by task (one file per task)."""
    tasks = Table(store, "cron_tasks", fields=TASK_FIELDS, key=("name",), shards=1)
    history = Table(store, "cron_history", fields=HISTORY_FIELDS, key=("task_id", "id"))
    return tasks, history


def schedule(tasks: Table, name: str, expression: str, action: str, first_run: datetime) -> None:
    """Create or update a task (a task's id survives updates)."""
    current = tasks.get(name)
    task_id = current["id"] if current else str(uuid.uuid4())
    tasks.upsert({"name": name, "id": task_id, "expression": expression, "action": action, "enabled": True,
                  "source": "config", "next_run_at": first_run.isoformat()}, merge=True)  # fmt: skip


def run_due(tasks: Table, history: Table, now: datetime, every: timedelta) -> list[str]:
    """Run every enabled task that is due, logging each run; return the names run."""
    ran = []
    for task in tasks.find({"enabled": True}, order_by="next_run_at"):
        if task["next_run_at"] > now.isoformat():
            continue
        run = {"task_id": task["id"], "id": str(uuid.uuid4()), "task_name": task["name"],
               "started_at": now.isoformat(), "status": "running"}  # fmt: skip
        history.insert(run)
        failed = task["action"] == "fail"
        history.upsert({**run, "finished_at": now.isoformat(), "status": "failed" if failed else "success",
                        "error": "boom" if failed else ""})  # fmt: skip
        tasks.upsert({**task, "last_triggered_at": now.isoformat(), "next_run_at": (now + every).isoformat()})
        ran.append(task["name"])
    return ran


def main(root: Path) -> dict[str, Any]:
    tasks, history = cron_tables(Store(root))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    schedule(tasks, "digest", "0 * * * *", "summarize", start)
    schedule(tasks, "cleanup", "30 * * * *", "fail", start + timedelta(minutes=30))
    schedule(tasks, "paused", "* * * * *", "noop", start)
    tasks.upsert({"name": "paused", "enabled": False}, merge=True)
    runs = [run_due(tasks, history, start + timedelta(minutes=m), timedelta(hours=1)) for m in (0, 30, 60)]
    digest = tasks.get("digest")
    assert digest is not None
    summary = {
        "runs": runs,
        "digest history": [h["status"] for h in history.find({"task_id": digest["id"]}, order_by="started_at")],
        "failures": [h["task_name"] for h in history.find({"status": "failed"})],
    }
    print(summary)
    return summary


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
