"""render_flows(plan, lvids, ofports) -> the OpenFlow flows of one host. Pure: no I/O.

The OpenFlow tables, in one place
=================================
kv-int (the integration bridge; fail_mode=secure, so without kvnet's flows it forwards nothing).
Inside kv-int a frame carries its network as reg6 = the network's local VLAN (lvid) and where it came
from as reg7 (0 = a local VM port, 1 = a tunnel or a physnet patch: never sent back to one). While a
port filter looks at it, reg5 = the filtered port's ofport (the sender on egress, the receiver on
ingress), reg4 = that port's conntrack zone (its network's) and reg3 = the id of its rule set for that
direction (shared by every port with the same rules; `kvnet.dataplane.ovs.tables`, `filter_rules`).

  table 0  CLASSIFY   in_port=<VM port with port security> -> reg6=lvid, reg7=0, reg5=port, reg4=zone,
                                                           reg3=egress rule set, goto 1 (its filter
                                                           comes before anything else)
                      in_port=<other VM port, router leg>  -> reg6=lvid, reg7=0, goto 5 (explicitly unfiltered)
                      in_port=kv-vxlan|kv-gre, tun_id=<seg> -> reg6=lvid, reg7=1, goto 20
                      in_port=<patch to kvp-nic>, dl_vlan=lvid -> strip the tag, reg6=lvid, reg7=1, goto 20
                      anything else                        -> drop (priority 0; also the canary flow
                                                              whose absence means vswitchd lost its flows;
                                                              and where a port whose filter could not be
                                                              rendered ends: it has no flow here)
  table 1  EGRESS_SPOOF  what a filtered port may send (stateless; kvnet.dataplane.ovs.filters):
                      a VLAN tag, a DHCP(v6) server's answer, a router advertisement -> drop (110)
                      ARP request/reply with dl_src = arp_sha = a MAC of its sources and arp_spa in that
                      MAC's addresses; ND/MLD from its IPv6 sources (an advertisement only for its own
                      addresses), DAD from :: -> goto 5 (stateless, no conntrack)
                      IPv4/IPv6 with dl_src and source address a pair of its sources (and a DHCP
                      client's discover from 0.0.0.0) -> ct(zone=reg4, table=2)
                      anything else (other ethertypes, other addresses) -> drop
  table 2  EGRESS_RULES  after conntrack: +inv -> drop; +rpl or +rel (the connection not marked) -> goto 5;
                      a marked connection -> drop; the port's egress rules (reg3, match on the
                      destination; remote groups as conjunctions, kvnet.dataplane.ovs.filter_rules)
                      -> goto 3; +est that no rule allows any more -> mark the connection
                      (ct_mark bit 0: it passes nothing from now on, replies neither), drop; -> drop
  table 3  EGRESS_COMMIT +new -> ct(commit); goto 5
  table 5  REDIRECT   ip, in_port=<VM port with a FIP on a DVR host>, dl_dst=<shared gateway MAC> (priority
                      110) -> dl_dst = the router's FIP namespace leg (`fq-`) MAC (kvnet.agent.routing),
                      after the port's filter; anything else -> goto 10
  table 10 ARP        ARP request for an IP in the plan's arp_entries -> answered here (the request is
                      turned into the reply and sent back out of the port it came in on)
                      other ARP requests on a tunnel network with the responder on -> this host's
                      other ports only, never the tunnels (every remote address of such a network is
                      in the plan: nothing to ask the underlay, as the Linux driver's VXLAN proxy
                      does, while its bridge still floods locally); this is how a VM finds its
                      distributed router's gateway leg, which is on every host and in no ARP table
                      anything else -> goto 20
  table 20 L2         dl_dst=<local VM MAC>  -> to its port (below)
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
  "To a port" (tables 10, 20, 30): output:<port> for an unfiltered port; for a filtered one
  reg5=port, resubmit(,40) -- every local delivery passes its ingress filter (each copy of a flood too:
  ct(table=) forks, the original goes on with the next action):
  table 40 INGRESS    reg5=<port>, dl_dst = one of its MACs, or broadcast/multicast -> reg4=zone,
                      reg3=ingress rule set, goto 41
                      anything else (unicast for another MAC) -> drop
  table 41 INGRESS_BASE  ARP, ND/MLD -> output:reg5 (stateless); IPv4/IPv6 -> ct(zone=reg4, table=42);
                      anything else -> drop
  table 42 INGRESS_RULES  as table 2, with the port's ingress rules (match on the source); accepted
                      replies -> output:reg5, accepted by a rule -> goto 43
  table 43 INGRESS_COMMIT +new -> ct(commit); output:reg5

Two filtered ports on one host see a connection twice in the same zone (the sender's egress, the
receiver's ingress), so both their rules decide, as between hosts. A removed rule ends the connections
it allowed at their next packet in the original direction (table 2/42's mark), which also holds after
an agent restart: nothing but the flows decides.

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

from kvnet.dataplane.ovs import filters
from kvnet.dataplane.ovs.state import (
    INT_BRIDGE,
    TUNNEL_PORTS,
    Flow,
    ObservedFlow,
    int_patch,
    phys_patch,
    physnet_bridge,
)
from kvnet.dataplane.ovs.tables import ARP, CLASSIFY, FLOOD, L2, REDIRECT
from kvnet.plan import HostPlan, NetworkPlan, PortPlan

__all__ = ["ARP", "CLASSIFY", "FLOOD", "L2", "REDIRECT", "canary", "is_redirect", "render_flows", "stale_redirects"]
REDIRECT_PRIORITY = 110  # in REDIRECT: a FIP holder's IPv4 frames for its gateway, to the `fq-` leg
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
    out = [canary(), Flow(INT_BRIDGE, REDIRECT, 0, "", f"goto_table:{ARP}"),
           Flow(INT_BRIDGE, ARP, 0, "", f"goto_table:{L2}"),
           Flow(INT_BRIDGE, L2, 0, "", f"goto_table:{FLOOD}"), Flow(INT_BRIDGE, FLOOD, 0, "", "drop")]
    shared = dvr_gateway_macs(plan)
    refused = filters.refused(plan)
    rule_sets = filters.enforced_rule_sets(plan, refused)
    for net in plan.networks:
        out += _network_flows(plan, net, lvids[net.network_id], ofports, refused, rule_sets,
                              shared.get(net.network_id, ()))
    out += filters.render_filters(plan, ofports, refused, rule_sets)
    out = list(dict.fromkeys(out))  # networks sharing a physnet bridge share its canary
    keys = [(f.bridge, f.table, f.priority, f.match) for f in out]
    if len(set(keys)) != len(keys):
        raise ValueError("two flows with one match: the later would silently replace the earlier")
    return out


def is_redirect(flow: Flow) -> bool:
    return flow.bridge == INT_BRIDGE and flow.table == REDIRECT and flow.priority == REDIRECT_PRIORITY


def stale_redirects(installed: list[Flow], desired: list[Flow]) -> list[ObservedFlow]:
    """The redirect flows installed that the desired flows no longer have (to delete strictly)."""
    wanted = {f.cookie for f in desired if is_redirect(f)}
    return [ObservedFlow(f.bridge, f.cookie, f.table, f.priority, f.match) for f in installed
            if is_redirect(f) and f.cookie not in wanted]


def _local_ports(plan: HostPlan, net: NetworkPlan, ofports: Mapping[str, int]) -> list[tuple[PortPlan, int]]:
    """The network's ports on this host whose device exists, with their ofport."""
    return [(p, ofports[p.device]) for p in plan.ports
            if p.network_id == net.network_id and ofports.get(p.device, -1) > 0]


