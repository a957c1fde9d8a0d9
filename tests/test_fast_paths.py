"""Regression tests for the fast paths of the #14 performance work: each test here
tries to break one guarantee a fast path could have broken, and fails if it does.

- ``keys()`` trusting the expiry index (``to_read(...).trusted``) must agree with ``load()``;
- the asyncio waits of ``_api/loop.py`` under cancellation, several loops, a closed loop;
- ``_kinds_in``'s one-listing answer for large batches (symlinks, FIFOs, directories);
- temporary-name tokens in forked children; the per-view location memo.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from group_store import CorruptEntryError, DataStore, KeyNotFoundError, Store, UnsafeFileError, WriteHandle
from group_store.storage import _local
from group_store.storage._local import LocalStorage
from group_store.testing import FakeClock

INDEX = ".expiry.jsonl"

# -- keys() against load(): the expiry index must never prove an expired entry live ----------


@pytest.mark.local_only("reads the store's files")
def test_keys_agrees_with_load_when_the_expiry_has_a_sub_microsecond_part(tmp_path: Path) -> None:
    # The index records repr(expiry); the sidecar an ISO time, to the microsecond. Rounded
    # down there, the sidecar's expiry came before the index's: keys() trusted the index and
    # listed an entry load() called expired (fixed in to_read).
    clock = FakeClock(1_800_000_000.0)
    store = Store(tmp_path, clock=clock)
    store.save("k", 1, ttl=10.0000004)  # expires at ...10.0000004; the sidecar says ...10.000000
    clock.now = 1_800_000_010.0000002  # after the sidecar's expiry, before the index's record
    assert not store.exists("k")
    assert store.keys() == []
    assert store.sweep() == 1  # the sweep agrees: it is due


@pytest.mark.local_only("reads the store's files")
def test_an_entry_the_index_proves_live_with_a_malformed_sidecar_is_never_a_silent_miss(tmp_path: Path) -> None:
    # keys() no longer reads a sidecar the index proves live: a malformed one is then listed
    # (before #14 it was left out and reported). What must hold either way: loading it raises
    # the typed error naming the key and the sidecar, never a silent "no such key".
    store = Store(tmp_path, clock=FakeClock())
    store.save("k", 1, ttl=100)
    (tmp_path / "k.meta.json").write_bytes(b"garbage")
    listed = store.keys()
    assert listed in ([], ["k"])
    with pytest.raises(CorruptEntryError) as caught:
        store.load("k")
    assert caught.value.key == "k"
    assert str(caught.value.path).endswith("k.meta.json")


_KEYS = ["a", "b", "x" * 300, "é"]  # "x" * 300: a hashed name (its key file is read)
_TTLS = st.none() | st.integers(0, 20) | st.integers(0, 20).map(lambda n: n + 4e-7) | st.floats(0, 20)
_STEPS = st.sampled_from([0.0, 1e-7, 2e-7, 3e-7, 1e-6, 0.5, 1.0, 5.0, 10.0])


class IndexDamage(RuleBasedStateMachine):
    """Saves with and without TTL, deletes, sweeps, a moving clock and damage to the expiry
    index that a crash or a person can leave (removal, a torn last line, junk lines, a
    record for a name with no sidecar); ``keys()`` must list exactly what ``load()`` finds."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        self.clock = FakeClock(1_800_000_000.0)
        self.store = Store(self.root, clock=self.clock)
        self.expiry: dict[str, float | None] = {}  # key -> the expiry the store was given

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(key=st.sampled_from(_KEYS), value=st.integers(0, 3), ttl=_TTLS)
    def save(self, key: str, value: int, ttl: float | None) -> None:
        self.store.save(key, value, ttl=ttl)
        self.expiry[key] = None if ttl is None else self.clock.now + ttl

    @rule(key=st.sampled_from(_KEYS))
    def delete(self, key: str) -> None:
        self.store.delete(key)
        self.expiry.pop(key, None)

    @rule(step=_STEPS)
    def advance(self, step: float) -> None:
        self.clock.advance(step)

    @rule(back=st.sampled_from([1e-7, 1.0, 30.0]))
    def clock_moves_back(self, back: float) -> None:
        self.clock.now -= back

    @rule()
    def sweep(self) -> None:
        self.store.sweep()
        self.expiry = {key: when for key, when in self.expiry.items() if self.store.exists(key)}

    @rule()
    def remove_index(self) -> None:
        (self.root / INDEX).unlink(missing_ok=True)

    @rule(key=st.sampled_from(["a", "b"]), ahead=st.sampled_from([-1.0, 1.0, 1e6]), cut=st.integers(1, 30))
    def crash_while_indexing(self, key: str, ahead: float, cut: int) -> None:
        # A save killed in the middle of its index record: part of the record is on disk and
        # nothing after it (the sidecar and data come later). Tearing a record whose save
        # went on to write its sidecar is damage only a power loss of a store that is not
        # durable can leave, which keys() does not guarantee (see Engine.keys).
        line = f"{key} {self.clock.now + ahead!r}\n".encode()
        self._append_to_index(line[: max(1, len(line) - cut)])

    @rule(junk=st.sampled_from([b"\n", b"a\n", b"a nan\n", b"a inf\n", b"zz 1e400\n", b"\xff\xfe 3\n", b"a  5\n"]))
    def junk_line(self, junk: bytes) -> None:
        self._append_to_index(junk)

    def _append_to_index(self, line: bytes) -> None:
        # As every appender of the store does (Engine.append_lines): a torn last record is cut
        # before a line is added. Appended onto a torn tail, a line would hide the tear and
        # join it into one malformed line: damage only a hand edit leaves (not guaranteed).
        path = self.root / INDEX
        raw = path.read_bytes() if path.exists() else b""
        path.write_bytes(raw[: raw.rfind(b"\n") + 1] + line)

    @rule(key=st.sampled_from(["a", "b"]), ahead=st.sampled_from([1.0, 1e6]))
    def record_without_sidecar(self, key: str, ahead: float) -> None:
        # A record left for an entry with no sidecar (a TTL since cleared, a delete): a late
        # record beside a sidecar is damage no crash leaves (the index line is written first).
        if self.expiry.get(key) is not None:
            return
        self._append_to_index(f"{key} {self.clock.now + ahead!r}\n".encode())

    @invariant()
    def keys_is_what_load_finds(self) -> None:
        found = []
        for key in _KEYS:
            try:
                self.store.load(key)
            except KeyNotFoundError:
                continue
            found.append(key)
        assert self.store.keys() == sorted(found)
        for key, when in self.expiry.items():
            # Away from the microsecond a sidecar rounds to, the model decides.
            if when is None or abs(self.clock.now - when) > 1e-5:
                assert (key in found) == (when is None or self.clock.now < when), (key, when, self.clock.now)


