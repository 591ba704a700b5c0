"""The OVS driver's port filters against real OVS instances (3 OVS hosts, hand-built plans): the flows are
accepted, a pass is a no-op twice and after a restart, a member change is one flow, a filter OVS cannot
enforce fails its port (not ACTIVE, forwarding nothing) and only it, and a port's filter switched off
forwards everything again. The e2e suite (tests/e2e/test_security.py) covers the semantics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from linux_fixtures import NET_A, NET_B, VMS, Vm, build_plans, ping
from ovs_fixtures import DataplaneLab, dataplane_lab

from kvnet.plan import HostPlan, port_device_name
from kvnet.plan.security import AddressSet, PortFilter, RuleMatch
from kvnet.sys.cmd import run

pytestmark = pytest.mark.root
A1, A2, B1, B2 = VMS
GROUP = "g-net-a"
ICMP_FROM_GROUP = RuleMatch("ingress", "IPv4", 1, remote_group=GROUP)
EGRESS = RuleMatch("egress", "IPv4")


def port_filter(vm: Vm, rules: tuple[RuleMatch, ...], zone: int = 11) -> PortFilter:
    return PortFilter(vm.port_id, port_device_name(vm.port_id), vm.network_id, zone, vm.mac,
                      ((f"{vm.ip}/32", vm.mac),), (vm.mac,), rules)


def with_filters(plans: list[HostPlan], members: tuple[str, ...], *rules_a2: RuleMatch) -> list[HostPlan]:
    """a1 and a2 filtered: both send anything; a2 accepts ICMP from the group (a1, a2: `members`) and
    `rules_a2`, a1 accepts ICMP from the group."""
    filters = {A1.port_id: port_filter(A1, (EGRESS, ICMP_FROM_GROUP)),
               A2.port_id: port_filter(A2, (EGRESS, ICMP_FROM_GROUP, *rules_a2))}
    out = []
    for plan in plans:
        mine = tuple(filters[p.port_id] for p in plan.ports if p.port_id in filters)
        out.append(replace(plan, filters=mine, address_sets=(AddressSet(GROUP, members),) if mine else ()))
    return out


@pytest.fixture(scope="module")
def cloud() -> Iterator[DataplaneLab]:
    with dataplane_lab(["ovs"] * 3) as lab:
        for vm in VMS:
            lab.add_vm(vm, mtu=1500)
        yield lab


@pytest.fixture
def plans(cloud: DataplaneLab) -> list[HostPlan]:
    plans = with_filters(build_plans(cloud.lab, [NET_A, NET_B], VMS), ("10.0.0.1/32", "10.0.0.2/32"))
    cloud.reconcile_all(plans)
    return plans


def reaches(ns: str, ip: str) -> bool:
    return ping(ns, ip, count=4, wait_s=0.5)


def test_filtered_ports_talk_as_their_rules_say_and_a_pass_is_a_no_op(cloud: DataplaneLab,
                                                                       plans: list[HostPlan]) -> None:
    assert reaches(cloud.vms[A1.port_id], A2.ip) and reaches(cloud.vms[A2.port_id], A1.ip)
    assert cloud.reconcile_all(plans) == 0
    assert cloud.reconcile_all(plans, fresh=True) == 0  # an agent restart changes nothing
    assert not reaches(cloud.vms[A2.port_id], B1.ip)  # another network (same CIDR): never


def test_a_member_leaving_is_one_flow_and_cuts_its_traffic(cloud: DataplaneLab, plans: list[HostPlan]) -> None:
    assert reaches(cloud.vms[A1.port_id], A2.ip)
    without_a1 = with_filters(build_plans(cloud.lab, [NET_A, NET_B], VMS), ("10.0.0.2/32",))
    result = cloud.reconcile(1, without_a1[1])  # a2's host: the member flow of a1, in the ingress direction
    assert result.ok and (result.added["flow"], result.removed["flow"]) == (0, 1), result
    assert not reaches(cloud.vms[A1.port_id], A2.ip)


def test_a_filter_ovs_cannot_enforce_fails_its_port_only(cloud: DataplaneLab, plans: list[HostPlan]) -> None:
    udplite = RuleMatch("ingress", "IPv4", 136, 5000, 5000)
    broken = with_filters(build_plans(cloud.lab, [NET_A, NET_B], VMS), ("10.0.0.1/32", "10.0.0.2/32"), udplite)
    result = cloud.reconcile(1, broken[1])
    assert list(result.port_failures(observe=False)) == [A2.port_id], result.errors
    assert "cannot match the ports" in result.errors[0]
    assert not reaches(cloud.vms[A1.port_id], A2.ip)  # a2 forwards nothing, in either direction
    assert not reaches(cloud.vms[A2.port_id], A1.ip)
    cloud.reconcile(1, plans[1])
    assert reaches(cloud.vms[A1.port_id], A2.ip)


def test_port_security_switched_off_forwards_everything_again(cloud: DataplaneLab, plans: list[HostPlan]) -> None:
    """a2 pinging from an address that is not its own: dropped while filtered, answered once no port
    of the network has a filter (explicit pass-through, no leftover flow)."""
    a2 = cloud.vms[A2.port_id]
    run(["ip", "addr", "add", "10.0.0.9/24", "dev", "eth0"], netns=a2)
    # a1 answers without asking (the ARP responder keeps ARP for unknown addresses off the tunnels)
    run(["ip", "neigh", "replace", "10.0.0.9", "lladdr", A2.mac, "dev", "eth0"], netns=cloud.vms[A1.port_id])
    try:
        forged = ["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "0.5", "-I", "10.0.0.9", A1.ip]
        assert run(forged, netns=a2, check=False).returncode != 0
        unfiltered = build_plans(cloud.lab, [NET_A, NET_B], VMS)
        assert cloud.reconcile_all(unfiltered) > 0
        assert run(forged, netns=a2, check=False).returncode == 0
    finally:
        run(["ip", "addr", "del", "10.0.0.9/24", "dev", "eth0"], netns=a2, check=False)
