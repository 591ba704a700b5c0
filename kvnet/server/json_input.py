"""A request body from bytes to JSON values that every later layer can take without surprises.

Refused with a 422 that names where the problem is (never the value itself at length): text that is not
UTF-8 or not JSON, nesting deeper than `MAX_JSON_DEPTH`, integers the store cannot hold (beyond int64),
numbers that overflow a float (`1e400`), NaN and Infinity (not JSON, and not writable back as JSON), and
strings with lone surrogates (`"\\ud800"`: valid JSON escapes that no UTF-8 answer can carry).
"""

from __future__ import annotations

import json
import math
from typing import Any

from kvnet.errors import InvalidInput
from kvnet.model.parse import field_path
from kvnet.server.limits import INT64_MAX, INT64_MIN, MAX_JSON_DEPTH

Location = tuple[int | str, ...]


def parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the request body is not UTF-8 (invalid byte at offset {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise InvalidInput(f"the request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, or an integer with more digits than Python converts
        raise InvalidInput(f"the request body is not JSON: {exc}") from None
    check_values(value)
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_values(value: Any) -> None:
    """Walk `value` (iteratively: its depth is what is being checked) and refuse the first value out
    of bounds, naming its field."""
    stack: list[tuple[Any, Location]] = [(value, ())]
    while stack:
        item, loc = stack.pop()
        if isinstance(item, dict | list):
            if len(loc) >= MAX_JSON_DEPTH:
                raise InvalidInput(f"nests deeper than {MAX_JSON_DEPTH} levels", field=_field(loc))
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key, loc)  # a bad key is named by where it is, not by itself
                    stack.append((child, (*loc, key)))
            else:
                stack.extend((child, (*loc, i)) for i, child in enumerate(item))
        elif isinstance(item, str):
            _check_text(item, loc)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise InvalidInput("is out of range: integers must fit in 64 bits", field=_field(loc))
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput("is out of range for a 64-bit float", field=_field(loc))


def _check_text(text: str, loc: Location) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("contains a lone surrogate escape (\\ud800-\\udfff), which is not text",
                           field=_field(loc)) from None


def _field(loc: Location) -> str | None:
    return field_path(loc) or None
