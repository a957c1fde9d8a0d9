"""Values LangGraph hands a checkpointer, as JSON a person can read, exact on the way back.

LangGraph's default serializer (``JsonPlusSerializer``) writes msgpack, with
"ext" records for everything msgpack cannot hold (datetimes, UUIDs, pydantic
models such as LangChain messages, dataclasses, sets, ...). This codec keeps
its semantics and drops only the opacity:

- JSON-native values (``str``, ``bool``, ``None``, 64-bit ``int``, finite
  ``float``, ``list``, ``tuple``, ``dict`` with ``str`` keys) are stored as
  they are. Tuples come back as lists, as they do from the serializer.
- Anything else goes through the saver's serializer; its msgpack is unpacked
  and each part JSON cannot hold becomes a *tagged* object, a dict whose key
  ``"$lg"`` names the kind. A LangChain message, for one::

      {"$lg": "pydantic", "type": "langchain_core.messages.human:HumanMessage",
       "value": {"content": "hi", "type": "human", "id": "...", ...}}

  Decoding packs each tag back into the exact msgpack record and hands it to
  the serializer's ``loads_typed``, so its allowlist (``LANGGRAPH_STRICT_MSGPACK``,
  ``allowed_msgpack_modules``) decides what may be rebuilt, as with any saver.
- Output that is not msgpack (an ``EncryptedSerializer``, ``pickle_fallback``)
  is kept whole: ``{"$lg": "serialized", "type": ..., "base64": ...}``.
- A user dict that holds the key ``"$lg"``, or has keys that are not strings,
  is written ``{"$lg": "dict", "items": [[key, value], ...]}``.

With a serializer other than ``JsonPlusSerializer`` every value goes through
it (plain JSON too), so an encrypting serializer encrypts everything.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

import ormsgpack
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

TAG = "$lg"
_INT64 = range(-(2**63), 2**63)
_PACK_OPTIONS = ormsgpack.OPT_NON_STR_KEYS

# Ext codes of langgraph.checkpoint.serde.jsonplus, by the name written on disk.
# Codes 0-5 carry (module, name, value[, method]); the others their own payload.
_EXT_NAMES = {
    0: "call",
    1: "call_args",
    2: "call_kwargs",
    3: "method",
    4: "pydantic_v1",
    5: "pydantic",
    6: "numpy",
    7: "delta_snapshot",
}
_EXT_CODES = {name: code for code, name in _EXT_NAMES.items()}
_CONSTRUCTOR_CODES = frozenset(range(6))


class _Ext:
    """A msgpack ext record met while unpacking; hashable so it may be a dict key."""

    __slots__ = ("code", "payload")

    def __init__(self, code: int, payload: Any) -> None:
        self.code = code
        self.payload = payload

    def __hash__(self) -> int:
        return hash((self.code, repr(self.payload)))


class ValueCodec:
    """Encode values to JSON trees and back, with ``serde`` for what JSON cannot hold."""

    def __init__(self, serde: SerializerProtocol) -> None:
        self.serde = serde
        # Plain JSON bypasses the serializer only when it is the default one,
        # which stores such values unchanged anyway.
        self._plain_ok = type(serde) is JsonPlusSerializer

    # -- encoding --------------------------------------------------------

    def encode(self, value: Any, *, plain_ok: bool = True) -> Any:
        """A JSON tree for ``value`` (JSON-native parts as they are, the rest tagged).

        ``plain_ok=False`` sends even plain values through the serializer (used
        when the store refused a plain-looking value, e.g. a lone surrogate).

        Raises:
            Whatever the serializer raises for a value it cannot serialize.
        """
        if plain_ok and self._plain_ok and _is_plain(value):
            return value
        kind, data = self.serde.dumps_typed(value)
        if kind == "null":
            return None
        if kind == "bytes":
            return _bytes_tag(data)
        if kind == "msgpack":
            try:
                tree = ormsgpack.unpackb(data, ext_hook=_Ext, option=_PACK_OPTIONS)
                return _jsonify(tree)
            except (TypeError, ValueError, ormsgpack.MsgpackDecodeError):
                pass  # something JSON cannot mirror (an unhashable ext key...): keep it whole
        return {TAG: "serialized", "type": kind, "base64": base64.b64encode(data).decode("ascii")}

    # -- decoding --------------------------------------------------------

    def decode(self, tree: Any) -> Any:
        """The value ``encode`` was given (as the serializer would return it).

        Decodes in place: ``tree`` must be the caller's own (freshly loaded) and
        is reused; only tagged parts are replaced. Plain JSON is returned as it is.

        Raises:
            ValueError: for a malformed tag.
        """
        kind = type(tree)
        if kind is dict:
            if TAG in tree:
                return self._decode_tag(tree[TAG], tree)
            for key, item in tree.items():
                if type(item) is dict or type(item) is list:
                    decoded = self.decode(item)
                    if decoded is not item:
                        tree[key] = decoded
        elif kind is list:
            for position, item in enumerate(tree):
                if type(item) is dict or type(item) is list:
                    decoded = self.decode(item)
                    if decoded is not item:
                        tree[position] = decoded
        return tree

    def _decode_tag(self, tag: Any, tree: dict[str, Any]) -> Any:
        if tag == "serialized":
            return self.serde.loads_typed((tree["type"], base64.b64decode(tree["base64"])))
        if tag == "dict":
            return {_hashable(self.decode(key)): self.decode(item) for key, item in tree["items"]}
        if tag in ("bytes", "float", "int"):
            return _to_msgpack(tree)
        # An ext record: rebuild exactly the bytes the serializer wrote and let it read them.
        packed = ormsgpack.packb(_to_msgpack(tree), option=_PACK_OPTIONS)
        return self.serde.loads_typed(("msgpack", packed))


def _is_plain(value: Any) -> bool:
    """True if ``value`` is JSON as it is (exact types: subclasses such as enums are not)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return value in _INT64
    if kind is float:
        return math.isfinite(value)
    if kind is list or kind is tuple:
        return all(_is_plain(item) for item in value)
    if kind is dict:
        return all(type(key) is str and key != TAG and _is_plain(item) for key, item in value.items())
    return False