TestIndexDamage = pytest.mark.local_only("damages the store's files")(IndexDamage.TestCase)
TestIndexDamage.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)


# -- waits on the caller's loop (_api/loop.py) ------------------------------------------------


class GatedStorage(LocalStorage):
    """Writes wait for ``gate`` (a write stays pending as long as a test needs)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = threading.Event()

    def write_many(self, directory: str, items: Any, *, durable: bool) -> Any:
        assert self.gate.wait(30), "the test never opened the gate"
        return super().write_many(directory, items, durable=durable)


def _pending(handle: WriteHandle[Any]) -> int:
    return len(handle._waiters or ())


@pytest.mark.anyio
@pytest.mark.local_only("a LocalStorage subclass")
async def test_a_cancelled_wait_leaves_the_handle_and_the_writer_working(tmp_path: Path) -> None:
    storage = GatedStorage(tmp_path)
    store = DataStore(storage=storage)
    handle = store.save("k", 1)
    with anyio.move_on_after(0.05) as scope:
        await handle
    assert scope.cancelled_caught
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.05):
            await store.flush()
    assert _pending(handle) == 0  # the cancelled waiter unregistered itself
    assert not handle.done()
    storage.gate.set()
    await handle
    await store.flush()
    assert await store.load("k") == 1
    await store.aclose()


@pytest.mark.anyio
@pytest.mark.local_only("a LocalStorage subclass")
async def test_many_tasks_waiting_on_one_handle_all_wake(tmp_path: Path) -> None:
    storage = GatedStorage(tmp_path)
    store = DataStore(storage=storage)
    handle = store.save("k", 1)
    woken: list[int] = []

    async def wait(n: int) -> None:
        await handle
        woken.append(n)

    async with anyio.create_task_group() as group:
        for n in range(100):
            group.start_soon(wait, n)
        # Half of them give up; the others must still be woken.
        with anyio.move_on_after(0.05):
            async with anyio.create_task_group() as quitters:
                for _ in range(50):
                    quitters.start_soon(wait, -1)
        await anyio.sleep(0.01)
        storage.gate.set()
    assert sorted(woken) == list(range(100))
    assert _pending(handle) == 0
    await store.aclose()


@pytest.mark.local_only("a LocalStorage subclass")
def test_one_handle_awaited_from_an_asyncio_and_a_trio_loop_in_two_threads(tmp_path: Path) -> None:
    storage = GatedStorage(tmp_path)
    store = DataStore(storage=storage)
    handle = store.save("k", 1)
    results: dict[str, object] = {}
    started = threading.Barrier(3)

    async def wait() -> None:
        started.wait()
        await handle
        results[threading.current_thread().name] = handle.result()

    threads = [
        threading.Thread(target=asyncio.run, args=(wait(),), name="asyncio"),
        threading.Thread(target=trio.run, args=(wait,), name="trio"),
    ]
    for thread in threads:
        thread.start()
    started.wait()
    storage.gate.set()
    for thread in threads:
        thread.join(30)
    assert results == {"asyncio": None, "trio": None}
    asyncio.run(store.aclose())


@pytest.mark.local_only("a LocalStorage subclass")
def test_a_handle_settled_after_its_waiters_loop_closed(tmp_path: Path) -> None:
    storage = GatedStorage(tmp_path)
    store = DataStore(storage=storage)
    handle = store.save("k", 1)
    loop = asyncio.new_event_loop()

    async def wait() -> None:
        await handle

    task = loop.create_task(wait())
    loop.run_until_complete(asyncio.sleep(0.02))
    assert _pending(handle) == 1  # still registered: the loop is closed under it
    loop.close()
    del task
    storage.gate.set()  # the writer wakes a closed loop: it must not die of it

    async def after() -> None:
        await handle
        await store.save("j", 2)
        assert await store.load("j") == 2
        await store.aclose()

    asyncio.run(after())


@pytest.mark.local_only("a LocalStorage subclass")
def test_asyncio_wait_for_and_shield_on_a_pending_handle(tmp_path: Path) -> None:
    storage = GatedStorage(tmp_path)

    async def main() -> None:
        store = DataStore(storage=storage)
        handle = store.save("k", 1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(handle, timeout=0.05)
        shielded = asyncio.ensure_future(asyncio.shield(handle))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(shielded, timeout=0.05)
        assert not handle.done()
        storage.gate.set()
        await asyncio.gather(handle, store.save("j", 2))
        assert [await store.load("k"), await store.load("j")] == [1, 2]
        await store.aclose()

    asyncio.run(main())


@pytest.mark.anyio
async def test_a_loop_of_inline_loads_can_be_cancelled(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    await store.save("k", 1)
    loads = 0
    with anyio.move_on_after(0.05) as scope:
        while True:  # never awaits anything but load(): its checkpoint must deliver the cancel
            await store.load("k")
            loads += 1
    assert scope.cancelled_caught
    assert loads > 0
    await store.aclose()


# -- kinds from one listing (storage/_local.py::_kinds_in) -----------------------------------


@pytest.mark.local_only("plants symlinks and FIFOs")
@pytest.mark.parametrize("crowd", [0, 2_000], ids=["listing", "stat-fallback"])
def test_a_large_batch_refuses_every_planted_non_regular_target(tmp_path: Path, crowd: int) -> None:
    storage = LocalStorage(tmp_path)
    for n in range(crowd):  # more than 8 entries per name: _kinds_in falls back to a stat per name
        (tmp_path / f"other{n}").write_bytes(b"")
    outside = tmp_path / "outside"
    outside.write_bytes(b"untouched")
    names = [f"n{n}.json" for n in range(40)]
    os.symlink(outside, tmp_path / names[3])
    os.symlink(tmp_path / "nowhere", tmp_path / names[5])  # dangling
    os.mkfifo(tmp_path / names[7])
    (tmp_path / names[11]).mkdir()
    (tmp_path / names[13]).write_bytes(b"old")
    items = [(name, b"new") for name in names] + [(names[13], b"newer")]  # a duplicate name
    for durable in (False, True):
        outcomes = storage.write_many("", items, durable=durable)
        refused = {names[i] for i, outcome in enumerate(outcomes[:40]) if outcome is not None}
        assert refused == {names[3], names[5], names[7], names[11]}
        assert all(isinstance(outcomes[i], UnsafeFileError) for i in (3, 5, 7, 11))
        assert outcomes[40] is None
        assert outside.read_bytes() == b"untouched"
        assert (tmp_path / names[3]).is_symlink()
        assert (tmp_path / names[5]).is_symlink()
        assert (tmp_path / names[13]).read_bytes() == b"newer"
    assert storage.kinds("", names)[3:8] == storage.kinds("", names[3:8])  # batch and small agree
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


@pytest.mark.local_only("threads listing one directory")
def test_threads_listing_and_writing_the_root_and_a_subdirectory_at_once(tmp_path: Path) -> None:
    root = Store(tmp_path)
    child = root.narrow("sub")
    for n in range(60):
        root.save(f"r{n}", n)
        child.save(f"c{n}", n)
    expected_root, expected_child = root.keys(), child.keys()
    errors: list[BaseException] = []
    stop = threading.Event()

    def lister(view: Store, expected: list[str]) -> None:
        try:
            for _ in range(40):
                listed = view.keys()
                assert set(expected) <= set(listed), sorted(set(expected) - set(listed))
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        async def main() -> None:
            async with DataStore(tmp_path) as store:
                n = 0
                while not stop.is_set():
                    for m in range(40):  # a batch of >= 32: write_many's listing path
                        store.save(f"w{m}", n)
                        store.narrow("sub").save(f"w{m}", n)
                    await store.flush()
                    root.sweep()
                    n += 1

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lister, args=(root, expected_root)) for _ in range(3)]
    threads += [threading.Thread(target=lister, args=(child, expected_child))]
    background = threading.Thread(target=writer)
    background.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stop.set()
    background.join(60)
    assert errors == []


# -- temporary names in forked children -----------------------------------------------------


@pytest.mark.local_only("forks")
def test_forked_children_draw_different_temp_tokens_and_never_collide(tmp_path: Path) -> None:
    Store(tmp_path).save("warm", 0)  # the parent's generator has been used before the fork
    children = []
    for child in range(4):
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                os.close(reader)
                os.write(writer, b"%d\n" % _local._temp_tokens.getrandbits(64))
                store = Store(tmp_path)
                for round_ in range(30):
                    for key in ("a", "b", "c"):
                        store.save(key, [child, round_])
                code = 0
            finally:
                os._exit(code)
        os.close(writer)
        children.append((pid, reader))
    tokens = []
    for pid, reader in children:
        with os.fdopen(reader, "rb") as pipe:
            tokens.append(pipe.read())
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert len(set(tokens)) == len(tokens)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    store = Store(tmp_path)
    assert {key: store.load(key)[1] for key in "abc"} == dict.fromkeys("abc", 29)


# -- the per-view location memo -------------------------------------------------------------


class _Key(str):
    __slots__ = ()


def test_location_memos_are_per_view(tmp_path: Path) -> None:
    store = Store(tmp_path)
    left, right = store.narrow("left"), store.narrow("right")
    deeper = left.narrow("deeper")
    for n, view in enumerate((store, left, right, deeper)):
        view.save("k", n)
    assert [view.load("k") for view in (store, left, right, deeper)] == [0, 1, 2, 3]
    assert left.narrow("deeper").load("k") == 3  # a second copy of the same place agrees
    assert store.load(_Key("k")) == 0
    assert left.load(_Key("k")) == 1


def test_the_memo_never_admits_an_invalid_key(tmp_path: Path) -> None:
    from group_store import InvalidKeyError

    store = Store(tmp_path)
    for bad in ("", "\ud800", _Key(""), _Key("\ud800")):
        for _ in range(2):  # refused the second time too: nothing remembered it
            with pytest.raises(InvalidKeyError):
                store.save(bad, 1)
            with pytest.raises(InvalidKeyError):
                store.load(bad)
    store.save("ok", 1)
    with pytest.raises(InvalidKeyError):
        store.load(["ok"])  # type: ignore[arg-type]  # unhashable: never looked up in the memo


# -- errors still name the key and the file ------------------------------------------------


@pytest.mark.local_only("writes a corrupt document by hand")
def test_a_corrupt_document_names_its_key_and_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save("k", 1)
    store.save("x" * 300, 1)
    for key, document in (("k", "k.json"), ("x" * 300, None)):
        paths = [tmp_path / document] if document else [p for p in tmp_path.glob("*.json") if p.name != "k.json"]
        for path in paths:
            path.write_bytes(b"{not json")
        with pytest.raises(CorruptEntryError) as caught:
            store.load(key)
        assert caught.value.key == key
        assert Path(str(caught.value.path)).parent == tmp_path
        assert str(caught.value.path).endswith(".json")


@pytest.mark.local_only("plants a FIFO and a directory")
def test_a_document_that_is_not_a_regular_file_names_its_key_and_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    os.mkfifo(tmp_path / "k.json")
    (tmp_path / "d.json").mkdir()
    for key in ("k", "d"):
        with pytest.raises(UnsafeFileError) as caught:
            store.load(key)
        assert caught.value.key == key
        assert caught.value.path == str(tmp_path / f"{key}.json")


_CTRL_C = """
import os, signal, sys, threading
from pathlib import Path
from group_store.storage._local import LocalStorage
from group_store import DataStore

