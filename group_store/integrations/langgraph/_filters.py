"""``search`` filters with SqliteStore's semantics, which LangGraph's references leave loose (I/O-free).

SqliteStore turns each filter into SQL over ``json_extract(value, '$.<key>')``;
InMemoryStore compares Python values. They disagree on range filters over
missing fields, on types that differ, and on nested dicts. This follows
SqliteStore, the store with TTL, exactly:

- A key is a path: ``"a.b"`` reads ``value["a"]["b"]``. Keys outside
  ``[a-zA-Z0-9_.-]`` raise ``ValueError``, as SqliteStore's do.
- The field, as ``json_extract`` gives it: missing or ``null`` is SQL NULL,
  ``true``/``false`` are 1/0, a list or dict is its JSON text, an integer
  beyond 64 bits is a float.
- SQL comparison: NULL matches nothing (``$ne`` included) but ``None``
  (``IS NULL``); numbers compare as numbers, text as text, and any number is
  less than any text (so ``{"$lt": "m"}`` matches numeric fields).
- A plain value is ``$eq``, except a list (or other non-scalar), which is
  compared with the field's JSON text. ``$eq`` with a list never matches
  (SqliteStore binds it as a BLOB), and every range operator with a number
  compares ``CAST(field AS REAL)``: text becomes its leading number, or 0.
- A dict whose keys are not operators (a "nested" filter) raises
  ``ValueError("Unsupported operator: ...")``, as SqliteStore's does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

_FILTER_KEY = re.compile(r"^[a-zA-Z0-9_.-]+$")
_LEADING_REAL = re.compile(r"[ \t\n\v\f\r]*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_INT64 = range(-(2**63), 2**63)
_NULL = None


class _Blob(bytes):
    """A parameter SqliteStore binds as bytes: a BLOB, greater than every text and number."""


def matches(value: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """True if the item ``value`` passes ``filter`` as SqliteStore's SQL would decide.

    Raises:
        ValueError: for a key outside ``[a-zA-Z0-9_.-]`` or an unknown operator.
    """
    for key, condition in (filter or {}).items():
        _check_key(key)
        field = _extract(value, key)
        if isinstance(condition, dict):
            for operator, operand in condition.items():
                if not _operator(field, operator, operand):
                    return False
        elif not _plain(field, condition):
            return False
    return True


def check(filter: Mapping[str, Any] | None) -> None:
    """Raise the ``ValueError`` SqliteStore raises for this filter even when no item is there to test."""
    for key, condition in (filter or {}).items():
        _check_key(key)
        if isinstance(condition, dict):
            for operator in condition:
                if operator not in _OPERATORS:
                    raise ValueError(f"Unsupported operator: {operator}")


def _check_key(key: str) -> None:
    if not _FILTER_KEY.match(key):
        raise ValueError(
            f"Invalid filter key: '{key}'. Filter keys must contain only alphanumeric characters, "
            "underscores, dots, and hyphens."
        )


def _extract(value: Any, key: str) -> Any:
    """``json_extract(value, '$.' + key)`` as a Python SQL value: None, int, float or str."""
    for label in key.split("."):
        if not label or not isinstance(value, dict) or label not in value:
            return _NULL
        value = value[label]
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if value in _INT64 else float(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def _parameter(operand: Any) -> Any:
    """How sqlite3 binds a number: as REAL, and a NaN as NULL."""
    number = float(operand)
    return _NULL if math.isnan(number) else number


def _compare(left: Any, right: Any) -> int | None:
    """SQLite's comparison without affinity: ``None`` if either side is NULL, else -1, 0 or 1."""
    if left is None or right is None:
        return None
    left_rank, right_rank = _rank(left), _rank(right)
    if left_rank != right_rank:
        return -1 if left_rank < right_rank else 1
    return -1 if left < right else (1 if left > right else 0)


def _rank(value: Any) -> int:
    if isinstance(value, _Blob):
        return 3
    if isinstance(value, str):
        return 2
    return 1


def _as_real(field: Any) -> Any:
    """``CAST(field AS REAL)``: a number as a float, text as its leading number (or 0.0)."""
    if field is None:
        return _NULL
    if isinstance(field, str):
        found = _LEADING_REAL.match(field)
        return float(found.group(1)) if found else 0.0
    return float(field)


def _plain(field: Any, condition: Any) -> bool:
    """A filter value that is not an operator dict (SqliteStore's first branch)."""
    if isinstance(condition, str):
        return _compare(field, condition) == 0
    if condition is None:
        return field is None
    if isinstance(condition, bool):
        return _compare(field, int(condition)) == 0
    if isinstance(condition, int | float):
        return _compare(field, _parameter(condition)) == 0
    return _compare(field, orjson.dumps(condition).decode()) == 0  # the JSON text of a list


def _operator(field: Any, operator: str, operand: Any) -> bool:
    """One ``{"$op": operand}`` (SqliteStore's ``_get_filter_condition``)."""
    if operator not in _OPERATORS:
        raise ValueError(f"Unsupported operator: {operator}")
    if operator in ("$eq", "$ne"):
        if operand is None:
            return (field is None) == (operator == "$eq")
        if isinstance(operand, str):
            right: Any = operand
        elif isinstance(operand, bool):
            right = int(operand)
        elif isinstance(operand, int | float):
            right = _parameter(operand)
        else:
            right = _Blob(orjson.dumps(operand))
        outcome = _compare(field, right)
        return outcome is not None and (outcome == 0) == (operator == "$eq")
    if isinstance(operand, int | float):  # bool included, as in SqliteStore's isinstance check
        outcome = _compare(_as_real(field), _parameter(operand))
    elif isinstance(operand, str):
        outcome = _compare(field, operand)
    else:
        outcome = _compare(field, _Blob(orjson.dumps(operand)))
    return outcome is not None and _OPERATORS[operator](outcome)


_OPERATORS = {
    "$eq": lambda outcome: outcome == 0,
    "$ne": lambda outcome: outcome != 0,
    "$gt": lambda outcome: outcome > 0,
    "$gte": lambda outcome: outcome >= 0,
    "$lt": lambda outcome: outcome < 0,
    "$lte": lambda outcome: outcome <= 0,
}
