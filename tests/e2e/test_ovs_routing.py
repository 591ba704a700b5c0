"""Routers on OVS hosts, per mode (centralized, distributed): the network node h1 and the compute host h2
run OVS, h3 runs Linux. The same router pass builds the router namespaces on both kinds of host; on an OVS
host the legs' host ends are kv-int ports. Real packets: east-west across subnets and hosts (through the
network node only when centralized), the internet -> floating IPs, VMs without FIP leaving as the router's
gateway IP, the gateway answering ARP, and the shared DVR gateway MAC kept off the tunnels."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from kvnet.dataplane.linux.router_state import router_ns_prefix
from kvnet.dataplane.ovs.state import INT_BRIDGE
from kvnet.lab import names as n
from kvnet.lab import ovs
from kvnet.lab.demo import DemoVM
from kvnet.lab.demo_routing import (
    EXT_GATEWAY,
    east_west_via,
    ext_capture,
    ext_ping_until,
    sources,
    vm_capture,
    wait_converged,
)
from kvnet.lab.probe import UnderlayCapture, arp_replies, ping, ping_until
from kvnet.lab.spec import LabSpec, default_spec
from kvnet.lab.testing import Routed, routed_lab, unique_lab_name
from kvnet.sys import netns
from kvnet.sys.cmd import run

pytestmark = pytest.mark.root
DEADLINE_S = 5.0
NETWORK_NODE = "h1"
DATAPLANES = {"h1": "ovs", "h2": "ovs", "h3": "linux"}
VMS = (DemoVM("a1", "h2", "net-a", "10.1.0.11"), DemoVM("b1", "h3", "net-b", "10.2.0.11"),
       DemoVM("b2", "h2", "net-b", "10.2.0.12"), DemoVM("a2", "h2", "net-a", "10.1.0.12"),
       DemoVM("c1", "h3", "net-b", "10.2.0.13"))
WITH_FIP = ("a1", "b1", "b2")


def spec() -> LabSpec:
    base = default_spec(unique_lab_name(), 3)
    return LabSpec(base.name, tuple(replace(h, dataplane=DATAPLANES[h.name]) for h in base.hosts))  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["centralized", "distributed"])
def routed(request: pytest.FixtureRequest) -> Iterator[Routed]:
    with routed_lab(request.param, VMS, WITH_FIP, spec()) as r:
        yield r


def test_routers_live_on_ovs_hosts_with_their_legs_on_kv_int(routed: Routed) -> None:
    lab = routed.lab
    assert {h: d["dataplane"] for h, d in lab.hosts().items()} == DATAPLANES
    assert wait_converged(lab, routed.client) == (0, 0)
    found = {h: netns.list_with_prefix(router_ns_prefix(n.host_ns(lab.name, h))) for h in lab.hosts()}
    # Distributed: h2 and h3 also have the router's FIP namespace (their VMs with FIPs; a2 on h2 and c1
    # on h3 have none, so the FIP holders' taps readdress their frames for the gateway to it).
    assert {h: len(v) for h, v in found.items()} == (
        {"h1": 1, "h2": 0, "h3": 0} if routed.mode == "centralized" else {"h1": 1, "h2": 2, "h3": 2})
    kv_int = ovs.host_instance(lab, NETWORK_NODE).vsctl("list-ports", INT_BRIDGE).split()
    legs = run(["ip", "-n", found[NETWORK_NODE][0], "-br", "link"]).stdout
    assert "qg-" in legs and "qr-" in legs
    assert sum(1 for p in kv_int if p.startswith("kvt-")) >= len(legs.splitlines()) - 1  # every leg but lo


def test_east_west_across_subnets_and_hosts(routed: Routed) -> None:
    for src, dst in (("a1", "10.2.0.11"), ("b1", "10.1.0.11"), ("a2", "10.2.0.13"), ("c1", "10.1.0.12"),
                     ("a1", "10.2.0.12")):
        assert ping_until(routed.lab, src, dst, DEADLINE_S) is not None, f"{src} -> {dst}"
    # h2 (OVS) -> h3 (Linux) across subnets: through the OVS network node only with a centralized router.
    assert east_west_via(routed.lab, "a1", "10.2.0.11", NETWORK_NODE) == (routed.mode == "centralized")


def test_external_reaches_every_fip_and_a_fip_vm_leaves_as_its_fip(routed: Routed) -> None:
    for vm, fip in routed.fips.items():
        assert ext_ping_until(routed.lab, fip, DEADLINE_S) is not None, f"{vm}'s FIP {fip}"
    with ext_capture(routed.lab, f"icmp and dst host {EXT_GATEWAY}") as cap:
        assert ping(routed.lab, "a1", EXT_GATEWAY, count=3)
    assert sources(cap) == [routed.fips["a1"]]


@pytest.mark.parametrize("vm", ["a2", "c1"], ids=["ovs_host", "linux_host"])
def test_a_vm_without_fip_leaves_as_the_router_gateway_ip(routed: Routed, vm: str) -> None:
    assert ping_until(routed.lab, vm, EXT_GATEWAY, DEADLINE_S) is not None
    with ext_capture(routed.lab, f"icmp and dst host {EXT_GATEWAY}") as cap:
        assert ping(routed.lab, vm, EXT_GATEWAY, count=3)
    assert sources(cap) == [routed.cloud.gateway_ip]


@pytest.mark.parametrize("vm", ["a1", "a2"], ids=["fip_holder", "without_fip"])
def test_a_vm_on_ovs_gets_its_gateway_answered_by_broadcast_and_by_unicast_arp(routed: Routed, vm: str) -> None:
    """The holder's redirect flow takes IPv4 only: a unicast ARP check of the gateway reaches the leg
    that holds the gateway IP."""
    gateway = routed.client.find("subnets", "net-a-sub")["gateway_ip"]
    replies = arp_replies(routed.lab, vm, gateway, count=2)  # the first broadcast, the second unicast
    assert len(replies) == 2 and len(set(replies)) == 1, replies


def test_the_dvr_gateway_mac_is_never_flooded_into_the_tunnels(routed: Routed) -> None:
    """A broadcast from h2's router on net-a (source: the shared gateway MAC) reaches h2's own VMs and no
    tunnel: no VXLAN frame on the underlay carries that MAC as inner source."""
    if routed.mode != "distributed":
        pytest.skip("only a distributed router shares its gateway MAC between hosts")
    lab = routed.lab
    iface = next(i for i in routed.client.list("ports") if i["device_owner"] == "network:router_interface"
                 and i["fixed_ips"][0]["ip_address"] == "10.1.0.1")
    mac = iface["mac_address"].replace(":", "")
    inner_src = f"udp port 4789 and udp[22:4] = 0x{mac[:8]} and udp[26:2] = 0x{mac[8:]}"
    router = netns.list_with_prefix(router_ns_prefix(n.host_ns(lab.name, "h2")))[0]
    with UnderlayCapture(lab, inner_src) as tunnels, vm_capture(lab, "a1", "icmp and ether broadcast") as local:
        run(["ping", "-b", "-n", "-q", "-c", "3", "-i", "0.05", "-W", "0.2", "10.1.0.255"], netns=router, check=False)
        assert local.wait_for(3, DEADLINE_S), local.lines()  # sent, and flooded to h2's VMs on net-a
    assert tunnels.count == 0, tunnels.lines()
