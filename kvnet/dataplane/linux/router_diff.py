"""diff_routers(desired, observed) -> RouterChanges: per-namespace command lines. Pure: no I/O.

Namespaces the plan no longer has are deleted whole (their legs, and with them the host ends, go
too). Inside a namespace every object is kvnet's, so anything not desired is deleted one by one --
never flushed: what stays the same is not touched, and traffic through it keeps flowing. A namespace
that could not be read (`unknown`) is left exactly as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

from kvnet.dataplane.linux.nat import table_script
from kvnet.dataplane.linux.router_state import ROUTE_PROTO, LegLink, RouterNs
from kvnet.plan import NeighSpec, RouteSpec, RuleSpec

T = TypeVar("T")

# What a new namespace starts with.
KERNEL_RULES = (RuleSpec(0, "local"), RuleSpec(32766, "main"), RuleSpec(32767, "default"))
KINDS = ("router_ns", "leg", "address", "route", "rule", "router_neigh", "nat")  # distinct from the L2 kinds


@dataclass
class RouterChanges:
    create_ns: list[str] = field(default_factory=list)
    delete_ns: list[str] = field(default_factory=list)
    # The legs of each namespace to delete, deleted first: a veth dies at once with one of its ends,
    # whereas a deleted namespace takes its veths (and their host ends on the bridges) down later.
    delete_legs: dict[str, list[str]] = field(default_factory=dict)
    veth_add: list[tuple[str, LegLink]] = field(default_factory=list)  # (namespace, leg): run in the host netns
    ns_lines: dict[str, list[str]] = field(default_factory=dict)  # namespace -> `ip -batch` lines
    ns_objects: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # the (kind, key) of each line
    nft: dict[str, str] = field(default_factory=dict)  # namespace -> nft script
    announce: list[tuple[str, str, str, str]] = field(default_factory=list)  # (namespace, dev, ip, mac)
    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    changed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def __len__(self) -> int:
        return sum(self.added.values()) + sum(self.changed.values()) + sum(self.removed.values())

    def stale_objects(self, observed: dict[str, RouterNs]) -> int:
        """Kernel objects kvnet owns that the plan does not have (deleted namespaces count everything in them)."""
        inside = sum(v for k, v in self.removed.items() if k != "router_ns")
        return inside + sum(observed[name].object_count() + 1 for name in self.delete_ns)


def diff_routers(desired: dict[str, RouterNs], observed: dict[str, RouterNs],
                 unknown: Collection[str] = ()) -> RouterChanges:
    changes = RouterChanges()
    for name in sorted(set(observed) - set(desired)):
        changes.delete_ns.append(name)
        changes.delete_legs[name] = sorted(observed[name].links)
        changes.removed["router_ns"] += 1
    for name, want in sorted(desired.items()):
        if name in unknown:
            continue
        have = observed.get(name)
        if have is None:
            changes.create_ns.append(name)
            changes.added["router_ns"] += 1
            have = RouterNs(name=name, rules=set(KERNEL_RULES))
        _diff_ns(want, have, changes)
    return changes


class _Lines(list[str]):
    """A namespace's batch lines, each with the (kind, key) of the object it writes."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: list[tuple[str, str]] = []

    def add(self, line: str, kind: str, key: str) -> None:
        self.append(line)
        self.objects.append((kind, key))


