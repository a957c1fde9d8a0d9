from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from group_store import InvalidKeyError
from group_store._format.keys import MAX_NAME_BYTES, decode_segment, encode_segment, is_hashed_name

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


def _hostile_keys(count: int) -> list[str]:
    """Keys an attacker or an unlucky user would try: path syntax, case twins, device
    names, control and non-ASCII characters, escape look-alikes, very long keys."""
    rng = random.Random(20261201)
    pieces = "/ \\ .. . ~ ~2f ~~ %2f \x00 \n CON nul com1 aux.txt A a é e\u0301 İ ß SS ﬁ \u200b"
    pieces_list = [*pieces.split(" "), "\U0001f600", "..\\..", "~41", ":", "*", " "]
    keys = set(pieces_list)
    while len(keys) < count:
        length = rng.choice([1, 2, 3, 8, 40, 199, 200, 201, 400])
        key = "".join(
            rng.choice(pieces_list) if rng.random() < 0.5 else chr(rng.randint(1, 0x2FFF)) for _ in range(length)
        )
        if not any(0xD800 <= ord(char) <= 0xDFFF for char in key):
            keys.add(key)
            keys.add(key.upper())
            keys.add(key.lower())
    return sorted(keys)


def test_hostile_keys_never_collide_nor_escape() -> None:
    tried = _hostile_keys(12_000)
    names: dict[str, str] = {}
    collisions = escapes = undecoded = 0
    for key in tried:
        name = encode_segment(key)
        folded = name.lower()
        if folded in names and names[folded] != key:
            collisions += 1
        names[folded] = key
        if not SAFE_NAME.fullmatch(name) or name in {".", ".."} or len(name.encode()) > MAX_NAME_BYTES:
            escapes += 1
        if not is_hashed_name(name) and decode_segment(name) != key:
            undecoded += 1
    print(f"keys-stats: tried={len(tried)} collisions={collisions} escapes={escapes} undecoded={undecoded}")
    assert (collisions, escapes, undecoded) == (0, 0, 0)
