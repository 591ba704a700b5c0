"""`kvnet lab demo --scenario centralized|distributed`: routers, floating IPs, SNAT, hairpin, measured.

Topology (3 hosts, h1 = network node): an external flat network `ext` on physnet-ext (203.0.113.0/24,
gateway 203.0.113.1 = the lab's "internet" test server), a router in the given mode with its gateway
there, two tenant subnets (net-a 10.1.0.0/24, net-b 10.2.0.0/24) and VMs on the compute hosts:

    a1@h2 (net-a, FIP)   b1@h3 (net-b, FIP)   b2@h2 (net-b, FIP)   a2@h3 (net-a, no FIP)

Every figure is measured: underlay counters on the network node while VMs on h2 and h3 talk across
subnets (east-west through the network node or not), pings from the internet to each FIP, tcpdump on
the internet's bridge for the source of VM -> internet traffic, for FIP hairpin traffic that must not
appear there, and in the destination VM for the source address it sees; finally the kvnet-owned
kernel objects left after deleting VMs and FIPs (diff of every host's plan against its kernel).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvnet.agent.compile import compile_host
from kvnet.agent.model import CloudModel
from kvnet.client import Client
from kvnet.dataplane.linux import LinuxDriver, gateway_redirect, pinned_fdb
from kvnet.dataplane.linux.observe import observe
from kvnet.dataplane.linux.router import RouterDriver
from kvnet.dataplane.ovs import OvsDriver
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.demo import DemoVM, boot_vm
from kvnet.lab.lab import Lab
from kvnet.lab.ovs import DATAPATH, host_rundir
from kvnet.lab.probe import UnderlayCapture, arp_capture, ping, ping_until, ping_until_ns
from kvnet.lab.spec import default_spec
from kvnet.lab.vm import delete_vm
from kvnet.plan import HostPlan
from kvnet.sys.cmd import run_json

Progress = Callable[[str], None]
EXT_CIDR = "203.0.113.0/24"
EXT_GATEWAY = n.EXT_SERVER_CIDR.split("/")[0]
TENANT_SUBNETS = (("net-a", "10.1.0.0/24"), ("net-b", "10.2.0.0/24"))
DEADLINE_S = 10.0
EW_PINGS = 20
SRC_RE = re.compile(r"length \d+: (\d+\.\d+\.\d+\.\d+) > ")


@dataclass
class RoutedCloud:
    """What `build_routed_cloud` created (ids by name)."""

    ext_network: dict[str, Any]
    router: dict[str, Any]
    networks: dict[str, dict[str, Any]]

    @property
    def gateway_ip(self) -> str:
        return self.router["external_gateway"]["ip_address"]


def create_external_network(client: Client) -> dict[str, Any]:
    """The provider network of the lab's internet: flat on physnet-ext, FIPs and gateways from .10-.250."""
    net = client.create("networks", {"name": "ext", "network_type": "flat", "physnet": n.EXT_PHYSNET,
                                     "external": True, "shared": True})
    client.create("subnets", {"name": "ext-sub", "network_id": net["id"], "cidr": EXT_CIDR,
                              "gateway_ip": EXT_GATEWAY,
                              "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.250"}]})
    return net


def build_routed_cloud(client: Client, mode: str,
                       subnets: tuple[tuple[str, str], ...] = TENANT_SUBNETS) -> RoutedCloud:
    """External network, router `r1` (placed by kvnet on a network-role host), tenant subnets on it.
    The tenant's `default` security group also accepts IPv4 from anywhere: the internet is what this
    cloud is about (what an operator adds to reach a FIP; by itself the group accepts only its members)."""
    ext = create_external_network(client)
    body: dict[str, Any] = {"name": "r1", "mode": mode, "external_gateway": {"network_id": ext["id"]}}
    router = client.create("routers", body)
    networks = {}
    for name, cidr in subnets:
        net = client.create("networks", {"name": name})
        sub = client.create("subnets", {"name": f"{name}-sub", "network_id": net["id"], "cidr": cidr})
        router = client.router_add_interface(router["id"], sub["id"])
        networks[name] = net
    group = client.find("securitygroups", "default", project=ext["project_id"])
    client.add_rule(group["id"], {"direction": "ingress", "ethertype": "IPv4", "remote_ip_prefix": "0.0.0.0/0"})
    return RoutedCloud(ext, client.get("routers", router["id"]), networks)


