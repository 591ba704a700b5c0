"""render_filters(plan, devices, marks) -> the nftables objects that filter this host's ports. Pure.

Two tables, both kvnet's. The rules are fixed; what differs from port to port is data, in sets and
maps keyed by the port's device, so a port coming, changing or going is a few set elements -- never a
chain -- and a packet costs a few hash or interval lookups however many ports and rules there are.

`bridge kvnet` -- stateless, on every frame a kvnet bridge forwards:
  from_ports (prerouting, before everything else) the sending `kvt-` device's verdict (`from_port`): a
             device kvnet does not plan here forwards nothing (a tap whose filter is not in place); a
             port without port security goes straight on; a filtered port's frame is dispatched by
             ethertype (any other is dropped) to the checks of its kind: one of the port's MACs
             (`macs`), an address with its MAC (`v4`, `v6`; ARP the same, and a neighbour
             advertisement's target: `nd_targets`), no DHCP server or router advertisement; it gets the
             port's mark (`sender`). Then a FIP holder's IPv4 frame for its distributed router's
             shared gateway MAC is readdressed to the router's FIP namespace leg (`redirects`).
  to_ports   (forward) the receiving device's verdict (`to_port`): a filtered port receives IPv4, ARP
             and IPv6 only, unicast only for its MACs, and the frame gets the port's receiving mark
             (`receiver`: 0x10000 | its index).
  to_host    (input) nothing from a port or a tunnel reaches the host's own stack.
`inet kvnet` -- stateful, on the same frames as br_netfilter hands them to IP (bridge-nf-call-iptables):
  conntrack_zone (prerouting, raw) the bridge's network's conntrack zone (`zones`), so two tenants
             with the same addresses never share an entry.
  egress     (prerouting, after conntrack) established and related pass; else the sender's rules
             (`sg_out`: its mark -> its rule chain).
  ingress    (forward) the same with the receiver's rules (`sg_in`).
A rule chain (`e-`/`i-` + digest of its content) is shared by every port with the same rules: invalid
is dropped, neighbour discovery passes, a new connection needs a rule (`return`). Its rules are
elements of a few sets (`kvnet.dataplane.linux.rule_sets`); a rule with a remote group is a rule of
its own, the group's members an interval set (`g4-<group id>`, ...).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kvnet.dataplane.linux.rule_sets import rule_sets
from kvnet.plan import HostPlan
from kvnet.plan.security import EGRESS, INGRESS, PortFilter, RuleMatch

BRIDGE, INET = "bridge", "inet"
TABLE = "kvnet"
MAX_MARK = 0xFFFF
RECEIVING = 0x10000  # a receiving mark is the port's index with this bit: never a sending mark
PORT_DEVICES = "kvt-*"  # VM taps and router legs' host ends
TUNNEL_DEVICES = "kvx-*"


@dataclass(frozen=True)
class Container:
    """A set or map of the skeleton, or a set made on demand (rule sets, remote groups)."""

    family: str
    name: str
    declaration: str  # between the braces of `add set|map`
    is_map: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.family, self.name


# The tables' fixed part: containers, then base chains and the chains they go to. A change here is a
# new version: the agent then rebuilds both tables in one transaction (`filter_objects`).
SKELETON_VERSION = "v4"
CONTAINERS = (
    # Every kvt- device kvnet plans here, to the chain that checks it: a filtered port's frames to its
    # checks, any other port's (no port security, a router leg) straight on. A kvt- device not in them
    # forwards nothing.
    Container(BRIDGE, "from_port", "type ifname : verdict;", is_map=True),
    Container(BRIDGE, "to_port", "type ifname : verdict;", is_map=True),
    Container(BRIDGE, "macs", "type ifname . ether_addr;"),
    Container(BRIDGE, "v4", "type ifname . ether_addr . ipv4_addr; flags interval;"),
    Container(BRIDGE, "v6", "type ifname . ether_addr . ipv6_addr; flags interval;"),
    # A neighbour advertisement's target (the ICMPv6 bytes 8-23): nft 1.0 has no name for the field,
    # so the set is typed by the raw payload and its elements are the addresses as 128-bit integers.
    Container(BRIDGE, "nd_targets", "typeof iifname . ether saddr . @th,64,128; flags interval;"),
    Container(BRIDGE, "sender", "type ifname : mark;", is_map=True),
    Container(BRIDGE, "receiver", "type ifname : mark;", is_map=True),
    Container(BRIDGE, "redirects", "type ifname . ether_addr : ether_addr;", is_map=True),
    Container(INET, "zones", "typeof iifname : ct zone;", is_map=True),
    Container(INET, "sg_out", "type mark : verdict;", is_map=True),
    Container(INET, "sg_in", "type mark : verdict;", is_map=True),
)
HOOKED = {
    (BRIDGE, "from_ports"): "type filter hook prerouting priority -300; policy accept;",
    (BRIDGE, "to_ports"): "type filter hook forward priority -300; policy accept;",
    (BRIDGE, "to_host"): "type filter hook input priority 0; policy accept;",
    (INET, "conntrack_zone"): "type filter hook prerouting priority -300; policy accept;",
    (INET, "egress"): "type filter hook prerouting priority 0; policy accept;",
    (INET, "ingress"): "type filter hook forward priority 0; policy accept;",
}
# What a frame from a filtered port is checked for, per ethertype: one dispatch, then only the checks of
# its kind (an IPv4 frame's source MAC is checked with its address, in `v4`).
FROM_FILTERED = "ether type vmap { ip : goto sent_ip, arp : goto sent_arp, ip6 : goto sent_ip6 }"
FIXED_CHAINS: dict[tuple[str, str], tuple[str, ...]] = {
    # Regular chains first: the hooked ones go to them.
    (BRIDGE, "readdress"): ("ether type ip ether daddr set iifname . ether daddr map @redirects", "accept"),
    (BRIDGE, "with_mark"): ("meta mark set iifname map @sender", "goto readdress"),
    (BRIDGE, "sent_ip"): (
        "udp sport 67 udp dport 68 drop",  # a DHCP server's answer
        "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 "  # a DHCP client's ask
        "iifname . ether saddr @macs goto with_mark",
        "iifname . ether saddr . ip saddr != @v4 drop",
        "goto with_mark",
    ),
    (BRIDGE, "sent_arp"): (
        "iifname . ether saddr != @macs drop",
        "arp operation != { request, reply } drop",
        "iifname . arp saddr ether . arp saddr ip != @v4 drop",
        "goto with_mark",
    ),
    (BRIDGE, "sent_ip6"): (
        "iifname . ether saddr != @macs drop",
        "udp sport 547 udp dport 546 drop",  # a DHCPv6 server's answer
        "icmpv6 type nd-router-advert drop",
        "ip6 saddr :: icmpv6 type nd-neighbor-solicit goto with_mark",  # duplicate address detection
        "icmpv6 type nd-neighbor-advert iifname . ether saddr . @th,64,128 != @nd_targets drop",
        "iifname . ether saddr . ip6 saddr != @v6 drop",
        "goto with_mark",
    ),
    # Any other ethertype (a VLAN tag would carry any of the above past the checks) is dropped.
    (BRIDGE, "sent_by_filtered"): (FROM_FILTERED, "drop"),
    (BRIDGE, "to_filtered"): (
        "ether type != { ip, arp, ip6 } drop",
        "meta pkttype != { broadcast, multicast } oifname . ether daddr != @macs drop",
        "meta mark set oifname map @receiver",
    ),
    (BRIDGE, "from_ports"): ("iifname vmap @from_port", f'iifname "{PORT_DEVICES}" drop'),
    (BRIDGE, "to_ports"): ("oifname vmap @to_port", f'oifname "{PORT_DEVICES}" drop'),
    (BRIDGE, "to_host"): (f'iifname {{ "{PORT_DEVICES}", "{TUNNEL_DEVICES}" }} drop',),
    (INET, "conntrack_zone"): ("ct zone set iifname map @zones",),
    # Established and related pass first: only a connection's first packet looks its port's rules up.
    (INET, "egress"): ("ct state established,related accept", "meta mark vmap @sg_out"),
    (INET, "ingress"): ("ct state established,related accept", "meta mark vmap @sg_in"),
}


@dataclass
class DesiredFilters:
    """What the two tables should hold besides their skeleton's rules."""

    chains: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # shared rule chains
    elements: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # container -> key -> value
    sets: dict[tuple[str, str], Container] = field(default_factory=dict)  # sets made on demand
    marks: dict[str, int] = field(default_factory=dict)  # filtered device -> its mark

    def __post_init__(self) -> None:
        for container in CONTAINERS:
            self.elements.setdefault(container.key, {})

    def add(self, container: tuple[str, str], key: str, value: str = "") -> None:
        self.elements.setdefault(container, {})[key] = value


