"""compile_host with routers and floating IPs (pure): placement per mode, L2 population of router
ports, the DVR gateway MAC kept local, and plans that forget deleted ports and FIPs."""

from __future__ import annotations

import pytest

from kvnet.agent.compile import compile_host
from kvnet.agent.model import CloudModel
from kvnet.agent.routing import derived_mac
from kvnet.model.resources import (
    ExternalGateway,
    FixedIP,
    FloatingIP,
    Host,
    Network,
    Port,
    Resource,
    Router,
    RouterInterface,
    Subnet,
)
from kvnet.plan import SNAT_NEXT_HOP, HostPlan, RouterPlan, RuleSpec

HOSTS = [Host(name="h1", tunnel_ip="192.0.2.1", roles=["network", "compute"], physnets={"physnet-ext": "ex0"}),
         Host(name="h2", tunnel_ip="192.0.2.2", physnets={"physnet-ext": "ex0"}),
         Host(name="h3", tunnel_ip="192.0.2.3", physnets={"physnet-ext": "ex0"})]


def cloud(mode: str, *, vm_hosts: tuple[str, str] = ("h2", "h3"), fip: bool = True,
          unfloated_on: str | None = None) -> CloudModel:
    """vm-a (10.1.0.10, with a FIP unless `fip` is false) and vm-b (10.2.0.10) on `vm_hosts`; vm-c
    (10.2.0.20, no FIP) on `unfloated_on` if given."""
    ext = Network(id="ext", network_type="flat", physnet="physnet-ext", external=True)
    ext_sub = Subnet(id="ext-sub", network_id="ext", cidr="203.0.113.0/24", gateway_ip="203.0.113.1")
    nets = [Network(id=f"net-{x}", segmentation_id=100 + i, mtu=1450) for i, x in enumerate("ab")]
    subs = [Subnet(id=f"sub-{x}", network_id=f"net-{x}", cidr=f"10.{i + 1}.0.0/24") for i, x in enumerate("ab")]
    gw_port = Port(id="gwport", network_id="ext", mac_address="fa:6b:76:00:00:01", device_id="r1",
                   device_owner="network:router_gateway",
                   fixed_ips=[FixedIP(subnet_id="ext-sub", ip_address="203.0.113.5")])
    if_ports = [Port(id=f"if-{x}", network_id=f"net-{x}", mac_address=f"fa:6b:76:00:01:0{i}", device_id="r1",
                     device_owner="network:router_interface",
                     fixed_ips=[FixedIP(subnet_id=f"sub-{x}", ip_address=f"10.{i + 1}.0.1")])
                for i, x in enumerate("ab")]
    router = Router(id="r1", mode=mode, external_gateway=ExternalGateway(network_id="ext", port_id="gwport",
                                                                         ip_address="203.0.113.5"),
                    interfaces=[RouterInterface(subnet_id=f"sub-{x}", port_id=f"if-{x}") for x in "ab"])
    vms = [Port(id=f"vm-{x}", network_id=f"net-{x}", mac_address=f"fa:6b:76:00:02:0{i}", binding_host=vm_hosts[i],
                fixed_ips=[FixedIP(subnet_id=f"sub-{x}", ip_address=f"10.{i + 1}.0.10")]) for i, x in enumerate("ab")]
    if unfloated_on:
        vms.append(Port(id="vm-c", network_id="net-b", mac_address="fa:6b:76:00:02:09", binding_host=unfloated_on,
                        fixed_ips=[FixedIP(subnet_id="sub-b", ip_address="10.2.0.20")]))
    resources: list[Resource] = [*HOSTS, ext, ext_sub, *nets, *subs, gw_port, *if_ports, router, *vms]
    if fip:
        resources.append(FloatingIP(id="fip1", floating_network_id="ext", floating_ip_address="203.0.113.50",
                                    port_id="vm-a", fixed_ip_address="10.1.0.10", router_id="r1"))
    return CloudModel.from_resources(resources)


