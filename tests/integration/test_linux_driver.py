"""The Linux driver on a real 3-host lab: connectivity, isolation, MTU, repair, removal, adoption."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from linux_fixtures import NET_A, NET_B, VMS, Lab, Vm, build_plans, lab, ping, reconcile_all, uid

from kvnet.dataplane.linux import LinuxDriver
from kvnet.dataplane.linux.observe import observe
from kvnet.plan import HostPlan, bridge_name, port_device_name, tunnel_name
from kvnet.sys.cmd import run, run_json

pytestmark = pytest.mark.root

A1, A2, B1, B2 = (vm.port_id for vm in VMS)


@pytest.fixture(scope="module")
def cloud() -> Iterator[Lab]:
    with lab(3) as the_lab:
        for vm in VMS:
            the_lab.add_vm(vm, mtu=1500)
        yield the_lab


@pytest.fixture
def programmed(cloud: Lab) -> list[HostPlan]:
    """Every test starts from the standard plan, whatever the previous test did to the hosts."""
    plans = build_plans(cloud, [NET_A, NET_B], VMS)
    reconcile_all(cloud, plans)
    return plans


def test_ping_across_hosts_within_a_network_only(cloud: Lab, programmed: list[HostPlan]) -> None:
    assert ping(cloud.vms[A1], "10.0.0.2")
    assert ping(cloud.vms[B1], "10.0.0.1")  # reaches b2 on host3, not a1 (same IP, same host as b1)
    mac = run_json(["ip", "-j", "neigh", "show", "10.0.0.1"], netns=cloud.vms[B1])[0]["lladdr"]
    assert mac == "fa:16:3e:0b:00:01"
    assert not ping(cloud.vms[A1], "10.0.0.5")  # b1: same host, other network
    assert not ping(cloud.vms[A2], "10.0.0.5")  # b1: other host, other network


def test_reconcile_twice_is_noop_and_fresh_driver_adopts(cloud: Lab, programmed: list[HostPlan]) -> None:
    driver = LinuxDriver(cloud.hosts[0])
    assert driver.reconcile(programmed[0]).total_changes == 0
    assert driver.reconcile(programmed[0]).total_changes == 0
    assert reconcile_all(cloud, programmed) == 0  # fresh instances, already-programmed hosts


def test_largest_ping_the_mtu_allows_crosses(cloud: Lab, programmed: list[HostPlan]) -> None:
    assert ping(cloud.vms[A1], "10.0.0.2", size=1500 - 28, dont_fragment=True)
    assert not ping(cloud.vms[A1], "10.0.0.2", size=1500 - 28 + 1, dont_fragment=True)
    links = observe(cloud.hosts[0]).links
    assert links[tunnel_name(NET_A.network_id)].mtu == 1500
    assert links[port_device_name(A1)].mtu == 1500


def test_hand_deleted_and_stray_fdb_entries_are_repaired(cloud: Lab, programmed: list[HostPlan]) -> None:
    host, vxlan = cloud.hosts[0], tunnel_name(NET_A.network_id)
    run(["bridge", "fdb", "del", "fa:16:3e:0a:00:02", "dev", vxlan, "dst", "192.0.2.2", "self"], netns=host)
    run(["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", vxlan, "dst", "192.0.2.99", "self",
         "permanent"], netns=host)
    run(["ip", "neigh", "replace", "10.0.0.2", "lladdr", "fa:16:3e:ff:ff:ff", "dev", vxlan, "nud",
         "permanent"], netns=host)
    result = LinuxDriver(host).reconcile(programmed[0])
    assert result.ok, result.errors
    assert (result.added["fdb"], result.removed["fdb"], result.changed["neigh"]) == (1, 1, 1)
    assert LinuxDriver(host).reconcile(programmed[0]).total_changes == 0
    assert ping(cloud.vms[A1], "10.0.0.2")


def test_removing_a_network_leaves_no_kvnet_objects(cloud: Lab, programmed: list[HostPlan]) -> None:
    host, plan = cloud.hosts[0], programmed[0]
    without_a = HostPlan(plan.host, plan.tunnel_ip, plan.l2_population, plan.arp_responder,
                         tuple(n for n in plan.networks if n.network_id != NET_A.network_id),
                         tuple(p for p in plan.ports if p.network_id != NET_A.network_id))
    result = LinuxDriver(host).reconcile(without_a)
    assert result.ok, result.errors
    assert (result.removed["link"], result.removed["port"]) == (2, 1)
    seen = observe(host)
    assert bridge_name(NET_A.network_id) not in seen.links
    assert tunnel_name(NET_A.network_id) not in seen.links
    assert not any(entry.dev == tunnel_name(NET_A.network_id) for entry in seen.fdb | seen.neigh)
    port_dev = seen.links[port_device_name(A1)]  # the hypervisor's device survives, detached
    assert port_dev.master is None
    assert ping(cloud.vms[B1], "10.0.0.1")  # the other network is untouched
    empty = HostPlan(plan.host, plan.tunnel_ip, True, True)
    LinuxDriver(host).reconcile(empty)
    assert observe(host).owned_links() == {}


def test_foreign_objects_are_never_touched(cloud: Lab, programmed: list[HostPlan]) -> None:
    host = cloud.hosts[1]
    run(["ip", "link", "add", "br-foreign", "type", "bridge"], netns=host)
    run(["ip", "link", "add", "kvb-noalias", "type", "bridge"], netns=host)  # our prefix, no alias
    run(["bridge", "fdb", "add", "02:00:00:00:00:01", "dev", "br-foreign", "self", "permanent"], netns=host)
    run(["ip", "neigh", "add", "198.51.100.1", "lladdr", "02:00:00:00:00:02", "dev", "br-foreign", "nud",
         "permanent"], netns=host)
    try:
        empty = HostPlan(programmed[1].host, programmed[1].tunnel_ip, True, True)
        assert LinuxDriver(host).reconcile(empty).ok
        seen = observe(host)
        assert {"br-foreign", "kvb-noalias", "ul0"} <= set(seen.links)
        fdb = run_json(["bridge", "-j", "fdb", "show", "dev", "br-foreign"], netns=host)
        assert any(row["mac"] == "02:00:00:00:00:01" for row in fdb)
        assert run_json(["ip", "-j", "neigh", "show", "198.51.100.1"], netns=host)
    finally:
        run(["ip", "link", "del", "br-foreign"], netns=host, check=False)
        run(["ip", "link", "del", "kvb-noalias"], netns=host, check=False)


def test_port_whose_device_does_not_exist_yet_is_reported(cloud: Lab, programmed: list[HostPlan]) -> None:
    extra = Vm(uid("portc", 9), NET_A.network_id, 0, "10.0.0.9", "fa:16:3e:0a:00:09")
    plan = build_plans(cloud, [NET_A, NET_B], [*VMS, extra])[0]
    result = LinuxDriver(cloud.hosts[0]).reconcile(plan)
    assert result.ok and result.missing_ports == (extra.port_id,)