def assign_marks(devices: Iterable[str], current: Mapping[str, int]) -> dict[str, int]:
    """A mark per filtered device: the one it has (so nothing of it changes), else the lowest free."""
    wanted = sorted(set(devices))
    marks = {dev: current[dev] for dev in wanted if dev in current}
    used = set(marks.values())
    free = (m for m in range(1, MAX_MARK + 1) if m not in used)
    for dev in wanted:
        if dev not in marks:
            marks[dev] = next(free)
    return marks


def render_filters(plan: HostPlan, devices: set[str] | None, current_marks: Mapping[str, int], *,
                   fail_closed: bool = False) -> DesiredFilters:
    """`devices`: the host's devices, to readdress FIP holders' frames only towards legs that exist
    (None: no redirect at all, as when the links could not be read). `fail_closed`: the stateful rules
    cannot see bridged traffic here, so the filtered ports are not known ports: they forward nothing."""
    out = DesiredFilters()
    filters = {f.device: f for f in plan.filters}
    out.marks = assign_marks(filters, current_marks)
    for device in [p.device for p in plan.ports] + list(plan.router_leg_devices().values()):
        if device not in filters:
            out.add((BRIDGE, "from_port"), quoted(device), "goto readdress")
            out.add((BRIDGE, "to_port"), quoted(device), "accept")
        elif not fail_closed:
            out.add((BRIDGE, "from_port"), quoted(device), "goto sent_by_filtered")
            out.add((BRIDGE, "to_port"), quoted(device), "goto to_filtered")
    for device, flt in filters.items():
        _render_port(out, flt, out.marks[device])
    for device, redirects in (desired_redirects(plan, devices) if devices is not None else {}).items():
        for gateway, leg in redirects:
            out.add((BRIDGE, "redirects"), f"{quoted(device)} . {gateway}", leg)
    for net in plan.networks:
        if net.ct_zone:
            out.add((INET, "zones"), quoted(net.bridge), str(net.ct_zone))
    for group in plan.address_sets:
        for version, members in (("4", group.v4), ("6", group.v6)):
            name = set_name(group.group_id, version)
            out.sets[(INET, name)] = Container(INET, name, f"type ipv{version}_addr; flags interval;")
            out.elements[(INET, name)] = {m: "" for m in members}
    return out


