"""The router part of a HostPlan (produced by kvnet.agent.routing): router namespaces, legs, routes, NAT."""

from __future__ import annotations

from dataclasses import dataclass

# No router namespace carries a policy rule: any rule beyond the kernel's three (even moving one) makes
# every forwarded packet walk the rule list and a full reverse-path lookup instead of the merged
# local+main lookup (fib_has_custom_rules, sticky for the namespace's lifetime; measured ~12 % of the
# floating IP path). Where egress must differ by source -- a DVR host's VMs with and without FIP --
# the FIP holders' frames go to a namespace of their own instead (`PortPlan.gateway_redirects`).
MARK_HAIRPIN = 0x4B560001
# DVR: the next hop towards the SNAT namespace on a tenant subnet. Link-local, resolved by a permanent
# neighbour entry to the SNAT leg's MAC, so it takes no address from any tenant subnet.
SNAT_NEXT_HOP = "169.254.106.1"


@dataclass(frozen=True, order=True)
class RouterLeg:
    """One interface of a router namespace: a veth whose host end (`device`) is plugged into the
    network's bridge like a VM tap, and whose router end (`name`) carries `mac` and `addresses`."""

    name: str  # qr-/qg-/fg-/sg-<short id>, inside the router namespace
    device: str  # host end, kvt-<short id>
    network_id: str
    mac: str
    mtu: int
    addresses: tuple[str, ...] = ()  # ip/prefixlen


@dataclass(frozen=True, order=True)
class RouteSpec:
    """A route in the router namespace; `table` 254 is main. Keyed like the kernel: (table, dst)."""

    table: int
    dst: str  # "default" or a CIDR / address
    dev: str
    via: str | None = None
    onlink: bool = False


@dataclass(frozen=True, order=True)
class RuleSpec:
    priority: int
    table: str  # "local", "main", "default" or a number
    src: str | None = None  # address or CIDR
    fwmark: int | None = None


@dataclass(frozen=True, order=True)
class NeighSpec:
    dev: str
    ip: str
    mac: str


@dataclass(frozen=True, order=True)
class FloatingIPNat:
    """1:1 NAT of a floating IP. `local`: this namespace owns the FIP's ingress/egress (the FIP's
    address sits on its external leg); every namespace of the router still rewrites it for hairpin."""

    floating_ip: str
    fixed_ip: str
    local: bool


@dataclass(frozen=True)
class RouterPlan:
    """One router namespace on this host.

    role: "centralized" (every interface, gateway, SNAT, all FIPs), "dvr" (a distributed router's
    instance on a compute host: interfaces, everything not east-west to the SNAT host), "dvr_fip" (the
    same router's namespace for the VMs that have a FIP on that host: `fq-` legs on the subnets, the FIPs
    on `fg-`, egress out of `fg-`; `instance` "fip") or "dvr_snat" (the distributed router's instance on
    its gateway host: also gateway, SNAT legs `sg-`, the FIPs of VMs on that host).
    """

    router_id: str
    role: str
    legs: tuple[RouterLeg, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    rules: tuple[RuleSpec, ...] = ()
    neighbours: tuple[NeighSpec, ...] = ()
    external_leg: str | None = None  # qg- (gateway) or fg- (DVR FIP leg) name, if any
    snat_ip: str | None = None  # the gateway port's address: SNAT source for subnets without FIP
    snat_subnets: tuple[str, ...] = ()
    fips: tuple[FloatingIPNat, ...] = ()
    instance: str = ""  # "" the router's namespace on this host; "fip" its FIP holders' (role dvr_fip)

    def leg(self, name: str) -> RouterLeg | None:
        return next((leg for leg in self.legs if leg.name == name), None)
