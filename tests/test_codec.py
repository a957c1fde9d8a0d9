from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from group_store import CorruptEntryError, SerializationError
from group_store._codec import decode_document, decode_log, encode_document, encode_lines, split_log

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"])),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_documents_round_trip_and_are_canonical(value: Any) -> None:
    raw = encode_document("k", value)
    assert raw.endswith(b"\n")
    assert decode_document("k", Path("f"), raw) == value
    assert encode_document("k", decode_document("k", Path("f"), raw)) == raw


def test_layout_is_two_space_indent_in_insertion_order() -> None:
    assert encode_document("k", {"b": 1, "a": [1, "é"]}) == '{\n  "b": 1,\n  "a": [\n    1,\n    "é"\n  ]\n}\n'.encode()


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        float("nan"),
        {"x": [1.0, math.inf]},
        -math.inf,
        2**64,
        -(2**63) - 1,
        {1: "a"},
        datetime.now(UTC),
        Point(1),
        object(),
        "\ud800",
    ],
)
def test_values_json_cannot_hold_raise_naming_the_key(value: Any) -> None:
    with pytest.raises(SerializationError) as info:
        encode_document("my-key", value)
    assert info.value.key == "my-key"
    assert "my-key" in str(info.value)


def test_lines_are_all_or_nothing() -> None:
    with pytest.raises(SerializationError, match="item 1"):
        encode_lines("log", [{"ok": 1}, {"bad": {1}}])
    assert encode_lines("log", [{"a": 1}, 2]) == b'{"a":1}\n2\n'


def test_torn_last_line_is_skipped() -> None:
    raw = b'{"a":1}\n{"b":2}\n{"c":'
    lines, covered = split_log(raw)
    assert lines == [b'{"a":1}', b'{"b":2}']
    assert covered == len(b'{"a":1}\n{"b":2}\n')
    assert decode_log("k", Path("f"), raw) == [{"a": 1}, {"b": 2}]
    assert decode_log("k", Path("f"), raw, last=1) == [{"b": 2}]


def test_corrupt_middle_line_names_line_and_file() -> None:
    with pytest.raises(CorruptEntryError, match="line 2") as info:
        decode_log("k", Path("/x/k.jsonl"), b"1\n{oops\n3\n")
    assert info.value.path == Path("/x/k.jsonl")


def test_invalid_document_is_a_typed_error() -> None:
    with pytest.raises(CorruptEntryError) as info:
        decode_document("k", Path("/x/k.json"), b"{")
    assert isinstance(info.value, ValueError)
    assert info.value.key == "k"


def test_orjson_loads_what_we_write() -> None:
    assert orjson.loads(encode_lines("k", [[1, 2]])) == [1, 2]
