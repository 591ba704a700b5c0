"""Port security on kv-int: the flows of the filter tables, from the plan's `PortFilter`s. Pure: no I/O.

The tables and the path of a frame through them are described in `flows.py`'s docstring; this module
renders the filter's part:
- the fixed flows of EGRESS_SPOOF .. EGRESS_COMMIT and INGRESS .. INGRESS_COMMIT (conntrack states, the
  mark that ends a connection no rule allows any more, the commit of new connections);
- per filtered port: what it may send (anti-spoofing, stateless), the MACs it receives for, and its
  zone; its rules (`filter_rules`).

Fail closed: CLASSIFY sends a filtered port's frames into EGRESS_SPOOF, and every local delivery to it
goes through INGRESS; both tables drop what no flow of the port accepts. The port's flows and the flows
pointing to them are in one bundle, so a port is never forwarding with half a filter. A port whose
filter cannot be rendered (`refused`) gets no flow at all: it forwards nothing and is not ACTIVE.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from kvnet.dataplane.ovs.filter_rules import RuleSet, render_rules, rule_set, rule_set_ids, unenforceable
from kvnet.dataplane.ovs.state import INT_BRIDGE, Flow
from kvnet.dataplane.ovs.tables import (
    EGRESS_COMMIT,
    EGRESS_RULES,
    EGRESS_SPOOF,
    INGRESS,
    INGRESS_BASE,
    INGRESS_COMMIT,
    INGRESS_RULES,
    REDIRECT,
    REG_PORT,
    REG_RULES,
    REG_ZONE,
    load,
    reg,
)
from kvnet.plan import HostPlan, security
from kvnet.plan.security import PortFilter

MULTICAST = "01:00:00:00:00:00/01:00:00:00:00:00"  # broadcast included
ZONE = f"zone=NXM_NX_REG{REG_ZONE}[0..15]"
# ICMPv6 that neighbour discovery and multicast listeners need; it bypasses conntrack, as in Neutron's
# OVS firewall. A port may send it from its own addresses (an advertisement only for its own addresses;
# never a router advertisement, 134); it always receives it.
ND_SENT = (130, 131, 132, 133, 135, 143)
NEIGHBOR_ADVERT, ROUTER_ADVERT = 136, 134
ND_RECEIVED = (130, 131, 132, 133, 134, 135, 136, 143)
ARP_OPS = (1, 2)  # request, reply
FAMILIES = ("ip", "ipv6")


def by_device(plan: HostPlan) -> dict[str, PortFilter]:
    return {f.device: f for f in plan.filters}


def refused(plan: HostPlan) -> dict[str, str]:
    """port id -> why its filter cannot be installed on OVS (the port gets no flow and is not ACTIVE)."""
    out = {}
    for flt in plan.filters:
        why = unenforceable(flt, plan.address_sets)
        if why:
            out[flt.port_id] = why
    return out


def enforced_rule_sets(plan: HostPlan, refused: Mapping[str, str]) -> dict[RuleSet, int]:
    """The ids of the rule sets of the ports whose filters are installed (`filter_rules.rule_set_ids`)."""
    return rule_set_ids(f for f in plan.filters if f.port_id not in refused)


def to_port(ofport: int, filtered: bool) -> str:
    """The action that hands a frame to a local port: straight out, or through the port's ingress filter."""
    return f"{load(ofport, REG_PORT)},resubmit(,{INGRESS})" if filtered else f"output:{ofport}"


def classify_next(flt: PortFilter | None, ofport: int, rule_sets: Mapping[RuleSet, int]) -> str:
    """After CLASSIFY: a filtered port's frames to its egress filter (with its ofport, zone and egress
    rule set), any other port's straight on (a port without port security, a router leg)."""
    if flt is None:
        return f"goto_table:{REDIRECT}"
    return (f"{load(ofport, REG_PORT)},{load(flt.ct_zone, REG_ZONE)},"
            f"{load(rule_sets[rule_set(flt, security.EGRESS)], REG_RULES)},goto_table:{EGRESS_SPOOF}")


def render_filters(plan: HostPlan, ofports: Mapping[str, int], skip: Mapping[str, str] | None = None,
                   rule_sets: Mapping[RuleSet, int] | None = None) -> list[Flow]:
    """Every flow of the filter tables (none when the host has no network). `skip`: `refused(plan)`, and
    `rule_sets`: `enforced_rule_sets(plan, skip)`, if the caller has them already."""
    if not plan.networks:
        return []
    skip = refused(plan) if skip is None else skip
    rule_sets = enforced_rule_sets(plan, skip) if rule_sets is None else rule_sets
    ports = [(f, ofports[f.device]) for f in plan.filters
             if f.port_id not in skip and ofports.get(f.device, -1) > 0]
    out = list(fixed_flows())
    for flt, ofport in ports:
        out += egress_flows(flt, ofport)
        out += ingress_flows(flt, ofport, rule_sets[rule_set(flt, security.INGRESS)])
    used = {rule_set(flt, d) for flt, _ in ports for d in (security.EGRESS, security.INGRESS)}
    out += render_rules({key: rid for key, rid in rule_sets.items() if key in used}, plan.address_sets)
    return out


def _flow(table: int, priority: int, match: str, actions: str) -> Flow:
    return Flow(INT_BRIDGE, table, priority, match, actions)


def _commit(then: str) -> str:
    return f"ct(commit,{ZONE}),{then}"


