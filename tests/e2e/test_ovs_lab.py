"""The agent on OVS hosts for real: a lab whose hosts run their own OVS (h3 runs Linux: a mixed cloud),
the API server, one agent per host choosing its driver from the host's `dataplane`, VMs, packets."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from kvnet.bench.dataplane.base import mac_of
from kvnet.client import Client
from kvnet.dataplane.ovs import host_isolation
from kvnet.lab import control, ovs
from kvnet.lab import names as n
from kvnet.lab.demo import DemoVM, boot_vm, ping_matrix
from kvnet.lab.lab import Lab
from kvnet.lab.probe import arp_capture, arp_replies, arp_replies_ns, ping_until
from kvnet.lab.testing import running_lab, unique_lab_name
from kvnet.lab.vm import delete_vm
from kvnet.sys.cmd import in_netns, run

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(ovs.lab_spec(unique_lab_name(), 3, "mixed"), control_plane=True) as lab:  # h1 h3 linux
        yield lab


@pytest.fixture(scope="module")
def client(lab: Lab) -> Iterator[Client]:
    with Client(control.server_url(lab)) as c:
        for tenant in ("blue", "red"):
            net = c.create("networks", {"name": f"{tenant}-net", "project_id": tenant})
            c.create("subnets", {"network_id": net["id"], "cidr": "10.10.0.0/24", "project_id": tenant})
        yield c


def remove(lab: Lab, client: Client, vms: list[DemoVM]) -> None:
    for vm in vms:
        delete_vm(lab, vm.name)
        client.delete("ports", client.find("ports", vm.name)["id"])


def test_mixed_cloud_reachability_isolation_and_no_tenant_arp_on_the_underlay(lab: Lab, client: Client) -> None:
    assert lab.hosts()["h2"]["dataplane"] == "ovs" and lab.hosts()["h1"]["dataplane"] == "linux"
    vms = [DemoVM(f"m{t[0]}{i}", f"h{i}", f"{t}-net", f"10.10.0.{base + i}")
           for t, base in (("blue", 10), ("red", 20)) for i in (1, 2, 3)]
    for vm in vms:
        boot_vm(lab, client, vm)
    try:
        for vm in vms[1:3]:  # OVS resolves its tunnel peers on first use; then the matrix is measured
            ping_until(lab, vm.name, vms[0].ip, 5)
        with arp_capture(lab) as capture:
            outcome = ping_matrix(lab, vms)
        wrong = [(a.name, b.name) for (a, b), ok in outcome.items() if ok != (a.network == b.network)]
        assert wrong == [], f"pairs that should (not) talk but do (not): {wrong}"
        census = capture.arp_census()
        assert census.tunnel_frames > 0 and census.tenant_arp_in_tunnels == 0, census
    finally:
        remove(lab, client, vms)


def test_only_br_phy_answers_arp_for_an_ovs_hosts_tunnel_ip(lab: Lab) -> None:
    """The tunnel IP sits on br-phy; the kernel must not also answer for it on ul0 (which OVS reads
    through a socket, so the kernel sees its frames too). A peer that cached ul0's MAC would send its
    VXLAN frames where OVS does not end tunnels: the path would stay dead until the cache expires."""
    hosts = lab.hosts()
    ovs_host = hosts["h2"]
    br_phy_mac = mac_of(ovs_host["namespace"], ovs.UNDERLAY_BRIDGE)
    replies = arp_replies_ns(hosts["h1"]["namespace"], n.HOST_UL_IF, ovs_host["tunnel_ip"], count=3)
    assert replies and set(replies) == {br_phy_mac}, (replies, br_phy_mac)


def test_a_vm_on_an_ovs_host_cannot_reach_the_host_stack_and_its_drop_chain_goes_with_it(lab: Lab,
                                                                                          client: Client) -> None:
    """Under the userspace datapath the host kernel sees a VM's frames too; kvnet's drop chain on the tap
    keeps the host from answering (here: ARP for its own tunnel IP, which a VM can route to)."""
    host = lab.hosts()["h2"]
    vm = DemoVM("iso", "h2", "blue-net", "10.10.0.40")
    device = boot_vm(lab, client, vm)["device"]
    try:
        assert device in (host_isolation.observe(host["namespace"]) or set())
        run(["ip", "route", "add", host["tunnel_ip"], "dev", "eth0"], netns=n.vm_ns(lab.name, vm.name))
        assert arp_replies(lab, vm.name, host["tunnel_ip"], count=2) == []
    finally:
        remove(lab, client, [vm])
    deadline = time.monotonic() + 10
    while device in (host_isolation.observe(host["namespace"]) or set()):
        assert time.monotonic() < deadline, f"the drop chain of {device} is still there"
        time.sleep(0.05)


def test_agent_restart_loses_nothing_and_a_vswitchd_restart_heals_within_a_second(lab: Lab,
                                                                                  client: Client) -> None:
    a, b = DemoVM("ra", "h1", "blue-net", "10.10.0.31"), DemoVM("rb", "h2", "blue-net", "10.10.0.32")
    for vm in (a, b):
        boot_vm(lab, client, vm)
    try:
        assert ping_until(lab, a.name, b.ip, 5) is not None
        pinger = subprocess.Popen(in_netns(["ping", "-i", "0.02", "-c", "150", "-W", "1", b.ip],
                                           n.vm_ns(lab.name, a.name)), stdout=subprocess.PIPE, text=True)
        name = control.agent_proc_name("h2")
        assert lab.procs.stop(name)
        control.start_agent(lab, "h2")
        out, _ = pinger.communicate(timeout=60)
        sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())  # type: ignore[union-attr]
        assert sent == received == 150, out

        stopped = time.monotonic()
        ovs.restart_vswitchd(lab.procs, ovs.host_instance(lab, "h2"))  # comes back with no flow at all
        up_ms = (time.monotonic() - stopped) * 1000
        assert ping_until(lab, a.name, b.ip, 5) is not None
        total_ms = (time.monotonic() - stopped) * 1000
        print(f"\nvswitchd stopped -> new vswitchd up after {up_ms:.0f} ms -> ping answered after {total_ms:.0f} ms")
        assert total_ms - up_ms < 1000
        # The monitor woke the agent: by the missing canary, or -- when the restarted vswitchd renumbered
        # the ports before the pidfile poll saw the new pid -- by the changed ofports (then the pass has
        # restored the canary before it is checked). Either way the heal is the monitor's, not a resync.
        assert re.search(r"(lost its flows|ofports changed).*: waking the agent", lab.procs.log_tail(name, 50))
    finally:
        remove(lab, client, [a, b])
