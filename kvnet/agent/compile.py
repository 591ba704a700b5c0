"""compile(host, model) -> HostPlan: pure, no I/O, no clock.

What one host needs for tenant L2:
- every network with a VM port on this host gets a bridge and its tunnel (or provider uplink);
- L2 population: unicast entries for every port of those networks on other hosts, and flood entries
  only towards the hosts that have ports in the network (never to a host without any);
- ARP responder: the (ip, mac) of every port of those networks, answered on this host.

A host the model has no record of gets no plan at all (`UnknownHost`): an empty plan would make the
driver delete everything kvnet owns there. Names that collide on the host are refused (`kvnet.agent.names`).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from kvnet.agent.model import CloudModel
from kvnet.agent.names import refuse_collisions
from kvnet.agent.routing import RoutingView
from kvnet.agent.security import compile_filters
from kvnet.errors import NotFound
from kvnet.model.resources import Host, Network, Port
from kvnet.plan import (
    HostPlan,
    NetworkPlan,
    PortPlan,
    RemoteEndpoint,
    bridge_name,
    port_device_name,
    tunnel_name,
)

# Ports plugged by the hypervisor into the host bridge. SR-IOV (direct/passthrough) bypasses it.
BRIDGED_VNIC_TYPES = ("normal", "vhost")
TUNNELED_TYPES = ("vxlan", "gre")


class UnknownHost(NotFound):
    """The model has no record of this host: there is nothing to compile, and nothing may be removed."""


def compile_host(host_name: str, model: CloudModel) -> HostPlan:
    host = model.hosts.get(host_name)
    if host is None:
        raise UnknownHost(f"the cloud has no host named {host_name!r}", field="host")
    routing = RoutingView(model)  # routers: their ports bound where their namespaces live (kvnet.agent.routing)
    ports_by_network: dict[str, list[Port]] = defaultdict(list)
    for port in [*model.ports.values(), *routing.bound_ports()]:
        if port.binding_host and port.binding_host in model.hosts and port.mac_address:
            ports_by_network[port.network_id].append(port)

    local_ports = sorted(
        [*(p for ports in ports_by_network.values() for p in ports
           if p.binding_host == host_name and p.vnic_type in BRIDGED_VNIC_TYPES), *routing.local_ports(host_name)],
        key=lambda p: p.id)
    networks = []
    port_plans = []
    for network_id in sorted({p.network_id for p in local_ports}):
        network = model.networks.get(network_id)
        if network is None:
            continue
        plan = _network_plan(host, network, ports_by_network[network_id], model)
        if plan is not None:
            networks.append(plan)
    present = {n.network_id: n for n in networks}
    redirects = routing.gateway_redirects(host_name)
    for port in local_ports:
        if port.network_id in present:
            port_plans.append(PortPlan(
                port_id=port.id, network_id=port.network_id, mac=port.mac_address or "",
                ips=tuple(port.ips()), device=port_device_name(port.id), mtu=present[port.network_id].mtu,
                vnic_type=port.vnic_type, gateway_redirects=redirects.get(port.id, ()),
                learning=not port.port_security_enabled, extra_macs=_pair_macs(port)))
    checked = refuse_collisions(tuple(networks), tuple(port_plans), routing.router_plans(host_name))
    filters, address_sets = compile_filters(model, checked.ports)
    return HostPlan(host=host_name, tunnel_ip=host.tunnel_ip, l2_population=model.config.l2_population,
                    arp_responder=model.config.arp_responder, networks=checked.networks, ports=checked.ports,
                    routers=checked.routers, conflicts=checked.conflicts, filters=filters,
                    address_sets=address_sets)


def arp_entries(ports: list[Port]) -> tuple[tuple[str, str], ...]:
    """(ip, mac) the host answers ARP for: every fixed IPv4 address, and every single address of an
    allowed pair (with the pair's MAC, else the port's) -- a VIP whose ARP the responder would
    otherwise swallow. One such address claimed with two MACs (a VIP two ports share without a virtual
    MAC) is left out: no answer beats a wrong one, and its holder's own ARP still reaches its host."""
    fixed = {(ip, port.mac_address or "") for port in ports for ip in port.ips() if ":" not in ip}
    claimed: dict[str, set[str]] = {}
    for port in ports:
        for pair in port.allowed_address_pairs:
            net = ipaddress.ip_network(pair.ip_address)
            if net.version == 4 and net.num_addresses == 1:
                claimed.setdefault(str(net.network_address), set()).add(pair.mac_address or port.mac_address or "")
    fixed_ips = {ip for ip, _ in fixed}
    pairs = {(ip, macs.pop()) for ip, macs in claimed.items() if len(macs) == 1 and ip not in fixed_ips}
    return tuple(sorted(fixed | pairs))


def _pair_macs(port: Port) -> tuple[str, ...]:
    """The allowed address pairs' own MACs (a pair without one uses the port's)."""
    if not port.port_security_enabled:
        return ()
    return tuple(sorted({pair.mac_address for pair in port.allowed_address_pairs
                         if pair.mac_address and pair.mac_address != port.mac_address}))


def _network_plan(host: Host, network: Network, ports: list[Port], model: CloudModel) -> NetworkPlan | None:
    uplink = None
    if network.network_type in ("flat", "vlan"):
        uplink = host.physnets.get(network.physnet or "")
        if uplink is None:
            return None  # this host has no interface on that physnet: nothing it can do
    tunneled = network.network_type in TUNNELED_TYPES
    remotes: list[RemoteEndpoint] = []
    flood: set[str] = set()
    if tunneled:
        for port in ports:
            if port.binding_host == host.name:
                continue
            peer = model.hosts[port.binding_host or ""]
            flood.add(peer.tunnel_ip)
            if model.config.l2_population:
                remotes.append(RemoteEndpoint(mac=port.mac_address or "", ips=tuple(port.ips()),
                                              tunnel_ip=peer.tunnel_ip))
    arp = arp_entries(ports) if model.config.arp_responder else ()
    return NetworkPlan(
        network_id=network.id, network_type=network.network_type, segmentation_id=network.segmentation_id,
        mtu=network.mtu or 1500, bridge=bridge_name(network.id),
        tunnel=tunnel_name(network.id) if tunneled else None, physnet_interface=uplink,
        flood_to=tuple(sorted(flood)), remotes=tuple(sorted(remotes)), arp_entries=arp, ct_zone=network.ct_zone or 0)
