"""The Linux driver's behaviour tests, run over both drivers on the same 3-host lab and plans.

Reachability and isolation, MTU, no-op reconcile and adoption by a fresh driver, stale state removed,
L2 population flood scope and the ARP responder measured on the underlay, and a restarting driver
under continuous ping. Each driver gets its own module-scoped lab (`cloud`, parametrized).

One difference is inherent to the OVS userspace datapath: the first packets towards a tunnel peer
OVS has not resolved yet are dropped while it ARPs for the peer (the kernel queues them), so
reachability is asserted with `reaches` (a few pings, any reply counts).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
from linux_fixtures import (
    INNER_ARP,
    INNER_BROADCAST,
    NET_A,
    NET_B,
    VMS,
    VXLAN,
    build_plans,
    capture,
    ping,
    vni_filter,
)
from ovs_fixtures import DRIVERS, DataplaneLab, dataplane_lab

from kvnet.plan import HostPlan
from kvnet.sys.cmd import in_netns, run

pytestmark = pytest.mark.root
A1, A2, B1, B2 = (vm.port_id for vm in VMS)


@pytest.fixture(scope="module", params=DRIVERS)
def cloud(request: pytest.FixtureRequest) -> Iterator[DataplaneLab]:
    with dataplane_lab([request.param] * 3) as lab:
        for vm in VMS:
            lab.add_vm(vm, mtu=1500)
        yield lab


@pytest.fixture
def programmed(cloud: DataplaneLab) -> list[HostPlan]:
    plans = build_plans(cloud.lab, [NET_A, NET_B], VMS)
    cloud.reconcile_all(plans)
    return plans


def reaches(ns: str, ip: str) -> bool:
    return ping(ns, ip, count=4, wait_s=0.5)


def test_ping_across_hosts_within_a_network_only(cloud: DataplaneLab, programmed: list[HostPlan]) -> None:
    assert reaches(cloud.vms[A1], "10.0.0.2")
    assert reaches(cloud.vms[B1], "10.0.0.1")  # b2 on host3, not a1 (same IP, on b1's host)
    assert run(["ip", "-j", "neigh", "show", "10.0.0.1"], netns=cloud.vms[B1]).stdout.count("fa:16:3e:0b:00:01")
    assert not reaches(cloud.vms[A1], "10.0.0.5")  # b1: same host, other network
    assert not reaches(cloud.vms[A2], "10.0.0.5")  # b1: other host, other network


def test_reconcile_twice_is_noop_and_fresh_driver_adopts(cloud: DataplaneLab, programmed: list[HostPlan]) -> None:
    assert cloud.reconcile(0, programmed[0]).total_changes == 0
    assert cloud.reconcile_all(programmed, fresh=True) == 0


def test_largest_ping_the_mtu_allows_crosses(cloud: DataplaneLab, programmed: list[HostPlan]) -> None:
    assert reaches(cloud.vms[A1], "10.0.0.2")
    assert ping(cloud.vms[A1], "10.0.0.2", size=1500 - 28, dont_fragment=True)
    assert not ping(cloud.vms[A1], "10.0.0.2", size=1500 - 28 + 1, dont_fragment=True)


def test_removing_a_network_and_the_rest_leaves_nothing_of_it(cloud: DataplaneLab,
                                                            programmed: list[HostPlan]) -> None:
    plan = programmed[0]
    without_a = HostPlan(plan.host, plan.tunnel_ip, plan.l2_population, plan.arp_responder,
                         tuple(n for n in plan.networks if n.network_id != NET_A.network_id),
                         tuple(p for p in plan.ports if p.network_id != NET_A.network_id))
    result = cloud.reconcile(0, without_a)
    assert result.ok and result.removed["port"] == 1, result
    assert not reaches(cloud.vms[A1], "10.0.0.2")
    assert reaches(cloud.vms[B1], "10.0.0.1")  # the other network is untouched
    result = cloud.reconcile(0, HostPlan(plan.host, plan.tunnel_ip, True, True))
    assert result.ok and result.total_changes > 0
    assert cloud.reconcile(0, HostPlan(plan.host, plan.tunnel_ip, True, True), fresh=True).total_changes == 0
    assert not reaches(cloud.vms[B1], "10.0.0.1")


def forget_neighbours(cloud: DataplaneLab) -> None:
    for ns in cloud.vms.values():
        run(["ip", "neigh", "flush", "all"], netns=ns)


def test_arp_responder_keeps_arp_off_the_underlay(cloud: DataplaneLab, programmed: list[HostPlan]) -> None:
    assert reaches(cloud.vms[A1], "10.0.0.2")  # tunnel peers resolved (OVS), caches warm
    forget_neighbours(cloud)
    with (capture(cloud.lab.underlay, "h1", INNER_ARP) as arp,
          capture(cloud.lab.underlay, "h1", VXLAN) as vxlan):
        assert ping(cloud.vms[A1], "10.0.0.2", count=2, wait_s=0.5)
        assert not ping(cloud.vms[A1], "10.0.0.77", count=2, wait_s=0.5)
        arp_frames, vxlan_frames = arp.stop(), vxlan.stop()
    assert vxlan_frames > 0  # the capture works: the pings crossed the underlay
    assert arp_frames == 0


def test_without_l2pop_flood_reaches_only_flood_to_hosts(cloud: DataplaneLab) -> None:
    plans = build_plans(cloud.lab, [NET_A, NET_B], VMS, l2pop=False, arp_responder=False)
    cloud.reconcile_all(plans)
    assert reaches(cloud.vms[A1], "10.0.0.2")
    forget_neighbours(cloud)
    vni_a = vni_filter(NET_A.vni)
    with (capture(cloud.lab.underlay, "h2", f"{vni_a} and {INNER_BROADCAST.removeprefix(VXLAN + ' and ')}")
          as to_host2, capture(cloud.lab.underlay, "h3", vni_a) as to_host3):
        assert ping(cloud.vms[A1], "10.0.0.2", count=2)
        broadcasts_host2, frames_host3 = to_host2.stop(), to_host3.stop()
    assert broadcasts_host2 > 0  # host2 has a port in net A: it is in flood_to
    assert frames_host3 == 0  # host3 has none: nothing of VNI 1001 reaches it


def test_restarting_driver_under_continuous_ping_loses_nothing(cloud: DataplaneLab,
                                                               programmed: list[HostPlan]) -> None:
    assert reaches(cloud.vms[A1], "10.0.0.2")
    pinger = subprocess.Popen(in_netns(["ping", "-n", "-i", "0.01", "-c", "150", "-W", "1", "10.0.0.2"],
                                       cloud.vms[A1]), stdout=subprocess.PIPE, text=True)
    try:
        changes = 0
        while pinger.poll() is None:  # agent restarts, back to back, for as long as the ping runs
            changes += cloud.reconcile(0, programmed[0], fresh=True).total_changes
            changes += cloud.reconcile(1, programmed[1], fresh=True).total_changes
        out = pinger.communicate(timeout=30)[0]
    finally:
        if pinger.poll() is None:
            pinger.kill()
    sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())  # type: ignore[union-attr]
    assert (sent, received, changes) == (150, 150, 0), out
