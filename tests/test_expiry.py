from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from group_store._format.expiry import (
    UNBOUND,
    SidecarVerdict,
    bound_expiry,
    decode_sidecar,
    digest,
    encode_sidecar,
    is_expired,
    is_own_sidecar,
    judge_sidecar,
    next_bindings,
    own_sidecar_bindings,
    resolve_expiry,
)


def test_resolve_expiry() -> None:
    assert resolve_expiry(100.0, 5, None) == 105.0
    assert resolve_expiry(100.0, timedelta(minutes=1), None) == 160.0
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert resolve_expiry(100.0, None, when) == when.timestamp()
    assert resolve_expiry(100.0, None, None) is None


@pytest.mark.parametrize(
    ("ttl", "expires_at"),
    [(-1, None), (float("nan"), None), (None, datetime(2030, 1, 1)), (1, datetime(2030, 1, 1, tzinfo=UTC))],
)
def test_resolve_expiry_rejects(ttl: float | None, expires_at: datetime | None) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        resolve_expiry(0.0, ttl, expires_at)


def test_is_expired_boundary() -> None:
    assert not is_expired(None, 1e12)
    assert not is_expired(10.0, 9.999)
    assert is_expired(10.0, 10.0)


def test_sidecar_round_trip() -> None:
    bindings = {digest(b"a"): 1_800_000_000.5, digest(b"b"): None}
    assert decode_sidecar(encode_sidecar(bindings)) == bindings


def test_bindings_keep_the_old_bytes_expiry() -> None:
    first = next_bindings(None, None, b"v1", 50.0)
    assert bound_expiry(first, b"v1") == 50.0
    second = next_bindings(first, b"v1", b"v2", 80.0)
    # A crash before the data file is replaced leaves v1 with its own expiry.
    assert bound_expiry(second, b"v1") == 50.0
    assert bound_expiry(second, b"v2") == 80.0
    assert bound_expiry(second, b"v3") is UNBOUND


def test_old_bytes_without_expiry_stay_without() -> None:
    bindings = next_bindings({}, b"old", b"new", 10.0)
    assert bound_expiry(bindings, b"old") is None


def test_a_sidecar_is_the_stores_only_in_the_exact_form_it_writes() -> None:
    raw = encode_sidecar({digest(b"a"): 1_800_000_000.5, digest(b"b"): None})
    assert is_own_sidecar(raw)
    assert own_sidecar_bindings(raw) == {digest(b"a"): 1_800_000_000.5, digest(b"b"): None}
    for foreign in [b'{"author": "me"}\n', raw.replace(b"  ", b" "), raw + b"\n", b"", b"\xff"]:
        assert not is_own_sidecar(foreign)


def test_judge_sidecar() -> None:
    own = encode_sidecar({digest(b"doc"): 100.0})
    assert judge_sidecar(own, b"doc", 99.0) == (SidecarVerdict.LIVE, 100.0)
    assert judge_sidecar(own, b"doc", 100.0) == (SidecarVerdict.EXPIRED, 100.0)
    assert judge_sidecar(own, None, 0.0) == (SidecarVerdict.ORPHAN, None)
    assert judge_sidecar(own, b"other bytes", 0.0) == (SidecarVerdict.STALE, None)
    assert judge_sidecar(encode_sidecar({digest(b"doc"): None}), b"doc", 0.0) == (SidecarVerdict.STALE, None)
    assert judge_sidecar(b'{"expires_at":{}}', None, 0.0) == (SidecarVerdict.FOREIGN, None)


@given(
    st.dictionaries(
        st.text("0123456789abcdef", min_size=32, max_size=32),
        st.none() | st.floats(0, 4_000_000_000, allow_nan=False),
        max_size=3,
    )
)
def test_every_sidecar_the_store_writes_is_recognised_as_its_own(bindings: dict[str, float | None]) -> None:
    # The sweep removes only sidecars in this exact form: one it wrote must never look foreign.
    assert is_own_sidecar(encode_sidecar(bindings))
    assert is_own_sidecar(encode_sidecar(next_bindings(bindings, b"old", b"new", 1_800_000_000.123456)))
