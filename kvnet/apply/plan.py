"""The plan: current resources + desired file -> the steps that make one into the other. Pure.

Resources are matched by kind, project and name. A listed resource that does not exist is created; one
that exists is updated when a field the file gives differs from the stored value (fields the file
leaves out, and what the server computes, never count); with `prune`, named resources of the kinds the
file lists, in the projects it speaks for, that the file does not list are deleted. Router interfaces
are steps of their own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from kvnet.apply.spec import CONFIG, KINDS, ROUTER_INTERFACES, Desired, normalize, scope, singular, to_api
from kvnet.errors import Conflict, InvalidInput
from kvnet.model.resources import DEFAULT_PROJECT, is_uuid

Action = Literal["create", "update", "delete", "add-interface", "remove-interface"]
MARKS: dict[str, str] = {"create": "+", "add-interface": "+", "update": "~", "delete": "-",
                         "remove-interface": "-"}
# Where each step runs among the kinds; interfaces go after routers, before ports.
PHASES = [CONFIG, "hosts", "qospolicies", "securitygroups", "networks", "subnets", "routers", "interfaces",
          "ports", "floatingips"]
assert [p for p in PHASES if p in KINDS] == KINDS
# Each project's default security group is the server's (made on first use): never pruned.
DEFAULT_GROUP = ("securitygroups", "default")


@dataclass(frozen=True)
class Step:
    action: Action
    kind: str                        # a resource kind, or "config"
    name: str
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)   # field -> (old, new)
    rid: str | None = None           # id of the existing resource (update, delete, interfaces)
    subnet: str = ""                 # interface steps: the subnet's name (or id if it has none)
    subnet_id: str | None = None     # interface steps on an existing subnet
    project: str = DEFAULT_PROJECT   # "" for hosts and the config

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


Key = tuple[str, str]  # (project, name)


class Index:
    """Named resources of the current state, by kind and (project, name), or by id. Two with one name
    in one project are an error only when the file needs that name."""

    def __init__(self, state: State) -> None:
        self.by_key: dict[str, dict[Key, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        self.by_id: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for kind, items in state.resources.items():
            for item in items:
                self.add(kind, item)

    @staticmethod
    def key(kind: str, item: dict[str, Any]) -> Key:
        return scope(kind, item.get("project_id") or DEFAULT_PROJECT), item.get("name") or ""

    def get(self, kind: str, project: str, name: str) -> dict[str, Any] | None:
        found = self.by_key[kind].get((project, name), [])
        if len(found) > 1:
            where = f" in project {project}" if project else ""
            raise Conflict(f"more than one of the server's {kind} is named {name!r}{where}; rename or delete one "
                           "before applying", field=f"{kind}[{name}]")
        return found[0] if found else None

    def named(self, kind: str) -> list[tuple[Key, dict[str, Any]]]:
        return [(key, item) for key, items in self.by_key[kind].items() if key[1] for item in items]

    def add(self, kind: str, item: dict[str, Any]) -> None:
        self.by_id[kind][item["id"]] = item
        self.by_key[kind][self.key(kind, item)].append(item)

    def label(self, kind: str, rid: str) -> str:
        item = self.by_id[kind].get(rid)
        return (item.get("name") if item else None) or rid


def placeholder(kind: str, name: str) -> str:
    """How the plan shows the id of a resource this run creates."""
    return f"<new {singular(kind)} {name}>"


class Resolver:
    """Names in the file to ids, as seen from one project.

    A name resolves in the referring entry's project first: among the file's entries (to be created
    or already on the server) and the server's resources. Failing that, only what is meant to be used
    across projects: the operator's (default project) resources and shared or external networks.
    Another tenant's private resource is never found. A full UUID is taken as an id. Resources this
    run creates resolve to `new_ids` (given by `execute`) or, in the plan, to a placeholder."""

    def __init__(self, index: Index, desired: Desired, new_ids: dict[tuple[str, str, str], str] | None = None):
        self.index = index
        self.desired = desired
        self.new_ids = new_ids

    def resolve(self, kind: str, project: str, ref: str, where: str) -> str:
        if is_uuid(ref):
            return ref
        project = scope(kind, project)
        found = self._find(kind, project, ref)
        if found is None:
            shared = {p for p in self._projects_with(kind, ref) - {project} if self._usable_across(kind, p, ref)}
            if len(shared) > 1:
                raise InvalidInput(f"refers to {singular(kind)} {ref!r}, which projects {', '.join(sorted(shared))} "
                                   "all share; give its id", field=where)
            found = self._find(kind, shared.pop(), ref) if shared else None
        if found is None:
            raise InvalidInput(f"refers to {singular(kind)} {ref!r}, which is neither in the file nor on the server"
                               + (f" in project {project}" if project else ""), field=where)
        return found

    def _find(self, kind: str, project: str, name: str) -> str | None:
        item = self.index.get(kind, project, name)
        if item is not None:
            return str(item["id"])
        if self.desired.entry(kind, project, name) is None:
            return None
        return self.new_ids[(kind, project, name)] if self.new_ids is not None else placeholder(kind, name)

    def _projects_with(self, kind: str, name: str) -> set[str]:
        on_server = {p for (p, n), _ in self.index.named(kind) if n == name}
        return on_server | {self.desired.project_of(kind, e) for e in self.desired.resources.get(kind, [])
                            if e["name"] == name}

    def _usable_across(self, kind: str, project: str, name: str) -> bool:
        if project == DEFAULT_PROJECT:
            return True
        if kind != "networks":
            return False
        item = self.desired.entry(kind, project, name) or self.index.get(kind, project, name) or {}
        return bool(item.get("shared") or item.get("external"))


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
    resolver = Resolver(index, desired)
    steps: list[Step] = []
    if desired.config is not None:
        changes = differences(normalize(CONFIG, desired.config, CONFIG), state.config)
        if changes:
            steps.append(Step("update", CONFIG, "cloud", changes, project=""))
    for kind, entries in desired.resources.items():
        for entry in entries:
            steps += _resource_steps(index, resolver, kind, entry)
    if prune:
        steps += _prune_steps(index, state, desired)
    deletes = sorted((s for s in steps if s.mark == "-"), key=lambda s: -s.phase)
    others = sorted((s for s in steps if s.mark != "-"), key=lambda s: s.phase)
    return _unique(deletes) + others


def api_body(resolver: Resolver, kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as the API body, its references resolved from the entry's own project."""
    project = resolver.desired.project_of(kind, entry)
    where = f"{kind}[{entry['name']}]"
    body = to_api(kind, entry, lambda ref_kind, ref: resolver.resolve(ref_kind, project, ref, where))
    if project and "project_id" not in body:
        body["project_id"] = project
    return body