def _bytes_tag(data: bytes) -> dict[str, Any]:
    return {TAG: "bytes", "base64": base64.b64encode(data).decode("ascii")}


def _jsonify(value: Any) -> Any:
    """Unpacked msgpack (with ``_Ext`` records) as a JSON tree."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else {TAG: "int", "value": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {TAG: "float", "value": repr(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes_tag(bytes(value))
    if isinstance(value, list):
        return [_jsonify(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) and key != TAG for key in value):
            return {key: _jsonify(item) for key, item in value.items()}
        return {TAG: "dict", "items": [[_jsonify(key), _jsonify(item)] for key, item in value.items()]}
    if isinstance(value, _Ext):
        return _ext_tag(value.code, ormsgpack.unpackb(value.payload, ext_hook=_Ext, option=_PACK_OPTIONS))
    raise TypeError(f"unexpected msgpack value {type(value).__name__}")


def _ext_tag(code: int, payload: Any) -> dict[str, Any]:
    name = _EXT_NAMES.get(code)
    if (
        name is not None
        and code in _CONSTRUCTOR_CODES
        and isinstance(payload, list)
        and len(payload) in (3, 4)
        and isinstance(payload[0], str)
        and isinstance(payload[1], str)
        and ":" not in payload[0] + payload[1]
    ):
        tag = {TAG: name, "type": f"{payload[0]}:{payload[1]}", "value": _jsonify(payload[2])}
        if len(payload) == 4:
            tag["method"] = _jsonify(payload[3])
        return tag
    if name is not None and code not in _CONSTRUCTOR_CODES:
        return {TAG: name, "value": _jsonify(payload)}
    return {TAG: "ext", "code": code, "value": _jsonify(payload)}


def _to_msgpack(tree: Any) -> Any:
    """A JSON tree back to what ormsgpack packs into the original bytes (tags become Ext records)."""
    if isinstance(tree, list):
        return [_to_msgpack(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    tag = tree.get(TAG)
    if tag is None:
        return {key: _to_msgpack(item) for key, item in tree.items()}
    builder = _BUILDERS.get(tag)
    if builder is not None:
        return builder(tree)
    if tag in _EXT_CODES or tag == "ext":
        code = tree["code"] if tag == "ext" else _EXT_CODES[tag]
        if "type" in tree:
            module, _, name = tree["type"].partition(":")
            payload = [module, name, _to_msgpack(tree["value"])]
            if "method" in tree:
                payload.append(_to_msgpack(tree["method"]))
        else:
            payload = _to_msgpack(tree["value"])
        return ormsgpack.Ext(code, ormsgpack.packb(payload, option=_PACK_OPTIONS))
    raise ValueError(f"unknown {TAG} tag {tag!r}")


def _hashable(key: Any) -> Any:
    return tuple(_hashable(item) for item in key) if isinstance(key, list) else key


_BUILDERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "bytes": lambda tree: base64.b64decode(tree["base64"]),
    "float": lambda tree: float(tree["value"]),
    "int": lambda tree: int(tree["value"]),
    "dict": lambda tree: {_hashable(_to_msgpack(key)): _to_msgpack(item) for key, item in tree["items"]},
}