class Gated(LocalStorage):
    def write_many(self, directory, items, *, durable):
        threading.Event().wait(30)  # a write that never ends while the test runs
        return super().write_many(directory, items, durable=durable)

async def main():
    store = DataStore(storage=Gated(Path(sys.argv[2])))
    handle = store.save("k", 1)
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    await handle

try:
    if sys.argv[1] == "asyncio":
        import asyncio
        asyncio.run(main())
    else:
        import trio
        trio.run(main)
except KeyboardInterrupt:
    os._exit(42)  # not waiting for the gated writer at exit
os._exit(1)
"""


@pytest.mark.local_only("a subprocess")
@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_ctrl_c_interrupts_a_wait_on_a_handle(tmp_path: Path, loop: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _CTRL_C, loop, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=20,
        check=False,
    )
    assert done.returncode == 42


@pytest.mark.anyio
@pytest.mark.local_only("plants symlinks")
async def test_a_datastore_batch_with_planted_targets_and_hashed_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed: list[int] = []
    by_listing = _local._kinds_by_listing

    def spy(dir_fd: int, directory: str, names: Any) -> Any:
        found = by_listing(dir_fd, directory, names)
        listed.append(-1 if found is None else len(names))
        return found

    monkeypatch.setattr(_local, "_kinds_by_listing", spy)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"untouched")
    os.symlink(outside, tmp_path / "n7.json")
    storage = GatedStorage(tmp_path)
    async with DataStore(storage=storage) as store:
        store.save("first", 0)  # held at the gate: what follows queues up as one batch
        keys = [f"n{n}" for n in range(40)] + ["y" * 300 + str(n) for n in range(5)]
        handles = {key: store.save(key, key) for key in keys}
        handles["n3"] = store.save("n3", "again")  # a key twice in one batch: the last wins
        storage.gate.set()
        for key, handle in handles.items():
            if key == "n7":
                with pytest.raises(UnsafeFileError):
                    await handle
            else:
                await handle
        assert await store.keys() == sorted(["first", *(key for key in keys if key != "n7")])
        assert await store.load("n3") == "again"
        assert await store.load("y" * 300 + "4") == "y" * 300 + "4"
    assert outside.read_bytes() == b"untouched"
    assert (tmp_path / "n7.json").is_symlink()
    assert [count for count in listed if count >= 32]  # the one-listing path answered