def _resource_steps(index: Index, resolver: Resolver, kind: str, entry: dict[str, Any]) -> list[Step]:
    name = entry["name"]
    project = resolver.desired.project_of(kind, entry)
    want = normalize(kind, api_body(resolver, kind, entry), f"{kind}[{name}]")
    have = index.get(kind, project, name)
    if have is None:
        # Shown as the file says it (names, not ids that do not exist yet).
        steps = [Step("create", kind, name, {k: (None, v) for k, v in entry.items()
                                              if k not in ("name", ROUTER_INTERFACES)}, project=project)]
    else:
        changes = differences(want, have)
        steps = [Step("update", kind, name, changes, rid=have["id"], project=project)] if changes else []
    if kind == "routers" and ROUTER_INTERFACES in entry:
        steps += _interface_steps(index, resolver, entry, have)
    return steps


def _interface_steps(index: Index, resolver: Resolver, router: dict[str, Any],
                     have: dict[str, Any] | None) -> list[Step]:
    name, project = router["name"], resolver.desired.project_of("routers", router)
    attached = {iface["subnet_id"] for iface in (have or {}).get("interfaces", [])}
    rid = have["id"] if have else None
    where = f"routers[{name}].{ROUTER_INTERFACES}"
    wanted = {str(s): resolver.resolve("subnets", project, str(s), where) for s in router[ROUTER_INTERFACES] or []}
    steps = [Step("add-interface", "routers", name, rid=rid, subnet=label,
                  subnet_id=sid if sid in index.by_id["subnets"] else None, project=project)
             for label, sid in wanted.items() if sid not in attached]
    steps += [Step("remove-interface", "routers", name, rid=rid, subnet=index.label("subnets", sid), subnet_id=sid,
                   project=project)
              for sid in sorted(attached - set(wanted.values()))]
    return steps


def _prune_steps(index: Index, state: State, desired: Desired) -> list[Step]:
    steps: list[Step] = []
    projects = desired.projects() | {""}
    for kind, entries in desired.resources.items():
        listed = {(desired.project_of(kind, e), e["name"]) for e in entries}
        for key, item in index.named(kind):
            if key in listed or key[0] not in projects or (kind, key[1]) == DEFAULT_GROUP:
                continue
            steps.append(Step("delete", kind, key[1], rid=item["id"], project=key[0]))
            if kind in ("routers", "subnets"):
                steps += _detach(index, state, item)
    return steps


def _detach(index: Index, state: State, item: dict[str, Any]) -> list[Step]:
    """Interfaces that would block deleting this router or subnet."""
    steps = []
    for router in state.resources.get("routers", []):
        for iface in router.get("interfaces", []):
            if router["id"] == item["id"] or iface["subnet_id"] == item["id"]:
                steps.append(Step("remove-interface", "routers", router.get("name") or router["id"], rid=router["id"],
                                  subnet=index.label("subnets", iface["subnet_id"]), subnet_id=iface["subnet_id"],
                                  project=Index.key("routers", router)[0]))
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
