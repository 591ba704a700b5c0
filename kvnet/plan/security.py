"""Port filters in the plan: what each local port with port security may send and receive.

`kvnet.agent.security` compiles them from the ports' security groups (pure); each driver renders them
into its own objects (`kvnet.dataplane.linux.filters`: nftables; OVS: OpenFlow with ct()). A port
without port security has no filter: nothing checks what it sends or receives (but no port, filtered or
not, ever reaches the host's own stack).
"""

from __future__ import annotations

from dataclasses import dataclass

INGRESS, EGRESS = "ingress", "egress"


@dataclass(frozen=True)
class RuleMatch:
    """One kind of connection a port may open (egress) or accept (ingress); the replies of an allowed
    connection are allowed too (stateful). Unset fields match anything."""

    direction: str  # INGRESS | EGRESS
    ethertype: str  # "IPv4" | "IPv6"
    protocol: int | None = None  # IP protocol number
    port_min: int | None = None  # destination ports (TCP, UDP, SCTP, UDP-Lite, DCCP)
    port_max: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    remote_prefix: str | None = None  # the peer's CIDR
    remote_group: str | None = None  # the peer is a member of this group (`AddressSet`)


@dataclass(frozen=True, order=True)
class AddressSet:
    """The members of a security group used as a remote group: every fixed IP and allowed address pair
    of its ports with port security, on every host; CIDRs, collapsed (no two overlap)."""

    group_id: str
    v4: tuple[str, ...] = ()
    v6: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class PortFilter:
    """A local port with port security.

    `sources`: the (CIDR, MAC) it may send from -- its fixed IPs (and IPv6 link-local) with its MAC, its
    allowed address pairs with theirs; ARP is checked against the same. `macs`: the unicast MACs it
    receives frames for. `rules`: the union of its groups' rules (none: everything is denied). `ct_zone`:
    its network's conntrack zone, so two tenants with the same addresses never share a connection."""

    port_id: str
    device: str
    network_id: str
    ct_zone: int
    mac: str
    sources: tuple[tuple[str, str], ...]
    macs: tuple[str, ...]
    rules: tuple[RuleMatch, ...] = ()

    def v4_sources(self) -> tuple[tuple[str, str], ...]:
        return tuple(s for s in self.sources if ":" not in s[0])

    def v6_sources(self) -> tuple[tuple[str, str], ...]:
        return tuple(s for s in self.sources if ":" in s[0])