def add_fip(client: Client, cloud: RoutedCloud, vm: str) -> str:
    port = client.find("ports", vm)
    fip = client.create("floatingips", {"name": f"fip-{vm}", "floating_network_id": cloud.ext_network["id"],
                                        "port_id": port["id"]})
    return fip["floating_ip_address"]


def ext_ping_until(lab: Lab, ip: str, deadline_s: float = DEADLINE_S) -> float | None:
    return ping_until_ns(n.ext_ns(lab.name), ip, deadline_s)


def ext_capture(lab: Lab, bpf: str) -> UnderlayCapture:
    """tcpdump on the internet's bridge (br-ext in `<lab>-ext`)."""
    return UnderlayCapture(lab, bpf, interface=n.EXT_BRIDGE, netns=n.ext_ns(lab.name))


def vm_capture(lab: Lab, vm: str, bpf: str) -> UnderlayCapture:
    return UnderlayCapture(lab, bpf, interface=n.VM_IF, netns=n.vm_ns(lab.name, vm))


def sources(capture: UnderlayCapture) -> list[str]:
    return sorted({m.group(1) for line in capture.lines() if (m := SRC_RE.search(line))})


def underlay_packets(lab: Lab, host: str) -> int:
    """rx + tx packets of the host's underlay interface (kernel counters)."""
    stats = run_json(["ip", "-n", n.host_ns(lab.name, host), "-j", "-s", "link", "show", n.HOST_UL_IF])
    link = stats[0]["stats64"]
    return int(link["rx"]["packets"]) + int(link["tx"]["packets"])


def pending_changes(lab: Lab, client: Client) -> tuple[int, int]:
    """(kvnet-owned kernel objects the model no longer has, all changes still to make) over every host.

    Computed like the agents do: the model from the API, compile, then diff against each host's
    dataplane (L2 objects in the host namespace or its OVS instance, router namespaces with everything
    in them)."""
    model = CloudModel.from_snapshot(client.snapshot())
    stale = total = 0
    for host, data in sorted(lab.hosts().items()):
        plan = compile_host(host, model)
        routed, routed_stale = RouterDriver(n.host_ns(lab.name, host)).plan_changes(plan)
        l2_stale, l2_total = (_ovs_pending if data.get("dataplane") == "ovs" else _linux_pending)(lab, host, plan)
        stale += routed_stale + l2_stale
        total += len(routed) + l2_total
    return stale, total


def _linux_pending(lab: Lab, host: str, plan: HostPlan) -> tuple[int, int]:
    ns = n.host_ns(lab.name, host)
    observed = observe(ns)
    l2 = LinuxDriver(ns).plan_changes(plan, observed)
    redirect_stale, redirect_total = gateway_redirect.pending(plan, ns)
    pin_stale, pin_total = pinned_fdb.pending(plan, observed)
    return (sum(l2.counts()["removed"].values()) + redirect_stale + pin_stale,
            len(l2) + redirect_total + pin_total)


def _ovs_pending(lab: Lab, host: str, plan: HostPlan) -> tuple[int, int]:
    """OVSDB rows and flows of an OVS host's kv-int/physnet bridges still to delete, and all changes."""
    with OvsDriver(host_rundir(lab.dir, host), host_netns=lab.host_ns(host), datapath_type=DATAPATH) as driver:
        db, flows, isolation = driver.plan_changes(plan)
    stale = len(db.bridge_del) + len(db.port_del) + flows.count("delete") + len(isolation.delete) \
        + isolation.drop_table
    return stale, stale + len(db.bridge_add) + len(db.bridge_change) + len(db.port_add) + len(db.port_change) \
        + flows.count("add") + len(isolation.add)


def wait_converged(lab: Lab, client: Client, deadline_s: float = DEADLINE_S) -> tuple[int, int]:
    """Poll until no host has a change left to make (or the deadline); returns the last (stale, total)."""
    end = time.monotonic() + deadline_s
    while True:
        stale, total = pending_changes(lab, client)
        if total == 0 or time.monotonic() > end:
            return stale, total
        time.sleep(0.1)