def _render_port(out: DesiredFilters, flt: PortFilter, mark: int) -> None:
    dev = quoted(flt.device)
    for mac in sorted({flt.mac, *flt.macs, *(mac for _, mac in flt.sources)}):
        out.add((BRIDGE, "macs"), f"{dev} . {mac}")
    for cidr, mac in flt.sources:
        out.add((BRIDGE, "v6" if ":" in cidr else "v4"), f"{dev} . {mac} . {cidr}")
        if ":" in cidr:
            out.add((BRIDGE, "nd_targets"), f"{dev} . {mac} . {address_integers(cidr)}")
    out.add((BRIDGE, "sender"), dev, str(mark))
    out.add((BRIDGE, "receiver"), dev, str(RECEIVING | mark))
    out.add((INET, "sg_out"), str(mark), f"jump {_rule_chain(out, flt, EGRESS)}")
    out.add((INET, "sg_in"), str(RECEIVING | mark), f"jump {_rule_chain(out, flt, INGRESS)}")


def address_integers(cidr: str) -> str:
    """An IPv6 prefix as nft writes a raw 128-bit field: one integer, or a range of them."""
    net = ipaddress.ip_network(cidr)
    low, high = int(net.network_address), int(net.broadcast_address)
    return hex128(low) if low == high else f"{hex128(low)}-{hex128(high)}"


def hex128(value: int) -> str:
    return f"0x{value:032x}"


def quoted(device: str) -> str:
    return f'"{device}"'


def set_name(group_id: str, version: str) -> str:
    return f"g{version}-{group_id}"


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


def _rule_chain(out: DesiredFilters, flt: PortFilter, direction: str) -> str:
    lines = sg_chain(out, flt.rules, direction)
    name = ("e-" if direction == EGRESS else "i-") + _digest("\n".join(lines))
    out.chains[(INET, name)] = tuple(lines)
    return name


def sg_chain(out: DesiredFilters, rules: tuple[RuleMatch, ...], direction: str) -> list[str]:
    """What is not established or related (the base chain passed those): invalid is dropped, a new
    connection needs one of the rules for `direction`: a lookup in a few sets, and a rule of its own per
    remote-group rule."""
    lines = ["ct state invalid drop", f"icmpv6 type {NEIGHBOUR_DISCOVERY} return"]
    for version in ("4", "6"):
        mine = [r for r in rules if r.direction == direction and r.ethertype == f"IPv{version}"]
        for kind, elements in rule_sets([r for r in mine if not r.remote_group], version):
            name = _add_set(out, kind, version, elements)
            lines.append(f"{LOOKUP[kind][version].format(peer=_peer(direction, version))} @{name} return")
        lines += [rule_line(r) for r in mine if r.remote_group]
    lines.append("drop")
    return lines


# Multicast listener and neighbour discovery pass both ways whatever the rules (conntrack leaves them
# untracked): IPv6 does not work without them. Forged ones never get this far -- router adverts
# from a port, and advertisements or sources not of the port, are dropped on the bridge.
NEIGHBOUR_DISCOVERY = ("{ mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, "
                       "nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report }")

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
    """A rule set named after its content: ports with the same rules share it."""
    declaration = f"type {SET_TYPES[kind][version]}; flags interval;"
    name = "r" + _digest(declaration + "\n" + "\n".join(sorted(elements)))
    out.sets[(INET, name)] = Container(INET, name, declaration)
    out.elements[(INET, name)] = {e: "" for e in elements}
    return name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


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
