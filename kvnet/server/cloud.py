"""The cloud service: every write validates, allocates and commits in one store transaction.

The REST API (`kvnet.server.api`) is a thin layer over this class, and tests can drive it directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from kvnet.errors import InvalidInput, NotFound
from kvnet.model.parse import parse_resource
from kvnet.model.resources import (
    RESOURCE_TYPES,
    CloudConfig,
    FloatingIP,
    Host,
    Network,
    Port,
    Resource,
    Router,
    Subnet,
    kind_prefix,
    resource_key,
)
from kvnet.server.limits import AGENT_REPORT_MAX_BYTES, STATUS_DETAIL_MAX_BYTES, check_size
from kvnet.server.liveness import Liveness
from kvnet.server.rules import floatingips, networks, ports, routers, subnets
from kvnet.server.rules.common import load, remove, save
from kvnet.store.base import Event, Store
from kvnet.store.txn import Txn, transact

RULES: dict[str, ModuleType] = {
    Network.kind: networks, Subnet.kind: subnets, Port.kind: ports, Router.kind: routers,
    FloatingIP.kind: floatingips,
}
# Fields clients may not send: computed by the server, or written only by agents.
READ_ONLY = {"id", "kind"}


class Cloud:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.liveness = Liveness(store)

    # -- reads ----------------------------------------------------------------------------------
    def get(self, kind: str, rid: str) -> dict[str, Any]:
        _check_kind(kind)
        entry = self.store.get(resource_key(kind, rid))
        if entry is None:
            raise NotFound(f"no {kind[:-1]} with id {rid}", field="id")
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
        cls = _check_kind(kind)
        _reject_fields(data, READ_ONLY - {"id"} | cls.server_fields)
        parsed = parse_resource(kind, data)  # the id it gets stays the same across retries
        attempts = 0

        def write(txn: Txn) -> Resource:
            # The rules fill in allocations: a retry starts from a fresh parse, not the failed attempt's
            # object (re-parsing only on retries: a deep copy per create cost a quarter of its time).
            nonlocal attempts
            attempts += 1
            obj = parsed if attempts == 1 else parse_resource(kind, {**data, "id": parsed.id})
            if txn.get(obj.key) is not None:
                raise InvalidInput(f"{obj.ref()} already exists", field="id")
            _rules_call(kind, "create", txn, obj)
            save(txn, obj)
            return obj

        return self._commit(write)

    def update(self, kind: str, rid: str, changes: dict[str, Any]) -> dict[str, Any]:
        cls = _check_kind(kind)
        _reject_fields(changes, READ_ONLY | cls.server_fields)

        def write(txn: Txn) -> Resource:
            old = load(txn, cls, rid, field="id")
            new = parse_resource(kind, {**old.model_dump(mode="json"), **changes})
            _rules_call(kind, "update", txn, old, new)
            save(txn, new)
            return new

        return self._commit(write)

    def delete(self, kind: str, rid: str) -> None:
        cls = _check_kind(kind)

        def write(txn: Txn) -> None:
            obj = load(txn, cls, rid, field="id")
            _rules_call(kind, "delete", txn, obj)
            remove(txn, obj)

        transact(self.store, write)

    # -- actions --------------------------------------------------------------------------------
    def router_add_interface(self, router_id: str, subnet_id: str) -> dict[str, Any]:
        return self._commit(lambda txn: routers.add_interface(txn, load(txn, Router, router_id, "id"), subnet_id))

    def router_remove_interface(self, router_id: str, subnet_id: str) -> dict[str, Any]:
        return self._commit(
            lambda txn: routers.remove_interface(txn, load(txn, Router, router_id, "id"), subnet_id))

    def set_port_status(self, port_id: str, status: str, detail: dict[str, Any]) -> dict[str, Any]:
        """Written by agents: ACTIVE once the port is wired, with how long that took."""
        check_size("detail", detail, STATUS_DETAIL_MAX_BYTES)

        def write(txn: Txn) -> Port:
            port = load(txn, Port, port_id, field="id")
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
        _reject_fields(changes, READ_ONLY)

        def write(txn: Txn) -> Resource:
            current = txn.get(CloudConfig().key) or CloudConfig().model_dump(mode="json")
            new = parse_resource(CloudConfig.kind, {**current, **changes})
            save(txn, new)
            return new

        return self._commit(write)

    def _commit(self, write: Callable[[Txn], Resource]) -> dict[str, Any]:
        obj, _ = transact(self.store, write)
        return obj.model_dump(mode="json")


def _check_kind(kind: str) -> type[Resource]:
    cls = RESOURCE_TYPES.get(kind)
    if cls is None or kind == CloudConfig.kind:
        raise NotFound(f"unknown resource kind {kind!r}", field="kind")
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