def east_west_via(lab: Lab, src: str, dst_ip: str, host: str, count: int = EW_PINGS) -> bool:
    """Did `count` pings from `src` to `dst_ip` pass through `host`'s underlay interface?"""
    before = underlay_packets(lab, host)
    assert ping(lab, src, dst_ip, count=count, timeout=1), f"{src} cannot reach {dst_ip}"
    return underlay_packets(lab, host) - before >= count


def run_routing_demo(name: str, hosts: int, mode: str, progress: Progress = lambda _: None) -> dict[str, Any]:
    lab = Lab(name)
    progress(f"lab {name}: {hosts} hosts, API server, one agent per host")
    lab.up(default_spec(name, hosts), control_plane=True)
    try:
        with Client(control.server_url(lab)) as client:
            return _scenario(lab, client, mode, progress)
    finally:
        progress(f"lab {name}: down")
        lab.down()


def _scenario(lab: Lab, client: Client, mode: str, progress: Progress) -> dict[str, Any]:
    hosts = sorted(lab.hosts())
    network_node = next(h for h, d in lab.hosts().items() if "network" in d["roles"])
    c1, c2 = (hosts[1], hosts[2]) if len(hosts) > 2 else (hosts[-1], hosts[-1])
    progress(f"external network, {mode} router on {network_node}, two subnets")
    cloud = build_routed_cloud(client, mode)
    vms = [DemoVM("a1", c1, "net-a", "10.1.0.11"), DemoVM("b1", c2, "net-b", "10.2.0.11"),
           DemoVM("b2", c1, "net-b", "10.2.0.12"), DemoVM("a2", c2, "net-a", "10.1.0.12")]
    for vm in vms:
        boot_vm(lab, client, vm)
    fips = {vm: add_fip(client, cloud, vm) for vm in ("a1", "b1", "b2")}
    out: dict[str, Any] = {"scenario": mode, "hosts": hosts, "network_node": network_node,
                           "router_gateway_ip": cloud.gateway_ip, "floating_ips": fips,
                           "vms": [vars(v) for v in vms]}
    progress("floating IPs from the internet")
    with arp_capture(lab) as tunnels:  # every routed path below, with ARP counted inside the tunnels
        out.update(_routed_paths(lab, cloud, fips, network_node, c1, c2, progress))
    census = tunnels.arp_census()
    out["tenant_arp_in_tunnels"], out["underlay_host_arp"] = census.tenant_arp_in_tunnels, census.underlay_host_arp
    progress("delete VMs and FIPs, re-use an IP on another host, count what is left")
    out.update(_delete_and_reuse(lab, client, cloud))
    return out


