"""Snapshot masks and golden-directory bookkeeping (group_store/_snapshot.py), without pytest runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from group_store import InvalidArgumentError, Store
from group_store.testing import FakeClock, UnmatchedMaskWarning
from group_store.tools._snapshot import (
    MASKED,
    Masks,
    StoreSnapshot,
    render,
    unused_snapshots,
    write_golden,
)

from .local_paths import root_of


def masked(value: Any, *masks: str) -> Any:
    return Masks(list(masks)).value(value)


def test_dot_star_masks_every_member_and_element() -> None:
    assert masked({"a": {"x": 1, "y": [2]}, "b": 3}, "$.a.*") == {"a": {"x": MASKED, "y": MASKED}, "b": 3}
    assert masked({"a": [1, {"z": 2}]}, "$.a.*") == {"a": [MASKED, MASKED]}
    assert masked({"a": [{"id": 1}, {"id": 2}]}, "$.a.*.id") == {"a": [{"id": MASKED}, {"id": MASKED}]}
    # A member literally named "*" (or holding "." or "[") is named in brackets.
    assert masked({"a": {"*": 1, "x": 2}}, "$.a['*']") == {"a": {"*": MASKED, "x": 2}}
    assert masked({"a.b": 1, "a": {"b": 2}}, '$["a.b"]') == {"a.b": MASKED, "a": {"b": 2}}


def test_recursive_descent_masks_at_every_depth() -> None:
    document = {"id": 1, "messages": [{"id": 2, "parts": [{"id": 3, "text": "hi"}]}], "meta": {"ids": [4]}}
    assert masked(document, "$..id") == {
        "id": MASKED,
        "messages": [{"id": MASKED, "parts": [{"id": MASKED, "text": "hi"}]}],
        "meta": {"ids": [4]},
    }
    assert masked({"a": [[1, 2], [3]]}, "$..[0]") == {"a": [MASKED, [MASKED]]}
    assert masked({"a": {"b": {"c": 1}}, "c": 2}, "$.a..c") == {"a": {"b": {"c": MASKED}}, "c": 2}
    assert masked({"a": {"b": 1}, "c": [2]}, "$..*") == {"a": MASKED, "c": MASKED}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from("abk"), children, max_size=3),
    max_leaves=20,
)


def _reference_descent(value: Any, name: str) -> Any:
    # The obvious recursive definition of $..name, to check the step machine against.
    if isinstance(value, dict):
        return {k: MASKED if k == name else _reference_descent(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_reference_descent(v, name) for v in value]
    return value


@given(json_values)
def test_recursive_descent_masks_every_member_of_that_name(value: Any) -> None:
    assert masked(value, "$..k") == _reference_descent(value, "k")


@pytest.mark.parametrize(
    "path",
    ["a.b", "$.", "$..", "$.a[?(@.x)]", "$.a[1:2]", "$.a[0,1]", "$.a.[0]", "$['a'", "$a"],
)
def test_unsupported_json_paths_are_rejected_with_the_grammar(path: str) -> None:
    with pytest.raises(InvalidArgumentError, match="JSON path") as raised:
        Masks([path])
    assert isinstance(raised.value, ValueError)


def test_a_mask_that_is_not_a_path_pattern_or_callable_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="a mask is"):
        Masks([42])  # type: ignore[list-item]


def test_a_mask_that_matched_nothing_in_the_whole_snapshot_warns(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.save("a", {"id": 1})
    store.save("b", {"name": "x"})
    snapshot = StoreSnapshot(tmp_path / "golden", update=True)
    with pytest.warns(UnmatchedMaskWarning) as caught:
        snapshot.assert_match(store, mask=["$.id", "$.ids", re.compile("nowhere"), re.compile("x")])
    assert sorted(str(w.message).split(" matched")[0] for w in caught) == [
        "mask $.ids",
        "mask re.compile('nowhere')",
    ]


def test_metadata_snapshots_bind_the_masked_bytes_and_mask_sidecars(tmp_path: Path) -> None:
    renders = []
    for run, request_id in enumerate(["r-1", "r-2"]):
        store = Store(tmp_path / f"store{run}", clock=FakeClock(1_800_000_000 + run))
        store.save("cache", {"id": request_id, "v": 1}, ttl=60)
        store.save("cache", {"id": request_id, "v": 2}, ttl=60)  # the sidecar binds both, on disk
        renders.append(render(root_of(store), Masks(["$.id", "$.expires_at.*"]), include_metadata=True))
    # A masked id and a masked expiry: two runs, one snapshot; the earlier bytes' binding is gone.
    assert renders[0] == renders[1]
    assert renders[0]["cache.meta.json"].count(MASKED) == 1
    assert sorted(renders[0]) == ["cache.json", "cache.meta.json"]


def test_a_golden_directory_with_metadata_is_a_store_with_the_same_expiry(tmp_path: Path) -> None:
    clock = FakeClock()
    store = Store(tmp_path / "store", clock=clock)
    store.save("cache", {"id": "volatile", "v": 1}, ttl=60)
    store.save("plain", 1)
    write_golden(tmp_path / "golden", render(root_of(store), Masks(["$.id"]), include_metadata=True))
    golden = Store(tmp_path / "golden", clock=clock)
    assert golden.load("cache") == {"id": MASKED, "v": 1}
    assert golden.expires_at("cache") == store.expires_at("cache")
    assert golden.expires_at("plain") is None


def _tree(root: Path, *files: str) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}\n")
    return root


def test_unused_snapshots_are_the_directories_no_collected_test_names(tmp_path: Path) -> None:
    module = _tree(tmp_path, "test_kept/a.json", "test_gone/a.json", "test_unknown/a.json", "stray.json")
    found = unused_snapshots(module, {"test_kept": {""}, "test_unknown": None, "test_new": {""}})
    assert found == [module / "stray.json", module / "test_gone"]


def test_unused_snapshots_inside_a_passed_test_are_the_names_it_no_longer_asserts(tmp_path: Path) -> None:
    module = _tree(
        tmp_path,
        "test_named/plain/a.json",
        "test_named/old/a.json",
        "test_named/top.json",
        "test_named/deep/x/a.json",
        "test_named/deep/y/a.json",
        "test_dropped/a.json",
    )
    found = unused_snapshots(module, {"test_named": {"plain", "deep/x"}, "test_dropped": set()})
    assert found == [
        module / "test_dropped",
        module / "test_named" / "deep" / "y",
        module / "test_named" / "old",
        module / "test_named" / "top.json",
    ]
