"""The saver's value codec: every type LangGraph's default serializer supports comes back as the
serializer itself would give it back, through a real save and load; and the files are readable JSON."""

from __future__ import annotations

import dataclasses
import decimal
import enum
import ipaddress
import math
import pathlib
import re
import uuid
from collections import deque
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

# The langgraph extra and test peers are part of what CI installs: a missing one fails loudly, never skips.
import pydantic
import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, RemoveMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.store.base import Item
from langgraph.types import Command, Interrupt, Send

from group_store import Store
from group_store.integrations.langgraph import GroupStoreSaver
from group_store.integrations.langgraph._codec import TAG, ValueCodec

from .langgraph_helpers import Chain, config


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Mode(enum.StrEnum):
    FAST = "fast"


class Point(NamedTuple):
    x: int
    y: int


@dataclasses.dataclass
class Task:
    name: str
    due: datetime
    tags: set[str]


class Profile(pydantic.BaseModel):
    name: str
    joined: datetime
    scores: list[float]


class LegacyProfile(pydantic.v1.BaseModel):
    name: str


class Pickled:
    """Neither msgpack nor JSON can hold it; the serializer's pickle fallback can."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pickled) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


WHEN = datetime(2026, 11, 22, 10, 30, 5, 123456, tzinfo=UTC)
VALUES: dict[str, Any] = {
    "none": None,
    "bool": True,
    "int": -42,
    "int64 max": 2**63 - 1,
    "uint64": 2**63 + 5,
    "float": 1.5,
    "negative zero": -0.0,
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "str": "héllo ✓",
    "lone surrogate": "bad \ud800 text",
    "bytes": b"\x00\xffraw",
    "bytearray": bytearray(b"mutable"),
    "list": [1, "two", [3.0], {"four": None}],
    "tuple": (1, (2, 3)),
    "dict": {"a": {"b": [1, 2]}},
    "int keys": {1: "one", 2: [True]},
    "tag-like user dict": {TAG: "not a tag", "other": 1},
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "deque": deque([1, 2]),
    "datetime aware": WHEN,
    "datetime naive": datetime(2026, 1, 2, 3, 4, 5),
    "datetime zoneinfo": datetime(2026, 6, 1, 12, tzinfo=ZoneInfo("Europe/Paris")),
    "date": date(2026, 2, 28),
    "time": time(23, 59, 1, 500, tzinfo=timezone(timedelta(hours=2))),
    "timedelta": timedelta(days=2, seconds=5, microseconds=7),
    "timezone": timezone(timedelta(hours=-5), "EST"),
    "zoneinfo": ZoneInfo("America/New_York"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": decimal.Decimal("3.14159265358979323846"),
    "path": pathlib.Path("/tmp/some/file.txt"),
    "pattern": re.compile(r"a+b", re.IGNORECASE),
    "ipv4": ipaddress.IPv4Address("10.1.2.3"),
    "ipv4 network": ipaddress.IPv4Network("10.0.0.0/8"),
    "ipv4 interface": ipaddress.IPv4Interface("10.1.2.3/24"),
    "ipv6": ipaddress.IPv6Address("::1"),
    "ipv6 network": ipaddress.IPv6Network("fe80::/10"),
    "ipv6 interface": ipaddress.IPv6Interface("fe80::1/64"),
    "enum": Color.RED,
    "int enum": Level.HIGH,
    "str enum": Mode.FAST,
    "namedtuple": Point(1, 2),
    "dataclass": Task("write", WHEN, {"x"}),
    "pydantic": Profile(name="alice", joined=WHEN, scores=[1.0, 2.5]),
    "pydantic v1": LegacyProfile(name="bob"),
    "human message": HumanMessage(content="hi", id="m1", name="alice"),
    "ai message with tool calls": AIMessage(
        content="", id="m2", tool_calls=[{"name": "search", "args": {"q": "x"}, "id": "call-1", "type": "tool_call"}]
    ),
    "ai message chunk": AIMessageChunk(content="par", id="m3"),
    "tool message": ToolMessage(content="result", tool_call_id="call-1", id="m4"),
    "system message": SystemMessage(content="be brief", id="m5"),
    "remove message": RemoveMessage(id="m1"),
    "document": Document(page_content="text", metadata={"source": "a"}),
    "send": Send("node", {"arg": 1}),
    "interrupt": Interrupt(value={"question": "?"}, id="int-1"),
    "command": Command(resume="yes", update={"k": 1}),
    "store item": Item(value={"v": 1}, key="k", namespace=("a", "b"), created_at=WHEN, updated_at=WHEN),
    "delta snapshot": _DeltaSnapshot(value=[1, 2, 3]),
    "exception": ValueError("boom"),
    "nested": {"messages": [HumanMessage(content="q", id="n1")], "when": WHEN, "ids": {uuid.UUID(int=1)}},
}
# numpy arrays are among what the default serializer supports; numpy is a test dependency.
VALUES["numpy"] = np.arange(6, dtype=np.float32).reshape(2, 3)
VALUES["numpy fortran"] = np.asfortranarray(np.arange(4, dtype=np.int64).reshape(2, 2))


def same(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN, numpy arrays and compiled patterns."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a).__module__ == "numpy":
        return type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape and (a == b).all()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", list(VALUES))
def test_every_supported_type_comes_back_as_the_serializer_gives_it(name: str, tmp_path: Path) -> None:
    serde = JsonPlusSerializer()
    codec = ValueCodec(serde)
    value = VALUES[name]
    expected = serde.loads_typed(serde.dumps_typed(value))
    store = Store(tmp_path)
    try:
        store.save("value", codec.encode(value))
    except Exception:  # the store refused a plain-looking value (the lone surrogate): as the saver does
        store.save("value", codec.encode(value, plain_ok=False))
    back = codec.decode(store.load("value"))
    assert same(back, expected), (back, expected)


def test_the_saver_returns_what_in_memory_saver_returns_for_every_type(tmp_path: Path) -> None:
    ours, reference = GroupStoreSaver(tmp_path), InMemorySaver()
    values = {name.replace(" ", "_"): value for name, value in VALUES.items()}
    for saver in (ours, reference):
        chain = Chain(saver, "t")
        chain.put(values)
        saver.put_writes(chain.config, [("when", WHEN), ("messages", [HumanMessage(content="w", id="w")])], "task", "")
    mine, theirs = GroupStoreSaver(tmp_path).get_tuple(config("t")), reference.get_tuple(config("t"))
    assert mine is not None
    assert theirs is not None
    assert same(mine.checkpoint["channel_values"], theirs.checkpoint["channel_values"])
    assert same(list(mine.pending_writes or []), list(theirs.pending_writes or []))


def test_plain_json_stays_as_it_is_and_messages_are_readable(tmp_path: Path) -> None:
    codec = ValueCodec(JsonPlusSerializer())
    plain = {"count": 3, "items": ["a", {"b": None}], "ratio": 0.5}
    assert codec.encode(plain) == plain
    message = codec.encode(HumanMessage(content="hello there", id="m1"))
    assert message[TAG] == "pydantic"
    assert message["type"] == "langchain_core.messages.human:HumanMessage"
    assert message["value"]["content"] == "hello there"
    assert message["value"]["type"] == "human"
    moment = codec.encode(WHEN)
    assert moment == {
        TAG: "method",
        "type": "datetime:datetime",
        "value": "2026-11-22T10:30:05.123456+00:00",
        "method": "fromisoformat",
    }
    assert codec.encode({1, 2}) == {TAG: "call", "type": "builtins:set", "value": [1, 2]}
    assert codec.encode(b"ab") == {TAG: "bytes", "base64": "YWI="}


def test_the_pickle_fallback_and_other_serializers_round_trip(tmp_path: Path) -> None:
    pickling = ValueCodec(JsonPlusSerializer(pickle_fallback=True))
    tree = pickling.encode(Pickled(7))
    assert tree[TAG] == "serialized"
    assert tree["type"] == "pickle"
    assert pickling.decode(tree) == Pickled(7)

    class Custom(JsonPlusSerializer):
        """Any serializer but the default one sees every value, plain ones too (an encrypting one must)."""

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[Any] = []

        def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
            self.seen.append(obj)
            return super().dumps_typed(obj)

    custom = Custom()
    codec = ValueCodec(custom)
    assert codec.decode(codec.encode({"plain": [1, 2]})) == {"plain": [1, 2]}
    assert custom.seen == [{"plain": [1, 2]}]


def test_strict_mode_refuses_what_the_serializer_refuses(tmp_path: Path) -> None:
    """The allowlist is the serializer's: a type outside it comes back as its data, as from any saver."""
    strict = JsonPlusSerializer(allowed_msgpack_modules=None)
    codec = ValueCodec(strict)
    value = Profile(name="carol", joined=WHEN, scores=[])
    assert same(codec.decode(codec.encode(value)), strict.loads_typed(strict.dumps_typed(value)))
    assert codec.decode(codec.encode(HumanMessage(content="safe", id="s"))) == HumanMessage(content="safe", id="s")
