from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from group_store import InvalidKeyError
from group_store._keys import MAX_NAME_BYTES, decode_segment, encode_segment, is_hashed_name

keys = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=300) | st.text(
    "ab_-", min_size=190, max_size=260
)
SAFE_NAME = re.compile(r"[a-z0-9_~-]+")


@given(keys)
def test_encoded_names_are_safe_and_bounded(key: str) -> None:
    name = encode_segment(key)
    assert SAFE_NAME.fullmatch(name)
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name not in {".", ".."}


@given(keys)
def test_short_names_decode_back(key: str) -> None:
    name = encode_segment(key)
    if not is_hashed_name(name):
        assert decode_segment(name) == key


@given(keys, keys)
def test_mapping_is_injective_even_ignoring_case(a: str, b: str) -> None:
    if a != b:
        assert encode_segment(a).lower() != encode_segment(b).lower()


@given(st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=50))
def test_plain_keys_map_to_themselves(key: str) -> None:
    if key not in {"con", "prn", "aux", "nul"} and not re.fullmatch(r"(com|lpt)[0-9]", key):
        assert encode_segment(key) == key


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("a/b", "a~2fb"),
        ("a_b", "a_b"),
        ("A", "~41"),
        ("..", "~2e~2e"),
        ("/etc/passwd", "~2fetc~2fpasswd"),
        ("nul\x00x", "nul~00x"),
        ("con", "~63on"),
        ("COM1", "~43~4f~4d1"),
        ("lpt9", "~6cpt9"),
        ("trailing. ", "trailing~2e~20"),
        ("~", "~7e"),
        ("é", "~c3~a9"),
    ],
)
def test_examples(key: str, name: str) -> None:
    assert encode_segment(key) == name
    assert decode_segment(name) == key


def test_long_keys_are_hashed_within_the_limit_and_distinct() -> None:
    a, b = "x" * 1000 + "a", "x" * 1000 + "b"
    assert is_hashed_name(encode_segment(a))
    assert len(encode_segment(a)) <= MAX_NAME_BYTES
    assert encode_segment(a) != encode_segment(b)
    assert decode_segment(encode_segment(a)) is None  # the store keeps the text in a key file


@pytest.mark.parametrize("bad", ["", None, 3, b"bytes", "\ud800"])
def test_invalid_keys_raise(bad: object) -> None:
    with pytest.raises(InvalidKeyError):
        encode_segment(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["~4", "~41x~", "A", "~2", "con", "a.b", "~~", "~ff", "~61"])
def test_foreign_names_do_not_decode(name: str) -> None:
    # "~61" would decode to "a", which encodes to "a": not canonical, so not ours.
    assert decode_segment(name) is None
