"""The OpenAPI document the API serves: valid (every `$ref` resolves within it) and true (what each
operation accepts, and every status it answers).

FastAPI documents what it sees: path and query parameters, and the bodies it validates itself (the
action routes' pydantic models). This module adds what it cannot see:
- for each resource kind, generated from its model class: a response schema (every field, all of them
  required: an answer always carries them all), a create schema (no server-computed field, `id`
  optional) and an update schema (every field optional, no read-only field);
- the bodies and answers of the routes that read and write JSON themselves (`ApiDoc.operation`);
- on every operation, the errors it can answer, derived from what it takes (`_error_statuses`), all in
  kvnet's error shape;
- integers bounded to int64, as the API enforces for every body (`kvnet.server.json_input`).
Schemas live in `components/schemas`; nothing refers to pydantic's `$defs`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from kvnet.model.resources import RESOURCE_TYPES, Resource
from kvnet.server.cloud import READ_ONLY
from kvnet.server.http_errors import Error
from kvnet.server.limits import INT64_MAX, INT64_MIN, BodyLimits

REF = "#/components/schemas/"
JSON = "application/json"
Schema = str | type[BaseModel] | dict[str, Any]
Variant = Literal["response", "create", "update"]
# FastAPI's own 422 shape: kvnet answers its own instead (kvnet.server.http_errors).
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def resource_schema(kind: str, variant: Variant = "response") -> str:
    """The component name of a kind's schema: `Port`, `PortCreate`, `PortUpdate`."""
    name = RESOURCE_TYPES[kind].__name__
    return name if variant == "response" else name + variant.capitalize()


def read_only(cls: type[Resource]) -> frozenset[str]:
    """Fields an update may not name (the API answers 422 for them)."""
    return frozenset(READ_ONLY | cls.server_fields)


def list_filters(cls: type[Resource]) -> list[dict[str, Any]]:
    """`GET /v1/<kind>?field=value`: each string or integer field filters the list by exact match."""
    properties = cls.model_json_schema()["properties"]
    return [{"name": name, "in": "query", "required": False, "schema": {"type": "string"},
             "description": f"only {cls.kind} whose {name} is this"}
            for name, prop in properties.items() if _is_scalar(prop)]


def _is_scalar(prop: dict[str, Any]) -> bool:
    types = {option.get("type") for option in prop.get("anyOf", [prop])}
    return bool(types) and types <= {"string", "integer", "null"} and types != {"null"}


