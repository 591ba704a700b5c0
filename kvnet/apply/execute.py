"""Run a plan as one batch (`POST /v1/batch`): the server commits every step in one transaction, or
none of them.

Resources this run creates get their ids here (UUIDs; a host's is its name), so every reference in the
batch, also to a resource created earlier in it, is an id before anything is sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from kvnet.apply.plan import Index, Resolver, State, Step, api_body
from kvnet.apply.spec import CONFIG, KINDS, Desired
from kvnet.client import Client
from kvnet.errors import IdTaken, KvnetError

NewIds = dict[tuple[str, str, str], str]  # (kind, project, name) -> id
ID_ATTEMPTS = 3  # a fresh UUID whose first 10 hex digits another resource's id has: pick again


class StepFailed(KvnetError):
    """The server refused the batch because of one step; nothing was applied."""

    def __init__(self, step: Step, cause: KvnetError) -> None:
        field = (cause.field or "").split(".", 1)[1] if "." in (cause.field or "") else None
        super().__init__(cause.message, field=field)
        self.step = step
        self.status = cause.status


def fetch_state(client: Client, kinds: list[str] | None = None) -> State:
    return State({kind: client.list(kind) for kind in kinds or KINDS}, client.config())


def new_ids(steps: list[Step], new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> NewIds:
    return {(s.kind, s.project, s.name): s.name if s.kind == "hosts" else new_id()
            for s in steps if s.action == "create"}


def operations(steps: list[Step], desired: Desired, state: State, ids: NewIds) -> list[dict[str, Any]]:
    """The batch's operations, one per step, in the plan's order."""
    resolver = Resolver(Index(state), desired, ids)
    return [_operation(resolver, desired, ids, step) for step in steps]


def _operation(resolver: Resolver, desired: Desired, ids: NewIds, step: Step) -> dict[str, Any]:
    kind = step.kind
    if kind == CONFIG:
        return {"op": "set_config", "body": {key: new for key, (_, new) in step.changes.items()}}
    if step.action == "delete":
        return {"op": "delete", "kind": kind, "id": step.rid}
    if "interface" in step.action:
        where = f"routers[{step.name}]"
        router = step.rid or resolver.resolve("routers", step.project, step.name, where)
        subnet = step.subnet_id or resolver.resolve("subnets", step.project, step.subnet, where)
        return {"op": step.action.replace("-", "_"), "router_id": router, "subnet_id": subnet}
    entry = desired.entry(kind, step.project, step.name)
    assert entry is not None
    body = api_body(resolver, kind, entry)
    if step.action == "create":
        return {"op": "create", "kind": kind, "body": {**body, "id": ids[(kind, step.project, step.name)]}}
    return {"op": "update", "kind": kind, "id": step.rid, "body": {key: body[key] for key in step.changes}}


def execute(client: Client, steps: list[Step], desired: Desired, state: State) -> int:
    """Apply every step in one transaction; returns the new revision. Raises `StepFailed` naming the
    step the server refused (nothing was applied)."""
    for attempt in range(ID_ATTEMPTS):
        ops = operations(steps, desired, state, new_ids(steps))
        try:
            return int(client.batch(ops)["revision"])
        except IdTaken as exc:
            if attempt == ID_ATTEMPTS - 1 or "already exists" in exc.message:
                raise _failed(steps, exc) from None
        except KvnetError as exc:
            raise _failed(steps, exc) from None
    raise AssertionError("unreachable")


def _failed(steps: list[Step], exc: KvnetError) -> KvnetError:
    """The step an `operations[i].<field>` error names, or the error as it is."""
    head = (exc.field or "").split(".", 1)[0]
    if head.startswith("operations[") and head.endswith("]"):
        index = int(head[len("operations["):-1])
        if 0 <= index < len(steps):
            return StepFailed(steps[index], exc)
    return exc
