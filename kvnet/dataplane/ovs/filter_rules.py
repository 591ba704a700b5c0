"""Security group rules -> OpenFlow matches in EGRESS_RULES / INGRESS_RULES. Pure: no I/O.

Rules belong to rule sets, not to ports: a port's rules of one direction are a rule set, with an id
(`rule_set_ids`) that the port's flows load into REG_RULES, so the ports with the same groups -- most
of a host's, usually -- share one copy of their rules' flows, as the Linux driver shares one chain. A
port coming or going is then its own few flows; a rule added to a group is that rule set's flows
once, and the changed id in each of its ports' two flows that load it.

A rule without a remote group is one flow per rule set (several when its port range needs several masks).
A rule with a remote group is the second dimension of a conjunctive match: its flows match the port and
the rule's protocol and ports, the group's members are the first dimension (one flow per member CIDR and
direction, shared by every port and rule that names the group), and `conj_id` completes it. So the
classifier's work per packet does not grow with the group's size or the number of rules, and a member
that comes or goes adds or removes its own flow only.

Two flows with one match are one flow to OpenFlow, so matches are merged: a plain "accept" wins over any
conjunction on the same match (it accepts more), conjunctions on the same match share the flow.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import TypeVar

from kvnet.dataplane.ovs.state import INT_BRIDGE, Flow
from kvnet.dataplane.ovs.tables import EGRESS_COMMIT, EGRESS_RULES, INGRESS_COMMIT, INGRESS_RULES, REG_RULES
from kvnet.plan.security import EGRESS, INGRESS, AddressSet, PortFilter, RuleMatch

RULE_PRIORITY = 50
# Protocols whose ports OVS parses (UDP-Lite and DCCP are not among them), by IP version.
PORTED = {6: ("tcp", "tcp6"), 17: ("udp", "udp6"), 132: ("sctp", "sctp6")}
ICMP = {1: "icmp", 58: "icmp6"}
ANY = ("0.0.0.0/0", "::/0")
ConjKey = tuple[str, str, str]  # (group id, direction, ethertype)
RuleSet = tuple[str, tuple[RuleMatch, ...]]  # (direction, a port's rules of that direction, in the plan's order)
K = TypeVar("K", bound=Hashable)


def accept(direction: str) -> str:
    """Where a packet a rule allows goes on: the commit table of its direction."""
    return f"goto_table:{INGRESS_COMMIT if direction == INGRESS else EGRESS_COMMIT}"


def rules_table(direction: str) -> int:
    return INGRESS_RULES if direction == INGRESS else EGRESS_RULES


def unenforceable(flt: PortFilter, address_sets: Iterable[AddressSet]) -> str | None:
    """Why this port's rules cannot be rendered as OpenFlow (its filter is then not installed), or None."""
    groups = {s.group_id for s in address_sets}
    for rule in flt.rules:
        if rule.port_min is not None and rule.protocol not in PORTED:
            return (f"rule {rule.direction} protocol {rule.protocol} ports {rule.port_min}-{rule.port_max}: "
                    "Open vSwitch cannot match the ports of this protocol")
        if rule.remote_group and rule.remote_group not in groups:
            return f"rule {rule.direction}: remote group {rule.remote_group} has no address set in the plan"
    return None


def ip_version(ethertype: str) -> int:
    return 6 if ethertype == "IPv6" else 4


def peer_field(direction: str, ethertype: str) -> str:
    """The field that holds the other end of the connection: its source on ingress, destination on egress."""
    end = "src" if direction == INGRESS else "dst"
    return f"ipv6_{end}" if ethertype == "IPv6" else f"nw_{end}"


def protocol_match(rule: RuleMatch) -> str:
    v6 = rule.ethertype == "IPv6"
    if rule.protocol is None:
        return "ipv6" if v6 else "ip"
    if rule.protocol in PORTED:
        return PORTED[rule.protocol][v6]
    if rule.protocol in ICMP:
        return ICMP[rule.protocol]
    return f"{'ipv6' if v6 else 'ip'},nw_proto={rule.protocol}"


def port_masks(low: int, high: int) -> list[str]:
    """A port range as the fewest value/mask pairs (ranges of OpenFlow's bitwise match)."""
    if low <= 1 and high >= 0xFFFF:
        return []  # every port (a TCP/UDP port 0 is not a connection anyone accepts)
    out = []
    while low <= high:
        size = low & -low if low else 1 << 16
        while size > high - low + 1:
            size >>= 1
        out.append(str(low) if size == 1 else f"{low:#x}/{0xFFFF & ~(size - 1):#x}")
        low += size
    return out


