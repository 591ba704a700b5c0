"""The lab on etcd (`kvnet lab up --store etcd`): a 3-member etcd cluster, two API servers, one agent
per host; real faults (SIGKILL) under real traffic between lab VMs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from kvnet.client import Client
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.demo import DemoVM, boot_vm
from kvnet.lab.etcd import lab_cluster, server_proc_names
from kvnet.lab.lab import Lab
from kvnet.lab.probe import ping_until
from kvnet.lab.spec import default_spec
from kvnet.lab.testing import force_clean, temp_root, unique_lab_name
from kvnet.sys.cmd import in_netns

pytestmark = [pytest.mark.root, pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")]
HEARTBEAT_S = 0.5  # agents' heartbeat interval here: a host is down 1.5 s after its agent stops


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    os.environ["KVNET_HEARTBEAT_INTERVAL"] = str(HEARTBEAT_S)  # inherited by the lab's agents
    with temp_root() as root:
        lab = Lab(unique_lab_name(), root)
        try:
            lab.up(default_spec(lab.name, 2), control_plane=True, store="etcd")
            yield lab
        finally:
            os.environ.pop("KVNET_HEARTBEAT_INTERVAL", None)
            force_clean(lab)


@pytest.fixture(scope="module")
def client(lab: Lab) -> Iterator[Client]:
    with Client(control.server_url(lab)) as c:
        yield c


@pytest.fixture(scope="module")
def net(client: Client) -> str:
    network = client.create("networks", {"name": "net"})
    client.create("subnets", {"network_id": network["id"], "cidr": "10.20.0.0/24"})
    return network["id"]


def wait_until(check: Callable[[], bool], deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s}s: {what}")
        time.sleep(0.05)


def pinger(lab: Lab, src: str, ip: str, seconds: float) -> subprocess.Popen[str]:
    count = int(seconds / 0.05)
    return subprocess.Popen(in_netns(["ping", "-i", "0.05", "-c", str(count), "-W", "1", ip], n.vm_ns(lab.name, src)),
                            stdout=subprocess.PIPE, text=True, start_new_session=True)


def loss(proc: subprocess.Popen[str]) -> tuple[int, int, str]:
    out, _ = proc.communicate(timeout=120)
    sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())  # type: ignore[union-attr]
    return sent, received, out


def test_lab_runs_three_etcd_members_and_two_servers(lab: Lab) -> None:
    status = lab.status()["processes"]
    assert all(status[f"etcd{i}"]["alive"] for i in (1, 2, 3))
    assert all(status[name]["alive"] for name in server_proc_names("etcd"))
    assert lab_cluster(lab).leader().name.startswith("etcd")
    assert control.server_url(lab).count("unix:") == 2


@pytest.mark.timeout(180)
def test_etcd_down_for_30s_loses_no_packet_and_agents_reconcile_after(lab: Lab, client: Client, net: str) -> None:
    a, b = DemoVM("ea", "h1", "net", "10.20.0.11"), DemoVM("eb", "h2", "net", "10.20.0.12")
    for vm in (a, b):
        boot_vm(lab, client, vm)
    assert ping_until(lab, a.name, b.ip, 10) is not None
    cluster = lab_cluster(lab)
    ping = pinger(lab, a.name, b.ip, 36)
    time.sleep(1)  # let the pinger get going: traffic before, during and after the outage
    for member in cluster.members:
        cluster.kill(member, signal.SIGKILL)
    down_at = time.monotonic()
    wait_until(lambda: time.monotonic() - down_at >= 30, 31, "30 s of etcd being down")
    for member in cluster.members:
        lab.procs.start(member.name, cluster.argv(member))
    cluster.wait_leader(20)
    sent, received, out = loss(ping)
    assert sent == received, out
    # the agents reconcile: a VM created after the outage is wired and reachable
    c = DemoVM("ec", "h2", "net", "10.20.0.13")
    boot_vm(lab, client, c)
    assert ping_until(lab, a.name, c.ip, 10) is not None


@pytest.mark.timeout(120)
def test_one_api_server_killed_agents_and_clients_carry_on(lab: Lab, client: Client, net: str) -> None:
    first = lab.procs.record("server")
    assert first is not None
    os.killpg(first.pgid, signal.SIGKILL)
    vm = DemoVM("ed", "h1", "net", "10.20.0.14")
    boot_vm(lab, client, vm)  # port created through the second server, wired by the agent, ACTIVE
    assert ping_until(lab, vm.name, "10.20.0.12", 10) is not None


@pytest.mark.timeout(60)
def test_a_dead_agent_shows_its_host_down_within_the_ttl_and_its_ports_too(lab: Lab, client: Client) -> None:
    wait_until(lambda: client.get("hosts", "h2")["status"] == "up", 10, "h2 up")
    agent = lab.procs.record(control.agent_proc_name("h2"))
    assert agent is not None
    os.killpg(agent.pgid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: client.get("hosts", "h2")["status"] == "down", 3 * HEARTBEAT_S + 3, "h2 down")
    print(f"\nh2 down {time.monotonic() - killed:.1f} s after its agent was killed (TTL {3 * HEARTBEAT_S} s)")
    ports = [p for p in client.list("ports") if p["binding_host"] == "h2"]
    assert ports and all(p["status"] == "DOWN" and p["status_detail"]["host_status"] == "down" for p in ports)
    assert client.get("hosts", "h1")["status"] == "up"
