"""Derived names must be unique on their host: compile refuses what collides instead of merging it.

Kernel and OVS names carry only the first 10 hex digits of an id (`kvnet.plan.names.short_id`). The
server refuses new ids whose short ids collide, but a model written before that (or restored from a
backup) may still hold two. Two networks sharing `kvb-<id>` would share a bridge -- one tenant's frames
in the other's network -- so `refuse_collisions` plans neither of two resources whose names collide
here (bridges and tunnels from network ids, `kvt-` devices from port ids, router namespaces from
router ids, legs inside one namespace), nor what hangs off them (a router with a leg on a refused
network or device, the ports of a refused router's legs), and returns one `NameConflict` per name so
the agent reports the ports left out as ERROR, naming the collision. Pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from kvnet.plan import NameConflict, NetworkPlan, PortPlan, RouterPlan, short_id

T = TypeVar("T")


@dataclass
class _Refused:
    kind: str
    name: str
    ids: tuple[str, ...]
    networks: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    routers: set[tuple[str, str]] = field(default_factory=set)  # (router id, instance)


@dataclass(frozen=True)
class Checked:
    networks: tuple[NetworkPlan, ...]
    ports: tuple[PortPlan, ...]
    routers: tuple[RouterPlan, ...]
    conflicts: tuple[NameConflict, ...]


def _collisions(items: Iterable[T], key: Callable[[T], Hashable]) -> list[list[T]]:
    groups: dict[Hashable, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return [group for group in groups.values() if len(group) > 1]


def _router_key(router: RouterPlan) -> tuple[str, str]:
    return router.router_id, router.instance


def refuse_collisions(networks: tuple[NetworkPlan, ...], ports: tuple[PortPlan, ...],
                      routers: tuple[RouterPlan, ...]) -> Checked:
    refused: list[_Refused] = []
    for group in _collisions(networks, lambda n: n.bridge):
        ids = tuple(sorted({n.network_id for n in group}))
        refused.append(_Refused("bridge", group[0].bridge, ids, networks={n.network_id for n in group}))
    for group in _collisions(ports, lambda p: p.device):
        ids = tuple(sorted({p.port_id for p in group}))
        refused.append(_Refused("tap", group[0].device, ids, devices={group[0].device}))
    for group in _collisions(routers, lambda r: (short_id(r.router_id), r.instance)):
        name = f"kvr-{short_id(group[0].router_id)}{'-' + group[0].instance if group[0].instance else ''}"
        refused.append(_Refused("router_ns", name, tuple(sorted({r.router_id for r in group})),
                                routers={_router_key(r) for r in group}))
    for router in routers:
        for legs in _collisions(router.legs, lambda leg: leg.name):
            refused.append(_Refused("leg", legs[0].name, (router.router_id,), routers={_router_key(router)}))
    if not refused:
        return Checked(networks, ports, routers, ())
    conflicts = []
    for item in refused:  # what hangs off a refused name goes with it
        item.routers |= {_router_key(r) for r in routers
                         if any(leg.network_id in item.networks or leg.device in item.devices for leg in r.legs)}
        item.devices |= {leg.device for r in routers if _router_key(r) in item.routers for leg in r.legs}
        left_out = sorted(p.port_id for p in ports if p.network_id in item.networks or p.device in item.devices)
        conflicts.append(NameConflict(item.kind, item.name, item.ids, tuple(left_out)))
    bad_networks = set().union(*(item.networks for item in refused))
    bad_devices = set().union(*(item.devices for item in refused))
    bad_routers = set().union(*(item.routers for item in refused))
    return Checked(
        networks=tuple(n for n in networks if n.network_id not in bad_networks),
        ports=tuple(p for p in ports if p.network_id not in bad_networks and p.device not in bad_devices),
        routers=tuple(r for r in routers if _router_key(r) not in bad_routers),
        conflicts=tuple(sorted(conflicts)))
