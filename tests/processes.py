"""Run test workers in separate processes (spawned, so each imports the store afresh)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable


def run_processes(targets: list[tuple[Callable[..., None], tuple[object, ...]]]) -> None:
    """Start every ``(function, args)`` in its own process at once and assert each exits cleanly."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=args) for target, args in targets]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
