"""Real qemu guests (TCG here) on two lab hosts, plugged by the agents, pinging across the VXLAN overlay."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kvnet.client import Client
from kvnet.lab import names as n
from kvnet.lab.lab import Lab
from kvnet.lab.probe import UnderlayCapture
from kvnet.lab.procs import proc_info
from kvnet.lab.qemu_vm import (
    GuestNic,
    boot_guest,
    guest_exec,
    guest_ping,
    proc_name,
    qemu_available,
)
from kvnet.lab.testing import running_lab
from kvnet.lab.vm import delete_vm
from kvnet.sys.cmd import run_json

pytestmark = pytest.mark.root
GUESTS = (("g1", "h1", "10.20.0.11"), ("g2", "h2", "10.20.0.12"))


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    reason = qemu_available()
    if reason:
        pytest.skip(reason)
    with running_lab(hosts=2, control_plane=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def guests(lab: Lab, client: Client) -> Iterator[dict[str, dict[str, Any]]]:
    net = client.create("networks", {"name": "gnet"})
    subnet = client.create("subnets", {"network_id": net["id"], "cidr": "10.20.0.0/24"})
    ports = {vm: client.create("ports", {"name": vm, "network_id": net["id"], "binding_host": host,
                                         "fixed_ips": [{"ip_address": ip}]}) for vm, host, ip in GUESTS}
    with ThreadPoolExecutor(len(GUESTS)) as pool:  # boot both at once, as two hypervisors would
        futures = {vm: pool.submit(boot_guest, lab, client, vm, host, [GuestNic(ports[vm], subnet, net["mtu"])])
                   for vm, host, _ in GUESTS}
        records = {vm: f.result() for vm, f in futures.items()}
    try:
        yield {vm: {**records[vm], "port": ports[vm], "mtu": net["mtu"]} for vm in records}
    finally:
        for vm, _, _ in GUESTS:
            delete_vm(lab, vm)  # a no-op for a VM a test already deleted
            client.delete("ports", ports[vm]["id"])


def test_guest_nic_has_the_port_mac_ip_and_network_mtu(lab: Lab, guests: dict[str, dict[str, Any]]) -> None:
    for vm, host, ip in GUESTS:
        g = guests[vm]
        out = guest_exec(lab, vm, "cat /sys/class/net/eth0/address /sys/class/net/eth0/mtu; ip -o -4 addr show eth0; "
                                  "ip route show default; uname -r", check=True).stdout
        assert g["port"]["mac_address"] in out and f"\n{g['mtu']}\n" in out, out
        assert f"inet {ip}/24" in out and "default via 10.20.0.1 dev eth0" in out, out
        # The agent plugged qemu's tap into the network's bridge, with the network MTU.
        tap = run_json(["ip", "-j", "link", "show", "dev", g["device"]], netns=n.host_ns(lab.name, host))[0]
        assert tap["master"].startswith("kvb-") and tap["mtu"] == g["mtu"] and "UP" in tap["flags"], tap
        print(f"{vm}: {g['accel']} guest, port ACTIVE {g['wired_s']} s after qemu started, "
              f"network up {g['boot_s']} s after resume")


def test_two_guests_ping_each_other_across_the_overlay(lab: Lab, guests: dict[str, dict[str, Any]]) -> None:
    (a, _, a_ip), (b, _, b_ip) = GUESTS
    with UnderlayCapture(lab, "udp port 4789") as vxlan:
        assert guest_ping(lab, a, b_ip, count=3), f"{a} cannot reach {b} ({b_ip})"
        assert guest_ping(lab, b, a_ip, count=3), f"{b} cannot reach {a} ({a_ip})"
    assert vxlan.count >= 12, "the echo requests and replies must cross the underlay VXLAN-encapsulated"
    # Full-size frames fit: 1422 bytes of ICMP payload + 28 = the network MTU 1450.
    mtu = guests[a]["mtu"]
    big = guest_exec(lab, a, f"ping -c 2 -W 2 -s {mtu - 28} {b_ip}")  # DF is set (PMTU discovery)
    assert big.returncode == 0, big.stdout


def test_deleting_a_guest_stops_qemu_and_removes_its_tap(lab: Lab, client: Client,
                                                        guests: dict[str, dict[str, Any]]) -> None:
    vm, host, _ = GUESTS[1]  # runs last in this module: g2 goes away
    pid = lab.procs.record(proc_name(vm)).pid
    assert proc_info(pid) is not None
    delete_vm(lab, vm)
    assert proc_info(pid) is None, "qemu (its whole process group) must be gone"
    links = run_json(["ip", "-j", "link", "show"], netns=n.host_ns(lab.name, host))
    assert guests[vm]["device"] not in {link["ifname"] for link in links}, "the tap goes with qemu"
    assert vm not in lab.vms() and proc_name(vm) not in lab.procs.records()
