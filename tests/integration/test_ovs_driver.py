"""What only the OVS driver does, on one lab: h1 and h2 run OVS, h3 the Linux driver.

- GRE tenant network (h1-h2): the underlay carries GRE with the network's key;
- VLAN provider networks on physnet ph0 (h1-h2): 802.1Q with the provider VLAN on the wire, and two
  VLANs with the same CIDR stay isolated;
- a VXLAN network shared by an OVS host (h1) and a Linux host (h3): same VNI, same UDP port;
- ownership: a stray flow with kvnet's cookie is removed, an operator's flow is left alone, a deleted
  kvnet flow comes back;
- ovs-vswitchd restart: the monitor notices the lost flows and a reconcile restores them within 1 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from linux_fixtures import VXLAN, Net, Vm, build_plans, capture, ping, uid, wait_for
from ovs_fixtures import DataplaneLab, dataplane_lab

from kvnet.dataplane.ovs import openflow
from kvnet.dataplane.ovs.flows import canary
from kvnet.dataplane.ovs.state import COOKIE_MARK, COOKIE_SHIFT, INT_BRIDGE
from kvnet.lab import ovs
from kvnet.plan import HostPlan, NetworkPlan
from kvnet.sys.cmd import run

pytestmark = pytest.mark.root

MIXED = Net(uid("mixed", 1), 2001)
GRE = Net(uid("gre", 1), 3001)
VLAN_A = Net(uid("vlana", 1), 101)
VLAN_B = Net(uid("vlanb", 1), 102)
VMS = [
    Vm(uid("pmix", 1), MIXED.network_id, 0, "10.1.0.1", "fa:16:3e:01:00:01"),
    Vm(uid("pmix", 3), MIXED.network_id, 2, "10.1.0.3", "fa:16:3e:01:00:03"),
    Vm(uid("pgre", 1), GRE.network_id, 0, "10.2.0.1", "fa:16:3e:02:00:01"),
    Vm(uid("pgre", 2), GRE.network_id, 1, "10.2.0.2", "fa:16:3e:02:00:02"),
    Vm(uid("pvla", 1), VLAN_A.network_id, 0, "10.3.0.1", "fa:16:3e:03:00:01"),
    Vm(uid("pvla", 2), VLAN_A.network_id, 1, "10.3.0.2", "fa:16:3e:03:00:02"),
    Vm(uid("pvlb", 2), VLAN_B.network_id, 1, "10.3.0.12", "fa:16:3e:03:00:12"),  # VLAN B, same CIDR
]
MIX1, MIX3, GRE1, GRE2, VA1, VA2, VB2 = (vm.port_id for vm in VMS)


def as_type(net: NetworkPlan) -> NetworkPlan:
    """build_plans makes VXLAN networks; turn GRE and VLAN ones into what compile would give."""
    if net.network_id == GRE.network_id:
        return replace(net, network_type="gre")
    if net.network_id in (VLAN_A.network_id, VLAN_B.network_id):
        return replace(net, network_type="vlan", tunnel=None, physnet_interface="ph0", flood_to=(), remotes=())
    return net


@pytest.fixture(scope="module")
def cloud() -> Iterator[DataplaneLab]:
    with dataplane_lab(["ovs", "ovs", "linux"]) as lab:
        lab.wire = lab.add_physnet()  # type: ignore[attr-defined]
        for vm in VMS:
            lab.add_vm(vm, mtu=1500)
        yield lab


@pytest.fixture
def plans(cloud: DataplaneLab) -> list[HostPlan]:
    plans = [replace(p, networks=tuple(as_type(n) for n in p.networks))
             for p in build_plans(cloud.lab, [MIXED, GRE, VLAN_A, VLAN_B], VMS)]
    cloud.reconcile_all(plans)
    return plans


def reaches(ns: str, ip: str) -> bool:
    return ping(ns, ip, count=4, wait_s=0.5)


def test_gre_network_carries_its_key_on_the_underlay(cloud: DataplaneLab, plans: list[HostPlan]) -> None:
    assert reaches(cloud.vms[GRE1], "10.2.0.2")
    key = f"ip[24:4] = {GRE.vni:#x}"  # GRE header after a 20-byte IP header: flags+proto (4), key (4)
    with (capture(cloud.lab.underlay, "h1", f"proto gre and {key}") as with_key,
          capture(cloud.lab.underlay, "h1", "proto gre") as gre):
        assert ping(cloud.vms[GRE1], "10.2.0.2", count=3)
        keyed, total = with_key.stop(), gre.stop()
    assert keyed == total >= 6  # requests out, replies in: every GRE frame carries the network's key


def test_vlan_networks_are_tagged_on_the_wire_and_isolated(cloud: DataplaneLab, plans: list[HostPlan]) -> None:
    wire = cloud.wire  # type: ignore[attr-defined]
    assert reaches(cloud.vms[VA1], "10.3.0.2")
    with (capture(wire, "w1", "vlan 101 and icmp") as vlan101, capture(wire, "w1", "vlan 102") as vlan102):
        assert ping(cloud.vms[VA1], "10.3.0.2", count=3)
        tagged, other = vlan101.stop(), vlan102.stop()
    assert tagged >= 6 and other == 0
    assert not reaches(cloud.vms[VA1], "10.3.0.12")  # VLAN B's VM on the same wire and CIDR


def test_linux_and_ovs_hosts_share_a_vxlan_network(cloud: DataplaneLab, plans: list[HostPlan]) -> None:
    assert reaches(cloud.vms[MIX1], "10.1.0.3")  # OVS h1 -> Linux h3
    assert reaches(cloud.vms[MIX3], "10.1.0.1")  # and back
    with capture(cloud.lab.underlay, "h3", f"{VXLAN} and udp[12:4] = {MIXED.vni << 8:#x}") as vni:
        assert ping(cloud.vms[MIX3], "10.1.0.1", count=2)
        assert vni.stop() >= 4


def test_stray_flow_removed_foreign_flow_kept_deleted_flow_restored(cloud: DataplaneLab,
                                                                    plans: list[HostPlan]) -> None:
    rundir = cloud.ovs[0].rundir
    target = openflow.target(rundir, INT_BRIDGE)
    stray = (COOKIE_MARK << COOKIE_SHIFT) | 0x1234
    run([*openflow.OFCTL, "add-flow", target, f"cookie={stray:#x},table=20,priority=5,ip,actions=drop"])
    run([*openflow.OFCTL, "add-flow", target, "cookie=0x99,table=40,priority=5,actions=drop"])
    mine = openflow.dump(rundir, INT_BRIDGE)
    victim = next(f for f in mine if f.table == 20 and f.priority == 100)
    run([*openflow.OFCTL, "del-flows", "--strict", target, victim.delete_line().removeprefix("delete_strict ")])
    result = cloud.reconcile(0, plans[0])
    assert result.ok and (result.added["flow"], result.removed["flow"]) == (1, 1), result
    after = run([*openflow.OFCTL, "--no-stats", "dump-flows", target]).stdout
    assert f"cookie={stray:#x}" not in after and "cookie=0x99," in after
    assert f"cookie={victim.cookie:#x}" in after
    assert cloud.reconcile(0, plans[0], fresh=True).total_changes == 0


def test_vswitchd_restart_is_noticed_and_repaired_within_a_second(cloud: DataplaneLab,
                                                                  plans: list[HostPlan]) -> None:
    driver = cloud.driver(1)
    assert driver.reconcile(plans[1]).ok
    woken = threading.Event()
    driver.watch(woken.set, interval_s=0.1)  # type: ignore[union-attr]
    woken.clear()
    ovs.restart_vswitchd(cloud.procs, cloud.ovs[1])
    restarted = time.monotonic()
    assert woken.wait(2.0), "the monitor did not notice the lost flows"
    passes, flows = 0, 0
    while True:  # what the woken agent does: reconcile, and again at once while a pass left errors
        result = cloud.reconcile(1, plans[1])
        passes, flows = passes + 1, flows + result.added["flow"]
        if result.ok or time.monotonic() - restarted > 2:
            break
    repaired_s = time.monotonic() - restarted
    assert result.ok and flows > 0 and result.added["port"] == 0, result
    assert openflow.has_flow(cloud.ovs[1].rundir, canary())
    print(f"\nvswitchd restart -> flows reinstalled in {repaired_s * 1000:.0f} ms ({flows} flows, {passes} passes)")
    assert repaired_s < 1.0
    assert wait_for(lambda: reaches(cloud.vms[GRE2], "10.2.0.1"), timeout_s=5)