def _network_flows(plan: HostPlan, net: NetworkPlan, lvid: int, ofports: Mapping[str, int],
                   refused: Mapping[str, str], rule_sets: Mapping[filters.RuleSet, int],
                   gateway_macs: tuple[str, ...] = ()) -> Iterator[Flow]:
    """`refused`: port id -> why its filter cannot be installed (it gets no CLASSIFY flow); `rule_sets`:
    the ids of the installed filters' rule sets."""
    local = _local_ports(plan, net, ofports)
    filtered = filters.by_device(plan)
    outputs = [filters.to_port(ofport, port.device in filtered) for port, ofport in local]
    tag = f"reg6={lvid:#x}"
    for port, ofport in local:
        flt = filtered.get(port.device)
        if flt is None or flt.port_id not in refused:  # a refused filter: the port's frames go nowhere
            then = filters.classify_next(flt, ofport, rule_sets)
            yield Flow(INT_BRIDGE, CLASSIFY, 100, f"in_port={ofport}",
                       f"load:{lvid:#x}->NXM_NX_REG6[],load:0->NXM_NX_REG7[],{then}")
        yield Flow(INT_BRIDGE, L2, 100, f"{tag},dl_dst={port.mac}", filters.to_port(ofport, flt is not None))
    leg_devices = plan.router_leg_devices()
    for port, ofport in local:
        for gateway, leg in port.gateway_redirects:
            # IPv4 only (ARP for the gateway IP must reach the leg that has it); never towards
            # a MAC nobody has. After the port's egress filter, like every frame of the port.
            if ofports.get(leg_devices.get(leg, ""), -1) > 0:
                yield Flow(INT_BRIDGE, REDIRECT, REDIRECT_PRIORITY, f"ip,in_port={ofport},dl_dst={gateway}",
                           f"mod_dl_dst:{leg},goto_table:{ARP}")
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
