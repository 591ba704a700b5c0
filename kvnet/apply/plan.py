"""The plan: current resources + desired file -> the steps that make one into the other. Pure.

Resources are matched by kind and name. A listed resource that does not exist is created; one that
exists is updated when a field the file gives differs from the stored value (fields the file leaves
out, and what the server computes, never count); with `prune`, named resources of the kinds the file
lists that the file does not list are deleted. Router interfaces are steps of their own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from kvnet.apply.spec import CONFIG, KINDS, ROUTER_INTERFACES, Desired, normalize, singular, to_api
from kvnet.errors import Conflict, InvalidInput

Action = Literal["create", "update", "delete", "add-interface", "remove-interface"]
MARKS: dict[str, str] = {"create": "+", "add-interface": "+", "update": "~", "delete": "-",
                         "remove-interface": "-"}
# Where each step runs among the kinds; interfaces go after routers, before ports.
PHASES = [CONFIG, "hosts", "qospolicies", "securitygroups", "networks", "subnets", "routers", "interfaces",
          "ports", "floatingips"]
assert [p for p in PHASES if p in KINDS] == KINDS


@dataclass(frozen=True)
class Step:
    action: Action
    kind: str                        # a resource kind, or "config"
    name: str
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)   # field -> (old, new)
    rid: str | None = None           # id of the existing resource (update, delete, interfaces)
    subnet: str = ""                 # interface steps: the subnet's name (or id if it has none)
    subnet_id: str | None = None     # interface steps on an existing subnet

    @property
    def mark(self) -> str:
        return MARKS[self.action]

    @property
    def phase(self) -> int:
        return PHASES.index("interfaces" if "interface" in self.action else self.kind)

    def describe(self) -> str:
        if "interface" in self.action:
            return f"{self.action} router {self.name} subnet {self.subnet}"
        return f"{self.action} {singular(self.kind)} {self.name}"


@dataclass
class State:
    """What the server holds: every resource of each kind, and the cloud config."""

    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


class Index:
    """Named resources of the current state, looked up by kind and name (or id)."""

    def __init__(self, state: State) -> None:
        self.by_name: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.by_id: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for kind, items in state.resources.items():
            for item in items:
                self.by_id[kind][item["id"]] = item
                name = item.get("name")
                if not name:
                    continue
                if name in self.by_name[kind]:
                    raise Conflict(f"more than one of the server's {kind} is named {name!r}; "
                                   "rename or delete one before applying", field=f"{kind}[{name}]")
                self.by_name[kind][name] = item

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.by_name[kind].get(name)

    def lookup(self, kind: str, ref: str) -> str | None:
        found = self.by_name[kind].get(ref) or self.by_id[kind].get(ref)
        return found["id"] if found else None

    def resolve(self, kind: str, name: str) -> str:
        """The id for a name; names the server does not know yet stay recognisably unresolved."""
        return self.lookup(kind, name) or f"<new {singular(kind)} {name}>"

    def add(self, kind: str, item: dict[str, Any]) -> None:
        self.by_id[kind][item["id"]] = item
        if item.get("name"):
            self.by_name[kind][item["name"]] = item

    def discard(self, kind: str, rid: str) -> None:
        item = self.by_id[kind].pop(rid, None)
        if item and item.get("name"):
            self.by_name[kind].pop(item["name"], None)

    def label(self, kind: str, rid: str) -> str:
        item = self.by_id[kind].get(rid)
        return (item.get("name") if item else None) or rid


def matches(want: Any, have: Any) -> bool:
    """Whether the stored value satisfies the desired one: dicts need only the keys the file gives."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(matches(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(matches, want, have))
    return bool(want == have)


