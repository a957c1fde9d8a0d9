"""``StorageContract``: the storage seam's conformance suite, for any backend to run.

Subclass it in a test module and provide one fixture, ``storage``, returning a fresh,
empty ``Storage``; each test checks one clause of the contract written in
``group_store.storage.Storage``'s docstrings and is named after it::

    from group_store.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self) -> Storage:
            return MyStorage(...)

Needs pytest and hypothesis. Not checked, because no test from outside a backend can:
durability (``durable=True`` runs, but no power is cut), the refusal of symlinks and
other non-regular files (``UnsafeFileError``: nothing portable plants one), sharing
between processes, and the bound on resources a batch holds at once.

Names the layout reserves for a backend's own files (the lock file, temporary files) are
left out of listings before they are compared: the store never gives an entry such a name.

Two things the contract leaves to the backend, and the suite accepts either way:

- a file and a directory of one name (``d/f`` written where ``d/f/...`` exists, or the
  reverse): the store never makes one (entry files have suffixes, directories none), so a
  backend with real directories refuses it with an ``OSError`` and one without them
  (object storage, where a directory is a key prefix) may keep both;
- a rewrite with identical bytes may keep the version (content-hash tokens such as
  S3's ETags); compare-and-swap against identical bytes is then a swap against that state.
  Different bytes always give a different version.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from .._errors import GroupStoreError, LockTimeoutError
from .._format.layout import LOCK_NAME, is_temp_name
from ..storage._base import Kind, Listing, Storage, Tail, Version

# Long enough for any backend to acquire an uncontended lock or finish a thread's work;
# a guard against a hang, never a duration any assertion depends on.
_PATIENCE = 60.0
# How long a lock held elsewhere is waited for when the test expects the wait to fail.
_SHORT_TIMEOUT = 0.05


class StorageContract:
    """The conformance tests; a subclass overrides the ``storage`` fixture.

    Attributes:
        model_examples: How many random operation sequences the dict-model test runs
            (lower it for a backend whose every operation is a network round trip).
    """

    model_examples = 50

    @pytest.fixture
    def storage(self) -> Storage:
        """A fresh, empty storage (every subclass overrides this fixture)."""
        raise NotImplementedError("subclass StorageContract and override its storage fixture")

    # -- absent -------------------------------------------------------------------

    @pytest.mark.parametrize("directory", ["", "no", "no/such/directory"])
    def test_an_absent_file_is_absent_not_an_error(self, storage: Storage, directory: str) -> None:
        storage.write("elsewhere", "other", b"x", durable=False)
        assert storage.read(directory, "missing") is None
        assert storage.read_versioned(directory, "missing") is None
        assert storage.read_many(directory, ["missing", "gone"]) == [None, None]
        assert storage.read_versions(directory, ["missing"]) == [None]
        assert storage.read_tail(directory, "missing", 10) is None
        assert storage.kind(directory, "missing") is None
        assert storage.kinds(directory, ["missing"]) == [None]
        assert storage.remove(directory, "missing") is False
        assert storage.remove_many(directory, ["missing"], durable=False) == [False]

    def test_an_absent_directory_scans_empty(self, storage: Storage) -> None:
        assert _visible(storage.scan("")) == set()
        assert storage.scan("no/such") == []

    # -- atomic replace -----------------------------------------------------------

    def test_a_write_replaces_the_whole_file(self, storage: Storage) -> None:
        storage.write("d", "f", b"a long first version", durable=False)
        storage.write("d", "f", b"short", durable=False)
        assert storage.read("d", "f") == b"short"
        storage.write("d", "f", b"", durable=False)
        assert storage.read("d", "f") == b""
        assert storage.kind("d", "f") is Kind.FILE

    def test_readers_see_the_old_or_the_new_bytes_never_a_mix(self, storage: Storage) -> None:
        versions = (b"a" * 65_536, b"b" * 100_000)
        storage.write("d", "f", versions[0], durable=False)

        def rewrite(index: int) -> None:
            storage.write("d", "f", versions[index % 2], durable=False)

        def check() -> None:
            assert storage.read("d", "f") in versions

        _check_while_writing(rewrite, check)

    def test_readers_see_whole_appends(self, storage: Storage) -> None:
        record = b"record\n"

        def append(index: int) -> None:
            with storage.lock("d"):
                storage.append("d", "log", record, keep=None, durable=False)

        def check() -> None:
            data = storage.read("d", "log")
            assert data is None or data == record * (len(data) // len(record))

        _check_while_writing(append, check)

    def test_a_refused_write_leaves_the_file_as_it_was(self, storage: Storage) -> None:
        storage.write("", "f", b"file", durable=False)
        # A directory through the file: refused (UnsafeFileError or another OSError, the
        # contract leaves which) where directories are real, kept beside it where they are
        # key prefixes. Either way the file is untouched.
        try:
            storage.write("f", "g", b"x", durable=False)
        except OSError:
            pass
        else:
            assert storage.read("f", "g") == b"x"
        assert storage.read("", "f") == b"file"

    def test_durable_operations_have_the_same_effects(self, storage: Storage) -> None:
        storage.write("d", "a", b"1", durable=True)
        assert storage.write_many("d", [("b", b"2")], durable=True) == [None]
        assert storage.write_if("d", "c", b"3", version=None, durable=True)
        storage.append("d", "a", b"+", keep=None, durable=True)
        assert storage.read_many("d", ["a", "b", "c"]) == [b"1+", b"2", b"3"]
        assert storage.remove_many("d", ["a", "b", "c"], durable=True) == [True, True, True]
        assert storage.read_many("d", ["a", "b", "c"]) == [None, None, None]

    # -- read_versions ------------------------------------------------------------

    def test_read_versions_returns_each_file_in_order(self, storage: Storage) -> None:
        storage.write_many("d", [("a", b"1"), ("b", b"2")], durable=False)
        found = storage.read_versions("d", ["b", "missing", "a", "b"])
        assert [None if item is None else item.data for item in found] == [b"2", None, b"1", b"2"]
        assert storage.read_many("d", ["b", "missing", "a"]) == [b"2", None, b"1"]
        assert storage.read("d", "a") == b"1"
        versioned = storage.read_versioned("d", "a")
        assert versioned is not None
        assert versioned.data == b"1"

    def test_read_versions_is_a_snapshot(self, storage: Storage) -> None:
        # The writer sets a, then b, to each counter value in turn, so at every moment a is
        # b or b + 1; a read of a, then of b a moment later, could see b ahead of a. Each
        # write holds the directory's lock, as every mutation of the store does: a backend
        # may fall back to reading under it (see read_versions), never between the two.
        storage.write_many("d", [("a", b"0"), ("b", b"0")], durable=False)

        def count(index: int) -> None:
            for name in ("a", "b"):
                with storage.lock("d"):
                    storage.write("d", name, str(index + 1).encode(), durable=False)

        def check() -> None:
            versions = storage.read_versions("d", ["a", "b"])
            assert None not in versions
            a, b = (int(item.data) for item in versions if item is not None)
            assert a in (b, b + 1)
            a, b = (int(data) for data in storage.read_many("d", ["a", "b"]) if data is not None)
            assert a in (b, b + 1)

        _check_while_writing(count, check)

    def test_read_versions_is_a_snapshot_of_absent_files_too(self, storage: Storage) -> None:
        # The engine's clearing save in miniature: "a" holds a counter, "b" exists whenever
        # the counter is odd (and sometimes when even). A read that got an odd "a" and then
        # found "b" gone combined two moments: "b" was removed only after "a" turned even.
        storage.write_many("d", [("a", b"1"), ("b", b"s")], durable=False)

        def step(index: int) -> None:
            with storage.lock("d"):
                storage.write("d", "a", str(2 * index + 2).encode(), durable=False)
                storage.remove("d", "b", durable=False)
            with storage.lock("d"):
                storage.write("d", "b", b"s", durable=False)
                storage.write("d", "a", str(2 * index + 3).encode(), durable=False)

        def check() -> None:
            for found in (
                storage.read_many("d", ["a", "b"]),
                [None if v is None else v.data for v in storage.read_versions("d", ["a", "b"])],
            ):
                a, b = found
                assert a is not None
                assert b is not None or int(a) % 2 == 0, f"a={a!r} with b absent: never in place together"

        _check_while_writing(step, check)

    def test_a_rewrite_with_other_bytes_changes_the_version(self, storage: Storage) -> None:
        storage.write("d", "f", b"same", durable=False)
        first = storage.read_versioned("d", "f")
        storage.write("d", "f", b"sane", durable=False)  # same size: where a size or mtime could repeat
        second = storage.read_versioned("d", "f")
        assert first is not None
        assert second is not None
        assert first.version != second.version
        assert not storage.is_current("d", "f", first.version)

    def test_a_rewrite_with_the_same_bytes_keeps_or_changes_the_version_consistently(self, storage: Storage) -> None:
        storage.write("d", "f", b"same", durable=False)
        first = storage.read_versioned("d", "f")
        storage.write("d", "f", b"same", durable=False)
        second = storage.read_versioned("d", "f")
        assert first is not None
        assert second is not None
        if first.version == second.version:  # a content-hash token: the two states are one
            assert storage.write_if("d", "f", b"next", version=first.version, durable=False)
            assert storage.read("d", "f") == b"next"
        else:
            assert not storage.is_current("d", "f", first.version)
            assert not storage.write_if("d", "f", b"late", version=first.version, durable=False)
            assert storage.read("d", "f") == b"same"

    @pytest.mark.parametrize("change", ["rewrite", "append", "remove", "recreate"])
    def test_is_current_is_never_true_for_a_changed_file(self, storage: Storage, change: str) -> None:
        storage.write("d", "f", b"data", durable=False)
        before = storage.read_versioned("d", "f")
        assert before is not None
        assert isinstance(storage.is_current("d", "f", before.version), bool)
        # Other bytes of the same size each time: an identical rewrite may keep the version.
        if change == "rewrite":
            storage.write("d", "f", b"date", durable=False)
        elif change == "append":
            with storage.lock("d"):
                storage.append("d", "f", b"+", keep=None, durable=False)
        else:
            storage.remove("d", "f")
            if change == "recreate":  # same name, same size: where an inode number could be reused
                storage.write("d", "f", b"date", durable=False)
        assert not storage.is_current("d", "f", before.version)
        assert not storage.write_if("d", "f", b"late", version=before.version, durable=False)

    # -- write_if -----------------------------------------------------------------

    def test_write_if_none_creates_only_an_absent_file(self, storage: Storage) -> None:
        assert storage.write_if("new/dir", "f", b"first", version=None, durable=False)
        assert storage.read("new/dir", "f") == b"first"
        assert not storage.write_if("new/dir", "f", b"second", version=None, durable=False)
        assert storage.read("new/dir", "f") == b"first"

    def test_write_if_version_replaces_only_that_state(self, storage: Storage) -> None:
        storage.write("d", "f", b"one", durable=False)
        one = storage.read_versioned("d", "f")
        assert one is not None
        assert storage.write_if("d", "f", b"two", version=one.version, durable=False)
        assert storage.read("d", "f") == b"two"
        assert not storage.write_if("d", "f", b"stale", version=one.version, durable=False)
        assert storage.read("d", "f") == b"two"
        two = storage.read_versioned("d", "f")
        assert two is not None
        storage.remove("d", "f")
        assert not storage.write_if("d", "f", b"gone", version=two.version, durable=False)
        assert storage.read("d", "f") is None

    @pytest.mark.parametrize("existing", [True, False], ids=["replace", "create"])
    def test_racing_write_ifs_on_one_state_have_one_winner(self, storage: Storage, existing: bool) -> None:
        for round_ in range(10):
            name = f"f{round_}"
            if existing:
                storage.write("d", name, b"start", durable=False)
            found = storage.read_versioned("d", name)
            won = _race_write_if(storage, "d", name, None if found is None else found.version, threads=4)
            assert len(won) == 1
            assert storage.read("d", name) == won[0]

    # -- write_many ---------------------------------------------------------------

    def test_write_many_returns_one_outcome_per_item(self, storage: Storage) -> None:
        storage.write("d/taken", "inner", b"x", durable=False)
        storage.write("d", "b", b"old", durable=False)
        # "taken" is a directory: refused where directories are real, kept beside it where not.
        outcomes = storage.write_many("d", [("a", b"1"), ("taken", b"2"), ("b", b"3")], durable=False)
        assert len(outcomes) == 3
        assert outcomes[0] is None
        assert outcomes[1] is None or isinstance(outcomes[1], OSError)
        assert outcomes[2] is None
        assert storage.read_many("d", ["a", "b"]) == [b"1", b"3"]
        if outcomes[1] is None:
            assert storage.read("d", "taken") == b"2"
        assert storage.read("d/taken", "inner") == b"x"
        assert storage.write_many("d", [], durable=False) == []

    def test_write_many_writes_one_name_twice_in_order(self, storage: Storage) -> None:
        assert storage.write_many("d", [("f", b"1"), ("g", b"x"), ("f", b"2")], durable=False) == [None] * 3
        assert storage.read("d", "f") == b"2"

    # -- append -------------------------------------------------------------------

    def test_append_adds_to_an_existing_file(self, storage: Storage) -> None:
        storage.write("d", "log", b"one\n", durable=False)
        with storage.lock("d"):
            storage.append("d", "log", b"two\n", keep=None, durable=False)
        assert storage.read("d", "log") == b"one\ntwo\n"

    def test_append_creates_a_new_file_whole(self, storage: Storage) -> None:
        with storage.lock("new/dir"):
            storage.append("new/dir", "log", b"first\n", keep=None, durable=False)
        assert storage.read("new/dir", "log") == b"first\n"
        assert Listing("log", Kind.FILE) in storage.scan("new/dir")

    @pytest.mark.parametrize(("keep", "expected"), [(4, b"one\ntwo\n"), (0, b"two\n"), (6, b"one\ntotwo\n")])
    def test_append_with_keep_cuts_the_file_first(self, storage: Storage, keep: int, expected: bytes) -> None:
        storage.write("d", "log", b"one\nto", durable=False)
        with storage.lock("d"):
            storage.append("d", "log", b"two\n", keep=keep, durable=False)
        assert storage.read("d", "log") == expected

    # -- remove_many --------------------------------------------------------------

    def test_remove_many_returns_one_outcome_per_name(self, storage: Storage) -> None:
        storage.write_many("d", [("a", b"1"), ("c", b"3")], durable=False)
        storage.write("d/sub", "inner", b"x", durable=False)
        outcomes = storage.remove_many("d", ["a", "missing", "sub", "c"], durable=False)
        assert outcomes[:2] == [True, False]
        # A directory is not a file: refused where directories are real, absent where not.
        assert outcomes[2] is False or isinstance(outcomes[2], OSError)
        assert outcomes[3] is True
        assert storage.read_many("d", ["a", "c"]) == [None, None]
        assert _visible(storage.scan("d")) == {("sub", Kind.DIRECTORY)}
        assert storage.read("d/sub", "inner") == b"x"

    # -- kinds and scan -----------------------------------------------------------

    def test_scan_lists_files_and_directories_in_their_parent(self, storage: Storage) -> None:
        storage.write("", "top", b"t", durable=False)
        storage.write_many("a", [("f", b"1"), ("g", b"2")], durable=False)
        storage.write("a/b/c", "deep", b"3", durable=False)
        assert _visible(storage.scan("")) == {("top", Kind.FILE), ("a", Kind.DIRECTORY)}
        assert _visible(storage.scan("a")) == {("f", Kind.FILE), ("g", Kind.FILE), ("b", Kind.DIRECTORY)}
        assert _visible(storage.scan("a/b")) == {("c", Kind.DIRECTORY)}
        assert storage.kinds("a", ["f", "b", "missing"]) == [Kind.FILE, Kind.DIRECTORY, None]
        assert storage.kind("a/b", "c") is Kind.DIRECTORY

    # -- read_tail ----------------------------------------------------------------

    @pytest.mark.parametrize(("size", "tail"), [(0, b""), (3, b"789"), (10, b"0123456789"), (50, b"0123456789")])
    def test_read_tail_returns_the_last_bytes_and_the_size(self, storage: Storage, size: int, tail: bytes) -> None:
        storage.write("d", "f", b"0123456789", durable=False)
        assert storage.read_tail("d", "f", size) == Tail(tail, 10)
        storage.write("d", "empty", b"", durable=False)
        assert storage.read_tail("d", "empty", size) == Tail(b"", 0)

    # -- locks --------------------------------------------------------------------

    def test_a_lock_excludes_other_threads_until_released(self, storage: Storage) -> None:
        with (
            _held_by_another_thread(storage, "d"),
            pytest.raises(LockTimeoutError),
            storage.lock("d", timeout=_SHORT_TIMEOUT),
        ):
            pass
        with storage.lock("d", timeout=_PATIENCE):
            storage.write("d", "f", b"after", durable=False)

    def test_a_lock_serializes_read_modify_write(self, storage: Storage) -> None:
        storage.write("d", "count", b"0", durable=False)

        def increment() -> None:
            for _ in range(25):
                with storage.lock("d"):
                    found = storage.read("d", "count")
                    assert found is not None
                    # Waits for nothing: gives the GIL away between the read and the write,
                    # where an unlocked increment would lose to another thread's.
                    time.sleep(0)
                    storage.write("d", "count", str(int(found) + 1).encode(), durable=False)

        with _in_threads(*[increment] * 4):
            pass
        assert storage.read("d", "count") == b"100"

    def test_a_lock_is_reentrant_per_thread(self, storage: Storage) -> None:
        entered = threading.Event()
        release = threading.Event()
        held: list[bool] = []

        def hold_twice() -> None:
            try:
                with storage.lock("d"):
                    with storage.lock("d", timeout=_SHORT_TIMEOUT):
                        storage.write("d", "f", b"inner", durable=False)
                    held.append(True)  # the inner exit must not have released the outer hold
                    entered.set()
                    release.wait(_PATIENCE)
            finally:
                entered.set()

        with _in_threads(hold_twice):
            try:
                assert entered.wait(_PATIENCE)
                assert held, "the thread did not take the lock twice"
                with pytest.raises(LockTimeoutError), storage.lock("d", timeout=_SHORT_TIMEOUT):
                    pass
            finally:
                release.set()
        assert storage.read("d", "f") == b"inner"

    def test_a_lock_timeout_raises_lock_timeout_error_naming_its_locator(self, storage: Storage) -> None:
        with (
            _held_by_another_thread(storage, "a/b"),
            pytest.raises(LockTimeoutError) as caught,
            storage.lock("a/b", timeout=_SHORT_TIMEOUT),
        ):
            pass
        error = caught.value
        assert isinstance(error, TimeoutError)
        assert isinstance(error, GroupStoreError)
        directory = storage.locator("a/b")
        assert error.path == directory or (error.path or "").startswith(directory.rstrip("/") + "/")

    @pytest.mark.parametrize("timeout", [0.0, -0.5, -1.0])
    def test_a_timeout_already_past_tries_once(self, storage: Storage, timeout: float) -> None:
        with storage.lock("d", timeout=timeout):  # free: taken at once
            pass
        with (
            _held_by_another_thread(storage, "d"),
            pytest.raises(LockTimeoutError),
            storage.lock("d", timeout=timeout),
        ):
            pass

    def test_locks_of_different_directories_are_independent(self, storage: Storage) -> None:
        with _held_by_another_thread(storage, "a"), storage.lock("b", timeout=_SHORT_TIMEOUT):
            storage.write("b", "f", b"x", durable=False)
        # The one nesting the contract allows: a parent's lock, then a child's.
        with storage.lock(""), storage.lock("a"), storage.lock("a/b"):
            storage.write("a/b", "f", b"y", durable=False)

    # -- naming -------------------------------------------------------------------

    def test_locators_are_distinct_per_file(self, storage: Storage) -> None:
        places = [(directory, name) for directory in ["", "a", "b", "a/c"] for name in ["", "x", "y"]]
        locators = [storage.locator(directory, name) for directory, name in places]
        assert all(isinstance(locator, str) and locator for locator in locators)
        assert len(set(locators)) == len(places)

    def test_local_path_is_none_or_the_file_itself(self, storage: Storage) -> None:
        storage.write("d", "f", b"bytes", durable=False)
        path = storage.local_path("d", "f")
        assert path is None or path.read_bytes() == b"bytes"

    def test_capabilities_are_flags(self, storage: Storage) -> None:
        assert isinstance(storage.blocking_io_is_cheap, bool)
        assert isinstance(storage.shared_between_processes, bool)

    # -- a model ------------------------------------------------------------------

    def test_random_operations_match_a_dict_model(self, storage: Storage) -> None:
        # Hypothesis runs many examples on the one storage the fixture gave: each example
        # works in a directory of its own, so each starts from an empty one.
        examples = itertools.count()

        @settings(max_examples=self.model_examples, deadline=None)
        @given(st.lists(_OPERATIONS, max_size=20))
        def run(operations: list[tuple[str, str, bytes, int | None]]) -> None:
            directory = f"example{next(examples)}/files"
            model: dict[str, bytes] = {}
            for operation, name, data, keep in operations:
                _apply(storage, directory, model, operation, name, data, keep)
                names = sorted(_NAMES)
                assert storage.read_many(directory, names) == [model.get(each) for each in names]
                assert _visible(storage.scan(directory)) == {(each, Kind.FILE) for each in model}
                if name in model:
                    assert storage.read_tail(directory, name, 3) == Tail(model[name][-3:], len(model[name]))

        run()


_NAMES = ("a", "b", "c")
_OPERATIONS = st.tuples(
    st.sampled_from(["write", "write_many", "append", "remove", "create", "replace", "stale", "same"]),
    st.sampled_from(_NAMES),
    st.binary(max_size=12),
    st.none() | st.integers(0, 16),
)


def _apply(
    storage: Storage, directory: str, model: dict[str, bytes], operation: str, name: str, data: bytes, keep: int | None
) -> None:
    """One operation on ``storage`` and the same on ``model``, checking what it returns."""
    found = storage.read_versioned(directory, name)
    assert (found is None) == (name not in model)
    if operation == "write":
        storage.write(directory, name, data, durable=False)
        model[name] = data
    elif operation == "write_many":
        assert storage.write_many(directory, [(name, data), ("c", data + data)], durable=False) == [None, None]
        model[name], model["c"] = data, data + data
    elif operation == "append":
        cut = None if keep is None or name not in model else min(keep, len(model[name]))
        with storage.lock(directory):
            storage.append(directory, name, data or b"\n", keep=cut, durable=False)
        model[name] = model.get(name, b"")[:cut] + (data or b"\n")
    elif operation == "remove":
        # With name "b", the second removal finds the file gone.
        expected = [name in model, "b" in model and name != "b"]
        assert storage.remove_many(directory, [name, "b"], durable=False) == expected
        model.pop(name, None)
        model.pop("b", None)
    elif operation == "create":
        assert storage.write_if(directory, name, data, version=None, durable=False) == (name not in model)
        model.setdefault(name, data)
    elif operation == "replace" and found is not None:
        assert storage.write_if(directory, name, data, version=found.version, durable=False)
        model[name] = data
    elif operation == "stale" and found is not None:
        storage.write(directory, name, found.data + b"!", durable=False)
        model[name] = found.data + b"!"
        assert not storage.write_if(directory, name, data, version=found.version, durable=False)
    elif operation == "same" and found is not None:
        # An identical rewrite may keep the version (content-hash tokens): either outcome holds.
        storage.write(directory, name, found.data, durable=False)
        if storage.write_if(directory, name, data, version=found.version, durable=False):
            model[name] = data


def _race_write_if(storage: Storage, directory: str, name: str, version: Version | None, threads: int) -> list[bytes]:
    """What each of ``threads`` threads wrote with ``write_if(version=version)``, started together."""
    barrier = threading.Barrier(threads)
    won: list[bytes] = []

    def race(data: bytes) -> None:
        barrier.wait(_PATIENCE)
        if storage.write_if(directory, name, data, version=version, durable=False):
            won.append(data)

    with _in_threads(*(functools.partial(race, str(index).encode()) for index in range(threads))):
        pass
    return won


def _visible(listings: list[Listing]) -> set[tuple[str, Kind]]:
    return {(name, kind) for name, kind in listings if name != LOCK_NAME and not is_temp_name(name)}


def _check_while_writing(step: Callable[[int], None], check: Callable[[], None]) -> None:
    """Call ``check()`` over and over while another thread calls ``step(0)``, ``step(1)``, ...

    Until each has run many times while the other was running: a fixed number of steps
    can all finish within one GIL time slice, before the first check has begun.
    """
    steps = [0]
    stop = threading.Event()

    def write() -> None:
        try:
            while not stop.is_set():
                step(steps[0])
                steps[0] += 1
        finally:
            stop.set()

    with _in_threads(write):
        try:
            start, checks = steps[0], 0
            while not stop.is_set() and (checks < 200 or steps[0] - start < 100):
                check()
                checks += 1
        finally:
            stop.set()


@contextmanager
def _in_threads(*targets: Callable[[], None]) -> Iterator[None]:
    """Run each target in a thread of its own during the block; join them and raise what one raised."""
    errors: list[BaseException] = []

    def run(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(target,), daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for thread in threads:
            thread.join(_PATIENCE)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]


@contextmanager
def _held_by_another_thread(storage: Storage, directory: str) -> Iterator[None]:
    """Hold ``lock(directory)`` in another thread during the block."""
    entered = threading.Event()
    release = threading.Event()
    held: list[bool] = []

    def hold() -> None:
        try:
            with storage.lock(directory):
                held.append(True)
                entered.set()
                release.wait(_PATIENCE)
        finally:
            entered.set()

    with _in_threads(hold):
        try:
            assert entered.wait(_PATIENCE)
            assert held, "the other thread did not take the lock"
            yield
        finally:
            release.set()