class ApiDoc:
    """Builds (once) and serves the app's OpenAPI document; routes describe themselves through
    `operation()`."""

    def __init__(self, app: FastAPI, body_limits: BodyLimits) -> None:
        self.app = app
        self.body_limits = body_limits
        self.models: dict[str, type[BaseModel]] = {"Error": Error}
        app.openapi = self.document  # type: ignore[method-assign]

    def operation(self, *, body: Schema | None = None, returns: Schema | None = None, status: int = 200,
                  query: Iterable[dict[str, Any]] = (),
                  responses: dict[int, tuple[str, Schema]] | None = None) -> dict[str, Any]:
        """`openapi_extra` for a route: its JSON body, its answer with `status`, extra query parameters
        and extra responses (`{410: ("why", Model)}`). Errors every route shares are added for it."""
        extra: dict[str, Any] = {}
        if body is not None:
            extra["requestBody"] = {"required": True, "content": {JSON: {"schema": self._schema(body)}}}
        answers: dict[str, Any] = {}
        if returns is not None:
            answers[str(status)] = {"content": {JSON: {"schema": self._schema(returns)}}}
        for code, (description, schema) in (responses or {}).items():
            answers[str(code)] = {"description": description, "content": {JSON: {"schema": self._schema(schema)}}}
        if answers:
            extra["responses"] = answers
        if query:
            extra["parameters"] = list(query)
        return extra

    def _schema(self, schema: Schema) -> dict[str, Any]:
        if isinstance(schema, str):
            return ref(schema)
        if isinstance(schema, dict):
            return schema
        self.models[schema.__name__] = schema
        return ref(schema.__name__)

    def document(self) -> dict[str, Any]:
        if self.app.openapi_schema is None:
            app = self.app
            doc = get_openapi(title=app.title, version=app.version, description=app.description,
                              routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in self._component_schemas().items():
                if schemas.get(name, schema) != schema:
                    raise RuntimeError(f"two different schemas are named {name} in the OpenAPI document")
                schemas[name] = schema
            for path, item in doc.get("paths", {}).items():
                for method, operation in item.items():
                    self._add_errors(path, method, operation)
            for name in FASTAPI_VALIDATION_SCHEMAS:
                schemas.pop(name, None)
            for schema in _schemas_in(doc):
                _bound_integer(schema)
                _homogeneous_tuple(schema)
            app.openapi_schema = doc
        return self.app.openapi_schema

    def _add_errors(self, path: str, method: str, operation: dict[str, Any]) -> None:
        responses = operation.setdefault("responses", {})
        limit = self.body_limits.for_operation(method, path)
        for code, description in _error_statuses(method, operation, limit).items():
            known = responses.get(code)
            if known is None or _is_fastapi_validation(known):
                responses[code] = {"description": description, "content": {JSON: {"schema": ref("Error")}}}

    def _component_schemas(self) -> dict[str, Any]:
        """Every resource's three schemas and every model routes named, with the models they nest."""
        kinds = list(RESOURCE_TYPES.values())
        answers = [*kinds, *self.models.values()]
        pairs = [(cls, "validation") for cls in kinds] + [(cls, "serialization") for cls in answers]
        keys, generated = models_json_schema(pairs, ref_template=REF + "{model}",  # type: ignore[arg-type]
                                             schema_generator=_AnswerSchema)
        defs: dict[str, Any] = generated.get("$defs", {})
        given = {cls: keys[(cls, "validation")]["$ref"].removeprefix(REF) for cls in kinds}
        inputs = {cls: copy.deepcopy(defs[name]) for cls, name in given.items()}
        # An answer's schema goes by its model's name (pydantic says `Port-Output` when the request
        # schema differs); the request schema of a resource becomes its Create and Update schemas.
        renames = {keys[(cls, "serialization")]["$ref"].removeprefix(REF): cls.__name__ for cls in answers}
        for name in given.values():
            if name not in renames:
                del defs[name]
        defs = _renamed(defs, renames)
        for cls in kinds:
            defs[cls.__name__ + "Create"] = _create_schema(cls, inputs[cls])
            defs[cls.__name__ + "Update"] = _update_schema(cls, inputs[cls])
        return defs


class _AnswerSchema(GenerateJsonSchema):
    """Answers carry every field (the API writes whole models): mark them all required, so that a
    response check notices one that goes missing."""

    def field_is_required(self, field: Any, total: bool) -> bool:
        return self.mode == "serialization" or super().field_is_required(field, total)


def _create_schema(cls: type[Resource], schema: dict[str, Any]) -> dict[str, Any]:
    server = cls.server_fields | (READ_ONLY - {"id"})
    return _without(schema, server, title=f"{cls.__name__}Create",
                    required=[f for f in schema.get("required", []) if f not in server])


def _update_schema(cls: type[Resource], schema: dict[str, Any]) -> dict[str, Any]:
    # Every field optional, and no default: an update changes only the fields it names.
    update = _without(schema, read_only(cls), title=f"{cls.__name__}Update", required=[])
    for prop in update["properties"].values():
        prop.pop("default", None)
    return update


def _without(schema: dict[str, Any], fields: Iterable[str], *, title: str, required: list[str]) -> dict[str, Any]:
    result = copy.deepcopy(schema)
    result["title"] = title
    result["properties"] = {k: v for k, v in result.get("properties", {}).items() if k not in fields}
    result.pop("required", None)
    if required:
        result["required"] = required
    return result


def _renamed(defs: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    renamed = {renames.get(name, name): schema for name, schema in defs.items()}
    for schema in _schemas_in(renamed):
        target = schema.get("$ref", "")
        if target.startswith(REF) and target.removeprefix(REF) in renames:
            schema["$ref"] = REF + renames[target.removeprefix(REF)]
    return renamed


def _error_statuses(method: str, operation: dict[str, Any], body_limit: int) -> dict[str, str]:
    """The errors an operation can answer, from what it takes: a body or a path parameter can name
    something that does not exist (404), a write can clash with what is stored (409), a body can be
    too large (413) or not JSON (415), any input can be invalid (422)."""
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    statuses = {}
    if has_body or any(p.get("in") == "path" for p in parameters):
        statuses["404"] = "Not found: a resource named in the path or the body does not exist"
    if method != "get":
        statuses["409"] = "Conflict: in use, already taken or existing, a pool exhausted, or a concurrent change"
    if has_body:
        statuses["413"] = f"Payload too large: the body is over {body_limit} bytes"
        statuses["415"] = "Unsupported media type: the body is not JSON"
    if has_body or parameters:
        statuses["422"] = "Invalid input: `field` names what is wrong and `message` why"
    return statuses


def _bound_integer(schema: dict[str, Any]) -> None:
    if schema.get("type") == "integer":
        schema.setdefault("minimum", INT64_MIN)
        schema.setdefault("maximum", INT64_MAX)


def _homogeneous_tuple(schema: dict[str, Any]) -> None:
    """A tuple of one type (`[first, last]` ranges) as an array of that type with a fixed length: the
    same constraint, and one that tools read alike (schemathesis 4 rewrites `prefixItems` to draft-7
    `items: [...]`, then validates answers as draft 2020-12, where that form is invalid)."""
    prefix = schema.get("prefixItems")
    if prefix and "items" not in schema and all(item == prefix[0] for item in prefix):
        del schema["prefixItems"]
        schema["items"] = prefix[0]
        schema.setdefault("minItems", len(prefix))
        schema.setdefault("maxItems", len(prefix))


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get(JSON, {}).get("schema", {})
    return schema.get("$ref", "").removeprefix(REF) in FASTAPI_VALIDATION_SCHEMAS


def _schemas_in(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict inside `node` (schemas and the objects around them), depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
