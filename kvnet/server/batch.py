"""`POST /v1/batch`: several writes committed as one store transaction (all of them, or none).

What `kvnet apply -f` sends. Each operation is one of

    {"op": "create", "kind": K, "body": {...}}            (the body may carry a client-chosen UUID "id",
                                                           so that later operations can refer to it)
    {"op": "update", "kind": K, "id": ID, "body": {...}}
    {"op": "delete", "kind": K, "id": ID}
    {"op": "add_interface" | "remove_interface", "router_id": ID, "subnet_id": ID}
    {"op": "set_config", "body": {...}}

and runs, in order, with exactly the rules of its single-call route; each sees the writes of the ones
before it. An error names the operation: `operations[3].gateway_ip`.
"""

from __future__ import annotations

from typing import Any

from kvnet.errors import InvalidInput
from kvnet.server.cloud import Cloud, Write
from kvnet.server.payloads import MAX_OPERATIONS

MAX_BATCH_BYTES = 16 * 1024 * 1024  # a cloud file of some thousands of resources; ordinary writes: 1 MiB
OPS = ("create", "update", "delete", "add_interface", "remove_interface", "set_config")


def parse_batch(cloud: Cloud, body: Any) -> list[Write]:
    if not isinstance(body, dict) or not isinstance(body.get("operations"), list):
        raise InvalidInput("expected {\"operations\": [...]}", field="operations")
    operations = body["operations"]
    if not operations:
        raise InvalidInput("is empty", field="operations")
    if len(operations) > MAX_OPERATIONS:
        raise InvalidInput(f"{len(operations)} operations; at most {MAX_OPERATIONS} in one batch", field="operations")
    writes = []
    for i, op in enumerate(operations):
        try:
            writes.append(_write(cloud, op))
        except InvalidInput as exc:
            exc.field = f"operations[{i}].{exc.field}" if exc.field else f"operations[{i}]"
            raise
    return writes


def _write(cloud: Cloud, op: Any) -> Write:
    if not isinstance(op, dict):
        raise InvalidInput(f"expected an object, got {type(op).__name__}")
    unknown = sorted(set(op) - {"op", "kind", "id", "body", "router_id", "subnet_id"})
    if unknown:
        raise InvalidInput("is not a known field", field=unknown[0][:40])
    action = op.get("op")
    if action not in OPS:
        raise InvalidInput(f"expected one of {', '.join(OPS)}", field="op")
    if action == "set_config":
        return cloud.config_write(_object(op, "body"))
    if action in ("add_interface", "remove_interface"):
        return cloud.interface_write(_text(op, "router_id"), _text(op, "subnet_id"), add=action == "add_interface")
    kind = _text(op, "kind")
    if action == "create":
        return cloud.create_write(kind, _object(op, "body"))
    if action == "update":
        return cloud.update_write(kind, _text(op, "id"), _object(op, "body"))
    return cloud.delete_write(kind, _text(op, "id"))


def _text(op: dict[str, Any], field: str) -> str:
    value = op.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidInput("is required (a string)", field=field)
    return value


def _object(op: dict[str, Any], field: str) -> dict[str, Any]:
    value = op.get(field)
    if not isinstance(value, dict):
        raise InvalidInput("is required (an object)", field=field)
    return value