def differences(want: dict[str, Any], have: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {key: (have.get(key), value) for key, value in want.items() if not matches(value, have.get(key))}


def plan(state: State, desired: Desired, prune: bool = False) -> list[Step]:
    """Deletes first (reverse dependency order, freeing names, addresses and subnets), then creates
    and updates in dependency order."""
    index = Index(state)
    steps: list[Step] = []
    if desired.config is not None:
        changes = differences(normalize(CONFIG, desired.config, CONFIG), state.config)
        if changes:
            steps.append(Step("update", CONFIG, "cloud", changes))
    for kind, entries in desired.resources.items():
        for entry in entries:
            steps += _resource_steps(index, desired, kind, entry)
    if prune:
        steps += _prune_steps(index, state, desired)
    deletes = sorted((s for s in steps if s.mark == "-"), key=lambda s: -s.phase)
    others = sorted((s for s in steps if s.mark != "-"), key=lambda s: s.phase)
    return _unique(deletes) + others


def _resource_steps(index: Index, desired: Desired, kind: str, entry: dict[str, Any]) -> list[Step]:
    name = entry["name"]

    def resolve(ref_kind: str, ref: str) -> str:
        if index.lookup(ref_kind, ref) is None and ref not in desired.names(ref_kind):
            raise InvalidInput(f"refers to {singular(ref_kind)} {ref!r}, which is neither in the file nor on "
                               "the server", field=f"{kind}[{name}]")
        return index.resolve(ref_kind, ref)

    want = normalize(kind, to_api(kind, entry, resolve), f"{kind}[{name}]")
    have = index.get(kind, name)
    if have is None:
        # Shown as the file says it (names, not ids that do not exist yet).
        steps = [Step("create", kind, name, {k: (None, v) for k, v in entry.items()
                                              if k not in ("name", ROUTER_INTERFACES)})]
    else:
        changes = differences(want, have)
        steps = [Step("update", kind, name, changes, rid=have["id"])] if changes else []
    if kind == "routers" and ROUTER_INTERFACES in entry:
        steps += _interface_steps(index, desired, name, have, entry[ROUTER_INTERFACES] or [])
    return steps


def _interface_steps(index: Index, desired: Desired, router: str, have: dict[str, Any] | None,
                     subnets: list[str]) -> list[Step]:
    attached = {iface["subnet_id"] for iface in (have or {}).get("interfaces", [])}
    rid = have["id"] if have else None
    for subnet in subnets:
        if index.lookup("subnets", str(subnet)) is None and str(subnet) not in desired.names("subnets"):
            raise InvalidInput(f"interface on subnet {subnet!r}, which is neither in the file nor on the server",
                               field=f"routers[{router}].{ROUTER_INTERFACES}")
    wanted = {str(s): index.lookup("subnets", str(s)) for s in subnets}
    steps = [Step("add-interface", "routers", router, rid=rid, subnet=label, subnet_id=sid)
             for label, sid in wanted.items() if sid is None or sid not in attached]
    steps += [Step("remove-interface", "routers", router, rid=rid, subnet=index.label("subnets", sid), subnet_id=sid)
              for sid in sorted(attached - set(wanted.values()))]
    return steps


def _prune_steps(index: Index, state: State, desired: Desired) -> list[Step]:
    steps: list[Step] = []
    for kind, entries in desired.resources.items():
        listed = {e["name"] for e in entries}
        for name, item in index.by_name[kind].items():
            if name in listed:
                continue
            steps.append(Step("delete", kind, name, rid=item["id"]))
            if kind in ("routers", "subnets"):
                steps += _detach(index, state, item, kind)
    return steps


def _detach(index: Index, state: State, item: dict[str, Any], kind: str) -> list[Step]:
    """Interfaces that would block deleting this router or subnet."""
    steps = []
    for router in state.resources.get("routers", []):
        for iface in router.get("interfaces", []):
            if router["id"] == item["id"] or iface["subnet_id"] == item["id"]:
                steps.append(Step("remove-interface", "routers", router.get("name") or router["id"], rid=router["id"],
                                  subnet=index.label("subnets", iface["subnet_id"]), subnet_id=iface["subnet_id"]))
    return steps


def _unique(steps: list[Step]) -> list[Step]:
    seen: set[tuple[str, str, str | None, str | None]] = set()
    result = []
    for step in steps:
        key = (step.action, step.kind, step.rid, step.subnet_id)
        if key not in seen:
            seen.add(key)
            result.append(step)
    return result
