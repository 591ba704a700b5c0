"""render_filters(plan, devices, marks) -> the nftables objects that filter this host's ports. Pure.

Two tables, both kvnet's, both reconciled object by object (`nft_objects`):

`bridge kvnet` -- stateless, on every frame a kvnet bridge forwards:
  from_ports (prerouting, before everything else): `iifname vmap @out`: a port's frames go to its `o-` chain
       (anti-spoofing, then the gateway redirect of a FIP holder, then its mark), router legs and ports
       without port security are accepted; any other `kvt-` device is dropped -- a tap whose filter is
       not in place forwards nothing (fail closed).
  to_ports (forward): `oifname vmap @in`: frames to a port go to its `i-` chain (unicast only for its MACs,
       then its mark in the upper half); any other `kvt-` device gets nothing.
  to_host (input): nothing from a port or a tunnel reaches the host's own stack.
`inet kvnet` -- stateful, on the same frames as br_netfilter hands them to IP (bridge-nf-call-iptables):
  conntrack_zone  (prerouting, raw) `ct zone set iifname map @zones`: the bridge's network's zone,
                  before conntrack, so two tenants with the same addresses never share an entry.
  security_groups (forward) the sender's egress chain (`meta mark & 0xffff vmap @sg_out`), then the
                  receiver's ingress chain (`meta mark & 0xffff0000 vmap @sg_in`): established and
                  related pass, new connections need a rule (`return`), the rest is dropped.
Remote groups are sets (`g4-<group id>`, `g6-...`), so a member coming or going is one element.

Chains that depend on a port are named after their content (`o-<dev>-<digest>`): a changed port gets a
new chain and its map element moves to it in the same transaction, so nothing is ever flushed, and the
kernel's chain names alone say what is installed. The marks (a port's index here, 1-65535) only live
in a frame while the two tables look at it; a port keeps its mark across passes (`assign_marks`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kvnet.dataplane.linux.rule_sets import rule_sets
from kvnet.plan import HostPlan, PortPlan
from kvnet.plan.security import EGRESS, INGRESS, PortFilter, RuleMatch

BRIDGE, INET = "bridge", "inet"
TABLE = "kvnet"
MAX_MARK = 0xFFFF
PORT_DEVICES = "kvt-*"  # VM taps and router legs' host ends
TUNNEL_DEVICES = "kvx-*"


@dataclass(frozen=True)
class MapSpec:
    family: str
    name: str
    declaration: str  # what `add map` needs between braces


@dataclass(frozen=True)
class SetSpec:
    family: str
    name: str
    declaration: str


# The tables' fixed part: maps, and the base chains with their rules. A change here is a new version:
# the agent then rebuilds both tables in one transaction (`nft_objects`).
SKELETON_VERSION = "v1"
MAPS = (
    MapSpec(BRIDGE, "out", "type ifname : verdict;"),
    MapSpec(BRIDGE, "in", "type ifname : verdict;"),
    MapSpec(INET, "zones", "typeof iifname : ct zone;"),
    MapSpec(INET, "sg_out", "type mark : verdict;"),
    MapSpec(INET, "sg_in", "type mark : verdict;"),
)
BASE_CHAINS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    (BRIDGE, "from_ports"): ("type filter hook prerouting priority -300; policy accept;",
                      ("iifname vmap @out", f'iifname "{PORT_DEVICES}" drop')),
    (BRIDGE, "to_ports"): ("type filter hook forward priority -300; policy accept;",
                      ("oifname vmap @in", f'oifname "{PORT_DEVICES}" drop')),
    (BRIDGE, "to_host"): ("type filter hook input priority 0; policy accept;",
                       (f'iifname {{ "{PORT_DEVICES}", "{TUNNEL_DEVICES}" }} drop',)),
    (INET, "conntrack_zone"): ("type filter hook prerouting priority -300; policy accept;",
                    ("ct zone set iifname map @zones",)),
    (INET, "security_groups"): ("type filter hook forward priority 0; policy accept;",
                        ("meta mark & 0x0000ffff vmap @sg_out", "meta mark & 0xffff0000 vmap @sg_in")),
}


@dataclass
class DesiredFilters:
    """What the two tables should hold besides their skeleton."""

    chains: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # (family, name) -> rules
    elements: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # (family, map) -> key -> value
    sets: dict[tuple[str, str], tuple[SetSpec, frozenset[str]]] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)  # filtered device -> its mark

    def __post_init__(self) -> None:
        for spec in MAPS:
            self.elements.setdefault((spec.family, spec.name), {})


def assign_marks(devices: Iterable[str], current: Mapping[str, int]) -> dict[str, int]:
    """A mark per filtered device: the one it has (so its chains stay as they are), else the lowest free."""
    wanted = sorted(set(devices))
    marks = {dev: current[dev] for dev in wanted if dev in current}
    used = set(marks.values())
    free = (m for m in range(1, MAX_MARK + 1) if m not in used)
    for dev in wanted:
        if dev not in marks:
            marks[dev] = next(free)
    return marks


def render_filters(plan: HostPlan, devices: set[str] | None, current_marks: Mapping[str, int]) -> DesiredFilters:
    """`devices`: the host's devices, to readdress FIP holders' frames only towards legs that exist
    (None: no redirect at all, as when the links could not be read)."""
    out = DesiredFilters()
    filters = {f.device: f for f in plan.filters}
    out.marks = assign_marks(filters, current_marks)
    redirects = desired_redirects(plan, devices) if devices is not None else {}
    for port in plan.ports:
        _render_port(out, port, filters.get(port.device), redirects.get(port.device, ()))
    for device in plan.router_leg_devices().values():
        out.elements[(BRIDGE, "out")].setdefault(device, "accept")
        out.elements[(BRIDGE, "in")].setdefault(device, "accept")
    out.elements[(INET, "zones")] = {net.bridge: str(net.ct_zone) for net in plan.networks if net.ct_zone}
    for group in plan.address_sets:
        for version, members in (("4", group.v4), ("6", group.v6)):
            spec = SetSpec(INET, set_name(group.group_id, version),
                           f"type ipv{version}_addr; flags interval;")
            out.sets[(INET, spec.name)] = (spec, frozenset(members))
    return out


def _render_port(out: DesiredFilters, port: PortPlan, flt: PortFilter | None,
                 redirects: tuple[tuple[str, str], ...]) -> None:
    dev = port.device
    if flt is None and not redirects:
        out.elements[(BRIDGE, "out")][dev] = "accept"
        out.elements[(BRIDGE, "in")][dev] = "accept"
        return
    mark = out.marks.get(dev)
    passed = f"meta mark set {mark} accept" if mark else "accept"  # on to the stateful rules, if any
    sender = [*(anti_spoof(flt, passed) if flt else ()), *redirect_rules(redirects), passed]
    out.elements[(BRIDGE, "out")][dev] = f"jump {_add_chain(out, BRIDGE, 'o', dev, sender)}"
    if flt is None or mark is None:
        out.elements[(BRIDGE, "in")][dev] = "accept"
        return
    receiver = [*receive_only_own(flt), f"meta mark set meta mark | 0x{mark << 16:08x} accept"]
    out.elements[(BRIDGE, "in")][dev] = f"jump {_add_chain(out, BRIDGE, 'i', dev, receiver)}"
    egress, ingress = sg_chain(out, flt, EGRESS), sg_chain(out, flt, INGRESS)
    out.elements[(INET, "sg_out")][str(mark)] = f"jump {_add_chain(out, INET, 'e', dev, egress)}"
    out.elements[(INET, "sg_in")][str(mark << 16)] = f"jump {_add_chain(out, INET, 'n', dev, ingress)}"


def _add_chain(out: DesiredFilters, family: str, kind: str, device: str, rules: list[str]) -> str:
    name = chain_name(kind, device, rules)
    out.chains[(family, name)] = tuple(rules)
    return name


def chain_name(kind: str, device: str, rules: Iterable[str]) -> str:
    digest = hashlib.sha256("\n".join(rules).encode()).hexdigest()[:10]
    return f"{kind}-{device}-{digest}"


def set_name(group_id: str, version: str) -> str:
    return f"g{version}-{group_id}"


def _set(items: Iterable[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def anti_spoof(flt: PortFilter, passed: str) -> list[str]:
    """What the port may send: its MACs, its addresses with their MAC, ARP the same; no DHCP server, no
    router advertisement, no other ethertype (a VLAN tag would carry any of the above past the checks).
    `passed`: the statement that lets a frame on (a DHCP client's ask, duplicate address detection)."""
    macs = sorted({mac for _, mac in flt.sources} | {flt.mac})
    v4 = [f"{mac} . {cidr}" for cidr, mac in flt.v4_sources()]
    v6 = [f"{mac} . {cidr}" for cidr, mac in flt.v6_sources()]
    rules = [f"ether saddr != {_set(macs)} drop",
             "ether type arp arp operation != { request, reply } drop"]
    rules.append(f"ether type arp arp saddr ether . arp saddr ip != {_set(v4)} drop" if v4 else "ether type arp drop")
    rules += ["udp sport 67 udp dport 68 drop",  # a DHCP server's answer
              f"ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 {passed}"]  # a DHCP client
    rules.append(f"ether type ip ether saddr . ip saddr != {_set(v4)} drop" if v4 else "ether type ip drop")
    rules += ["udp sport 547 udp dport 546 drop",  # a DHCPv6 server's answer
              "icmpv6 type nd-router-advert drop",
              f"ip6 saddr :: icmpv6 type nd-neighbor-solicit {passed}"]  # duplicate address detection
    rules.append(f"ether type ip6 ether saddr . ip6 saddr != {_set(v6)} drop" if v6 else "ether type ip6 drop")
    rules.append("ether type != { ip, arp, ip6 } drop")
    return rules


def receive_only_own(flt: PortFilter) -> list[str]:
    return [f"meta pkttype != {{ broadcast, multicast }} ether daddr != {_set(flt.macs)} drop"]


def redirect_rules(redirects: tuple[tuple[str, str], ...]) -> list[str]:
    """A FIP holder's IPv4 frames for its distributed router's shared gateway MAC go to the router's FIP
    namespace leg (the bridge forwards them there by the leg's pinned MAC); ARP is left alone."""
    return [f"ether type ip ether daddr {gateway} ether daddr set {leg}" for gateway, leg in redirects]


def desired_redirects(plan: HostPlan, devices: set[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """tap -> (gateway MAC, leg MAC), only towards legs whose host end exists: run before the router
    pass (which may delete a leg) and after the L2 pass (which plugs a new one), no frame is ever
    readdressed to a leg that is not there."""
    leg_devices = plan.router_leg_devices()
    out = {}
    for port in plan.ports:
        kept = tuple((gw, leg) for gw, leg in port.gateway_redirects if leg_devices.get(leg) in devices)
        if kept:
            out[port.device] = kept
    return out


def sg_chain(out: DesiredFilters, flt: PortFilter, direction: str) -> list[str]:
    """Established and related pass, invalid is dropped, a new connection needs one of the port's
    rules for `direction`. The rules become elements of a few sets, one lookup each however many
    rules there are (`rule_sets`); a rule with a remote group stays a rule of its own, its members a
    set that changes on its own as they come and go."""
    lines = ["ct state established,related return", "ct state invalid drop"]
    for version in ("4", "6"):
        mine = [r for r in flt.rules if r.direction == direction and r.ethertype == f"IPv{version}"]
        for kind, elements in rule_sets([r for r in mine if not r.remote_group], version):
            name = _add_set(out, kind, version, elements)
            lines.append(f"{LOOKUP[kind][version].format(peer=_peer(direction, version))} @{name} return")
        lines += [rule_line(r) for r in mine if r.remote_group]
    lines.append("drop")
    return lines


# What a connection's first packet is looked up by, per kind of rule and IP version; `{peer}` is the
# other end (the source for ingress, the destination for egress). Every field is a range
# (`kvnet.dataplane.linux.rule_sets` makes the elements).
LOOKUP = {
    "proto": {"4": "meta l4proto . {peer}", "6": "meta l4proto . {peer}"},
    "port": {"4": "meta l4proto . th dport . {peer}", "6": "meta l4proto . th dport . {peer}"},
    "icmp": {"4": "icmp type . icmp code . {peer}", "6": "icmpv6 type . icmpv6 code . {peer}"},
}
SET_TYPES = {
    "proto": {"4": "inet_proto . ipv4_addr", "6": "inet_proto . ipv6_addr"},
    "port": {"4": "inet_proto . inet_service . ipv4_addr", "6": "inet_proto . inet_service . ipv6_addr"},
    "icmp": {"4": "icmp_type . icmp_code . ipv4_addr", "6": "icmpv6_type . icmpv6_code . ipv6_addr"},
}
def _peer(direction: str, version: str) -> str:
    return f"{'ip' if version == '4' else 'ip6'} {'saddr' if direction == INGRESS else 'daddr'}"


def _add_set(out: DesiredFilters, kind: str, version: str, elements: frozenset[str]) -> str:
    """A set named after its content: ports with the same rules share it."""
    declaration = f"type {SET_TYPES[kind][version]}; flags interval;"
    name = "r" + hashlib.sha256((declaration + "\n" + "\n".join(sorted(elements))).encode()).hexdigest()[:12]
    out.sets[(INET, name)] = (SetSpec(INET, name, declaration), elements)
    return name


def rule_line(rule: RuleMatch) -> str:
    v4 = rule.ethertype == "IPv4"
    family = "ip" if v4 else "ip6"
    peer = "saddr" if rule.direction == INGRESS else "daddr"
    parts = [f"meta nfproto {'ipv4' if v4 else 'ipv6'}"]
    if rule.remote_prefix:
        parts.append(f"{family} {peer} {rule.remote_prefix}")
    if rule.remote_group:
        parts.append(f"{family} {peer} @{set_name(rule.remote_group, '4' if v4 else '6')}")
    if rule.protocol is not None:
        parts.append(f"meta l4proto {rule.protocol}")
    if rule.port_min is not None:
        ports = str(rule.port_min) if rule.port_min == rule.port_max else f"{rule.port_min}-{rule.port_max}"
        parts.append(f"th dport {ports}")
    icmp = "icmp" if v4 else "icmpv6"
    if rule.icmp_type is not None:
        parts.append(f"{icmp} type {rule.icmp_type}")
    if rule.icmp_code is not None:
        parts.append(f"{icmp} code {rule.icmp_code}")
    return " ".join(parts) + " return"

