"""L2 population and the ARP responder, measured on the underlay with tcpdump.

Both ARP responder mechanisms run the same traffic; the figures printed here are the ones
`kvnet/dataplane/linux/render.py` cites for choosing the VXLAN `proxy` flag.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from linux_fixtures import (
    INNER_ARP,
    INNER_BROADCAST,
    NET_A,
    NET_B,
    VMS,
    VXLAN,
    Lab,
    build_plans,
    capture,
    lab,
    ping,
    reconcile_all,
    vni_filter,
)

from kvnet.sys.cmd import run

pytestmark = pytest.mark.root
A1, A2 = VMS[0].port_id, VMS[1].port_id


@pytest.fixture(scope="module")
def cloud() -> Iterator[Lab]:
    with lab(3) as the_lab:
        for vm in VMS:
            the_lab.add_vm(vm, mtu=1500)
        yield the_lab


def forget_neighbours(the_lab: Lab) -> None:
    for ns in the_lab.vms.values():
        run(["ip", "neigh", "flush", "all"], netns=ns)


def arp_and_vxlan_frames_from_host1(the_lab: Lab, target: str, *, reachable: bool) -> tuple[int, int]:
    """Ping `target` from a1 (on host1) with cold neighbour caches; count what host1 sends the underlay."""
    forget_neighbours(the_lab)
    with capture(the_lab.underlay, "h1", INNER_ARP) as arp, capture(the_lab.underlay, "h1", VXLAN) as vxlan:
        assert ping(the_lab.vms[A1], target, count=2, wait_s=0.5) == reachable
        return arp.stop(), vxlan.stop()


@pytest.mark.parametrize("arp_mode", ["vxlan_proxy", "bridge_suppress"])
def test_arp_responder_keeps_arp_off_the_underlay(cloud: Lab, arp_mode: str) -> None:
    reconcile_all(cloud, build_plans(cloud, [NET_A, NET_B], VMS), arp_mode)  # type: ignore[arg-type]
    known_arp, known_vxlan = arp_and_vxlan_frames_from_host1(cloud, "10.0.0.2", reachable=True)
    unknown_arp, _ = arp_and_vxlan_frames_from_host1(cloud, "10.0.0.77", reachable=False)
    print(f"\n{arp_mode}: ARP frames host1 -> underlay: known remote {known_arp} (of {known_vxlan} VXLAN "
          f"frames), unknown IP {unknown_arp}")
    assert known_vxlan > 0  # the capture works: the pings crossed the underlay
    if arp_mode == "vxlan_proxy":
        assert known_arp == unknown_arp == 0


def test_without_l2pop_flood_reaches_only_flood_to_hosts(cloud: Lab) -> None:
    reconcile_all(cloud, build_plans(cloud, [NET_A, NET_B], VMS, l2pop=False, arp_responder=False))
    forget_neighbours(cloud)
    vni_a = vni_filter(NET_A.vni)
    with (capture(cloud.underlay, "h2", f"{vni_a} and {INNER_BROADCAST.removeprefix(VXLAN + ' and ')}")
          as to_host2, capture(cloud.underlay, "h3", vni_a) as to_host3):
        assert ping(cloud.vms[A1], "10.0.0.2", count=2)  # learnt through the flood
        broadcasts_host2, frames_host3 = to_host2.stop(), to_host3.stop()
    assert broadcasts_host2 > 0  # host2 has a port in net A: it is in flood_to
    assert frames_host3 == 0  # host3 has no port in net A: nothing of VNI 1001 reaches it
