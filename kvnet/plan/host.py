"""HostPlan: what one host's dataplane should contain, in terms every driver understands.

`kvnet.agent.compile.compile_host` produces it from the model (pure, no I/O); a driver
(`kvnet.dataplane.linux`, `kvnet.dataplane.ovs`) renders it into its own objects and reconciles them.
Everything here is a frozen dataclass so plans compare, hash and diff cheaply. Device names derive from
resource ids (`kvnet.plan.names`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvnet.plan.routing import RouterPlan
from kvnet.plan.security import AddressSet, PortFilter


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
    # Whether the bridge learns source MACs on the port. Off where kvnet knows every MAC the port may
    # use (port security on: its MAC and `extra_macs`, the allowed address pairs'), which are then
    # static entries instead: a VM sending from random MACs fills no table.
    learning: bool = False
    extra_macs: tuple[str, ...] = ()


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
    ct_zone: int = 0  # the network's conntrack zone (0: none yet, from before kvnet allocated them)


@dataclass(frozen=True, order=True)
class NameConflict:
    """Two resources whose derived names collide on this host (`kind`: bridge, tap, router_ns, leg): compile
    plans neither, and the ports they serve here are reported ERROR with `message`."""

    kind: str
    name: str
    resource_ids: tuple[str, ...]
    port_ids: tuple[str, ...]  # the ports left out of the plan because of it

    @property
    def message(self) -> str:
        return (f"{self.kind} name {self.name} derives from more than one id ({', '.join(self.resource_ids)}): "
                "neither is programmed on this host")


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
    # Resources left out because their names collide on this host (kvnet.agent.names).
    conflicts: tuple[NameConflict, ...] = ()
    # Ports with port security, and the remote groups their rules name (kvnet.agent.security).
    filters: tuple[PortFilter, ...] = ()
    address_sets: tuple[AddressSet, ...] = ()

    def network(self, network_id: str) -> NetworkPlan | None:
        return next((n for n in self.networks if n.network_id == network_id), None)

    def router_leg_devices(self) -> dict[str, str]:
        """MAC -> host end device of every router leg on this host."""
        return {leg.mac: leg.device for router in self.routers for leg in router.legs}
