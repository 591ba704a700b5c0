"""render(plan) -> DesiredState: the kernel objects one HostPlan needs. Pure: no I/O.

Per network: a bridge `plan.bridge`; for vxlan a VXLAN device `plan.tunnel` enslaved to it; for
flat/vlan the physnet interface enslaved to it. This kernel has no 802.1Q devices, so a vlan network
is bridged untagged like flat (on a real host the tagged `<physnet>.<vid>` device would be enslaved).
Ports: the hypervisor's device is enslaved to the bridge with the network MTU, learning off where the
plan says kvnet knows every MAC of the port (they are pinned instead: `pinned_fdb`). Physnet uplinks
and ports without port security learn, into a bridge whose learned entries are capped
(`bridge_limits`).

L2 population: unicast FDB `mac -> dst tunnel_ip` per remote endpoint plus one all-zero flood entry
per `flood_to` VTEP; the VXLAN device and its bridge port stop learning.

ARP responder -- both kernel mechanisms were measured (tests/integration/test_linux_driver_arp.py):
  (a) "vxlan_proxy": VXLAN `proxy` flag + permanent neighbours on the VXLAN device. The VXLAN
      driver's transmit path (arp_reduce) answers an ARP request from its neighbour table and
      consumes every ARP request it cannot answer, so no ARP request ever reaches the underlay:
      0 ARP frames on the underlay, also for unknown IPs and gratuitous ARP.
  (b) "bridge_suppress": bridge-port `neigh_suppress on` + permanent neighbours on the bridge. The
      bridge only answers when its own FDB (not the VXLAN device's) has the MAC on a suppressing
      port; with learning off that entry never exists, and a request it cannot answer is flooded
      to the tunnel anyway.
  Measured (cold caches, a VM pings a remote VM, then an unknown IP; frames on host1's underlay
  port): (a) 0 ARP frames for both; (b) 2 for the known remote (request flooded + reply) and
  1 for the unknown IP.
  kvnet uses (a) by default; (b) stays selectable for the measurement.
"""

from __future__ import annotations

from typing import Literal

from kvnet.dataplane.linux.state import (
    FLOOD_MAC,
    Attachment,
    DesiredState,
    Fdb,
    Link,
    Neigh,
    PortConf,
    VxlanConf,
)
from kvnet.plan import ALIAS_PREFIX, NAME_PREFIX, VXLAN_UDP_PORT, HostPlan, NetworkPlan

ArpMode = Literal["vxlan_proxy", "bridge_suppress"]
DEFAULT_ARP_MODE: ArpMode = "vxlan_proxy"
BRIDGED_TYPES = ("flat", "vlan")


def alias(kind: str, resource_id: str) -> str:
    return f"{ALIAS_PREFIX}{kind}:{resource_id}"


def render(plan: HostPlan, arp_mode: ArpMode = DEFAULT_ARP_MODE) -> DesiredState:
    state = DesiredState()
    for net in plan.networks:
        _render_network(state, plan, net, arp_mode)
    for port in plan.ports:
        net = plan.network(port.network_id)
        if net is None:  # a port whose network is not on this host yet: nothing to attach to
            continue
        state.attachments[port.device] = Attachment(port.device, net.bridge, f"port:{port.port_id}", port.mtu,
                                                    PortConf(learning=port.learning))
    return state


def _render_network(state: DesiredState, plan: HostPlan, net: NetworkPlan, arp_mode: ArpMode) -> None:
    _check_name(net.bridge)
    state.links[net.bridge] = Link(net.bridge, "bridge", alias("bridge", net.network_id), net.mtu)
    if net.network_type in BRIDGED_TYPES and net.physnet_interface:
        state.attachments[net.physnet_interface] = Attachment(
            net.physnet_interface, net.bridge, f"physnet:{net.network_id}")
    elif net.network_type == "vxlan" and net.tunnel and net.segmentation_id is not None:
        _render_vxlan(state, plan, net, arp_mode)
    elif net.network_type != "local":
        state.unsupported.append(net.network_id)


def _render_vxlan(state: DesiredState, plan: HostPlan, net: NetworkPlan, arp_mode: ArpMode) -> None:
    assert net.tunnel is not None and net.segmentation_id is not None
    _check_name(net.tunnel)
    l2pop = plan.l2_population
    proxy = plan.arp_responder and arp_mode == "vxlan_proxy"
    suppress = plan.arp_responder and arp_mode == "bridge_suppress"
    conf = VxlanConf(net.segmentation_id, plan.tunnel_ip, VXLAN_UDP_PORT, learning=not l2pop, proxy=proxy)
    port = PortConf(learning=not l2pop, neigh_suppress=suppress)
    state.links[net.tunnel] = Link(net.tunnel, "vxlan", alias("vxlan", net.network_id), net.mtu,
                                   master=net.bridge, vxlan=conf, port=port)
    state.fdb.update(Fdb(net.tunnel, FLOOD_MAC, dst) for dst in net.flood_to if dst != plan.tunnel_ip)
    if l2pop:
        state.fdb.update(Fdb(net.tunnel, r.mac, r.tunnel_ip) for r in net.remotes)
    if plan.arp_responder:
        dev = net.tunnel if proxy else net.bridge
        state.neigh.update(Neigh(dev, ip, mac) for ip, mac in net.arp_entries)


def _check_name(name: str) -> None:
    if not name.startswith(NAME_PREFIX) or len(name) > 15:
        raise ValueError(f"link name {name!r} must start with {NAME_PREFIX!r} and fit in 15 bytes")
