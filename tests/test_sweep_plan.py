"""The sweep planner: what a sweep removes in one directory, decided without a disk."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from group_store._format.expiry import digest, encode_sidecar, index_line, parse_index
from group_store._format.keys import encode_segment
from group_store._format.layout import DirectoryContents, classify, temp_name
from group_store._format.sweep_plan import SidecarRead, plan_directory, to_read
from group_store.storage import Kind, Listing

NOW = 1_000.0


def _contents(*names: str) -> DirectoryContents:
    return classify(Listing(name, Kind.FILE) for name in names)


def _entry(data: bytes, expiry: float) -> SidecarRead:
    return SidecarRead(encode_sidecar({digest(data): expiry}), data)


def test_an_expired_document_goes_and_a_live_one_stays() -> None:
    contents = _contents("old.json", "old.meta.json", "new.json", "new.meta.json")
    reads = {"old": _entry(b"1\n", NOW - 1), "new": _entry(b"2\n", NOW + 1)}
    plan = plan_directory(contents, None, True, NOW, reads, {})
    assert [(item.name, item.key) for item in plan.expired] == [("old", "old")]
    assert plan.dropped_sidecars == ()
    assert plan.index is not None
    assert parse_index(plan.index)[0] == {"new": NOW + 1}


def test_expiry_is_inclusive_at_now() -> None:
    plan = plan_directory(_contents("k.json", "k.meta.json"), None, True, NOW, {"k": _entry(b"1\n", NOW)}, {})
    assert [item.key for item in plan.expired] == ["k"]


def test_a_trusted_index_record_spares_reading_the_sidecar() -> None:
    contents = _contents("k.json", "k.meta.json", ".expiry.jsonl")
    index = index_line("k", NOW + 50)
    assert to_read(contents, index, NOW).sidecars == ()
    plan = plan_directory(contents, index, True, NOW, {}, {})
    assert plan.expired == ()
    assert plan.index is None


def test_a_torn_index_proves_nothing_and_is_rewritten_whole() -> None:
    # A cut last record is damage (the store's appends are whole or undone): the rest may be
    # late too, so every sidecar is judged, and the sweep writes the index whole again.
    contents = _contents("k.json", "k.meta.json", "j.json", "j.meta.json", ".expiry.jsonl")
    index = index_line("k", NOW + 50) + index_line("j", NOW + 50)[:-3]
    assert to_read(contents, index, NOW).sidecars == ("j", "k")
    plan = plan_directory(contents, index, True, NOW, {"k": _entry(b"1\n", NOW + 50), "j": _entry(b"2\n", NOW - 1)}, {})
    assert [item.key for item in plan.expired] == ["j"]
    assert plan.index == index_line("k", NOW + 50)


def test_an_orphan_sidecar_is_judged_whatever_the_index_says() -> None:
    contents = _contents("k.meta.json", ".expiry.jsonl")
    index = index_line("k", NOW + 50)
    assert to_read(contents, index, NOW).sidecars == ("k",)
    plan = plan_directory(contents, index, True, NOW, {"k": SidecarRead(encode_sidecar({"x": 1.0}), None)}, {})
    assert plan.dropped_sidecars == ("k",)
    assert plan.index == b""  # it lists nothing left: removed


def test_a_foreign_sidecar_is_reported_and_kept_with_its_record() -> None:
    contents = _contents("k.json", "k.meta.json", ".expiry.jsonl")
    index = index_line("k", NOW - 5)
    plan = plan_directory(contents, index, True, NOW, {"k": SidecarRead(b"not ours", b"1\n")}, {})
    assert plan.foreign_sidecars == (("k", "k"),)
    assert plan.expired == ()
    assert plan.dropped_sidecars == ()
    assert plan.index is None  # its record stays, so the next sweep looks again


def test_an_unreadable_sidecar_is_left_alone() -> None:
    contents = _contents("k.json", "k.meta.json")
    plan = plan_directory(contents, None, True, NOW, {"k": None}, {})
    assert plan == plan_directory(contents, None, True, NOW, {}, {})
    assert plan.expired == ()
    assert plan.dropped_sidecars == ()
    assert plan.foreign_sidecars == ()


def test_a_live_sidecar_binding_old_bytes_is_compacted() -> None:
    sidecar = encode_sidecar({digest(b"old\n"): NOW + 9, digest(b"new\n"): NOW + 9})
    plan = plan_directory(
        _contents("k.json", "k.meta.json"), None, True, NOW, {"k": SidecarRead(sidecar, b"new\n")}, {}
    )
    assert plan.rewritten_sidecars == (("k", encode_sidecar({digest(b"new\n"): NOW + 9})),)


def test_only_exact_temp_names_and_own_key_files_go() -> None:
    hashed = encode_segment("k" * 300)
    other = encode_segment("j" * 300)
    contents = _contents(temp_name("a.json"), ".a.json.tmp", f"{hashed}.key", f"{other}.key", "server.key")
    wanted = to_read(contents, None, NOW)
    assert wanted.key_files == tuple(sorted((hashed, other)))  # never server.key: a short name
    plan = plan_directory(contents, None, True, NOW, {}, {hashed: ("k" * 300).encode(), other: b"someone else's"})
    assert plan.temps == tuple(name for name in sorted(contents.hidden) if name != ".a.json.tmp")
    assert plan.key_files == (hashed,)


def test_an_unusable_index_is_neither_rewritten_nor_removed() -> None:
    contents = _contents("k.json", "k.meta.json")
    plan = plan_directory(contents, None, False, NOW, {"k": _entry(b"1\n", NOW + 1)}, {})
    assert plan.index is None


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.floats(NOW - 100, NOW + 100), max_size=8))
def test_exactly_the_entries_due_by_now_expire(expiries: dict[str, float]) -> None:
    names = [f"{name}{suffix}" for name in expiries for suffix in (".json", ".meta.json")]
    reads = {name: _entry(name.encode(), when) for name, when in expiries.items()}
    plan = plan_directory(_contents(*names), None, True, NOW, reads, {})
    assert {item.key for item in plan.expired} == {name for name, when in expiries.items() if when <= NOW}
    kept = parse_index(plan.index)[0] if plan.index else {}
    assert kept.keys() == {name for name, when in expiries.items() if when > NOW}  # times kept to the microsecond
