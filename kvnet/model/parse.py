"""Turn untrusted dicts into resources, with one field-level error for the first problem found."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kvnet.errors import InvalidInput
from kvnet.model.resources import RESOURCE_TYPES, Resource

M = TypeVar("M", bound=BaseModel)
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_.\[\]]*): (.*)$", re.S)


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def invalid_from(exc: ValidationError) -> InvalidInput:
    """The first pydantic error as InvalidInput; model-level errors name their field as 'field: ...'."""
    return invalid_from_error(exc.errors()[0])


def invalid_from_error(err: Mapping[str, Any]) -> InvalidInput:
    """One pydantic error (an item of `ValidationError.errors()`) as InvalidInput."""
    message = str(err["msg"]).removeprefix("Value error, ")
    field = field_path(tuple(err["loc"]))
    match = _FIELD_PREFIX.match(message)
    if match:
        field = f"{field}.{match.group(1)}" if field else match.group(1)
        message = match.group(2)
    if err["type"] == "extra_forbidden":
        message = "is not a known field"
    elif err["type"] == "missing":
        message = "is required"
    return InvalidInput(message, field=field or None)


def parse_model(cls: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a JSON object, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise invalid_from(exc) from None


def parse_resource(kind: str, data: Any) -> Resource:
    cls = RESOURCE_TYPES.get(kind)
    if cls is None:
        raise InvalidInput(f"unknown resource kind {kind!r} (one of {', '.join(sorted(RESOURCE_TYPES))})",
                           field="kind")
    return parse_model(cls, data)
