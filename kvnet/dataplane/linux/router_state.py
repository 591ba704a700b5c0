"""Router namespaces: their names, and what one namespace contains (desired or observed).

Ownership: a router namespace is kvnet's when its name starts with `router_ns_prefix(host_netns)`
(`<host netns>-kvr-` in a lab, `kvr-` on a real hypervisor's root namespace). Everything inside it
is kvnet's: links (except lo), addresses, routes with protocol `ROUTE_PROTO`, rules, permanent
neighbours and the nft table `ip kvnet`. A namespace, leg, address, route, rule, neighbour or NAT
entry that the plan no longer has is deleted on the next reconcile; that is why a deleted VM's
route or neighbour cannot outlive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvnet.plan import NeighSpec, RouteSpec, RuleSpec, short_id

ROUTER_NS_MARK = "kvr-"
ROUTE_PROTO = 107  # "kvnet" in router namespaces (unassigned in iproute2's rt_protos)
NFT_TABLE = "kvnet"  # family ip


def router_ns_prefix(host_netns: str | None) -> str:
    return f"{host_netns}-{ROUTER_NS_MARK}" if host_netns else ROUTER_NS_MARK


def router_ns(host_netns: str | None, router_id: str, instance: str = "") -> str:
    """`<prefix><router short id>`, `-<instance>` appended for a router's second namespace (`fip`)."""
    return f"{router_ns_prefix(host_netns)}{short_id(router_id)}{'-' + instance if instance else ''}"


@dataclass(frozen=True, order=True)
class LegLink:
    """The router end of a leg (inside the namespace) and the host end it is paired with."""

    name: str
    mac: str
    mtu: int
    device: str = ""  # host end; "" when observed (the kernel shows only the peer's ifindex)
    up: bool = True

    def same(self, other: LegLink) -> bool:
        return (self.mac, self.mtu, self.up) == (other.mac, other.mtu, other.up)


@dataclass
class RouterNs:
    name: str
    links: dict[str, LegLink] = field(default_factory=dict)
    addresses: set[tuple[str, str]] = field(default_factory=set)  # (dev, ip/prefixlen)
    routes: set[RouteSpec] = field(default_factory=set)
    rules: set[RuleSpec] = field(default_factory=set)
    neighbours: set[NeighSpec] = field(default_factory=set)
    nft_digest: str | None = None  # the table's comment; None when the table is missing
    nft_text: str = ""  # desired only
    announce: dict[str, str] = field(default_factory=dict)  # floating IP -> leg (gratuitous ARP when added)

    def object_count(self) -> int:
        return (len(self.links) + len(self.addresses) + len(self.routes) + len(self.rules)
                + len(self.neighbours) + (self.nft_digest is not None))
