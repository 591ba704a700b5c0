"""Run a plan's steps against the API, one at a time, in the plan's order; the first error stops it.

Names are resolved to ids as the steps go, so a subnet created in this run can be referenced by
the port created after it.
"""

from __future__ import annotations

from collections.abc import Callable

from kvnet.apply.plan import Index, State, Step
from kvnet.apply.spec import CONFIG, KINDS, Desired, singular, to_api
from kvnet.client import Client
from kvnet.errors import NotFound


def fetch_state(client: Client, kinds: list[str] | None = None) -> State:
    return State({kind: client.list(kind) for kind in kinds or KINDS}, client.config())


def execute(client: Client, steps: list[Step], desired: Desired, state: State,
            on_done: Callable[[Step], None] = lambda _: None) -> None:
    live = Index(state)
    for step in steps:
        _run(client, live, desired, step)
        on_done(step)


def _run(client: Client, live: Index, desired: Desired, step: Step) -> None:
    kind = step.kind
    if kind == CONFIG:
        client.set_config({key: new for key, (_, new) in step.changes.items()})
    elif step.action == "delete":
        assert step.rid is not None
        client.delete(kind, step.rid)
        live.discard(kind, step.rid)
    elif step.action in ("create", "update"):
        body = to_api(kind, desired.entry(kind, step.name), lambda k, name: _must(live, k, name))
        if step.action == "create":
            live.add(kind, client.create(kind, body))
        else:
            assert step.rid is not None
            live.add(kind, client.update(kind, step.rid, {key: body[key] for key in step.changes}))
    else:
        router = step.rid or _must(live, "routers", step.name)
        subnet = step.subnet_id or _must(live, "subnets", step.subnet)
        action = client.router_add_interface if step.action == "add-interface" else client.router_remove_interface
        live.add("routers", action(router, subnet))


def _must(live: Index, kind: str, name: str) -> str:
    rid = live.lookup(kind, name)
    if rid is None:
        raise NotFound(f"no {singular(kind)} named {name!r} on the server", field=kind)
    return rid
