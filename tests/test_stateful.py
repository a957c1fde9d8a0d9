"""A stateful property test: the Store against a dict model, TTL and logs included."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from group_store import EntryKindError, KeyNotFoundError, Store
from group_store.testing import FakeClock

key_names = st.sampled_from(["a", "B", "a/b", "..", "con", "é", "x" * 300, "a_b"])
views = st.sampled_from([(), ("alice",), ("alice", "agent"), ("A/../b",)])
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
ttls = st.none() | st.integers(0, 20)
# Files the store did not write, in the root and in a directory that is not a sub-store: every
# sweep and write must leave them exactly as they are (issue 9 item 6).
FOREIGN_FILES = {
    "server.key": b"-----BEGIN PRIVATE KEY-----\n",
    "a.key": b"a",  # beside an entry the model may create, but a short name has no key file
    "notes.meta.json": b'{"author": "me"}\n',
    ".important.tmp": b"draft",
    "Node_Modules/tls.key": b"secret",
    "Node_Modules/gone.meta.json": b'{\n  "expires_at": {}\n}\n',
}


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        self.clock = FakeClock()
        self.store = Store(self.root, clock=self.clock)
        # (view, key) -> ("doc", value, expiry | None) or ("log", items, None)
        self.model: dict[tuple[tuple[str, ...], str], tuple[str, Any, float | None]] = {}
        for name, data in FOREIGN_FILES.items():
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            (self.root / name).write_bytes(data)

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _view(self, view: tuple[str, ...]) -> Store:
        return self.store.narrow(*view) if view else self.store

    def _live(self, view: tuple[str, ...], key: str) -> tuple[str, Any, float | None] | None:
        entry = self.model.get((view, key))
        if entry is None:
            return None
        if entry[2] is not None and self.clock.now >= entry[2]:
            return None
        return entry

    @rule(view=views, key=key_names, value=values, ttl=ttls)
    def save(self, view: tuple[str, ...], key: str, value: Any, ttl: int | None) -> None:
        entry = self.model.get((view, key))
        if entry is not None and entry[0] == "log":
            try:
                self._view(view).save(key, value, ttl=ttl)
            except EntryKindError:
                return
            raise AssertionError("saving over a log must fail")
        self._view(view).save(key, value, ttl=ttl)
        self.model[(view, key)] = ("doc", value, None if ttl is None else self.clock.now + ttl)

    @rule(view=views, key=key_names, items=st.lists(values, max_size=3), max_items=st.none() | st.integers(1, 4))
    def append(self, view: tuple[str, ...], key: str, items: list[Any], max_items: int | None) -> None:
        entry = self.model.get((view, key))
        if entry is not None and entry[0] == "doc":
            try:
                self._view(view).append(key, items, max_items=max_items)
            except EntryKindError:
                return
            if items:
                raise AssertionError("appending to a document must fail")
            return
        self._view(view).append(key, items, max_items=max_items)
        if not items:
            return  # an empty append writes nothing, so it prunes nothing either
        merged = (entry[1] if entry else []) + items
        if max_items is not None:
            merged = merged[-max_items:]
        self.model[(view, key)] = ("log", merged, None)

    @rule(view=views, key=key_names)
    def delete(self, view: tuple[str, ...], key: str) -> None:
        was_live = self._live(view, key) is not None
        assert self._view(view).delete(key) == was_live
        self.model.pop((view, key), None)

    @rule(view=views, key=key_names)
    def increment(self, view: tuple[str, ...], key: str) -> None:
        entry = self._live(view, key)
        if entry is not None and (entry[0] == "log" or not isinstance(entry[1], int) or isinstance(entry[1], bool)):
            return
        if entry is None and (view, key) in self.model and self.model[(view, key)][0] == "log":
            return
        result = self._view(view).update(key, lambda n: n + 1, default=0)
        expected = (entry[1] if entry else 0) + 1
        assert result == expected
        self.model[(view, key)] = ("doc", expected, entry[2] if entry else None)

    @rule(seconds=st.integers(0, 15))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def sweep(self) -> None:
        expired = [k for k, entry in self.model.items() if entry[0] == "doc" and self._live(*k) is None]
        assert self.store.sweep() == len(expired)
        for k in expired:
            del self.model[k]

    @invariant()
    def foreign_files_are_untouched(self) -> None:
        for name, data in FOREIGN_FILES.items():
            assert (self.root / name).read_bytes() == data, f"{name} was changed or removed"

    @invariant()
    def matches_model(self) -> None:
        for view in {(), ("alice",), ("alice", "agent"), ("A/../b",)}:
            store = self._view(view)
            live = sorted(key for (v, key) in self.model if v == view and self._live(v, key) is not None)
            assert store.keys() == live
            for key in live:
                entry = self._live(view, key)
                assert entry is not None
                assert store.load(key) == entry[1]
                expires = store.expires_at(key)
                assert (expires.timestamp() if expires else None) == entry[2]
        for (view, key), entry in self.model.items():
            if self._live(view, key) is None:
                try:
                    self._view(view).load(key)
                except KeyNotFoundError:
                    continue
                raise AssertionError(f"expired {key!r} still loads ({entry})")


TestStoreModel = StoreModel.TestCase
TestStoreModel.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
