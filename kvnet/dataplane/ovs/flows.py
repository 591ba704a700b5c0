"""render_flows(plan, lvids, ofports) -> the OpenFlow flows of one host. Pure: no I/O.

The OpenFlow tables, in one place
=================================
kv-int (the integration bridge; fail_mode=secure, so without kvnet's flows it forwards nothing).
Inside kv-int a frame carries its network as reg6 = the network's local VLAN (lvid) and where it came
from as reg7 (0 = a local VM port, 1 = a tunnel or a physnet patch: never sent back to one).

  table 0  CLASSIFY   in_port=<VM port>                    -> reg6=lvid, reg7=0, goto 10
                      ip, in_port=<VM port with a FIP on a DVR host>, dl_dst=<shared gateway MAC> (priority
                                                           110) -> dl_dst = the router's FIP namespace leg
                                                              (`fq-`) MAC, then as above (kvnet.agent.routing)
                      in_port=kv-vxlan|kv-gre, tun_id=<seg> -> reg6=lvid, reg7=1, goto 20
                      in_port=<patch to kvp-nic>, dl_vlan=lvid -> strip the tag, reg6=lvid, reg7=1, goto 20
                      anything else                        -> drop (priority 0; also the canary flow
                                                              whose absence means vswitchd lost its flows)
  table 10 ARP        ARP request for an IP in the plan's arp_entries -> answered here (the request is
                      turned into the reply and sent back out of the port it came in on)
                      other ARP requests on a tunnel network with the responder on -> this host's
                      other ports only, never the tunnels (every remote address of such a network is
                      in the plan: nothing to ask the underlay, as the Linux driver's VXLAN proxy
                      does, while its bridge still floods locally); this is how a VM finds its
                      distributed router's gateway leg, which is on every host and in no ARP table
                      anything else -> goto 20
  table 20 L2         dl_dst=<local VM MAC>  -> output to its port
                      dl_dst=<remote MAC> (L2 population, frames from local ports only)
                                             -> tun_id=<seg>, tun_dst=<host's tunnel IP>, output to the tunnel port
                      anything else -> goto 30
  table 30 FLOOD      from a local port: every other local port of the network, one copy per
                      `flood_to` host (only hosts with ports in the network), and the physnet patch
                      with the lvid pushed as a VLAN tag; from a tunnel or the physnet: local ports only
                      tunnel network, from a local port with dl_src = a distributed router's shared
                      gateway MAC (its `qr-` leg here; priority 110) -> local ports only: that MAC is on every
                      host of the router, so a frame from it is never flooded into the tunnels
                      anything else -> drop

kvp-<nic> (one per physnet interface; fail_mode=secure):

  table 0             in_port=<patch>, dl_vlan=lvid -> vlan network: tag rewritten to the provider
                                                       VLAN; flat network: tag stripped; out the NIC
                      in_port=<nic>, dl_vlan=<provider VLAN> -> tag rewritten to the lvid, out the patch
                      in_port=<nic>, untagged  -> (flat network) lvid pushed, out the patch
                      anything else -> drop: frames of VLANs no network here uses never enter kv-int

The DVR gateway MAC never reaches the tunnels otherwise either: it is never a remote entry (the
compiler keeps a distributed router's interface ports local on every host), frames *to* it match its
local leg in table 20, and kv-int learns nothing (no NORMAL, no learn action), so frames routed by
another host that arrive from a tunnel with it as source move nothing. Unicast frames the local
router sends to VMs on other hosts do carry it as source, as in the Linux driver.

Flows for a port whose device does not exist yet (ofport -1) are left out; they appear in the pass
after the hypervisor creates the device.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from kvnet.dataplane.ovs.state import (
    INT_BRIDGE,
    TUNNEL_PORTS,
    Flow,
    ObservedFlow,
    int_patch,
    phys_patch,
    physnet_bridge,
)
from kvnet.plan import HostPlan, NetworkPlan

CLASSIFY, ARP, L2, FLOOD = 0, 10, 20, 30
REDIRECT_PRIORITY = 110  # in CLASSIFY: a FIP holder's IPv4 frames for its gateway, to the `fq-` leg
VLAN_PRESENT = 0x1000
DVR_ROLES = ("dvr", "dvr_snat")
INTERFACE_LEG = "qr-"


def dvr_gateway_macs(plan: HostPlan) -> dict[str, tuple[str, ...]]:
    """network id -> the shared gateway MACs of distributed routers' interface legs on this host."""
    out: dict[str, set[str]] = {}
    for router in plan.routers:
        if router.role in DVR_ROLES:
            for leg in router.legs:
                if leg.name.startswith(INTERFACE_LEG):
                    out.setdefault(leg.network_id, set()).add(leg.mac)
    return {net: tuple(sorted(macs)) for net, macs in out.items()}


