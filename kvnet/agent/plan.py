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

    def network(self, network_id: str) -> NetworkPlan | None:
        return next((n for n in self.networks if n.network_id == network_id), None)
