"""On-disk names and what the store owns (pure)."""

from __future__ import annotations

import pytest

from group_store._format.keys import encode_segment
from group_store._format.layout import classify, is_own_key_file, is_temp_name, key_for_name, temp_name
from group_store.storage._base import Kind, Listing

LONG = "y" * 300


def test_key_files_are_the_stores_only_for_hashed_names_holding_their_key() -> None:
    hashed = encode_segment(LONG)
    assert key_for_name(hashed, LONG.encode()) == LONG
    assert is_own_key_file(hashed, LONG.encode())
    assert not is_own_key_file(hashed, b"someone else's key")
    assert not is_own_key_file(hashed, b"\xff")
    assert not is_own_key_file("server", b"server")  # short names never have key files
    assert key_for_name("server", None) == "server"
    assert key_for_name(hashed, None) is None
    assert key_for_name("Server", None) is None


@pytest.mark.parametrize(
    "name", ["k.json", "k.jsonl", "k.meta.json", "k~~" + "0" * 32 + ".key", ".key", ".expiry.jsonl"]
)
def test_temp_names_are_recognised_exactly(name: str) -> None:
    assert is_temp_name(temp_name(name))
    assert not is_temp_name(temp_name(name) + ".tmp")
    assert not is_temp_name(temp_name(name).replace(".tmp", ".TMP"))


def test_classify_keeps_non_regular_names_apart() -> None:
    listing = [
        Listing("a.json", Kind.FILE),
        Listing("b.meta.json", Kind.OTHER),
        Listing("sub", Kind.DIRECTORY),
        Listing(".git", Kind.DIRECTORY),
        Listing(".expiry.jsonl", Kind.OTHER),
        Listing("notes.txt", Kind.FILE),
    ]
    contents = classify(listing)
    assert contents.documents == {"a"}
    assert contents.sidecars == set()
    assert contents.unsafe == {"b.meta.json", ".expiry.jsonl"}
    assert contents.directories == {"sub"}
    assert contents.hidden == set()
