"""MAC learning on a real bridge: a VM sending 20,000 frames from random source MACs fills no table.

Its tap does not learn (kvnet pins its MAC instead); a port without port security learns, up to the
bridge's cap (kvnet.dataplane.linux.bridge_limits); traffic between the other VMs goes on."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from linux_fixtures import Lab, Vm, lab, ping, uid, wait_for

from kvnet.dataplane.linux import LinuxDriver
from kvnet.dataplane.linux.bridge_limits import FDB_MAX_LEARNED
from kvnet.plan import HostPlan, NetworkPlan, PortPlan, bridge_name, port_device_name, tunnel_name
from kvnet.sys.bridge_netlink import NETLINK
from kvnet.sys.cmd import in_netns, run, run_json

pytestmark = pytest.mark.root

NET = uid("learn", 1)
SECURE, OPEN, OTHER = (Vm(uid("plearn", i), NET, 0, f"10.9.0.{i}", f"fa:16:3e:09:00:0{i}") for i in (1, 2, 3))
FLOOD = """
import socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind(("eth0", 0))
for i in range(int(sys.argv[1])):  # locally administered unicast sources, all different
    source = bytes([0x02, 0x5e, i >> 16 & 255, i >> 8 & 255, i & 255, 0x01])
    sock.send(b"\\xff" * 6 + source + b"\\x88\\xb5" + bytes(46))
"""


@pytest.fixture(scope="module")
def host() -> Iterator[Lab]:
    with lab(1) as the_lab:
        for vm in (SECURE, OPEN, OTHER):
            the_lab.add_vm(vm, mtu=1450)
        ports = tuple(PortPlan(vm.port_id, NET, vm.mac, (vm.ip,), port_device_name(vm.port_id), 1450,
                               learning=vm is OPEN) for vm in (SECURE, OPEN, OTHER))
        plan = HostPlan("h1", the_lab.tunnel_ip(0), True, True,
                        (NetworkPlan(NET, "vxlan", 1009, 1450, bridge_name(NET), tunnel_name(NET), None),), ports)
        result = LinuxDriver(the_lab.hosts[0]).reconcile(plan)
        assert result.ok, result.errors
        yield the_lab


def learned(the_lab: Lab, device: str) -> int:
    """Entries the bridge learned on `device` (neither static nor permanent)."""
    rows = run_json(["bridge", "-j", "fdb", "show", "br", bridge_name(NET)], netns=the_lab.hosts[0])
    return sum(1 for r in rows if r.get("ifname") == device and "master" in r and not r.get("state"))


def flood(the_lab: Lab, vm: Vm, frames: int = 20_000) -> None:
    run(in_netns([sys.executable, "-c", FLOOD, str(frames)], the_lab.vms[vm.port_id]), timeout=120)


def test_a_port_with_port_security_learns_nothing_from_20000_forged_macs(host: Lab) -> None:
    flood(host, SECURE)
    assert learned(host, port_device_name(SECURE.port_id)) == 0
    pins = run_json(["bridge", "-j", "fdb", "show", "dev", port_device_name(SECURE.port_id)], netns=host.hosts[0])
    assert any(r["mac"] == SECURE.mac and r.get("state") == "static" for r in pins)  # its own MAC: pinned


def test_a_port_without_port_security_learns_up_to_the_bridges_cap(host: Lab) -> None:
    device = port_device_name(OPEN.port_id)
    flood(host, OPEN)
    assert wait_for(lambda: learned(host, device) >= FDB_MAX_LEARNED, timeout_s=5)
    learned_now, cap = NETLINK.read(host.hosts[0])[bridge_name(NET)]
    assert cap == FDB_MAX_LEARNED and learned_now <= FDB_MAX_LEARNED and learned(host, device) <= FDB_MAX_LEARNED
    print(f"\n20,000 forged source MACs -> {learned(host, device)} learned entries (cap {FDB_MAX_LEARNED})")


def test_traffic_between_vms_goes_on_with_a_full_table(host: Lab) -> None:
    flood(host, OPEN)
    assert NETLINK.read(host.hosts[0])[bridge_name(NET)][0] >= FDB_MAX_LEARNED  # the bridge learns no more
    assert ping(host.vms[SECURE.port_id], OTHER.ip, count=3)
    assert ping(host.vms[OTHER.port_id], OPEN.ip, count=3)
