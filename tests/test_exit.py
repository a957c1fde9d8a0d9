"""Leaving the process: what a DataStore still writes at normal exit, Ctrl-C and SIGTERM (real interpreters).

Each child parks its writer thread behind a gate that only its own exit opens (an
atexit hook registered after group_store's runs first), so every save below is
still queued when the process starts to leave: the drain is all that can write it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SAVES = 2000  # the Ctrl-C case as reported: a durable flush of 2,000 saves
FEWER = 400  # the other cases: how many are queued does not change the path they take
DIRECTORIES = 4

CHILD = textwrap.dedent(
    """
    import atexit, signal, sys, threading

    import anyio

    from group_store import DataStore

    root, backend, mode, handler, saves = sys.argv[1:6]
    if handler == "sys-exit":
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    elif handler == "as-ctrl-c":
        signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    gate = threading.Event()
    atexit.register(gate.set)


    async def main():
        store = DataStore(root, durable=True)
        store._writer.call(gate.wait)  # the writer is parked: everything below stays queued
        for i in range(int(saves)):
            # Runs of saves to one directory: each run is one durable group commit.
            store.narrow(f"d{{i * {directories} // int(saves)}}").save(f"k{{i}}", {{"i": i}})
        try:
            print("queued", flush=True)  # inside: a signal right after it still unwinds through finally
            if mode == "flush":
                await store.flush()
            elif mode == "wait":
                await anyio.sleep_forever()
        finally:
            print("unwound", flush=True)


    anyio.run(main, backend=backend)
    """
).format(directories=DIRECTORIES)


def _run(
    tmp_path: Path, backend: str, mode: str, handler: str = "none", send: int | None = None, saves: int = FEWER
) -> tuple[int, str]:
    """Run the child; once it has queued ``saves``, send it ``send``; return its exit status and stdout."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), backend, mode, handler, str(saves)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first == "queued\n", child.stderr.read() if child.stderr else first
        if send is not None:
            child.send_signal(send)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "write failed" not in err, err
    return child.returncode, first + out


def _written(root: Path, saves: int = FEWER) -> int:
    """How many of the child's saves are on disk with their value (all or none of a file)."""
    found = 0
    for i in range(saves):
        path = root / f"d{i * DIRECTORIES // saves}" / f"k{i}.json"
        if path.exists():
            assert json.loads(path.read_bytes()) == {"i": i}
            found += 1
    return found


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_durable_saves_queued_at_interpreter_exit_are_all_written(tmp_path: Path, backend: str) -> None:
    status, _ = _run(tmp_path, backend, "exit")
    assert status == 0
    assert _written(tmp_path) == FEWER


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_ctrl_c_during_a_durable_flush_writes_everything_queued(tmp_path: Path, backend: str) -> None:
    status, out = _run(tmp_path, backend, "flush", send=signal.SIGINT, saves=SAVES)
    assert status == -signal.SIGINT  # KeyboardInterrupt ended the program, during its flush
    assert "unwound" in out
    assert _written(tmp_path, SAVES) == SAVES


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sigterm_forwarded_as_ctrl_c_writes_everything_queued(tmp_path: Path, backend: str) -> None:
    # The README's recipe: SIGTERM unwinds like Ctrl-C, which both event loops handle cleanly.
    status, out = _run(tmp_path, backend, "wait", "as-ctrl-c", send=signal.SIGTERM)
    assert status == -signal.SIGINT
    assert "unwound" in out
    assert _written(tmp_path) == FEWER


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sigterm_raising_system_exit_writes_everything_queued(tmp_path: Path, backend: str) -> None:
    status, _ = _run(tmp_path, backend, "wait", "sys-exit", send=signal.SIGTERM)
    if backend == "asyncio":
        assert status == 128 + signal.SIGTERM
    # On trio, SystemExit raised inside its scheduler can abandon the run (TrioInternalError,
    # exit status 1): why the README recommends the Ctrl-C recipe. The drain still runs.
    assert _written(tmp_path) == FEWER


def test_sigterm_without_a_handler_kills_the_process_before_the_drain(tmp_path: Path) -> None:
    # Documented, not a guarantee: Python's default SIGTERM action ends the process at
    # once, no atexit hook runs, and whatever was still queued is lost.
    assert _run(tmp_path, "asyncio", "wait", send=signal.SIGTERM)[0] == -signal.SIGTERM
    assert _written(tmp_path) == 0