def canary(bridge: str = INT_BRIDGE) -> Flow:
    """Table 0's default drop: present whenever kvnet programmed the bridge, gone when vswitchd restarted."""
    return Flow(bridge, CLASSIFY, 0, "", "drop")


def render_flows(plan: HostPlan, lvids: Mapping[str, int], ofports: Mapping[str, int]) -> list[Flow]:
    if not plan.networks:
        return []
    out = [canary(), Flow(INT_BRIDGE, ARP, 0, "", f"goto_table:{L2}"),
           Flow(INT_BRIDGE, L2, 0, "", f"goto_table:{FLOOD}"), Flow(INT_BRIDGE, FLOOD, 0, "", "drop")]
    shared = dvr_gateway_macs(plan)
    for net in plan.networks:
        out += _network_flows(plan, net, lvids[net.network_id], ofports, shared.get(net.network_id, ()))
    out = list(dict.fromkeys(out))  # networks sharing a physnet bridge share its canary
    keys = [(f.bridge, f.table, f.priority, f.match) for f in out]
    if len(set(keys)) != len(keys):
        raise ValueError("two flows with one match: the later would silently replace the earlier")
    return out


def is_redirect(flow: Flow) -> bool:
    return flow.bridge == INT_BRIDGE and flow.table == CLASSIFY and flow.priority == REDIRECT_PRIORITY


def stale_redirects(installed: list[Flow], desired: list[Flow]) -> list[ObservedFlow]:
    """The redirect flows installed that the desired flows no longer have (to delete strictly)."""
    wanted = {f.cookie for f in desired if is_redirect(f)}
    return [ObservedFlow(f.bridge, f.cookie, f.table, f.priority, f.match) for f in installed
            if is_redirect(f) and f.cookie not in wanted]


def _local_ports(plan: HostPlan, net: NetworkPlan, ofports: Mapping[str, int]) -> list[tuple[str, int]]:
    """(mac, ofport) of the network's ports on this host whose device exists."""
    return [(p.mac, ofports[p.device]) for p in plan.ports
            if p.network_id == net.network_id and ofports.get(p.device, -1) > 0]