def _routed_paths(lab: Lab, cloud: RoutedCloud, fips: dict[str, str], network_node: str, c1: str, c2: str,
                  progress: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fip_ms = {vm: ext_ping_until(lab, ip) for vm, ip in fips.items()}
    out["fip_reachable_from_external"] = all(ms is not None for ms in fip_ms.values())
    out["fip_first_reply_ms"] = {vm: None if ms is None else round(ms, 1) for vm, ms in fip_ms.items()}
    progress(f"east-west {c1} -> {c2} across subnets, counting packets on {network_node}'s underlay")
    assert ping_until(lab, "a1", "10.2.0.11", DEADLINE_S) is not None
    out["east_west_via_network_node"] = east_west_via(lab, "a1", "10.2.0.11", network_node)
    progress("VM -> internet: source address seen by the internet")
    for vm, key in (("a2", "snat_source_seen_by_external"), ("a1", "fip_source_seen_by_external")):
        with ext_capture(lab, f"icmp and dst host {EXT_GATEWAY}") as cap:
            ping(lab, vm, EXT_GATEWAY, count=3, timeout=1)
        seen = sources(cap)
        out[key] = seen[0] if len(seen) == 1 else seen
    out["snat_source_is_router_gateway_ip"] = out["snat_source_seen_by_external"] == cloud.gateway_ip
    out["fip_source_is_floating_ip"] = out["fip_source_seen_by_external"] == fips["a1"]
    progress("FIP hairpin (same host a1 -> b2, across hosts a1 -> b1)")
    out.update(_hairpin(lab, fips))
    return out


def _hairpin(lab: Lab, fips: dict[str, str]) -> dict[str, Any]:
    bpf = "icmp and (" + " or ".join(f"host {ip}" for ip in fips.values()) + ")"
    results: dict[str, Any] = {}
    with ext_capture(lab, bpf) as outside:
        for label, dst in (("same_host", "b2"), ("cross_host", "b1")):
            with vm_capture(lab, dst, "icmp[icmptype] = icmp-echo") as inside:
                ok = ping_until(lab, "a1", fips[dst], DEADLINE_S) is not None and ping(lab, "a1", fips[dst], count=3)
            results[f"hairpin_{label}_reachable"] = ok
            results[f"hairpin_{label}_source_seen"] = sources(inside)
    results["hairpin_packets_seen_by_external"] = outside.count
    results["hairpin_stays_internal"] = (outside.count == 0 and results["hairpin_same_host_reachable"]
                                         and results["hairpin_cross_host_reachable"])
    results["hairpin_destination_sees_fip"] = all(
        results[f"hairpin_{label}_source_seen"] == [fips["a1"]] for label in ("same_host", "cross_host"))
    return results


def _delete_and_reuse(lab: Lab, client: Client, cloud: RoutedCloud) -> dict[str, Any]:
    for vm in ("b1", "b2"):
        client.delete("floatingips", client.find("floatingips", f"fip-{vm}")["id"])
        delete_vm(lab, vm)
        client.delete("ports", client.find("ports", vm)["id"])
    stale, total = wait_converged(lab, client)
    reuse = DemoVM("b3", sorted(lab.hosts())[-1], "net-b", "10.2.0.12")  # b2's IP, b2 was on another host
    boot_vm(lab, client, reuse)
    reused_ms = ping_until(lab, "a1", reuse.ip, DEADLINE_S)
    return {"stale_objects_after_delete": stale, "changes_pending_after_delete": total,
            "reused_ip_reachable": reused_ms is not None,
            "reused_ip_first_reply_ms": None if reused_ms is None else round(reused_ms, 1)}


def render_table(data: dict[str, Any]) -> str:
    keys = ("east_west_via_network_node", "fip_reachable_from_external", "snat_source_seen_by_external",
            "fip_source_seen_by_external", "hairpin_stays_internal", "hairpin_destination_sees_fip",
            "tenant_arp_in_tunnels", "underlay_host_arp", "stale_objects_after_delete", "reused_ip_reachable")
    return "\n".join([f"scenario: {data['scenario']} (network node {data['network_node']})"]
                     + [f"{k + ':':32} {data.get(k)}" for k in keys])


def demo_ok(data: dict[str, Any]) -> bool:
    return (data["east_west_via_network_node"] == (data["scenario"] == "centralized")
            and data["fip_reachable_from_external"] and data["snat_source_is_router_gateway_ip"]
            and data["fip_source_is_floating_ip"] and data["hairpin_stays_internal"]
            and data["hairpin_destination_sees_fip"] and data["tenant_arp_in_tunnels"] == 0
            and data["stale_objects_after_delete"] == 0
            and data["reused_ip_reachable"])


@dataclass(frozen=True)
class RoutedPath:
    """A kvnet-routed path for pps measurements (see `build_routed_path`)."""

    src_vm: str  # VM namespace suffix: <lab>-vm-<src_vm>
    east_west_dst: str  # the other VM's fixed IP: routed across subnets and hosts
    fip_dst: str  # the other VM's floating IP: reached from the internet namespace (`<lab>-ext`) via NAT
    src_fip: str


def build_routed_path(lab: Lab, client: Client, mode: str, src_host: str = "h2",
                      dst_host: str = "h3") -> RoutedPath:
    """In a running lab with a control plane: router `mode`, VM rp1@src_host (net-a) and rp2@dst_host
    (net-b), both with a floating IP; returns once both paths answer pings."""
    cloud = build_routed_cloud(client, mode)
    src, dst = DemoVM("rp1", src_host, "net-a", "10.1.0.101"), DemoVM("rp2", dst_host, "net-b", "10.2.0.102")
    for vm in (src, dst):
        boot_vm(lab, client, vm)
    src_fip, dst_fip = add_fip(client, cloud, src.name), add_fip(client, cloud, dst.name)
    if ping_until(lab, src.name, dst.ip, DEADLINE_S) is None or ext_ping_until(lab, dst_fip) is None:
        raise TimeoutError(f"routed path {mode} not reachable after {DEADLINE_S}s")
    return RoutedPath(src.name, dst.ip, dst_fip, src_fip)