KERNEL_RULES = (RuleSpec(0, "local"), RuleSpec(32766, "main"), RuleSpec(32767, "default"))


def routers(plan: HostPlan) -> dict[str, RouterPlan]:
    """The router namespaces of a host plan, by router id ("<id>/fip" for a FIP namespace)."""
    return {f"{r.router_id}/{r.instance}" if r.instance else r.router_id: r for r in plan.routers}


def remote_macs(plan: HostPlan, network_id: str) -> dict[str, str]:
    net = plan.network(network_id)
    assert net is not None
    return {r.mac: r.tunnel_ip for r in net.remotes}


def test_centralized_router_lives_on_the_network_node_and_compute_hosts_tunnel_to_it() -> None:
    model = cloud("centralized")
    plans = {h.name: compile_host(h.name, model) for h in HOSTS}
    assert [bool(p.routers) for p in plans.values()] == [True, False, False]
    r = routers(plans["h1"])["r1"]
    assert r.role == "centralized"
    assert set(r.rules) == set(KERNEL_RULES)  # FIPs are rewritten before routing: no policy rule needed
    assert {leg.name[:3] for leg in r.legs} == {"qr-", "qg-"}
    qg = r.leg(r.external_leg or "")
    assert qg is not None and set(qg.addresses) == {"203.0.113.5/24", "203.0.113.50/32"}
    assert r.snat_ip == "203.0.113.5" and r.snat_subnets == ("10.1.0.0/24", "10.2.0.0/24")
    # h1 has both tenant networks and the external one, with the legs plugged like VM ports.
    assert {n.network_id for n in plans["h1"].networks} == {"ext", "net-a", "net-b"}
    assert {p.device for p in plans["h1"].ports} == {leg.device for leg in r.legs}
    # h2 reaches the gateway MAC through h1 and answers ARP for the gateway IP itself.
    assert remote_macs(plans["h2"], "net-a")["fa:6b:76:00:01:00"] == "192.0.2.1"
    net_a = plans["h2"].network("net-a")
    assert net_a is not None and ("10.1.0.1", "fa:6b:76:00:01:00") in net_a.arp_entries


def test_distributed_router_everywhere_with_ports_and_the_gateway_mac_is_never_remote() -> None:
    model = cloud("distributed")
    plans = {h.name: compile_host(h.name, model) for h in HOSTS}
    roles = {h: routers(p)["r1"].role for h, p in plans.items()}
    assert roles == {"h1": "dvr_snat", "h2": "dvr", "h3": "dvr"}
    for host in ("h2", "h3"):
        for net in ("net-a", "net-b"):
            assert "fa:6b:76:00:01:00" not in remote_macs(plans[host], net)
            assert "fa:6b:76:00:01:01" not in remote_macs(plans[host], net)
            # the SNAT legs on h1 are reachable by L2 population
            assert remote_macs(plans[host], net)[derived_mac("snat", f"if-{net[-1]}")] == "192.0.2.1"
    assert all(set(r.rules) == set(KERNEL_RULES) for p in plans.values() for r in p.routers)  # no rule anywhere
    # vm-a (with FIP) is on h2: its router namespace sends what is not east-west to the SNAT host and
    # holds no FIP; a second namespace holds the FIP on fg- and routes out of it.
    h2 = routers(plans["h2"])["r1"]
    assert h2.external_leg is None and h2.fips == () and {leg.name[:3] for leg in h2.legs} == {"qr-"}
    assert [(r.dst, r.via) for r in h2.routes] == [("default", SNAT_NEXT_HOP)]
    fip_ns = routers(plans["h2"])["r1/fip"]
    assert fip_ns.role == "dvr_fip" and fip_ns.external_leg and fip_ns.external_leg.startswith("fg-")
    fg = fip_ns.leg(fip_ns.external_leg)
    assert fg is not None and fg.addresses == ("203.0.113.50/32",)
    fq = [leg for leg in fip_ns.legs if leg.name.startswith("fq-")]
    assert len(fq) == 2 and all(leg.addresses == () for leg in fq)  # never answers ARP for the gateway IP
    assert {(r.dst, r.dev[:3], r.via) for r in fip_ns.routes} == {
        ("10.1.0.0/24", "fq-", None), ("10.2.0.0/24", "fq-", None), ("203.0.113.5", "fq-", SNAT_NEXT_HOP),
        ("203.0.113.0/24", "fg-", None), ("default", "fg-", "203.0.113.1")}
    assert [f.local for f in fip_ns.fips] == [True]
    assert any(n.ip == SNAT_NEXT_HOP for n in fip_ns.neighbours) and any(n.ip == "10.2.0.10" for n in fip_ns.neighbours)
    # vm-a's tap readdresses the shared gateway MAC to its subnet's fq- leg; the legs are local ports.
    vm_a = next(p for p in plans["h2"].ports if p.port_id == "vm-a")
    fq_a = next(leg for leg in fq if leg.network_id == "net-a")
    assert vm_a.gateway_redirects == (("fa:6b:76:00:01:00", fq_a.mac),)
    assert {leg.device for leg in fq} <= {p.device for p in plans["h2"].ports}
    assert fq_a.mac not in remote_macs(plans["h3"], "net-a")  # known to no other host
    h3 = routers(plans["h3"])
    assert set(h3) == {"r1"} and h3["r1"].external_leg is None and h3["r1"].fips == ()
    assert all(p.gateway_redirects == () for p in plans["h3"].ports)
    assert [(r.table, r.dst, r.via) for r in h3["r1"].routes] == [(254, "default", SNAT_NEXT_HOP)]
    h1 = routers(plans["h1"])["r1"]
    assert {leg.name[:3] for leg in h1.legs} == {"qr-", "qg-", "sg-"}
    qg = h1.leg(h1.external_leg or "")
    assert qg is not None and qg.addresses == ("203.0.113.5/24",)  # the FIP lives on h2, not here


