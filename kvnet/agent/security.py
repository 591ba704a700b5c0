"""compile_filters(model, ports) -> the port filters and remote-group address sets of one host. Pure.

A local VM port with port security gets a `PortFilter`: the addresses it may send from, the MACs it
receives for, and the union of its groups' rules. A rule's remote group becomes an `AddressSet` of that
group's members across the cloud, recomputed from the model, so members that come and go on any host
change the set (and only the set) on every host that uses it.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import astuple

from kvnet.agent.model import CloudModel
from kvnet.model.resources import Port, SecurityGroup, SecurityGroupRule
from kvnet.model.security import PROTOCOLS
from kvnet.plan import PortPlan
from kvnet.plan.security import AddressSet, PortFilter, RuleMatch


def compile_filters(model: CloudModel, ports: Iterable[PortPlan]) -> tuple[tuple[PortFilter, ...],
                                                                           tuple[AddressSet, ...]]:
    groups: dict[str, SecurityGroup] = model.by_kind[SecurityGroup.kind]  # type: ignore[assignment]
    filters = []
    for plan in ports:
        port = model.ports.get(plan.port_id)
        network = model.networks.get(plan.network_id)
        if port is None or network is None or not port.port_security_enabled:
            continue  # router legs, ports without port security: nothing to filter
        rules = {rule_match(rule, group_id) for group_id in port.security_group_ids
                 if (group := groups.get(group_id)) is not None for rule in group.rules}
        filters.append(PortFilter(
            port_id=port.id, device=plan.device, network_id=network.id, ct_zone=network.ct_zone or 0,
            mac=plan.mac, sources=sources(port), macs=tuple(sorted({plan.mac, *pair_macs(port)})),
            # A network without a zone (made before kvnet had them) would share zone 0: deny until it has one.
            rules=tuple(sorted(rules, key=rule_order)) if network.ct_zone else ()))
    wanted = {r.remote_group for f in filters for r in f.rules if r.remote_group}
    return tuple(filters), address_sets(model, wanted)


def rule_order(rule: RuleMatch) -> tuple[object, ...]:
    """A total order over rules whose fields may be unset (None sorts first)."""
    return tuple((value is not None, value) for value in astuple(rule))


def rule_match(rule: SecurityGroupRule, group_id: str) -> RuleMatch:
    # A name, or the number of a protocol kvnet has no name for.
    proto = None if rule.protocol is None else PROTOCOLS.get(rule.protocol, None) or int(rule.protocol)
    icmp = rule.protocol in ("icmp", "icmpv6")
    return RuleMatch(
        direction=rule.direction, ethertype=rule.ethertype, protocol=proto,
        port_min=None if icmp else rule.port_range_min, port_max=None if icmp else rule.port_range_max,
        icmp_type=rule.port_range_min if icmp else None, icmp_code=rule.port_range_max if icmp else None,
        remote_prefix=rule.remote_ip_prefix, remote_group=rule.remote_group_id)


def sources(port: Port) -> tuple[tuple[str, str], ...]:
    mac = port.mac_address or ""
    out = {(str(ipaddress.ip_network(ip)), mac) for ip in port.ips()}
    out |= {(pair.ip_address, pair.mac_address or mac) for pair in port.allowed_address_pairs}
    if mac:
        out.add((f"{link_local(mac)}/128", mac))
    return tuple(sorted(out))


def pair_macs(port: Port) -> set[str]:
    return {pair.mac_address for pair in port.allowed_address_pairs if pair.mac_address}


def link_local(mac: str) -> str:
    """The IPv6 link-local address a guest derives from its MAC (EUI-64)."""
    octets = [int(b, 16) for b in mac.split(":")]
    octets[0] ^= 0x02
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80, 0, 0, 0, 0, 0, 0, *octets[:3], 0xFF, 0xFE, *octets[3:]])))


def address_sets(model: CloudModel, group_ids: set[str]) -> tuple[AddressSet, ...]:
    if not group_ids:
        return ()
    members: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = defaultdict(list)
    for port in model.ports.values():
        if not port.port_security_enabled:
            continue
        for group_id in set(port.security_group_ids) & group_ids:
            members[group_id] += [ipaddress.ip_network(ip) for ip in port.ips()]
            members[group_id] += [ipaddress.ip_network(p.ip_address) for p in port.allowed_address_pairs]
    out = []
    for group_id in sorted(group_ids):
        nets = members.get(group_id, [])
        v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
        v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
        out.append(AddressSet(group_id, without_overlaps(v4), without_overlaps(v6)))
    return tuple(out)


def without_overlaps(nets: list[ipaddress.IPv4Network] | list[ipaddress.IPv6Network]) -> tuple[str, ...]:
    """The networks, minus those inside another (an interval set refuses overlaps). Neighbours are not
    merged: each member stays one element, so a member coming or going changes only its own."""
    kept: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for net in sorted(set(nets), key=lambda n: (n.network_address, -n.prefixlen)):
        if not kept or not net.subnet_of(kept[-1]):  # type: ignore[arg-type]
            kept.append(net)
    return tuple(str(n) for n in kept)
