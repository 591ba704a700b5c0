"""Lab VMs: namespaces with the port's MAC/IP/MTU whose host-side device an agent plugs into a bridge.

Here the test plugs both devices into a hand-made bridge in the host, standing in for the agent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from kvnet.lab import names as n
from kvnet.lab.lab import Lab, LabError
from kvnet.lab.probe import ping, ping_until
from kvnet.lab.testing import running_lab
from kvnet.lab.vm import create_vm, delete_vm, vm_exec
from kvnet.plan import port_device_name
from kvnet.sys import netns
from kvnet.sys.cmd import run, run_json

pytestmark = pytest.mark.root

SUBNET = {"id": "sub-1", "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"}
MTU = 1450


def port(ip: str, mac: str) -> dict:
    return {"id": str(uuid.uuid4()), "mac_address": mac,
            "fixed_ips": [{"subnet_id": "sub-1", "ip_address": ip}]}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(hosts=2) as lab:
        yield lab


def test_two_vms_on_one_host_talk_through_a_bridge(lab: Lab) -> None:
    hns = n.host_ns(lab.name, "h1")
    p1, p2 = port("10.0.0.11", "fa:16:3e:00:00:11"), port("10.0.0.12", "fa:16:3e:00:00:12")
    create_vm(lab, "vm1", "h1", p1, SUBNET, MTU)
    create_vm(lab, "vm2", "h1", p2, SUBNET, MTU)
    try:
        eth0 = run_json(["ip", "-j", "addr", "show", "dev", "eth0"], netns=n.vm_ns(lab.name, "vm1"))[0]
        assert eth0["address"] == "fa:16:3e:00:00:11" and eth0["mtu"] == MTU
        assert [(a["local"], a["prefixlen"]) for a in eth0["addr_info"]] == [("10.0.0.11", 24)]
        routes = run_json(["ip", "-j", "route", "show", "default"], netns=n.vm_ns(lab.name, "vm1"))
        assert [(r["gateway"], r["dev"]) for r in routes] == [("10.0.0.1", "eth0")]
        dev = run_json(["ip", "-j", "link", "show", "dev", port_device_name(p1["id"])], netns=hns)[0]
        assert dev["mtu"] == MTU

        # Not plugged in yet: nothing connects the two devices.
        assert ping_until(lab, "vm1", "10.0.0.12", deadline_s=0.3) is None
        # Forget the failed ARP resolution, else the next request waits for its 1 s retransmit timer.
        vm_exec(lab, "vm1", ["ip", "neigh", "flush", "dev", "eth0"])

        run(["ip", "-n", hns, "link", "add", "brtest", "type", "bridge"])
        for p in (p1, p2):
            run(["ip", "-n", hns, "link", "set", port_device_name(p["id"]), "master", "brtest"])
        run(["ip", "-n", hns, "link", "set", "brtest", "up"])

        elapsed = ping_until(lab, "vm1", "10.0.0.12", deadline_s=5)
        assert elapsed is not None and 0 < elapsed < 1000  # below the 1 s ARP retransmit: answered at once
        assert ping(lab, "vm2", "10.0.0.11", count=2)
        assert ping(lab, "vm1", "10.0.0.12", size=MTU - 28, dont_fragment=True)
        assert not ping(lab, "vm1", "10.0.0.12", size=MTU - 27, dont_fragment=True, timeout=0.2)
        assert "fa:16:3e:00:00:12" in vm_exec(lab, "vm1", ["ip", "neigh", "show", "10.0.0.12"]).stdout
        assert set(lab.status()["vms"]) == {"vm1", "vm2"}
    finally:
        delete_vm(lab, "vm1")
        delete_vm(lab, "vm2")
        run(["ip", "-n", hns, "link", "del", "brtest"], check=False)
    assert not netns.exists(n.vm_ns(lab.name, "vm1"))
    assert run(["ip", "-n", hns, "link", "show", port_device_name(p1["id"])], check=False).returncode != 0
    assert lab.vms() == {}


def test_vm_without_gateway_and_recreate_same_port(lab: Lab) -> None:
    p = port("10.0.0.21", "fa:16:3e:00:00:21")
    subnet = {**SUBNET, "gateway_ip": None}
    for _ in range(2):  # the device name is free again right after delete_vm
        create_vm(lab, "vm3", "h2", p, subnet, 1500)
        assert run_json(["ip", "-j", "route", "show", "default"], netns=n.vm_ns(lab.name, "vm3")) == []
        delete_vm(lab, "vm3")


def test_create_vm_rejects_bad_input_and_leaves_nothing(lab: Lab) -> None:
    with pytest.raises(LabError, match="no host"):
        create_vm(lab, "vm4", "h9", port("10.0.0.31", "fa:16:3e:00:00:31"), SUBNET, 1500)
    with pytest.raises(LabError, match="no fixed IP"):
        create_vm(lab, "vm4", "h1", port("10.9.0.31", "fa:16:3e:00:00:31"), SUBNET, 1500)
    with pytest.raises(Exception, match="address"):  # multicast MAC: the kernel refuses, we clean up
        create_vm(lab, "vm4", "h1", port("10.0.0.31", "01:00:5e:00:00:01"), SUBNET, 1500)
    assert lab.vms() == {} and not netns.exists(n.vm_ns(lab.name, "vm4"))


def test_down_removes_vms_and_their_devices() -> None:
    with running_lab(hosts=1) as lab:
        create_vm(lab, "vm5", "h1", port("10.0.0.51", "fa:16:3e:00:00:51"), SUBNET, 1500)
        assert lab.status()["namespaces"][n.vm_ns(lab.name, "vm5")] is True
        report = lab.down()
        assert n.vm_ns(lab.name, "vm5") in report.namespaces
        assert netns.list_with_prefix(n.prefix(lab.name)) == []
        assert not lab.dir.exists()