def fixed_flows() -> Iterator[Flow]:
    """The flows every filtered port shares."""
    # What no port may send: a VLAN tag (it would carry anything past the checks), a DHCP or DHCPv6
    # server's answer, a router advertisement, a neighbour advertisement not for one of its addresses.
    for match in ("vlan_tci=0x1000/0x1000", "udp,tp_src=67,tp_dst=68", "udp6,tp_src=547,tp_dst=546",
                  f"icmp6,icmp_type={ROUTER_ADVERT}"):
        yield _flow(EGRESS_SPOOF, 110, match, "drop")
    yield _flow(EGRESS_SPOOF, 95, f"icmp6,icmp_type={NEIGHBOR_ADVERT}", "drop")
    yield _flow(EGRESS_SPOOF, 0, "", "drop")
    yield from _rules_fixed(EGRESS_RULES, f"goto_table:{REDIRECT}")
    for family in FAMILIES:
        yield _flow(EGRESS_COMMIT, 10, f"ct_state=+new+trk,{family}", _commit(f"goto_table:{REDIRECT}"))
    yield _flow(EGRESS_COMMIT, 0, "", f"goto_table:{REDIRECT}")

    yield _flow(INGRESS, 0, "", "drop")
    deliver = f"output:{reg(REG_PORT)}"
    yield _flow(INGRESS_BASE, 100, "arp", deliver)
    for icmp_type in ND_RECEIVED:
        yield _flow(INGRESS_BASE, 100, f"icmp6,icmp_type={icmp_type}", deliver)
    for family in FAMILIES:
        yield _flow(INGRESS_BASE, 90, family, f"ct({ZONE},table={INGRESS_RULES})")
    yield _flow(INGRESS_BASE, 0, "", "drop")
    yield from _rules_fixed(INGRESS_RULES, deliver)
    for family in FAMILIES:
        yield _flow(INGRESS_COMMIT, 10, f"ct_state=+new+trk,{family}", _commit(deliver))
    yield _flow(INGRESS_COMMIT, 0, "", deliver)


def _rules_fixed(table: int, accepted: str) -> Iterator[Flow]:
    """A rules table around the ports' rules (priority 50): invalid dropped; replies and related packets
    of a connection pass unless it is marked; a marked connection passes nothing; an established
    connection in its original direction that no rule allows any more is marked (ct_mark bit 0) and
    dropped -- so a removed rule ends the connections it allowed at their next packet, in both directions,
    on the host that enforced it, whoever restarted meanwhile (Neutron's OVS firewall does the same)."""
    yield _flow(table, 100, "ct_state=+inv+trk", "drop")
    yield _flow(table, 100, "ct_state=+rpl+trk,ct_mark=0/0x1", accepted)
    yield _flow(table, 100, "ct_state=+rel-rpl+trk,ct_mark=0/0x1", accepted)
    yield _flow(table, 90, "ct_mark=0x1/0x1", "drop")
    for family in FAMILIES:
        yield _flow(table, 10, f"ct_state=+est+trk,{family}",
                    f"ct(commit,{ZONE},exec(load:0x1->NXM_NX_CT_MARK[0]))")
    yield _flow(table, 0, "", "drop")


def egress_flows(flt: PortFilter, ofport: int) -> Iterator[Flow]:
    """EGRESS_SPOOF for one port: its MACs with the addresses each may use; ARP and neighbour discovery
    straight on (stateless), IP into conntrack in the port's zone. Zone 0 (a network from before zones):
    no IP at all -- it would share conntrack with every other such network."""
    port = f"in_port={ofport}"
    to_conntrack = f"ct({ZONE},table={EGRESS_RULES})" if flt.ct_zone else None
    on = f"goto_table:{REDIRECT}"
    for cidr, mac in flt.v4_sources():
        for op in ARP_OPS:
            yield _flow(EGRESS_SPOOF, 100, f"{port},arp,dl_src={mac},arp_sha={mac},arp_spa={cidr},arp_op={op}", on)
        if to_conntrack:
            yield _flow(EGRESS_SPOOF, 90, f"{port},ip,dl_src={mac},nw_src={cidr}", to_conntrack)
    if to_conntrack:  # a DHCP client's ask, before it has an address (on to the rules, as any IP)
        yield _flow(EGRESS_SPOOF, 100, f"{port},udp,dl_src={flt.mac},nw_src=0.0.0.0,nw_dst=255.255.255.255,"
                                        "tp_src=68,tp_dst=67", to_conntrack)
    yield _flow(EGRESS_SPOOF, 100, f"{port},icmp6,dl_src={flt.mac},ipv6_src=::,icmp_type=135", on)  # DAD
    v6 = flt.v6_sources()
    for cidr, mac in v6:
        for icmp_type in ND_SENT:
            yield _flow(EGRESS_SPOOF, 100, f"{port},icmp6,dl_src={mac},ipv6_src={cidr},icmp_type={icmp_type}", on)
        for target, target_mac in v6:
            if target_mac == mac:
                yield _flow(EGRESS_SPOOF, 100, f"{port},icmp6,dl_src={mac},ipv6_src={cidr},"
                                                f"icmp_type={NEIGHBOR_ADVERT},nd_target={target}", on)
        if to_conntrack:
            yield _flow(EGRESS_SPOOF, 90, f"{port},ipv6,dl_src={mac},ipv6_src={cidr}", to_conntrack)


def ingress_flows(flt: PortFilter, ofport: int, rule_set_id: int) -> Iterator[Flow]:
    """INGRESS for one port: unicast only for its MACs (broadcast and multicast too), with its zone and
    ingress rule set."""
    port = f"reg{REG_PORT}={ofport:#x}"
    on = f"{load(flt.ct_zone, REG_ZONE)},{load(rule_set_id, REG_RULES)},goto_table:{INGRESS_BASE}"
    for mac in (*flt.macs, MULTICAST):
        yield _flow(INGRESS, 100, f"{port},dl_dst={mac}", on)
    if not flt.ct_zone:
        for family in FAMILIES:
            yield _flow(INGRESS, 110, f"{port},{family}", "drop")
