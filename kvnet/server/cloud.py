"""The cloud service: every write validates, allocates and commits in one store transaction.

Each write is a function of a transaction (`Write`), so that one call (`create`, `update`, ...) and a
batch of them (`batch`: `kvnet apply -f`) commit the same way: all of it, or nothing. The REST API
(`kvnet.server.api`) is a thin layer over this class, and tests can drive it directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from kvnet.errors import Conflict, IdTaken, InvalidInput, KvnetError, NotFound
from kvnet.model.parse import parse_model, parse_resource
from kvnet.model.resources import (
    RESOURCE_TYPES,
    CloudConfig,
    FloatingIP,
    Host,
    Network,
    Port,
    Resource,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
    canonical_id,
    kind_prefix,
    resource_key,
)
from kvnet.server import allocation
from kvnet.server.limits import AGENT_REPORT_MAX_BYTES, STATUS_DETAIL_MAX_BYTES, check_size
from kvnet.server.liveness import Liveness
from kvnet.server.rules import floatingips, hosts, networks, ports, routers, securitygroups, subnets
from kvnet.server.rules.common import load, remove, save
from kvnet.store.base import Event, Store
from kvnet.store.txn import Txn, transact

RULES: dict[str, ModuleType] = {
    Host.kind: hosts, Network.kind: networks, Subnet.kind: subnets, Port.kind: ports, Router.kind: routers,
    FloatingIP.kind: floatingips, SecurityGroup.kind: securitygroups,
}
# Fields clients may not send: computed by the server, or written only by agents.
READ_ONLY = {"id", "kind"}

Write = Callable[[Txn], Any]


class Cloud:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.liveness = Liveness(store)

    # -- reads ----------------------------------------------------------------------------------
    def get(self, kind: str, rid: str) -> dict[str, Any]:
        _check_kind(kind)
        entry = self.store.get(resource_key(kind, rid))
        if entry is None:
            raise NotFound(f"no {kind[:-1]} with id {rid[:80]}", field="id")
        return self._live([entry.value], kind)[0]

    def list(self, kind: str, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        _check_kind(kind)
        entries, _ = self.store.range(kind_prefix(kind))
        values = [e.value for e in entries]
        values = self._live(values, kind)
        for field, wanted in (filters or {}).items():
            values = [v for v in values if str(v.get(field)) == wanted]
        return values

    def _live(self, values: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
        """Hosts read up/down from their heartbeats; ports on a host that is down read DOWN."""
        if kind == Host.kind:
            return self.liveness.annotate_hosts(values)
        if kind == Port.kind and any(v.get("binding_host") for v in values):
            hosts = [e.value for e in self.store.range(kind_prefix(Host.kind))[0]]
            return self.liveness.annotate_ports(values, hosts)
        return values

    def snapshot(self) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        """Every resource, read at one revision: what an agent loads before it starts watching."""
        entries, revision = self.store.range(kind_prefix("")[:-1])
        resources: dict[str, list[dict[str, Any]]] = {kind: [] for kind in RESOURCE_TYPES}
        for entry in entries:
            kind = entry.key.split("/")[2]
            if kind in resources:
                resources[kind].append(entry.value)
        return revision, resources

    def events(self, from_revision: int, timeout: float) -> tuple[list[Event], int]:
        events = self.store.wait_events(kind_prefix("")[:-1], from_revision, timeout)
        events = [e for e in events if e.key.split("/")[2] in RESOURCE_TYPES]
        return events, self.store.revision()

    # -- writes ---------------------------------------------------------------------------------
    def create(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        chosen = isinstance(data, dict) and "id" in data
        for attempt in range(allocation.ID_ATTEMPTS):
            try:
                return self._commit(self.create_write(kind, data))
            except IdTaken:  # a server-picked id: pick another
                if chosen or attempt == allocation.ID_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def create_write(self, kind: str, data: dict[str, Any]) -> Write:
        """Creating one resource. An id the client gives must be a UUID not yet used; without one the
        resource gets a fresh UUID, kept across the transaction's retries."""
        cls = _check_kind(kind)
        _reject_fields(data, READ_ONLY - {"id"} | cls.server_fields)
        if "id" in data and kind != Host.kind:  # a host's id is its name, checked by the model
            try:
                data = {**data, "id": canonical_id(data["id"])}
            except ValueError as exc:
                raise InvalidInput(str(exc), field="id") from None
        parsed = parse_resource(kind, data)
        attempts = 0

        def write(txn: Txn) -> Resource:
            # The rules fill in allocations: a retry starts from a fresh parse, not the failed attempt's
            # object (re-parsing only on retries: a deep copy per create cost a quarter of its time).
            nonlocal attempts
            attempts += 1
            obj = parsed if attempts == 1 else parse_resource(kind, {**data, "id": parsed.id})
            if txn.get(obj.key) is not None:
                raise IdTaken(f"a {kind[:-1]} with id {obj.id} already exists", field="id")
            _rules_call(kind, "create", txn, obj)
            save(txn, obj)
            return obj

        return write

    def update(self, kind: str, rid: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._commit(self.update_write(kind, rid, changes))

    def update_write(self, kind: str, rid: str, changes: dict[str, Any]) -> Write:
        cls = _check_kind(kind)
        _reject_fields(changes, READ_ONLY | cls.server_fields)

        def write(txn: Txn) -> Resource:
            old = load(txn, cls, rid, field="id")
            new = parse_resource(kind, {**old.model_dump(mode="json"), **changes})
            _rules_call(kind, "update", txn, old, new)
            save(txn, new)
            return new

        return write

    def delete(self, kind: str, rid: str) -> None:
        transact(self.store, self.delete_write(kind, rid))

    def delete_write(self, kind: str, rid: str) -> Write:
        cls = _check_kind(kind)

        def write(txn: Txn) -> None:
            obj = load(txn, cls, rid, field="id")
            _rules_call(kind, "delete", txn, obj)
            remove(txn, obj)

        return write

    def batch(self, writes: list[Write]) -> tuple[list[Any], int | None]:
        """Several writes in one transaction: every one of them, or (any raising) none. Returns each
        write's result and the new revision. A failing write's error names it: `operations[i].<field>`."""

        def run_all(txn: Txn) -> list[Any]:
            results = []
            for i, write in enumerate(writes):
                try:
                    results.append(write(txn))
                except KvnetError as exc:
                    exc.field = f"operations[{i}].{exc.field}" if exc.field else f"operations[{i}]"
                    raise
            return results

        results, revision = transact(self.store, run_all)
        return [_dump(r) for r in results], revision

    # -- actions --------------------------------------------------------------------------------
    def router_add_interface(self, router_id: str, subnet_id: str) -> dict[str, Any]:
        return self._commit(self.interface_write(router_id, subnet_id, add=True))

    def router_remove_interface(self, router_id: str, subnet_id: str) -> dict[str, Any]:
        return self._commit(self.interface_write(router_id, subnet_id, add=False))

    def interface_write(self, router_id: str, subnet_id: str, *, add: bool) -> Write:
        action = routers.add_interface if add else routers.remove_interface
        return lambda txn: action(txn, load(txn, Router, router_id, "id"), subnet_id)

    def add_rule(self, group_id: str, rule: dict[str, Any]) -> dict[str, Any]:
        return self._commit(self.add_rule_write(group_id, rule))

    def add_rule_write(self, group_id: str, rule: dict[str, Any]) -> Write:
        """One rule into a group (its id: given as a UUID, or picked)."""
        if isinstance(rule, dict) and "id" in rule:
            try:
                rule = {**rule, "id": canonical_id(rule["id"])}
            except ValueError as exc:
                raise InvalidInput(str(exc), field="id") from None
        parsed = parse_model(SecurityGroupRule, rule)
        return lambda txn: securitygroups.add_rule(txn, load(txn, SecurityGroup, group_id, "id"),
                                                   parsed.model_copy())

    def remove_rule(self, group_id: str, rule_id: str) -> None:
        transact(self.store, self.remove_rule_write(group_id, rule_id))

    def remove_rule_write(self, group_id: str, rule_id: str) -> Write:
        return lambda txn: securitygroups.remove_rule(txn, load(txn, SecurityGroup, group_id, "id"), rule_id)

    def drain_host(self, name: str) -> dict[str, Any]:
        """Unbind every port bound to host `name` (they go DOWN; its agent then removes their objects),
        so that the host can be deleted."""

        def write(txn: Txn) -> dict[str, Any]:
            host = load(txn, Host, name, field="id")
            return {"host": host.id, "unbound_ports": hosts.drain(txn, host)}

        result, revision = transact(self.store, write)
        return {**result, "revision": revision or self.store.revision()}

    def set_port_status(self, port_id: str, status: str, detail: dict[str, Any], host: str) -> dict[str, Any]:
        """Written by agents: ACTIVE once the port is wired, with how long that took. Only the agent of
        the host the port is bound to may say: a host that lost the port (a VM moved away) reports from
        a stale view."""
        check_size("detail", detail, STATUS_DETAIL_MAX_BYTES)

        def write(txn: Txn) -> Port:
            port = load(txn, Port, port_id, field="id")
            if port.binding_host != host:
                bound = f"bound to host {port.binding_host}" if port.binding_host else "not bound to any host"
                raise Conflict(f"port {port.id} is {bound}; only its binding host reports its status, not "
                               f"{str(host)[:80]}", field="host")
            port.status = status  # type: ignore[assignment]  # validated by validate_assignment
            port.status_detail = detail
            save(txn, port)
            return port

        return self._commit(write)

    def host_heartbeat(self, name: str, agent: dict[str, Any]) -> dict[str, Any]:
        check_size("agent", agent, AGENT_REPORT_MAX_BYTES)

        def write(txn: Txn) -> Host:
            host = load(txn, Host, name, field="name")
            host.status, host.last_seen, host.agent = "up", time.time(), agent
            save(txn, host)
            return host

        host = self._commit(write)
        self.liveness.beat(name, agent)
        return host

    def config(self) -> dict[str, Any]:
        entry = self.store.get(CloudConfig().key)
        return entry.value if entry else CloudConfig().model_dump(mode="json")

    def set_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        return self._commit(self.config_write(changes))

    def config_write(self, changes: dict[str, Any]) -> Write:
        _reject_fields(changes, READ_ONLY)

        def write(txn: Txn) -> Resource:
            current = txn.get(CloudConfig().key) or CloudConfig().model_dump(mode="json")
            new = parse_resource(CloudConfig.kind, {**current, **changes})
            save(txn, new)
            return new

        return write

    def _commit(self, write: Write) -> dict[str, Any]:
        obj, _ = transact(self.store, write)
        return _dump(obj)


def _dump(result: Any) -> Any:
    return result.model_dump(mode="json") if isinstance(result, BaseModel) else result


def _check_kind(kind: str) -> type[Resource]:
    cls = RESOURCE_TYPES.get(kind)
    if cls is None or kind == CloudConfig.kind:
        raise NotFound(f"unknown resource kind {kind[:40]!r}", field="kind")
    return cls


def _reject_fields(data: dict[str, Any], fields: set[str] | frozenset[str]) -> None:
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a JSON object, got {type(data).__name__}")
    for name in sorted(fields & data.keys()):
        raise InvalidInput("is set by the server and cannot be given", field=name)


def _rules_call(kind: str, action: str, txn: Txn, *objs: Resource) -> None:
    module = RULES.get(kind)
    if module is not None:
        getattr(module, action)(txn, *objs)
