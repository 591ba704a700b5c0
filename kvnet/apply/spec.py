"""The cloud file: resources listed by kind, each with a name; references between them by name.

```yaml
project: blue                   # the project of every entry that gives no project_id (default: default)
config: {underlay_mtu: 1500}
hosts: [{name: h1, tunnel_ip: 192.0.2.1, roles: [network, compute], physnets: {physnet-ext: ex0}}]
networks: [{name: blue-net, project_id: blue, network_type: vxlan}]
subnets: [{name: blue-subnet, network: blue-net, cidr: 10.10.0.0/24}]
routers: [{name: r1, gateway: ext, interfaces: [blue-subnet]}]
ports: [{name: vm1, network: blue-net, host: h2, fixed_ips: [{subnet: blue-subnet, ip_address: 10.10.0.10}],
         security_groups: [web], qos_policy: silver}]
floatingips: [{name: vm1-fip, network: ext, port: vm1}]
```
Fields are the API's; the reference keys below (`network`, `port`, `subnet`, ...) replace the API's id
fields. Omitted fields are left to the server (and never count as a difference).

A resource is known by its kind, project and name (a host by its name alone), so the same name may
stand in several projects. A reference resolves in the referring entry's project
(`kvnet.apply.plan.Resolver`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from kvnet.errors import InvalidInput
from kvnet.model.parse import parse_model
from kvnet.model.resources import DEFAULT_PROJECT, RESOURCE_TYPES, CloudConfig, Host

# Creation order; deletes go the other way.
KINDS = ["hosts", "qospolicies", "securitygroups", "networks", "subnets", "routers", "ports", "floatingips"]
CONFIG = "config"
PROJECT = "project"


@dataclass(frozen=True)
class Ref:
    key: str          # in the file; "a[].b" means key b of every item of list a
    field: str        # in the API; dotted for nested: "external_gateway.network_id"
    kind: str         # what it names
    many: bool = False


REFS: dict[str, list[Ref]] = {
    "subnets": [Ref("network", "network_id", "networks")],
    "ports": [Ref("network", "network_id", "networks"), Ref("host", "binding_host", "hosts"),
              Ref("qos_policy", "qos_policy_id", "qospolicies"),
              Ref("security_groups", "security_group_ids", "securitygroups", many=True),
              Ref("fixed_ips[].subnet", "fixed_ips[].subnet_id", "subnets")],
    "routers": [Ref("gateway", "external_gateway.network_id", "networks")],
    "floatingips": [Ref("network", "floating_network_id", "networks"), Ref("port", "port_id", "ports")],
    "securitygroups": [Ref("rules[].remote_group", "rules[].remote_group_id", "securitygroups")],
}
# Keys of the file that are not fields of the resource: managed as steps of their own.
ROUTER_INTERFACES = "interfaces"

ResolveRef = Callable[[str, str], str]   # (kind, name) -> id, for one referring entry


def singular(kind: str) -> str:
    return kind[:-3] + "y" if kind.endswith("ies") else kind.removesuffix("s")


def scope(kind: str, project: str) -> str:
    """The project a name is unique in: hosts are the cloud's, named once."""
    return "" if kind == Host.kind else project


@dataclass
class Desired:
    config: dict[str, Any] | None = None
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    project: str = DEFAULT_PROJECT  # of the entries that name none

    def project_of(self, kind: str, entry: dict[str, Any]) -> str:
        return scope(kind, str(entry.get("project_id") or self.project))

    def entry(self, kind: str, project: str, name: str) -> dict[str, Any] | None:
        return next((e for e in self.resources.get(kind, [])
                     if e["name"] == name and self.project_of(kind, e) == project), None)

    def projects(self) -> set[str]:
        """Every project the file speaks for (where --prune may delete)."""
        return {self.project} | {self.project_of(kind, e) for kind, entries in self.resources.items()
                                 for e in entries if kind != Host.kind}


def parse_file(text: str) -> Desired:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML: {exc}", field="file") from None
    if data is None:
        return Desired()
    if not isinstance(data, dict):
        raise InvalidInput("expected a mapping of kind -> list of resources", field="file")
    desired = Desired()
    project = data.get(PROJECT, DEFAULT_PROJECT)
    if not isinstance(project, str) or not project:
        raise InvalidInput("expected a project id", field=PROJECT)
    desired.project = project
    for kind, entries in data.items():
        if kind == PROJECT:
            continue
        if kind == CONFIG:
            if not isinstance(entries, dict):
                raise InvalidInput("expected a mapping of setting -> value", field=CONFIG)
            desired.config = entries
        elif kind in KINDS:
            desired.resources[kind] = _entries(desired, kind, entries)
        else:
            raise InvalidInput(f"unknown kind (expected {PROJECT}, {CONFIG} or one of {', '.join(KINDS)})",
                               field=str(kind))
    return desired


def _entries(desired: Desired, kind: str, entries: Any) -> list[dict[str, Any]]:
    if not isinstance(entries, list):
        raise InvalidInput("expected a list of resources", field=kind)
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise InvalidInput("every resource in the file needs a name", field=f"{kind}[{i}].name")
        key = (desired.project_of(kind, entry), entry["name"])
        if key in seen:
            where = f" in project {key[0]}" if key[0] else ""
            raise InvalidInput(f"{entry['name']!r} is listed twice{where}", field=f"{kind}[{i}].name")
        seen.add(key)
        if kind == "routers" and not isinstance(entry.get(ROUTER_INTERFACES, []), list):
            raise InvalidInput("expected a list of subnet names", field=f"{kind}[{i}].{ROUTER_INTERFACES}")
    return entries


def to_api(kind: str, entry: dict[str, Any], resolve: ResolveRef) -> dict[str, Any]:
    """The API body for a file entry: names of other resources replaced by `resolve`'s ids."""
    body = copy.deepcopy(entry)
    if kind == "routers":
        body.pop(ROUTER_INTERFACES, None)
    for ref in REFS.get(kind, []):
        _rewrite(body, ref.key, ref.field, lambda name, r=ref: _resolve_value(resolve, r, name))
    return body


def normalize(kind: str, body: dict[str, Any], where: str) -> dict[str, Any]:
    """The body as the server would store the fields it gives (validated, canonical forms)."""
    cls = CloudConfig if kind == CONFIG else RESOURCE_TYPES[kind]
    try:
        model = parse_model(cls, body)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=f"{where}.{exc.field}" if exc.field else where) from None
    dumped = model.model_dump(mode="json", exclude_unset=True)
    return {key: dumped[key] for key in body if key in dumped}


def _resolve_value(resolve: ResolveRef, ref: Ref, value: Any) -> Any:
    if value is None:
        return None
    if ref.many:
        if not isinstance(value, list):
            raise InvalidInput(f"expected a list of {ref.kind} names", field=ref.key)
        return [resolve(ref.kind, str(v)) for v in value]
    return resolve(ref.kind, str(value))


def _rewrite(body: dict[str, Any], key: str, dest: str, convert: Callable[[Any], Any]) -> None:
    if "[]." in key:
        list_key, inner = key.split("[].", 1)
        dest_inner = dest.split("[].", 1)[1]
        for item in body.get(list_key) or []:
            if isinstance(item, dict):
                _rewrite(item, inner, dest_inner, convert)
        return
    if key not in body:
        return
    value = convert(body.pop(key))
    top, *rest = dest.split(".")
    if value is None or not rest:
        body[top] = value          # `gateway: null` clears the whole external_gateway
        return
    target = body.setdefault(top, {})
    for part in rest[:-1]:
        target = target.setdefault(part, {})
    target[rest[-1]] = value
