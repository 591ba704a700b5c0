"""The agent for real: a lab with the API server and one agent per host, VMs, real packets."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from kvnet.client import Client
from kvnet.errors import NotFound
from kvnet.lab import control
from kvnet.lab import names as n
from kvnet.lab.demo import CONVERGE_DEADLINE_S, DemoVM, boot_vm, ping_matrix
from kvnet.lab.lab import Lab
from kvnet.lab.probe import arp_capture, ping, ping_until
from kvnet.lab.testing import running_lab
from kvnet.lab.traffic import wait_until
from kvnet.lab.vm import delete_vm
from kvnet.sys.cmd import in_netns, run

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(hosts=3, control_plane=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def nets(client: Client) -> dict[str, str]:
    ids = {}
    for tenant in ("blue", "red"):
        net = client.create("networks", {"name": f"{tenant}-net", "project_id": tenant})
        client.create("subnets", {"network_id": net["id"], "cidr": "10.10.0.0/24", "project_id": tenant})
        ids[tenant] = net["id"]
    return ids


@contextmanager
def booted(lab: Lab, client: Client, *vms: DemoVM) -> Iterator[None]:
    """Boot VMs through the API; always remove them (VM and port) afterwards."""
    try:
        for vm in vms:
            boot_vm(lab, client, vm)
        yield
    finally:
        for vm in vms:
            remove_vm(lab, client, vm)


def remove_vm(lab: Lab, client: Client, vm: DemoVM) -> None:
    delete_vm(lab, vm.name)
    with suppress(NotFound):
        client.delete("ports", client.find("ports", vm.name)["id"])


def kvnet_objects(lab: Lab, host: str, needle: str) -> list[str]:
    """Lines of the host's FDB and permanent neighbours that mention `needle` (a MAC or an IP)."""
    ns = n.host_ns(lab.name, host)
    fdb = run(["bridge", "-n", ns, "fdb", "show"]).stdout.splitlines()
    neigh = run(["ip", "-n", ns, "neigh", "show", "nud", "permanent"]).stdout.splitlines()
    return [line for line in fdb + neigh if needle in line]


def test_reachability_isolation_and_no_arp_on_the_underlay(lab: Lab, client: Client, nets: dict[str, str]) -> None:
    vms = [DemoVM(f"m{t[0]}{i}", f"h{i}", f"{t}-net", f"10.10.0.{base + i}")
           for t, base in (("blue", 10), ("red", 20)) for i in (1, 2, 3)]
    with booted(lab, client, *vms):
        with arp_capture(lab) as capture:
            outcome = ping_matrix(lab, vms)
        wrong = [(a.name, b.name) for (a, b), ok in outcome.items() if ok != (a.network == b.network)]
        assert wrong == [], f"pairs that should (not) talk but do (not): {wrong}"
        census = capture.arp_census()
        assert census.tunnel_frames > 0  # the matrix crossed the tunnels while the census looked
        assert census.tenant_arp_in_tunnels == 0, census
        for vm in vms:
            port = client.find("ports", vm.name)
            assert port["status"] == "ACTIVE" and port["status_detail"]["host"] == vm.host
        # A VM that forges a static neighbour entry (another network's IP -> that VM's real MAC) still
        # cannot reach it: the frame stays in its own network's bridge and VNI.
        blue = vms[0]
        for red in (vms[3], vms[4]):  # same host as blue, and another host
            red_mac = client.find("ports", red.name)["mac_address"]
            ns = n.vm_ns(lab.name, blue.name)
            run(["ip", "neigh", "replace", red.ip, "lladdr", red_mac, "dev", "eth0", "nud", "permanent"], netns=ns)
            assert not ping(lab, blue.name, red.ip, count=2, timeout=1), f"{blue.name} reached {red.name}"


def test_agent_restart_during_continuous_ping_loses_nothing(lab: Lab, client: Client, nets: dict[str, str]) -> None:
    a, b = DemoVM("ra", "h1", "blue-net", "10.10.0.31"), DemoVM("rb", "h2", "blue-net", "10.10.0.32")
    with booted(lab, client, a, b):
        assert ping_until(lab, a.name, b.ip, 5) is not None
        pinger = subprocess.Popen(in_netns(["ping", "-i", "0.02", "-c", "250", "-W", "1", b.ip],
                                           n.vm_ns(lab.name, a.name)), stdout=subprocess.PIPE, text=True)
        for host in ("h1", "h2"):
            name = control.agent_proc_name(host)
            assert lab.procs.stop(name)
            lab.procs.start(name, control.agent_argv(lab.dir, host), netns=n.host_ns(lab.name, host))
        out, _ = pinger.communicate(timeout=60)
        sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())
        assert sent == 250 and received == 250, out
        # The restarted agent adopted the state and still serves new ports.
        with booted(lab, client, c := DemoVM("rc", "h2", "blue-net", "10.10.0.33")):
            assert ping_until(lab, a.name, c.ip, 5) is not None


def test_delete_and_move_leave_nothing_behind_and_the_ip_is_reused_at_once(
        lab: Lab, client: Client, nets: dict[str, str]) -> None:
    anchor = DemoVM("da", "h1", "blue-net", "10.10.0.41")
    old = DemoVM("dold", "h2", "blue-net", "10.10.0.42")
    new = DemoVM("dnew", "h3", "blue-net", old.ip)
    with booted(lab, client, anchor):
        with booted(lab, client, old):
            old_mac = client.find("ports", old.name)["mac_address"]
            assert kvnet_objects(lab, "h1", old_mac), "h1 should know the remote port through L2 population"
        with booted(lab, client, new):
            # ACTIVE says the port's own host is ready; the anchor's host learns it in its own pass (until
            # "ready means reachable", issue #16, ACTIVE waits for every host). Once h1 knows the new MAC,
            # no stale answer may remain: the first ARP must get the new port.
            new_mac = client.find("ports", new.name)["mac_address"]
            assert wait_until(lambda: kvnet_objects(lab, "h1", new_mac), CONVERGE_DEADLINE_S) is not None, \
                "h1 never learned the new port"
            assert ping_until(lab, anchor.name, new.ip, 3) is not None, "the reused IP must be reachable at once"
            for host in ("h1", "h3"):
                assert kvnet_objects(lab, host, old_mac) == [], f"stale entries for the deleted port on {host}"
            # h2 has no port of blue-net left: its bridge and tunnel are gone too.
            links = run(["ip", "-n", n.host_ns(lab.name, "h2"), "-o", "link", "show"]).stdout
            assert "kvb-" not in links and "kvx-" not in links, links


def test_dataplane_survives_the_server_being_down(lab: Lab, client: Client, nets: dict[str, str]) -> None:
    a, b = DemoVM("sa", "h1", "red-net", "10.10.0.51"), DemoVM("sb", "h3", "red-net", "10.10.0.52")
    with booted(lab, client, a, b):
        assert lab.procs.stop(control.SERVER)
        assert ping(lab, a.name, b.ip, count=20, timeout=1)
        out = run(in_netns(["ping", "-i", "0.02", "-c", "100", "-W", "1", b.ip], n.vm_ns(lab.name, a.name))).stdout
        assert " 0% packet loss" in out, out
        control.start_server(lab)
        with booted(lab, client, c := DemoVM("sc", "h2", "red-net", "10.10.0.53")):
            assert ping_until(lab, a.name, c.ip, 5) is not None, "agents reconnect and converge after the outage"