def _network_flows(plan: HostPlan, net: NetworkPlan, lvid: int, ofports: Mapping[str, int],
                   gateway_macs: tuple[str, ...] = ()) -> Iterator[Flow]:
    local = _local_ports(plan, net, ofports)
    outputs = [f"output:{ofport}" for _, ofport in local]
    tag = f"reg6={lvid:#x}"
    classify = f"load:{lvid:#x}->NXM_NX_REG6[],load:0->NXM_NX_REG7[],goto_table:{ARP}"
    for mac, ofport in local:
        yield Flow(INT_BRIDGE, CLASSIFY, 100, f"in_port={ofport}", classify)
        yield Flow(INT_BRIDGE, L2, 100, f"{tag},dl_dst={mac}", f"output:{ofport}")
    leg_devices = plan.router_leg_devices()
    for port in plan.ports:
        ofport = ofports.get(port.device, -1)
        if port.network_id == net.network_id and ofport > 0:
            for gateway, leg in port.gateway_redirects:
                # IPv4 only (ARP for the gateway IP must reach the leg that has it); never towards
                # a MAC nobody has.
                if ofports.get(leg_devices.get(leg, ""), -1) > 0:
                    yield Flow(INT_BRIDGE, CLASSIFY, REDIRECT_PRIORITY, f"ip,in_port={ofport},dl_dst={gateway}",
                               f"mod_dl_dst:{leg},{classify}")
    uplink: list[str] = []  # flood actions towards the outside (tunnels or the physnet)
    tunnel_port = TUNNEL_PORTS.get(net.network_type)
    tunnel_ofport = ofports.get(tunnel_port or "", -1)
    if tunnel_port and net.segmentation_id is not None and tunnel_ofport > 0:
        seg = net.segmentation_id
        yield Flow(INT_BRIDGE, CLASSIFY, 100, f"in_port={tunnel_ofport},tun_id={seg:#x}",
                   f"load:{lvid:#x}->NXM_NX_REG6[],load:0x1->NXM_NX_REG7[],goto_table:{L2}")
        to_tunnel = f"set_field:{seg:#x}->tun_id"
        for remote in net.remotes if plan.l2_population else ():
            yield Flow(INT_BRIDGE, L2, 100, f"{tag},reg7=0,dl_dst={remote.mac}",
                       f"{to_tunnel},set_field:{remote.tunnel_ip}->tun_dst,output:{tunnel_ofport}")
        hosts = [ip for ip in net.flood_to if ip != plan.tunnel_ip]
        if hosts:
            uplink = [to_tunnel] + [a for ip in hosts for a in (f"set_field:{ip}->tun_dst", f"output:{tunnel_ofport}")]
        if plan.arp_responder:
            yield Flow(INT_BRIDGE, ARP, 50, f"arp,{tag},arp_op=1", ",".join(outputs) or "drop")
    elif net.physnet_interface and net.network_type in ("flat", "vlan"):
        patch = ofports.get(int_patch(net.physnet_interface), -1)
        if patch > 0:
            yield Flow(INT_BRIDGE, CLASSIFY, 100, f"in_port={patch},dl_vlan={lvid}",
                       f"strip_vlan,load:{lvid:#x}->NXM_NX_REG6[],load:0x1->NXM_NX_REG7[],goto_table:{L2}")
            uplink = [f"push_vlan:0x8100,set_field:{VLAN_PRESENT | lvid}->vlan_vid,output:{patch}"]
        yield from _physnet_flows(net, lvid, ofports)
    if plan.arp_responder:
        for ip, mac in net.arp_entries:
            yield Flow(INT_BRIDGE, ARP, 100, f"arp,{tag},arp_op=1,arp_tpa={ip}", _arp_reply(ip, mac))
    if outputs or uplink:
        yield Flow(INT_BRIDGE, FLOOD, 100, f"{tag},reg7=0", ",".join(outputs + uplink))
    if outputs:
        yield Flow(INT_BRIDGE, FLOOD, 100, f"{tag},reg7=0x1", ",".join(outputs))
    for mac in gateway_macs if tunnel_port else ():  # DVR gateway MAC: floods to local ports, never to tunnels
        yield Flow(INT_BRIDGE, FLOOD, 110, f"{tag},reg7=0,dl_src={mac}", ",".join(outputs) or "drop")


def _arp_reply(ip: str, mac: str) -> str:
    """Turn the ARP request into the reply `ip is-at mac` and send it back where it came from."""
    mac_hex = "0x" + mac.replace(":", "")
    ip_hex = "0x" + "".join(f"{int(octet):02x}" for octet in ip.split("."))
    return ("move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],"
            f"set_field:{mac}->eth_src,"
            "load:0x2->NXM_OF_ARP_OP[],"
            "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],"
            "move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"
            f"load:{mac_hex}->NXM_NX_ARP_SHA[],"
            f"load:{ip_hex}->NXM_OF_ARP_SPA[],"
            "IN_PORT")


def _physnet_flows(net: NetworkPlan, lvid: int, ofports: Mapping[str, int]) -> Iterator[Flow]:
    assert net.physnet_interface is not None
    nic_name = net.physnet_interface
    bridge = physnet_bridge(nic_name)
    patch, nic = ofports.get(phys_patch(nic_name), -1), ofports.get(nic_name, -1)
    if patch <= 0 or nic <= 0:
        return
    yield canary(bridge)
    if net.network_type == "vlan" and net.segmentation_id is not None:
        seg = net.segmentation_id
        yield Flow(bridge, 0, 100, f"in_port={patch},dl_vlan={lvid}",
                   f"set_field:{VLAN_PRESENT | seg}->vlan_vid,output:{nic}")
        yield Flow(bridge, 0, 100, f"in_port={nic},dl_vlan={seg}",
                   f"set_field:{VLAN_PRESENT | lvid}->vlan_vid,output:{patch}")
    elif net.network_type == "flat":
        yield Flow(bridge, 0, 100, f"in_port={patch},dl_vlan={lvid}", f"strip_vlan,output:{nic}")
        yield Flow(bridge, 0, 100, f"in_port={nic},vlan_tci=0x0000/0x1fff",
                   f"push_vlan:0x8100,set_field:{VLAN_PRESENT | lvid}->vlan_vid,output:{patch}")
