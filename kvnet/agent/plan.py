"""HostPlan: what one host's dataplane should contain, in terms every driver understands.

`kvnet.agent.compile.compile_host` produces it from the model (pure, no I/O); a driver
(`kvnet.dataplane.linux`, later OVS) renders it into its own objects and reconciles them.
Everything here is a frozen dataclass so plans compare, hash and diff cheaply.

Device names are derived from resource ids so that an agent restarting with the same model computes
the same names and adopts what it finds (see `device_names`). Linux limits names to 15 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Every kernel object kvnet creates starts with this prefix (links) or carries this alias.
NAME_PREFIX = "kv"
ALIAS_PREFIX = "kvnet:"
SHORT_ID_LEN = 10
VXLAN_UDP_PORT = 4789


def short_id(resource_id: str) -> str:
    """The first 10 hex digits of a UUID: unique enough inside one cloud, short enough for ifnames."""
    return resource_id.replace("-", "")[:SHORT_ID_LEN]


def bridge_name(network_id: str) -> str:
    return f"kvb-{short_id(network_id)}"


def tunnel_name(network_id: str) -> str:
    return f"kvx-{short_id(network_id)}"


def port_device_name(port_id: str) -> str:
    """The VM's tap (or the lab's veth end) on the host; the hypervisor creates it with this name."""
    return f"kvt-{short_id(port_id)}"


@dataclass(frozen=True, order=True)
class RemoteEndpoint:
    """A port on another host, known through L2 population."""

    mac: str
    ips: tuple[str, ...]
    tunnel_ip: str


@dataclass(frozen=True, order=True)
class PortPlan:
    """A VM port bound to this host."""

    port_id: str
    network_id: str
    mac: str
    ips: tuple[str, ...]
    device: str
    mtu: int
    vnic_type: str = "normal"
    # (shared gateway MAC, MAC of this host's FIP namespace leg) per distributed router subnet of the
    # port, when the port holds a floating IP here: its routed frames are readdressed on the tap's
    # ingress so they reach the FIP namespace (egress through `fg-`) instead of the router's own.
    gateway_redirects: tuple[tuple[str, str], ...] = ()
    qos_max_kbps: int | None = None
    qos_burst_kbps: int | None = None


@dataclass(frozen=True, order=True)
class NetworkPlan:
    """One L2 segment present on this host.

    `flood_to` lists the tunnel IPs that broadcast/unknown/multicast frames go to: with L2 population
    only the hosts that have ports in this network, never this host. `remotes` are the unicast
    entries (empty when L2 population is off: the tunnel then learns). `arp_entries` are the
    (ip, mac) pairs the host answers ARP for itself when the ARP responder is on.
    """

    network_id: str
    network_type: str
    segmentation_id: int | None
    mtu: int
    bridge: str
    tunnel: str | None
    physnet_interface: str | None
    flood_to: tuple[str, ...] = ()
    remotes: tuple[RemoteEndpoint, ...] = ()
    arp_entries: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HostPlan:
    host: str
    tunnel_ip: str
    l2_population: bool
    arp_responder: bool
    networks: tuple[NetworkPlan, ...] = ()
    ports: tuple[PortPlan, ...] = ()
    # Filled by later features (routers, NAT, SR-IOV VFs); drivers ignore what they do not know.
    extras: tuple[object, ...] = field(default=())
    # Router namespaces on this host (kvnet.agent.routing): centralized, DVR, DVR FIP, DVR+SNAT.
    routers: tuple[RouterPlan, ...] = ()

    def network(self, network_id: str) -> NetworkPlan | None:
        return next((n for n in self.networks if n.network_id == network_id), None)

    def router_leg_devices(self) -> dict[str, str]:
        """MAC -> host end device of every router leg on this host."""
        return {leg.mac: leg.device for router in self.routers for leg in router.legs}


# -- routing (kvnet.agent.routing) -------------------------------------------------------------------
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
