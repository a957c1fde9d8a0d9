from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from group_store import CorruptEntryError, SerializationError
from group_store._format.codec import decode_document, decode_log, encode_document, encode_lines, split_log

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
    assert decode_document("k", "f", raw) == value
    assert encode_document("k", decode_document("k", "f", raw)) == raw


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
    assert decode_log("k", "f", raw) == [{"a": 1}, {"b": 2}]
    assert decode_log("k", "f", raw, last=1) == [{"b": 2}]


def test_corrupt_middle_line_names_line_and_file() -> None:
    with pytest.raises(CorruptEntryError, match="line 2") as info:
        decode_log("k", "/x/k.jsonl", b"1\n{oops\n3\n")
    assert info.value.path == "/x/k.jsonl"


def test_invalid_document_is_a_typed_error() -> None:
    with pytest.raises(CorruptEntryError) as info:
        decode_document("k", "/x/k.json", b"{")
    assert isinstance(info.value, ValueError)
    assert info.value.key == "k"


def test_orjson_loads_what_we_write() -> None:
    assert orjson.loads(encode_lines("k", [[1, 2]])) == [1, 2]


# -- exact decoding: a file loads to exactly the value its text spells, or raises -----------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": 123456789012345678901234567890}', "beyond 64 bits"),
        (b'{"a": 18446744073709551616}\n', "beyond 64 bits"),
        (b"[-9223372036854775809]", "beyond 64 bits"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"x": [{"b": 1, "c": 2, "b": 3}]}', "duplicate key 'b'"),
        (b'{"a":1,"a":1}', "duplicate key 'a'"),
    ],
)
def test_documents_orjson_cannot_read_exactly_raise_naming_file_and_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(CorruptEntryError, match=reason) as info:
        decode_document("k", "/x/k.json", raw)
    assert info.value.path == "/x/k.json"
    assert info.value.key == "k"


def test_log_lines_orjson_cannot_read_exactly_raise_naming_the_line() -> None:
    raw = b'{"n":1}\n{"n": 2, "n": 3}\n'
    with pytest.raises(CorruptEntryError, match=r"line 2 .*duplicate key 'n'") as info:
        decode_log("k", "/x/k.jsonl", raw)
    assert info.value.path == "/x/k.jsonl"
    with pytest.raises(CorruptEntryError, match=r"line 1 .*beyond 64 bits"):
        decode_log("k", "/x/k.jsonl", b"[123456789012345678901234567890]\n")


def test_non_canonical_but_exact_documents_load_unchanged() -> None:
    assert decode_document("k", "f", b'{ "b" : 1 ,"a":[ -0, 1E2, 2.50]}') == {"b": 1, "a": [0, 100.0, 2.5]}
    assert decode_log("k", "f", b'{ "n" : 18446744073709551615 }\r\n') == [{"n": 2**64 - 1}]


def _reference_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate")
    return dict(pairs)


def _reference_int(text: str) -> int:
    value = int(text)
    if not -(2**63) <= value < 2**64:
        raise ValueError("big")
    return value


def _reference_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("overflow")
    return value


def _reference(text: str) -> Any:
    """What the JSON text spells, by the standard library with strict hooks (independent of _codec)."""
    return json.loads(text, object_pairs_hook=_reference_pairs, parse_int=_reference_int, parse_float=_reference_float)


def _same(a: Any, b: Any) -> bool:
    """Equal, with equal types all the way down (1 is not 1.0, -0.0 is not 0.0) and equal key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


_spaces = st.sampled_from(["", " ", "  ", "\t", "\r\n", "\n  "])
_numbers = (
    st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.sampled_from([str(2**63 - 1), str(-(2**63)), str(2**64 - 1), str(2**64), str(-(2**63) - 1), "-0"])
    | st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.sampled_from(["1e5", "1E+2", "-0.0", "2.50", "1e400", "0.1e-400", "123456789012345678901234567890"])
)
_leaves = (
    _numbers
    | st.sampled_from(["true", "false", "null"])
    | st.text(max_size=4).flatmap(lambda s: st.sampled_from([json.dumps(s), json.dumps(s, ensure_ascii=False)]))
)


def _object(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    member = st.tuples(st.sampled_from(["a", "b", "é", ""]), _spaces, _spaces, children)
    return st.lists(member, max_size=4).map(
        lambda members: "{" + ",".join(f"{json.dumps(k)}{s1}:{s2}{v}" for k, s1, s2, v in members) + "}"
    )


def _array(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(st.tuples(_spaces, children), max_size=4).map(
        lambda items: "[" + ",".join(f"{s}{v}" for s, v in items) + "]"
    )


json_texts = st.tuples(_spaces, st.recursive(_leaves, lambda c: _object(c) | _array(c), max_leaves=12), _spaces).map(
    "".join
)


@given(json_texts)
def test_documents_load_exactly_what_their_text_spells_or_raise(text: str) -> None:
    try:
        expected = _reference(text)
    except ValueError:
        with pytest.raises(CorruptEntryError):
            decode_document("k", "f", text.encode())
        return
    assert _same(decode_document("k", "f", text.encode()), expected)
    canonical = encode_document("k", expected)
    assert _same(decode_document("k", "f", canonical), expected)


@given(st.lists(json_texts.map(lambda text: text.replace("\n", " ").replace("\r", " ")), min_size=1, max_size=4))
def test_log_lines_load_exactly_what_their_text_spells_or_raise(lines: list[str]) -> None:
    raw = "".join(line + "\n" for line in lines).encode()
    try:
        expected = [_reference(line) for line in lines if line.strip()]
    except ValueError:
        with pytest.raises(CorruptEntryError):
            decode_log("k", "f", raw)
        return
    assert _same(decode_log("k", "f", raw), expected)