def _diff_ns(want: RouterNs, have: RouterNs, changes: RouterChanges) -> None:
    lines = _Lines()
    gone = set(have.links) - set(want.links)
    for leg in sorted(gone):
        lines.add(f"link del dev {leg}", "leg", leg)
    changes.removed["leg"] += len(gone)
    for name, leg in sorted(want.links.items()):
        if name not in have.links:
            changes.veth_add.append((want.name, leg))
            changes.added["leg"] += 1
        elif leg.same(have.links[name]):
            continue
        else:
            changes.changed["leg"] += 1
        lines.add(f"link set dev {name} address {leg.mac} mtu {leg.mtu} up", "leg", name)
    have_addrs = {a for a in have.addresses if a[0] not in gone}
    for dev, addr in sorted(have_addrs - want.addresses):
        lines.add(f"addr del {addr} dev {dev}", "address", f"{addr} dev {dev}")
        changes.removed["address"] += 1
    for dev, addr in sorted(want.addresses - have_addrs):
        lines.add(f"addr add {addr} dev {dev}", "address", f"{addr} dev {dev}")
        changes.added["address"] += 1
        ip = addr.split("/")[0]
        if want.announce.get(ip) == dev:
            changes.announce.append((want.name, dev, ip, want.links[dev].mac))
    _diff_rules(want.rules, have.rules, lines, changes)
    _diff_routes(want.routes, {r for r in have.routes if r.dev not in gone}, lines, changes)
    _diff_neighbours(want.neighbours, {n for n in have.neighbours if n.dev not in gone}, lines, changes)
    if lines:
        changes.ns_lines[want.name] = list(lines)
        changes.ns_objects[want.name] = lines.objects
    if want.nft_digest != have.nft_digest:
        changes.nft[want.name] = table_script(want.nft_digest, want.nft_text)
        (changes.changed if have.nft_digest else changes.added)["nat"] += 1


def _rule_args(rule: RuleSpec) -> str:
    src = f" from {rule.src}" if rule.src else ""
    mark = f" fwmark {rule.fwmark:#x}" if rule.fwmark is not None else ""
    return f"pref {rule.priority}{src}{mark} lookup {rule.table}"


def _diff_rules(want: set[RuleSpec], have: set[RuleSpec], lines: _Lines, changes: RouterChanges) -> None:
    # Adds first: a rule moving to another priority (the kernel's `local`, back to 0 from an older
    # layout) is never missing in between. kvnet's plans have only the kernel's three rules.
    for rule in sorted(want - have):
        lines.add(f"rule add {_rule_args(rule)}", "rule", _rule_args(rule))
        changes.added["rule"] += 1
    for rule in sorted(have - want):
        lines.add(f"rule del {_rule_args(rule)}", "rule", _rule_args(rule))
        changes.removed["rule"] += 1


def _route_args(route: RouteSpec) -> str:
    via = f" via {route.via}" if route.via else ""
    onlink = " onlink" if route.onlink else ""
    return f"{route.dst} table {route.table}{via} dev {route.dev}{onlink} proto {ROUTE_PROTO}"


def _diff_keyed(want: set[T], have: set[T], key: Callable[[T], Hashable], delete: Callable[[T], str],
                replace: Callable[[T], str], kind: str, lines: _Lines, changes: RouterChanges) -> None:
    """Objects the kernel indexes by `key`: delete what no longer has its key, `replace` what differs
    (a replace of an existing key is a change, not a delete + add)."""
    want_keys = {key(o) for o in want}
    have_keys = {key(o) for o in have}
    for obj in sorted(have - want):
        if key(obj) not in want_keys:
            lines.add(delete(obj), kind, " ".join(map(str, key(obj))))
            changes.removed[kind] += 1
    for obj in sorted(want - have):
        lines.add(replace(obj), kind, " ".join(map(str, key(obj))))
        (changes.changed if key(obj) in have_keys else changes.added)[kind] += 1


def _diff_routes(want: set[RouteSpec], have: set[RouteSpec], lines: _Lines, changes: RouterChanges) -> None:
    _diff_keyed(want, have, lambda r: (r.table, r.dst),
                lambda r: f"route del {r.dst} table {r.table} proto {ROUTE_PROTO}",
                lambda r: f"route replace {_route_args(r)}", "route", lines, changes)


def _diff_neighbours(want: set[NeighSpec], have: set[NeighSpec], lines: _Lines, changes: RouterChanges) -> None:
    _diff_keyed(want, have, lambda n: (n.dev, n.ip), lambda n: f"neigh del {n.ip} dev {n.dev}",
                lambda n: f"neigh replace {n.ip} lladdr {n.mac} dev {n.dev} nud permanent", "router_neigh",
                lines, changes)
