"""The Linux port filters against the real kernel (issue #14): hand-built plans with filters, real
packets between VM namespaces on one host's bridge, and the tables read back unchanged.
The whole-cloud suite (agents, both dataplanes, every spoofing case) is tests/e2e/test_security.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from linux_fixtures import Lab, Vm, lab, ping, uid

from kvnet.dataplane.linux import LinuxDriver
from kvnet.dataplane.linux.conntrack_sweep import parse
from kvnet.plan import HostPlan, NetworkPlan, PortPlan, bridge_name, port_device_name, tunnel_name
from kvnet.plan.security import AddressSet, PortFilter, RuleMatch
from kvnet.sys.cmd import run

pytestmark = pytest.mark.root

NET = uid("fnet", 1)
GROUP = uid("fgrp", 1)
A = Vm(uid("fa", 1), NET, 0, "10.0.0.1", "fa:16:3e:0f:00:01")
B = Vm(uid("fb", 2), NET, 0, "10.0.0.2", "fa:16:3e:0f:00:02")
C = Vm(uid("fc", 3), NET, 0, "10.0.0.3", "fa:16:3e:0f:00:03")
EGRESS_ALL = RuleMatch("egress", "IPv4")
FROM_GROUP = RuleMatch("ingress", "IPv4", remote_group=GROUP)  # the default group's rule


def flt(vm: Vm, *rules: RuleMatch) -> PortFilter:
    return PortFilter(vm.port_id, port_device_name(vm.port_id), NET, 77, vm.mac, ((f"{vm.ip}/32", vm.mac),),
                      (vm.mac,), tuple(rules))


def plan(*filters: PortFilter, members: tuple[str, ...] = ("10.0.0.1/32", "10.0.0.2/32")) -> HostPlan:
    net = NetworkPlan(NET, "vxlan", 1077, 1450, bridge_name(NET), tunnel_name(NET), None, ct_zone=77)
    ports = tuple(PortPlan(vm.port_id, NET, vm.mac, (vm.ip,), port_device_name(vm.port_id), 1450) for vm in (A, B, C))
    return HostPlan("h1", "192.0.2.1", True, True, (net,), ports, filters=filters,
                    address_sets=(AddressSet(GROUP, members),))


@pytest.fixture(scope="module")
def host() -> Iterator[Lab]:
    with lab(n_hosts=1) as the_lab:
        for vm in (A, B, C):
            the_lab.add_vm(vm, 1450)
        yield the_lab


def reconcile(the_lab: Lab, want: HostPlan) -> int:
    result = LinuxDriver(the_lab.hosts[0]).reconcile(want)
    assert result.ok, result.errors
    return result.total_changes


def test_filters_apply_then_a_second_pass_changes_nothing(host: Lab) -> None:
    want = plan(flt(A, EGRESS_ALL, FROM_GROUP), flt(B, EGRESS_ALL, FROM_GROUP), flt(C, EGRESS_ALL))
    assert reconcile(host, want) > 0
    assert reconcile(host, want) == 0
    a, b, c = (host.vms[vm.port_id] for vm in (A, B, C))
    assert ping(b, A.ip, count=2)  # a member of A's group
    assert not ping(c, A.ip)  # C is no member: A accepts nothing from it
    assert ping(a, C.ip) is False  # C accepts nothing at all (no ingress rule)
    assert ping(a, B.ip)


def test_a_member_that_leaves_is_refused_and_its_connections_end(host: Lab) -> None:
    want = plan(flt(A, EGRESS_ALL, FROM_GROUP), flt(B, EGRESS_ALL, FROM_GROUP), flt(C, EGRESS_ALL))
    reconcile(host, want)
    b = host.vms[B.port_id]
    assert ping(b, A.ip)
    assert (B.ip, A.ip) in opened(host)
    reconcile(host, replace(want, address_sets=(AddressSet(GROUP, ("10.0.0.1/32",)),)))
    assert not ping(b, A.ip)
    assert (B.ip, A.ip) not in opened(host)  # the sweep ended what the member had opened


def opened(the_lab: Lab) -> set[tuple[str, str]]:
    """(opener, target) of the conntrack entries in the network's zone."""
    listing = run(["conntrack", "-L", "-w", "77"], netns=the_lab.hosts[0], check=False).stdout
    return {(str(c.src), str(c.dst)) for c in parse(listing)}


def test_a_forged_source_address_or_mac_never_leaves_the_tap(host: Lab) -> None:
    reconcile(host, plan(flt(A, EGRESS_ALL, FROM_GROUP), flt(B, EGRESS_ALL, FROM_GROUP), flt(C, EGRESS_ALL)))
    b = host.vms[B.port_id]
    run(["ip", "addr", "add", "10.0.0.9/24", "dev", "eth0"], netns=b)
    try:
        argv = ["ping", "-n", "-q", "-c", "1", "-W", "1", "-I", "10.0.0.9", A.ip]
        assert run(argv, netns=b, check=False).returncode != 0
    finally:
        run(["ip", "addr", "del", "10.0.0.9/24", "dev", "eth0"], netns=b)


def test_a_tap_without_its_filter_forwards_nothing(host: Lab) -> None:
    """Fail closed: the plan lists A's tap, but its filter is not in the tables (as if it failed)."""
    reconcile(host, plan(flt(B, EGRESS_ALL, FROM_GROUP), flt(C, EGRESS_ALL)))
    run(["nft", "delete", "element", "bridge", "kvnet", "from_port", f'{{ "{port_device_name(A.port_id)}" }}'],
        netns=host.hosts[0])
    assert not ping(host.vms[A.port_id], B.ip)


def test_no_vm_reaches_the_hosts_own_stack(host: Lab) -> None:
    reconcile(host, plan(flt(A, EGRESS_ALL, FROM_GROUP), flt(B, EGRESS_ALL, FROM_GROUP), flt(C, EGRESS_ALL)))
    a = host.vms[A.port_id]
    run(["ip", "addr", "add", "10.0.0.254/24", "dev", bridge_name(NET)], netns=host.hosts[0])
    try:
        assert not ping(a, "10.0.0.254")
    finally:
        run(["ip", "addr", "del", "10.0.0.254/24", "dev", bridge_name(NET)], netns=host.hosts[0])