def rule_set(flt: PortFilter, direction: str) -> RuleSet:
    return direction, tuple(r for r in flt.rules if r.direction == direction)


def rule_set_ids(filters: Iterable[PortFilter]) -> dict[RuleSet, int]:
    """An id per distinct rule set of `filters` (both directions; never 0, the register's value when no
    filter loaded it)."""
    keys = {rule_set(f, d) for f in filters for d in (EGRESS, INGRESS)}
    return _stable_ids(keys, lambda key: f"{key[0]}|{key[1]!r}")


def rule_matches(rule: RuleMatch, rule_set_id: int) -> list[str]:
    """The matches of one rule of the rule set `rule_set_id`, its remote group left out (see module doc)."""
    parts = [f"reg{REG_RULES}={rule_set_id:#x}", protocol_match(rule)]
    if rule.remote_prefix and rule.remote_prefix not in ANY:
        parts.append(f"{peer_field(rule.direction, rule.ethertype)}={rule.remote_prefix}")
    if rule.icmp_type is not None:
        parts.append(f"icmp_type={rule.icmp_type}")
    if rule.icmp_code is not None:
        parts.append(f"icmp_code={rule.icmp_code}")
    base = ",".join(parts)
    if rule.port_min is None:
        return [base]
    masks = port_masks(rule.port_min, rule.port_max if rule.port_max is not None else rule.port_min)
    return [f"{base},tp_dst={m}" for m in masks] or [base]


def conj_ids(keys: Iterable[ConjKey]) -> dict[ConjKey, int]:
    """A conjunction id per (remote group, direction, ethertype)."""
    return _stable_ids(keys, "|".join)


def _stable_ids(keys: Iterable[K], text: Callable[[K], str]) -> dict[K, int]:
    """A 32-bit id per key: a hash of its text, so it stays the same whatever else the host has (the
    flows naming it keep their cookies); a collision takes the next free id (keys in a fixed order)."""
    out: dict[K, int] = {}
    taken: set[int] = set()
    for key in sorted(set(keys), key=text):
        kid = int.from_bytes(hashlib.blake2b(text(key).encode(), digest_size=4).digest(), "big") or 1
        while kid in taken:
            kid = kid % 0xFFFFFFFF + 1
        taken.add(kid)
        out[key] = kid
    return out


class _Merged:
    """Flows of the rule tables by (table, match): a plain accept, or the conjunctions they belong to."""

    def __init__(self) -> None:
        self.accept: dict[tuple[int, str], str] = {}
        self.conj: dict[tuple[int, str], set[str]] = defaultdict(set)

    def flows(self) -> Iterator[Flow]:
        for (table, match), actions in sorted(self.accept.items()):
            yield Flow(INT_BRIDGE, table, RULE_PRIORITY, match, actions)
        for (table, match), conj in sorted(self.conj.items()):
            if (table, match) not in self.accept:
                yield Flow(INT_BRIDGE, table, RULE_PRIORITY, match, ",".join(sorted(conj)))


def render_rules(rule_sets: Mapping[RuleSet, int], address_sets: Iterable[AddressSet]) -> list[Flow]:
    """The flows of the rule sets (`rule_set_ids`), with the member flows of the remote groups they
    name. Rules only ever add accepts; what no rule accepts falls to the tables' fixed flows."""
    merged = _Merged()
    dim2: list[tuple[ConjKey, int, str]] = []
    for (_, rules), rule_set_id in rule_sets.items():
        for rule in rules:
            table = rules_table(rule.direction)
            for match in rule_matches(rule, rule_set_id):
                if rule.remote_group:
                    dim2.append(((rule.remote_group, rule.direction, rule.ethertype), table, match))
                else:
                    merged.accept[(table, match)] = accept(rule.direction)
    ids = conj_ids(key for key, _, _ in dim2)
    for key, table, match in dim2:
        merged.conj[(table, match)].add(f"conjunction({ids[key]},2/2)")
    members = {s.group_id: s for s in address_sets}
    out = []
    for (group, direction, ethertype), cid in sorted(ids.items()):
        table = rules_table(direction)
        members_of = members[group].v6 if ethertype == "IPv6" else members[group].v4
        ip = "ipv6" if ethertype == "IPv6" else "ip"
        for cidr in members_of:
            merged.conj[(table, f"{ip},{peer_field(direction, ethertype)}={cidr}")].add(f"conjunction({cid},1/2)")
        out.append(Flow(INT_BRIDGE, table, RULE_PRIORITY, f"conj_id={cid},{ip}", accept(direction)))
    return [*merged.flows(), *out]
