"""OVS flows for router legs (pure): the shared DVR gateway MAC floods to local ports only, never into the
tunnels; unanswered ARP on a tunnel network reaches local ports (the DVR gateway leg) and no tunnel."""

from __future__ import annotations

from dataclasses import replace

from kvnet.dataplane.ovs.flows import (
    ARP,
    CLASSIFY,
    FLOOD,
    REDIRECT,
    dvr_gateway_macs,
    render_flows,
    stale_redirects,
)
from kvnet.plan import HostPlan, NetworkPlan, PortPlan, RouterLeg, RouterPlan

GW_MAC = "fa:16:3e:00:00:aa"
NET = NetworkPlan("net-a", "vxlan", 1001, 1450, "kvb-a", "kvx-a", None, flood_to=("192.0.2.2",))
VM = PortPlan("vm", "net-a", "fa:16:3e:00:00:01", ("10.1.0.11",), "kvt-vm", 1450)
LEG = PortPlan("gw", "net-a", GW_MAC, ("10.1.0.1",), "kvt-gw", 1450)
ROUTER = RouterPlan("r1", "dvr", legs=(RouterLeg("qr-gw", "kvt-gw", "net-a", GW_MAC, 1450, ("10.1.0.1/24",)),))
PLAN = HostPlan("h2", "192.0.2.1", True, True, (NET,), (VM, LEG), routers=(ROUTER,))
OFPORTS = {"kvt-vm": 5, "kvt-gw": 6, "kv-vxlan": 1}


def flood_from_gateway(plan: HostPlan) -> list[str]:
    return [f.actions for f in render_flows(plan, {"net-a": 1}, OFPORTS)
            if f.table == FLOOD and f.match == f"reg6=0x1,reg7=0,dl_src={GW_MAC}"]


def test_a_distributed_routers_gateway_mac_floods_to_local_ports_only() -> None:
    assert dvr_gateway_macs(PLAN) == {"net-a": (GW_MAC,)}
    assert flood_from_gateway(PLAN) == ["output:5,output:6"]  # no tun_dst, no output:1
    centralized = replace(PLAN, routers=(replace(ROUTER, role="centralized"),))
    assert dvr_gateway_macs(centralized) == {} and flood_from_gateway(centralized) == []


def test_unanswered_arp_on_a_tunnel_network_stays_on_this_host() -> None:
    flows = render_flows(PLAN, {"net-a": 1}, OFPORTS)
    rest = [f.actions for f in flows if f.table == ARP and f.match == "arp,reg6=0x1,arp_op=1"]
    assert rest == ["output:5,output:6"]


def test_a_fip_holders_frames_for_the_gateway_go_to_the_fip_namespace_leg() -> None:
    fq_mac = "02:6b:00:00:00:01"
    holder = replace(VM, gateway_redirects=((GW_MAC, fq_mac),))
    fip_ns = RouterPlan("r1", "dvr_fip", legs=(RouterLeg("fq-gw", "kvt-fq", "net-a", fq_mac, 1450),), instance="fip")
    plan = replace(PLAN, ports=(holder, LEG), routers=(ROUTER, fip_ns))
    assert not any(f.table == REDIRECT and f.priority == 110
                   for f in render_flows(plan, {"net-a": 1}, OFPORTS))  # no fq- device yet
    flows = render_flows(plan, {"net-a": 1}, {**OFPORTS, "kvt-fq": 7})
    redirect = [f for f in flows if f.table == REDIRECT and f.priority == 110]
    assert [(f.match, f.actions) for f in redirect] == [(f"ip,in_port=5,dl_dst={GW_MAC}",
                                                         f"mod_dl_dst:{fq_mac},goto_table:{ARP}")]
    plain = next(f for f in flows if f.table == CLASSIFY and f.match == "in_port=5")  # ARP among the rest
    assert plain.actions.endswith(f"goto_table:{REDIRECT}")  # classified, then (unfiltered) on to the redirect
    assert not any(f.priority == 110 for f in render_flows(PLAN, {"net-a": 1}, OFPORTS) if f.table == REDIRECT)
    # The FIP gone: the redirect is the one flow the OVS driver deletes before the router pass.
    without = render_flows(replace(plan, ports=(VM, LEG)), {"net-a": 1}, {**OFPORTS, "kvt-fq": 7})
    assert [(f.table, f.priority, f.match, f.cookie) for f in stale_redirects(flows, without)] == [
        (REDIRECT, 110, redirect[0].match, redirect[0].cookie)]
    assert stale_redirects(flows, flows) == []