def test_a_vm_without_fip_beside_one_with_changes_nothing_in_either_namespace() -> None:
    """The split by source is made on the FIP holder's tap, so a host with VMs with and without FIP
    compiles to the same router namespaces as one whose VMs all have FIPs."""
    alone = compile_host("h2", cloud("distributed"))
    mixed = compile_host("h2", cloud("distributed", unfloated_on="h2"))
    for name, plan in routers(alone).items():
        other = routers(mixed)[name]
        assert (other.legs, other.routes, other.rules) == (plan.legs, plan.routes, plan.rules)
    vm_c = next(p for p in mixed.ports if p.port_id == "vm-c")
    assert vm_c.gateway_redirects == ()


def test_a_host_without_ports_of_the_router_has_no_instance() -> None:
    model = cloud("distributed", vm_hosts=("h2", "h2"))
    assert compile_host("h3", model).routers == ()
    assert compile_host("h3", model).networks == ()


@pytest.mark.parametrize("mode", ["centralized", "distributed"])
def test_a_deleted_vm_leaves_no_neighbour_rule_or_nat_in_any_plan(mode: str) -> None:
    before = cloud(mode)
    after = cloud(mode, fip=False)
    del after.ports["vm-a"]
    for host in ("h1", "h2", "h3"):
        for r in compile_host(host, after).routers:
            assert all(n.ip != "10.1.0.10" for n in r.neighbours)
            assert all(rule.src != "10.1.0.10" for rule in r.rules)
            assert r.fips == ()
            assert all("203.0.113.50/32" not in leg.addresses for leg in r.legs)
    assert compile_host("h1", before) == compile_host("h1", before)  # deterministic


def test_gateway_host_is_a_network_node_and_stable() -> None:
    model = cloud("centralized")
    extra = Host(name="h4", tunnel_ip="192.0.2.4", roles=["network"])
    model.hosts["h4"] = extra
    placed = [h for h in ("h1", "h4") if compile_host(h, model).routers]
    assert len(placed) == 1
    assert [h for h in ("h1", "h4") if compile_host(h, model).routers] == placed
